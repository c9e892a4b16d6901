"""What ``raftlog grade`` leaves behind: a text summary, an HTML page, the logs, a JSON.

:func:`write_report` writes into one directory:

- ``report.html``: one self-contained page (it opens offline): the verdict, then per run
  its checks (verdict, summary, the evidence in a fold), its timeline (the record turned
  into a :class:`~raftlog.timeline.Recording`, drawn by the inlined
  ``dashboard/static/timeline.js``, the chaos report's and the dashboard's renderer),
  what the grader did, and every node's log;
- ``grade.json``: the verdicts and checks, for :func:`table` and for scripts;
- ``RUN/node_N.log`` and ``RUN/recording.json`` per run.

:func:`summary` is the terminal's text; :func:`table` puts the ``grade.json`` of many
report directories in one table (one row per submission).
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import jinja2
import msgspec
from markupsafe import Markup

from raftlog.grade.model import Check, RunRecord, Timings
from raftlog.grade.recording import recording
from raftlog.timeline import encode

HTML_NAME: Final = "report.html"
JSON_NAME: Final = "grade.json"
TEMPLATE_NAME: Final = "grade_report.html.j2"


@dataclass
class RunResult:
    record: RunRecord
    checks: list[Check]

    @property
    def label(self) -> str:
        rec = self.record
        return rec.name if rec.attempt == 1 else f"{rec.name}-attempt{rec.attempt}"

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)


@dataclass
class GradeResult:
    submission: str
    directory: str
    command: str
    source: str
    timings: Timings
    runs: list[RunResult] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(r.passed for r in self.runs)

    @property
    def unbuilt(self) -> bool:
        """No run could build its cluster: nothing of the submission was judged."""
        return bool(self.runs) and all(r.record.unbuilt for r in self.runs)


def _clean(value: object) -> str:
    """Text safe to print or embed: control characters as ``\\xNN``."""
    s = value if isinstance(value, str) else str(value)
    if s.isprintable():
        return s
    return (
        "".join(ch if ch in "\n\t" or ch.isprintable() else f"\\x{ord(ch):02x}" for ch in s)
        .encode("utf-8", "backslashreplace")
        .decode("utf-8")
    )


def _finalize(value: object) -> object:
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return _clean(value)


def _package_text(path: str) -> str:
    return importlib.resources.files("raftlog").joinpath(path).read_text(encoding="utf-8")


def _inline(text: str, tag: str) -> Markup:
    if f"</{tag}" in text.lower():
        raise ValueError(f"cannot inline a file containing </{tag}")
    return Markup(text)


# --------------------------------------------------------------------------- text


_MARK = {"pass": "PASS", "fail": "FAIL", "not observed": "n/o"}


def summary(result: GradeResult) -> str:
    """The terminal's summary: every check of every run, then the verdict."""
    out = [
        f"raftlog grade: {result.submission} ({result.source}: {result.command})",
        f"timings: {result.timings.describe()}",
    ]
    for run in result.runs:
        rec = run.record
        out.append("")
        out.append(
            f"{run.label}: {'PASS' if run.passed else 'FAIL'} ({rec.duration:.1f} s)"
            + (f" - stopped early: {rec.error}" if rec.error else "")
        )
        width = max((len(c.name) for c in run.checks), default=5)
        for c in run.checks:
            mark = _MARK[c.verdict] if c.required or c.verdict != "fail" else "warn"
            out.append(f"  {mark:<4}  {c.name:<{width}}  {_clean(c.summary)}")
    failed = [f"{r.label}/{c.name}" for r in result.runs for c in r.checks if c.failed]
    out.append("")
    verdict = "PASS" if result.passed else "FAIL"
    tail = f" (failed: {', '.join(failed)})" if failed else ""
    out.append(f"verdict: {verdict}{tail}; {result.wall_s:.0f} s")
    return "\n".join(out)


# --------------------------------------------------------------------------- files


def _as_json(result: GradeResult) -> dict[str, Any]:
    return {
        "submission": result.submission,
        "directory": result.directory,
        "command": result.command,
        "source": result.source,
        "timings": asdict(result.timings),
        "verdict": "pass" if result.passed else "fail",
        "wall_s": round(result.wall_s, 1),
        "runs": [
            {
                "run": r.record.name,
                "attempt": r.record.attempt,
                "verdict": "pass" if r.passed else "fail",
                "duration_s": round(r.record.duration, 2),
                "error": r.record.error,
                "unbuilt": r.record.unbuilt,
                "notes": r.record.notes,
                "checks": [asdict(c) for c in r.checks],
            }
            for r in result.runs
        ],
    }


def write_report(out_dir: Path, result: GradeResult) -> Path:
    """Write the report's files into ``out_dir``; the page's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for run in result.runs:
        rec = run.record
        folder = out_dir / run.label
        folder.mkdir(exist_ok=True)
        logs = []
        for node in rec.nodes:
            text = "\n".join(rec.logs.get(node, [])) + "\n"
            (folder / f"node_{node}.log").write_text(text, encoding="utf-8", errors="replace")
            logs.append((node, f"{run.label}/node_{node}.log", rec.logs.get(node, [])))
        timeline = recording(rec)
        (folder / "recording.json").write_bytes(encode(timeline))
        runs.append(
            {
                "label": run.label,
                "run": run,
                "rec": rec,
                "logs": logs,
                "recording": msgspec.to_builtins(timeline),
            }
        )
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("raftlog", "templates"),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    html = env.get_template(TEMPLATE_NAME).render(
        result=result,
        runs=runs,
        timeline_js=_inline(_package_text("dashboard/static/timeline.js"), "script"),
        css=_inline(_package_text("templates/report.css"), "style"),
    )
    page = out_dir / HTML_NAME
    page.write_text(html, encoding="utf-8", errors="replace")
    (out_dir / JSON_NAME).write_text(json.dumps(_as_json(result), indent=2) + "\n")
    return page


def table(report_dirs: Sequence[Path]) -> tuple[str, bool]:
    """One row per report directory (its ``grade.json``): submission, verdict, each run's
    verdict, the failed checks. Also whether every one passed."""
    rows: list[list[str]] = []
    all_passed = True
    runs = ("typical", "split-vote", "dead-leader", "dead-follower")
    for directory in report_dirs:
        path = directory / JSON_NAME
        try:
            doc = json.loads(path.read_text())
            verdict = str(doc["verdict"])
            by_run: dict[str, str] = {}
            failed: list[str] = []
            for r in doc["runs"]:
                by_run[r["run"]] = (
                    "pass" if r["verdict"] == "pass" or by_run.get(r["run"]) == "pass" else "FAIL"
                )
                failed += [
                    f"{r['run']}/{c['name']}"
                    for c in r["checks"]
                    if c["required"] and c["verdict"] == "fail"
                ]
            name = str(doc.get("submission", directory.name))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            rows.append([directory.name, "?", *("?" for _ in runs), f"no report: {exc}"])
            all_passed = False
            continue
        all_passed = all_passed and verdict == "pass"
        rows.append(
            [
                name,
                verdict.upper(),
                *(by_run.get(r, "-") for r in runs),
                ", ".join(failed),
            ]
        )
    head = ["submission", "verdict", *runs, "failed checks"]
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines), all_passed
