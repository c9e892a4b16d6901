"""`raftlog grade` on real clusters in the lab's topology (root; one at a time, as every
namespace test): the reference lab node passes the four runs and the report opens in
chromium with the four timelines; each broken variant fails with the check that names its
defect; raftlog's own nodes pass the dead-leader and dead-follower runs (all four runs,
and the lab's own timings, are `make grade-lab`); a grade whose clusters cannot be built
exits 2. Timings are the lab's x 0.1 (LAB_TIME_SCALE=0.1): about a minute and a half in
all on an idle machine.

Also the netcluster with a foreign node command: the lab's controls act on such nodes and
their output is stamped line by line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from raftlog.grade import Timings, grade, submission
from raftlog.grade.report import table
from raftlog.local.netcluster import NetCluster, unavailable_reason
from raftlog.local.stamp import parse_line
from raftlog.testing.waiting import eventually

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"namespace tests skipped: {REASON}")
SUBMISSIONS = Path(__file__).resolve().parents[1] / "grade" / "submissions"
FAST = Timings(0.1)
GRADE = [sys.executable, "-m", "raftlog", "grade", "--quiet"]
REFERENCE = Path(submission.reference().directory)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _sh(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout)


def _nothing_left(*dirs: Path) -> None:
    """No process of a grade is left: none runs in, or names, a grade's cluster directory
    (``raftlog-netns-*`` under the temporary directory, or one of ``dirs``): lab nodes,
    raftlog nodes, output stampers. Other processes on the machine are not looked at."""
    marks = [str(Path(tempfile.gettempdir()) / "raftlog-netns-"), *map(str, dirs)]
    left = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue  # gone, or a kernel thread
        if any(m in cmdline or cwd.startswith(m) for m in marks):
            left.append(f"{proc.name} (in {cwd}): {cmdline}")
    assert left == []


def _quiet(text: str) -> None:
    pass


def test_the_reference_passes_and_the_report_shows_four_timelines(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = subprocess.run(
        [*GRADE, "--reference", "--timings", "0.1", "--out", str(out), "--attempts", "3"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    _nothing_left()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: PASS" in proc.stdout
    doc = json.loads((out / "grade.json").read_text())
    assert doc["verdict"] == "pass"
    runs = {r["run"] for r in doc["runs"]}
    assert runs == {"typical", "split-vote", "dead-leader", "dead-follower"}
    split = {c["name"]: c for r in doc["runs"] if r["run"] == "split-vote" for c in r["checks"]}
    # A loaded machine may keep the provoked split from happening: a verdict, not a failure.
    assert split["split-observed"]["verdict"] in ("pass", "not observed")
    if split["split-observed"]["verdict"] == "pass":
        assert split["one-winner"]["verdict"] == "pass"
    assert split["elections-stop"]["verdict"] == "pass"  # the run watched long enough
    log = (out / "typical" / "node_1.log").read_text().splitlines()
    assert log and all(parse_line(line) is not None for line in log)
    text, passed = table([out])
    assert passed and ["reference", "PASS"] in [row.split()[:2] for row in text.splitlines()]

    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM}")
    sync_api: Any = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto((out / "report.html").as_uri())
            page.wait_for_selector(".timeline-view svg rect[data-role]")
            drawn = page.eval_on_selector_all(
                ".timeline-view",
                "els => els.map(e => [e.dataset.run, "
                "e.querySelectorAll('rect[data-role=\"leader\"]').length])",
            )
            assert sorted(r for r, _ in drawn) == sorted(runs)
            assert all(leaders > 0 for _, leaders in drawn), drawn
            stops = page.locator("#run-dead-leader [data-fault='stop']").count()
            assert stops >= 1
            assert page.locator("[data-verdict='fail']").count() == 0
            page.screenshot(path=str(tmp_path / "grade-report.png"), full_page=True)
            assert (tmp_path / "grade-report.png").stat().st_size > 10_000
            assert problems == []
        finally:
            browser.close()


@pytest.mark.parametrize(
    ("variant", "run", "named"),
    [
        ("two_leaders", "split-vote", {"one-winner"}),
        ("early_true", "dead-follower", {"no-majority"}),
        ("stays_leader", "dead-leader", {"old-leader-follows", "one-leader"}),
        ("wrong_timeouts", "typical", {"election-timeout", "heartbeat"}),
    ],
)
def test_each_broken_variant_fails_with_the_check_that_names_it(
    variant: str, run: str, named: set[str], tmp_path: Path
) -> None:
    out = tmp_path / "report"
    options = ["--runs", run, "--timings", "auto", "--attempts", "3", "--out", str(out)]
    proc = _sh([*GRADE, str(SUBMISSIONS / variant), *options], timeout=300)
    _nothing_left()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads((out / "grade.json").read_text())
    assert doc["timings"]["scale"] == 0.1  # auto: built on the reference, it reads the scale
    failed = {c["name"] for r in doc["runs"] for c in r["checks"] if c["verdict"] == "fail"}
    assert named <= failed, f"{variant}: failed {failed}\n{proc.stdout}"
    assert "ran" not in failed  # the run went through: the defect, not the harness
    assert "FAIL" in (out / "report.html").read_text()


def test_raftlogs_own_nodes_pass() -> None:
    """Its split vote is not observed (PreVote keeps a cut-off node from standing) and
    its typical run is part of these two: both are in `make grade-lab`."""
    runs = ["dead-leader", "dead-follower"]
    result = grade(submission.raftlog_nodes(FAST), FAST, runs, echo=_quiet)
    _nothing_left()
    failed = [f"{r.label}/{c.name}: {c.summary}" for r in result.runs for c in r.checks if c.failed]
    assert result.passed, failed
    assert [r.record.name for r in result.runs] == runs


def test_no_cluster_is_exit_2_and_no_report(tmp_path: Path) -> None:
    """Namespaces of someone else's cluster: nothing of the submission ran, so the grade
    did not happen (exit 2), rather than failing checks."""
    taken = _sh(["ip", "netns", "add", "node_2"])
    assert taken.returncode == 0, taken.stderr
    try:
        out = tmp_path / "report"
        proc = _sh([*GRADE, "--reference", "--runs", "typical,dead-leader", "--out", str(out)])
    finally:
        _sh(["ip", "netns", "del", "node_2"])
    _nothing_left()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no run could build its cluster" in proc.stderr
    assert "namespace node_2" in proc.stderr
    assert not out.exists()


def test_the_netcluster_hosts_foreign_nodes(tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path / "nc")]
    run = [sys.executable, "-m", "raftlog", "netcluster", *state]
    cmd = ["--node-cmd", "{python} node.py {id}", "--node-dir", str(REFERENCE), "--copy"]
    nc = NetCluster(tmp_path / "nc")
    try:
        up = _sh([*run, "up", *cmd, "--env", "LAB_TIME_SCALE=0.1"], timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "leader: node_" in up.stdout
        leader = int(up.stdout.split("leader: node_")[1].split()[0])
        status = _sh([*run, "status"])
        assert status.stdout.count(" leader") - status.stdout.count("not leader") == 1
        # The host name compose would give, from inside the node's own UTS namespace.
        nc.reload()
        name = subprocess.run(
            ["nsenter", "-t", str(nc.state.procs["node_2"].pid), "-u", "hostname"],
            check=False,
            capture_output=True,
            text=True,
        )
        assert name.stdout.strip() == "node_2"
        follower = next(i for i in (1, 2, 3) if i != leader)
        for action in ("pause", "unpause", "kill", "start", "stop", "start"):
            done = _sh([*run, action, f"node_{follower}"])
            assert done.returncode == 0, (action, done.stderr)
        nc.reload()
        assert nc.running(follower) and nc.state.procs[f"node_{follower}"].starts == 3
        subprocess.run([*run, "isolate", f"node_{leader}"], check=True, timeout=60)
        eventually(  # the other two elect a leader of their own
            lambda: [nc.is_leader(i, 1.0) for i in (1, 2, 3) if i != leader],
            30,
            what="a leader among the two others",
            until=lambda others: True in others,
        )
        logs = _sh([*run, "logs", f"node_{follower}"]).stdout.splitlines()
        texts = [p[2] for line in logs if (p := parse_line(line)) is not None]
        assert len(texts) == len(logs)
        assert texts.count("Node started! State: Follower. Term: 0") == 3
    finally:
        down = _sh([*run, "down"])
    assert down.returncode == 0
    _nothing_left(tmp_path)
