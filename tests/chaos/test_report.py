"""The report of ``raftlog chaos``: files, the embedded recording and renderer, escaping,
verdict, size for 100k operations. (The page in a browser: test_report_browser.py.)"""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from raftlog.chaos.report import ReportFiles, describe_checks, write_report
from raftlog.timeline import Recording, RecordingError, decode

HOSTILE = "<script>alert(1)</script>"
HOSTILE_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
BREAKOUT = "</script><script>alert(1)</script>"
TIMELINE_JS = (
    Path(__file__).resolve().parents[2] / "src" / "raftlog" / "dashboard" / "static" / "timeline.js"
)

VOID = {"meta", "br", "img", "link", "hr", "input", "col", "wbr", "area", "base", "source"}


class _Structure(HTMLParser):
    """Checks that every element is closed, in order; records the tags seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.seen: dict[str, int] = {}
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen[tag] = self.seen.get(tag, 0) + 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen[tag] = self.seen.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(text: str) -> _Structure:
    parser = _Structure()
    parser.feed(text)
    parser.close()
    return parser


def _status(
    t: float, node: int, state: str, term: int | None, leader: int | None
) -> dict[str, Any]:
    return {
        "type": "status",
        "time": t,
        "node": node,
        "state": state,
        "term": term,
        "commit": None if state == "down" else int(t * 10),
        "leader": leader,
    }


def _scenario(hostile: bool = False) -> dict[str, Any]:
    """Three nodes, 20 s: node 1 leads term 2 and is killed at 8 s; node 2 leads term 3 from
    9.5 s; node 1 restarts at 11 s; node 3 is paused from 13 to 15 s."""
    statuses: list[dict[str, Any]] = []
    t = 0.0
    while t < 20.0:
        # node 1
        if t < 8.0:
            statuses.append(_status(t, 1, "Leader", 2, 1))
        elif t < 11.0:
            statuses.append(_status(t, 1, "down", None, None))
        elif t < 11.5:
            statuses.append(_status(t, 1, "Follower", 3, None))
        else:
            statuses.append(_status(t, 1, "Follower", 3, 2))
        # node 2
        if t < 8.5:
            statuses.append(_status(t, 2, "Follower", 2, 1))
        elif t < 9.0:
            statuses.append(_status(t, 2, "PreCandidate", 2, None))
        elif t < 9.5:
            statuses.append(_status(t, 2, "Candidate", 3, None))
        else:
            statuses.append(_status(t, 2, "Leader", 3, 2))
        # node 3
        if t < 9.5:
            statuses.append(_status(t, 3, "Follower", 2, 1 if t < 8 else None))
        else:
            statuses.append(_status(t, 3, "Follower", 3, 2))
        t = round(t + 0.25, 2)

    faults: list[dict[str, Any]] = [
        {
            "type": "fault",
            "start": 8.0,
            "end": 11.0,
            "kind": "kill",
            "target": "node 1",
            "detail": "SIGKILL, restarted after 3 s",
        },
        {
            "type": "fault",
            "start": 13.0,
            "end": 15.0,
            "kind": "pause",
            "target": HOSTILE if hostile else "node 3",
            "detail": "SIGSTOP / SIGCONT",
        },
        {
            "type": "fault",
            "start": 18.0,
            "end": None,
            "kind": "partition",
            "target": "[1] | [2, 3]",
            "detail": "still on when the run stopped",
        },
    ]

    rng = random.Random(7)
    ops: list[dict[str, Any]] = []
    index = 0
    for i in range(400):
        call = i * 0.05
        kind = "append" if i % 3 else "read"
        if 8.0 <= call < 9.5:
            status = "info" if i % 2 else "fail"
        else:
            status = "ok"
        ret: float | None = call + rng.uniform(0.002, 0.08)
        if status == "info" and i % 4 == 1:
            ret = None
        op: dict[str, Any] = {
            "type": "op",
            "id": i,
            "client": i % 3,
            "kind": kind,
            "value": (HOSTILE if hostile and i == 5 else f"v{i}") if kind == "append" else None,
            "call": call,
            "ret": ret,
            "status": status,
            "index": None,
            "result_len": None,
            "node": 1 + i % 3,
            "error": None if status == "ok" else "timed out",
        }
        if status == "ok" and kind == "append":
            index += 1
            op["index"] = index
        if status == "ok" and kind == "read":
            op["result_len"] = index
        ops.append(op)

    checks: list[dict[str, Any]] = [
        {"name": "no two leaders in one term", "ok": True, "detail": "2 terms with a leader"},
        {"name": "linearizable", "ok": True, "detail": "400 operations, WGL"},
        {
            "name": "no acknowledged append lost",
            "ok": True,
            "detail": HOSTILE if hostile else "all 266 found",
        },
        {"name": "recovered within 10 s of heal", "ok": True, "detail": "1.5 s after kill"},
    ]
    summary: dict[str, Any] = {
        "nodes": 3,
        "clients": 3,
        "duration_s": 20.0,
        "ops ok": sum(o["status"] == "ok" for o in ops),
        "ops fail": sum(o["status"] == "fail" for o in ops),
        "ops info": sum(o["status"] == "info" for o in ops),
        "faults injected": len(faults),
        "seed": 42,
        "command line": [
            "raftlog",
            "chaos",
            "--nodes",
            "3",
            "--label",
            HOSTILE if hostile else "x",
        ],
    }
    node_logs = {1: "logs/node-1.jsonl", 2: "logs/node-2.jsonl", 3: "logs/node-3.jsonl"}
    return {
        "ops": ops,
        "faults": faults,
        "statuses": statuses,
        "checks": checks,
        "summary": summary,
        "node_logs": node_logs,
    }


def _write(tmp_path: Path, data: dict[str, Any]) -> tuple[ReportFiles, str]:
    files = write_report(tmp_path / "out", **data)
    return files, files.html.read_text(encoding="utf-8")


def _embedded(text: str) -> Recording:
    """The recording the page embeds for its timeline."""
    found = re.findall(
        r'<script type="application/json" id="raftlog-recording">(.*?)</script>', text, re.S
    )
    assert len(found) == 1
    return decode(found[0])


def _roles(recording: Recording, node: int) -> list[tuple[str, int | None, float, float | None]]:
    return [(s.role, s.term, s.start, s.end) for s in recording.spans if s.node == node]


def test_report_files_and_contents(tmp_path: Path) -> None:
    data = _scenario()
    files, text = _write(tmp_path, data)
    assert files.html == tmp_path / "out" / "report.html"
    assert files.html.is_file()
    assert files.recording == tmp_path / "out" / "recording.json"

    parsed = _parse(text)
    assert parsed.errors == []
    assert parsed.stack == []
    for tag in ("html", "head", "body", "table"):
        assert parsed.seen.get(tag, 0) >= 1, tag
    # The renderer inlined, the recording embedded, and the script that draws it.
    assert parsed.seen["script"] == 3
    assert TIMELINE_JS.read_text(encoding="utf-8").strip() in text
    assert "RaftTimeline.render(box, recording" in text

    assert '<h1 id="verdict">PASS</h1>' in text
    for check in data["checks"]:
        assert check["name"] in text
        assert check["detail"] in text
    for kind, target in (("kill", "node 1"), ("pause", "node 3"), ("partition", "[1] | [2, 3]")):
        assert f"<tr><td>{kind}</td><td>{target}</td>" in text

    # The timeline's data: each status sample holds until the node's next one.
    recording = _embedded(text)
    assert recording == decode(files.recording.read_bytes())
    assert recording.source == "chaos"
    assert recording.nodes == [1, 2, 3]
    assert _roles(recording, 1) == [
        ("leader", 2, 0.0, 8.0),
        ("down", None, 8.0, 11.0),
        ("follower", 3, 11.0, None),
    ]
    assert _roles(recording, 2) == [
        ("follower", 2, 0.0, 8.5),
        ("precandidate", 2, 8.5, 9.0),
        ("candidate", 3, 9.0, 9.5),
        ("leader", 3, 9.5, None),
    ]
    assert [(m.node, m.t, m.kind) for m in recording.marks] == [
        (1, 0.0, "BecameLeader"),
        (2, 9.5, "BecameLeader"),
    ]
    assert [(f.kind, f.start, f.end) for f in recording.faults] == [
        ("kill", 8.0, 11.0),
        ("pause", 13.0, 15.0),
        ("partition", 18.0, None),
    ]
    assert len(recording.ops) == 400
    assert recording.duration >= 20.0

    # The links, and nothing fetched from the network.
    assert 'href="history.jsonl"' in text
    assert 'href="recording.json"' in text
    for path in data["node_logs"].values():
        assert f'href="{path}"' in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text
    assert "<link" not in text
    assert " src=" not in text


def test_every_input_string_is_escaped(tmp_path: Path) -> None:
    data = _scenario(hostile=True)
    data["node_logs"] = {1: HOSTILE, 2: "javascript:alert(1)"}
    data["summary"]["note"] = HOSTILE
    data["checks"].append({"name": HOSTILE, "ok": True, "detail": "\x1b[2J control"})
    data["ops"][7]["value"] = BREAKOUT
    data["faults"][0]["detail"] = BREAKOUT
    _, text = _write(tmp_path, data)

    assert HOSTILE not in text
    assert BREAKOUT not in text
    assert HOSTILE_ESCAPED in text
    parsed = _parse(text)
    assert parsed.errors == []
    assert parsed.stack == []
    assert parsed.seen["script"] == 3  # none added by the input
    assert 'href="javascript:' not in text
    assert "\x1b" not in text
    assert "\\x1b[2J control" in text
    # The hostile strings reach the timeline intact (as data, not markup).
    recording = _embedded(text)
    assert recording.ops[7].value == BREAKOUT
    assert recording.faults[0].detail == BREAKOUT
    assert recording.faults[1].target == HOSTILE


def test_a_malformed_record_is_a_clear_error(tmp_path: Path) -> None:
    data = _scenario()
    data["statuses"].append(_status(19.9, 3, HOSTILE, 3, 2))
    with pytest.raises(RecordingError, match=r"status record \d+: state .* of node 3"):
        _write(tmp_path, data)


def test_a_failed_check_makes_the_verdict_fail(tmp_path: Path) -> None:
    data = _scenario()
    data["checks"][1] = {"name": "linearizable", "ok": False, "detail": "read 17 saw 3 entries"}
    _, text = _write(tmp_path, data)
    assert '<h1 id="verdict">FAIL</h1>' in text
    assert "PASS" not in text
    assert "read 17 saw 3 entries" in text


def test_no_checks_is_not_a_pass(tmp_path: Path) -> None:
    data = _scenario()
    data["checks"] = []
    _, text = _write(tmp_path, data)
    assert '<h1 id="verdict">FAIL</h1>' in text
    assert "No checks ran" in text


def test_empty_run(tmp_path: Path) -> None:
    files, text = _write(
        tmp_path,
        {"ops": [], "faults": [], "statuses": [], "checks": [], "summary": {}, "node_logs": {}},
    )
    assert files.html.is_file()
    parsed = _parse(text)
    assert parsed.errors == []
    assert parsed.stack == []
    assert "No checks ran" in text
    assert "No faults were injected" in text
    recording = _embedded(text)
    assert (recording.nodes, recording.spans, recording.ops) == ([], [], [])


def test_only_failed_operations(tmp_path: Path) -> None:
    data = _scenario()
    for op in data["ops"]:
        op["status"] = "fail"
    _, text = _write(tmp_path, data)
    assert "There were no ok operations" in text
    assert _parse(text).errors == []


def test_100k_operations_stay_small(tmp_path: Path) -> None:
    """A 5-minute run with 100k operations: aggregated, so the page stays small."""
    rng = random.Random(1)
    duration = 300.0
    ops: list[dict[str, Any]] = []
    for i in range(100_000):
        call = rng.uniform(0, duration - 1)
        r = rng.random()
        status = "ok" if r < 0.9 else "fail" if r < 0.96 else "info"
        latency = rng.lognormvariate(-4.5, 1.0)
        ops.append(
            {
                "type": "op",
                "id": i,
                "client": i % 10,
                "kind": "append" if i % 2 else "read",
                "value": f"c{i % 10}-{i}",
                "call": call,
                "ret": None if status == "info" and i % 2 else call + latency,
                "status": status,
                "index": i if status == "ok" and i % 2 else None,
                "result_len": i if status == "ok" and not i % 2 else None,
                "node": 1 + i % 5,
                "error": None,
            }
        )
    statuses = []
    faults = []
    for k in range(30):
        start = 5.0 + k * 10
        faults.append(
            {
                "type": "fault",
                "start": start,
                "end": start + 4,
                "kind": ("kill", "pause", "partition")[k % 3],
                "target": f"node {1 + k % 5}",
                "detail": "",
            }
        )
    for step in range(int(duration * 4)):
        t = step / 4
        term = 2 + int(t // 10)
        for node in range(1, 6):
            leader = 1 + (term % 5)
            state = "Leader" if node == leader else "Follower"
            statuses.append(_status(t, node, state, term, leader))
    files = write_report(
        tmp_path / "big",
        ops=ops,
        faults=faults,
        statuses=statuses,
        checks=[{"name": "linearizable", "ok": True, "detail": "100000 operations"}],
        summary={"duration_s": duration, "clients": 10, "nodes": 5},
        node_logs={n: f"node-{n}.jsonl" for n in range(1, 6)},
    )
    size = files.html.stat().st_size
    assert size < 2_000_000, size
    text = files.html.read_text(encoding="utf-8")
    assert _parse(text).errors == []
    # The page embeds the operations counted per bucket; recording.json has every one.
    embedded = _embedded(text)
    assert embedded.ops == []
    assert embedded.ops_total == 100_000
    buckets = embedded.op_buckets
    assert buckets is not None
    assert sum(buckets.ok) + sum(buckets.fail) + sum(buckets.info) == 100_000
    assert len(buckets.ok) <= 600
    assert set(buckets.latency) == {"append", "read"}
    assert len(decode(files.recording.read_bytes()).ops) == 100_000


def test_describe_checks() -> None:
    text = describe_checks(
        [
            {"name": "no two leaders in one term", "ok": True, "detail": "12 terms"},
            {"name": "linearizable", "ok": False, "detail": "first line\nsecond \x1b[31mred"},
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["check", "result", "detail"]
    assert any(line.startswith("no two leaders in one term  OK") for line in lines)
    fail_line = next(line for line in lines if line.startswith("linearizable"))
    assert "FAIL" in fail_line
    assert "first line" in fail_line
    # The second line of a detail is indented under the detail column.
    second = next(line for line in lines if "second" in line)
    assert second.index("second") == fail_line.index("first line")
    assert "\x1b" not in text
    assert "\\x1b[31mred" in text
    assert lines[-1] == "verdict: FAIL (1 of 2 checks passed)"
    assert describe_checks([]).splitlines()[-1] == "verdict: FAIL (no checks ran)"
    assert describe_checks([{"name": "x", "ok": True, "detail": ""}]).endswith(
        "verdict: PASS (1 of 1 checks passed)"
    )
