"""The report of ``raftlog chaos``: a run's records turned into files a person can open.

:func:`write_report` converts the runner's records into a typed :class:`Recording` once
(:func:`raftlog.chaos.recording.recording_from_chaos`; malformed records are a
:class:`RecordingError`) and writes, into one directory:

- ``report.html``: one self-contained page (nothing fetched; it opens offline), rendered
  from the template ``templates/chaos_report.html.j2`` with autoescaping: the verdict
  (PASS only if every check passed, and at least one ran), the checks, the run's summary,
  the timeline (the recording embedded with ``|tojson`` and drawn by the inlined
  ``dashboard/static/timeline.js``, the same renderer as the dashboard's), the faults,
  the operations' numbers, and links to ``history.jsonl`` and the nodes' event logs.
- ``recording.json``: the whole recording, in the format the dashboard exports.

A run of more than :data:`MAX_EMBEDDED_OPS` operations embeds them counted per bucket
(``op_buckets``) instead of one by one, so the page stays small for 100k operations.
Strings are shown with control characters as ``\\xNN`` (one ``finalize`` hook of the
template environment); escaping is the template engine's.

:func:`describe_checks` is the plain-text table of the checks for the end of the command's
output.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import os
import shlex
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jinja2
import msgspec
from markupsafe import Markup

from raftlog.chaos.recording import recording_from_chaos
from raftlog.timeline import LatencySeries, Op, OpBuckets, Recording, RecordingError, encode

__all__ = ["RecordingError", "ReportFiles", "describe_checks", "render_report", "write_report"]

Record = Mapping[str, Any]

HTML_NAME: Final = "report.html"
RECORDING_NAME: Final = "recording.json"
HISTORY_NAME: Final = "history.jsonl"
TEMPLATE_NAME: Final = "chaos_report.html.j2"
MAX_EMBEDDED_OPS: Final = 10_000
_MAX_BUCKETS: Final = 600


@dataclass(frozen=True)
class ReportFiles:
    """The files :func:`write_report` wrote."""

    html: Path
    recording: Path


class _Check(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    detail: str | None = ""


# --------------------------------------------------------------------------- text


def _clean(value: object) -> str:
    """Text safe to print or embed: control characters as ``\\xNN``, no lone surrogates."""
    s = value if isinstance(value, str) else str(value)
    if s.isprintable():
        return s
    out = []
    for ch in s:
        o = ord(ch)
        if ch in "\n\t" or not (o < 0x20 or 0x7F <= o < 0xA0):
            out.append(ch)
        else:
            out.append(f"\\x{o:02x}")
    return "".join(out).encode("utf-8", "backslashreplace").decode("utf-8")


def _finalize(value: object) -> object:
    """Every ``{{ }}`` of the template: text cleaned (markup is the template's own)."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return _clean(value)


def _fmt_t(t: float) -> str:
    return f"{t:.1f}" if abs(t) < 1000 else f"{t:.0f}"


def _fmt_lat(s: float) -> str:
    return f"{s * 1000:.3g} ms" if s < 1 else f"{s:.3g} s"


def _summary_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return shlex.join(value)
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _href(target: str | os.PathLike[str], out_dir: Path) -> str:
    p = Path(target)
    if p.is_absolute() and p.is_relative_to(out_dir.resolve()):
        p = p.relative_to(out_dir.resolve())
    # Quoting ":" too: a name can never become a javascript: (or any other scheme) link.
    return urllib.parse.quote(p.as_posix(), safe="/._-~")


# --------------------------------------------------------------------------- checks


def describe_checks(checks: Sequence[Record]) -> str:
    """A plain-text table of the checks (name, OK/FAIL, detail) and the verdict line."""
    rows = [
        (_clean(c.get("name", "?")), "OK" if c.get("ok") is True else "FAIL", c.get("detail"))
        for c in checks
    ]
    width = max([len("check"), *(len(name) for name, _, _ in rows)])
    lines = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  {'-' * 6}"]
    for name, result, detail in rows:
        detail_lines = _clean("" if detail is None else detail).splitlines() or [""]
        lines.append(f"{name:<{width}}  {result:<6}  {detail_lines[0]}".rstrip())
        lines.extend(f"{'':<{width}}  {'':<6}  {more}".rstrip() for more in detail_lines[1:])
    passed = sum(1 for _, result, _ in rows if result == "OK")
    if not rows:
        lines.append("verdict: FAIL (no checks ran)")
    else:
        verdict = "PASS" if passed == len(rows) else "FAIL"
        lines.append(f"verdict: {verdict} ({passed} of {len(rows)} checks passed)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- operations


@dataclass
class _OpStats:
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> outcome -> n
    latencies: dict[str, list[float]] = field(default_factory=dict)  # ok ops, sorted
    by_node: dict[int, dict[str, int]] = field(default_factory=dict)
    never_returned: int = 0
    max_index: int | None = None
    total: int = 0


def _op_stats(ops: Sequence[Op]) -> _OpStats:
    stats = _OpStats(total=len(ops))
    for op in ops:
        per_kind = stats.by_kind.setdefault(op.kind, {})
        per_kind[op.outcome] = per_kind.get(op.outcome, 0) + 1
        if op.node is not None:
            per_node = stats.by_node.setdefault(op.node, {})
            per_node[op.outcome] = per_node.get(op.outcome, 0) + 1
        if op.end is None:
            stats.never_returned += 1
        elif op.outcome == "ok":
            stats.latencies.setdefault(op.kind, []).append(max(0.0, op.end - op.start))
        if op.outcome == "ok" and op.kind == "append" and op.index is not None:
            stats.max_index = max(op.index, stats.max_index or op.index)
    for values in stats.latencies.values():
        values.sort()
    return stats


def _percentile(sorted_values: list[float], p: float) -> float:
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _bucket_width(duration: float) -> float:
    want = max(duration / _MAX_BUCKETS, min(0.5, duration / 100))
    for mag in (0.1, 1.0, 10.0, 100.0, 1000.0):
        for step in (1.0, 2.0, 5.0):
            if step * mag >= want - 1e-9:
                return step * mag
    return float(math.ceil(want))


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def _op_buckets(ops: Sequence[Op], duration: float) -> OpBuckets:
    """Operations counted per bucket, as ``timeline.js`` would count them itself."""
    width = _bucket_width(max(duration, 1e-3))
    n = max(1, math.ceil(duration / width - 1e-9))
    counts = {"ok": [0] * n, "fail": [0] * n, "info": [0] * n}
    lats: dict[str, list[list[float]]] = {}
    for op in ops:
        at = op.start if op.end is None else op.end
        i = min(n - 1, max(0, int(at / width)))
        counts[op.outcome][i] += 1
        if op.outcome == "ok" and op.end is not None:
            lats.setdefault(op.kind, [[] for _ in range(n)])[i].append(max(0.0, op.end - op.start))
    latency: dict[str, LatencySeries] = {}
    for kind, per_bucket in lats.items():
        for values in per_bucket:
            values.sort()
        latency[kind] = LatencySeries(
            median=[_median(v) if v else None for v in per_bucket],
            max=[v[-1] if v else None for v in per_bucket],
        )
    return OpBuckets(start=0.0, width=width, latency=latency, **counts)


def _for_embedding(recording: Recording) -> Recording:
    if len(recording.ops) <= MAX_EMBEDDED_OPS:
        return recording
    return msgspec.structs.replace(
        recording,
        ops=[],
        ops_total=len(recording.ops),
        op_buckets=_op_buckets(recording.ops, recording.duration),
    )


# --------------------------------------------------------------------------- page


def _package_text(path: str) -> str:
    return importlib.resources.files("raftlog").joinpath(path).read_text(encoding="utf-8")


def _inline(text: str, tag: str) -> Markup:
    """A package file's text to put inside ``<tag>``: ours, but checked that it cannot
    end the element early."""
    if f"</{tag}" in text.lower():
        raise ValueError(f"cannot inline a file containing </{tag}")
    return Markup(text)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("raftlog", "templates"),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["t"] = _fmt_t
    env.filters["lat"] = _fmt_lat
    env.filters["summary_value"] = _summary_value
    env.globals["percentile"] = _percentile
    return env


def render_report(
    recording: Recording,
    *,
    checks: Sequence[Record],
    summary: Mapping[str, Any],
    node_logs: Mapping[Any, str | os.PathLike[str]],
    out_dir: Path,
    history_name: str = HISTORY_NAME,
    recording_name: str | None = RECORDING_NAME,
) -> str:
    """The page's HTML for ``recording`` (links relative to ``out_dir``)."""
    typed_checks = [msgspec.convert(c, _Check, strict=True) for c in checks]
    embedded = _for_embedding(recording)
    files = [(history_name, _href(history_name, out_dir), "the recorded history (JSON lines)")]
    if recording_name is not None:
        files.append(
            (recording_name, _href(recording_name, out_dir), "the timeline's typed recording")
        )
    logs = sorted(node_logs.items(), key=lambda kv: (not isinstance(kv[0], int), str(kv[0])))
    return (
        _environment()
        .get_template(TEMPLATE_NAME)
        .render(
            passed=bool(typed_checks) and all(c.ok for c in typed_checks),
            checks=typed_checks,
            summary=summary,
            recording=recording,
            embedded=msgspec.to_builtins(embedded),
            ops_left_out=len(recording.ops) - len(embedded.ops),
            stats=_op_stats(recording.ops),
            files=files,
            node_logs=[(str(k), _href(v, out_dir), os.fspath(v)) for k, v in logs],
            timeline_js=_inline(_package_text("dashboard/static/timeline.js"), "script"),
            css=_inline(_package_text("templates/report.css"), "style"),
        )
    )


def write_report(
    out_dir: Path,
    *,
    ops: Sequence[Record],
    faults: Sequence[Record],
    statuses: Sequence[Record],
    checks: Sequence[Record],
    summary: Mapping[str, Any],
    node_logs: Mapping[Any, str | os.PathLike[str]],
    history_name: str = HISTORY_NAME,
    t0: float = 0.0,
) -> ReportFiles:
    """Write ``report.html`` and ``recording.json`` into ``out_dir``.

    ``ops``, ``faults`` and ``statuses`` are the runner's records (converted and validated
    here: :class:`RecordingError` if one is malformed); ``t0`` is the unix time of the run's
    time 0; ``history_name`` is the history file linked from the page (relative to
    ``out_dir``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    duration = summary.get("duration_s")
    recording = recording_from_chaos(
        ops=ops,
        faults=faults,
        statuses=statuses,
        t0=t0,
        duration=float(duration) if isinstance(duration, int | float) else 0.0,
        nodes=[k for k in node_logs if isinstance(k, int) and not isinstance(k, bool)],
    )
    recording_path = out_dir / RECORDING_NAME
    recording_path.write_bytes(encode(recording))
    html_path = out_dir / HTML_NAME
    text = render_report(
        recording,
        checks=checks,
        summary=summary,
        node_logs=node_logs,
        out_dir=out_dir,
        history_name=history_name,
    )
    html_path.write_text(text, encoding="utf-8", errors="replace")
    return ReportFiles(html=html_path, recording=recording_path)
