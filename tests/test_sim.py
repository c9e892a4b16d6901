"""The deterministic simulator: hundreds of seeded runs with every fault, and proof that
it catches known bugs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raftlog.cli.main import main
from raftlog.sim.cluster import SimOptions, run
from raftlog.sim.runner import run_seeds

SEEDS_PER_SIZE = 300
CHUNK = 50
STEPS = 2500  # the CLI default is larger; this keeps the default suite fast


@pytest.mark.parametrize("nodes", [3, 5, 7])
@pytest.mark.parametrize("first", range(0, SEEDS_PER_SIZE, CHUNK))
def test_simulated_runs_keep_every_property(nodes: int, first: int) -> None:
    summary = run_seeds(range(first, first + CHUNK), [nodes], SimOptions(steps=STEPS), jobs=1)
    assert summary.runs == CHUNK
    failures = [
        f"seed {r.seed}: {r.violation}\n  " + "\n  ".join(r.trace[-15:]) for r in summary.failures
    ]
    assert not failures, "\n".join(failures)
    assert summary.ops_ok > CHUNK * 50  # the clients got real work done


def _regressions() -> list[tuple[int, int, int, frozenset[str]]]:
    rows = []
    for line in (Path(__file__).parent / "data" / "sim_regressions.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        seed, nodes, steps, bugs = line.split()[:4]
        rows.append(
            (int(seed), int(nodes), int(steps), frozenset() if bugs == "-" else frozenset([bugs]))
        )
    return rows


@pytest.mark.parametrize(("seed", "nodes", "steps", "bugs"), _regressions())
def test_regression_seeds(seed: int, nodes: int, steps: int, bugs: frozenset[str]) -> None:
    result = run(seed, SimOptions(nodes=nodes, steps=steps, bugs=bugs))
    if bugs:
        assert result.violation is not None  # the bug is still caught, and promptly
        assert result.steps < 30 * steps + 50_000
    else:
        assert result.violation is None, result.violation


# Each known bug, and the property the simulator names when it catches it.
BUGS = {
    "commit-old-term": {"Leader Completeness"},
    "forget-vote": {"One vote per term", "Election Safety"},
    "truncate-on-stale": {"Durable before acknowledged", "Log Matching"},
    "no-prevote-check": {"PreVote/CheckQuorum stability"},
    "snapshot-rollback": {
        "Durable before acknowledged",
        "Monotonic commit",
        "Log Matching",
        "State Machine Safety",
    },
    "compact-past-snapshot": {"State Machine Safety", "Apply order"},
    "config-before-noop": {
        "Leader Completeness",
        "Committed on a majority",
        "Election Safety",
        "Log Matching",
        "State Machine Safety",
    },
    "two-changes-in-flight": {"One configuration change at a time", "Committed on a majority"},
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_injected_bug_is_caught_within_2000_seeds(bug: str) -> None:
    summary = run_seeds(
        range(2000),
        [3],
        SimOptions(steps=10_000, bugs=frozenset([bug])),
        jobs=1,
        fail_fast=True,
    )
    assert summary.failures, f"{bug} survived {summary.runs} seeds"
    violation = summary.failures[0].violation
    assert violation is not None
    assert violation.prop in BUGS[bug], violation


def test_same_seed_same_run() -> None:
    a = run(42, SimOptions(nodes=5, steps=1500, trace=True))
    b = run(42, SimOptions(nodes=5, steps=1500, trace=True))
    assert a.trace == b.trace
    assert (a.steps, a.virtual_ms, a.ops_ok) == (b.steps, b.virtual_ms, b.ops_ok)
    c = run(43, SimOptions(nodes=5, steps=1500, trace=True))
    assert c.trace != a.trace


def test_no_faults_means_one_term_and_no_lost_operation() -> None:
    result = run(7, SimOptions(nodes=3, faults=frozenset(), steps=2000))
    assert result.ok, result.violation
    assert result.max_term == 1
    assert result.ops_info == 0


def test_cli_reports_a_violation_with_seed_property_and_replay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        ["sim", "--seeds", "20", "--nodes", "3", "--inject-bug", "truncate-on-stale", "--jobs", "1"]
    )
    out = capsys.readouterr().out
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[-1].startswith("sim: 20 runs, ") and not lines[-1].endswith(" 0 violations")
    assert "VIOLATION seed " in out and "Durable before acknowledged" in out
    assert "replay: raftlog sim --seed " in out and "--inject-bug truncate-on-stale" in out


def test_cli_clean_run_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "--seeds", "4", "--nodes", "3,5", "--steps", "1000", "--jobs", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.strip().splitlines()[-1] == "sim: 4 runs, 0 violations"


def test_cli_trace_prints_the_event_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "--seed", "3", "--nodes", "3", "--steps", "800", "--trace"])
    out = capsys.readouterr().out
    assert code == 0
    assert "State: Leader" in out and "Voted for node" in out
    assert out.strip().splitlines()[-1] == "sim: 1 runs, 0 violations"


def test_cli_rejects_unknown_fault_and_bug() -> None:
    for argv in (["sim", "--faults", "meteor"], ["sim", "--inject-bug", "nope"]):
        proc = subprocess.run(
            [sys.executable, "-m", "raftlog", *argv], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 2
        assert "meteor" in proc.stderr or "nope" in proc.stderr


def test_the_majority_check_catches_a_commit_held_by_too_few_voters() -> None:
    """Known-bad input for the cluster's "Committed on a majority" check: an entry marked
    committed that no voter holds."""
    from raftlog.core.types import EntryKind  # noqa: PLC0415
    from raftlog.sim.cluster import Cluster  # noqa: PLC0415
    from raftlog.sim.invariants import Violation  # noqa: PLC0415

    cluster = Cluster(1, SimOptions(nodes=3, faults=frozenset()))
    assert cluster.run_until(until=lambda: cluster.leader() is not None, max_steps=5000)
    leader = cluster.leader()
    assert leader is not None
    cluster._check_majority(leader, leader.raft.log.committed)  # the real state: fine
    bogus = leader.raft.log.last_index() + 100
    cluster.checker.committed[bogus] = (leader.raft.term, EntryKind.NORMAL, b"x", 0)
    with pytest.raises(Violation, match="durable only on"):
        cluster._check_majority(leader, bogus)


def test_the_removed_leader_check_catches_a_removed_node_leading() -> None:
    """Known-bad input for "Removed member became leader": a committed configuration
    without node 1, while node 1 leads."""
    from raftlog.core.types import (  # noqa: PLC0415
        ConfState,
        Entry,
        EntryKind,
        NodeId,
        encode_conf,
    )
    from raftlog.sim.harness import Harness, HarnessOptions  # noqa: PLC0415
    from raftlog.sim.invariants import SafetyChecker, Violation  # noqa: PLC0415

    h = Harness(HarnessOptions(nodes=3))
    h.campaign(1)
    h.stabilize()
    raft = h.node(1).raft
    ids = [NodeId(i) for i in (1, 2, 3)]
    fine = SafetyChecker()
    fine.after_step(NodeId(1), raft, raft.term, raft.log.committed)  # nothing removed: fine
    bad = SafetyChecker()
    for index, voters in ((50, ids), (51, ids[1:])):
        conf = ConfState(voters=frozenset(voters))
        bad._conf_committed(Entry(index, 1, EntryKind.CONF_CHANGE, encode_conf(conf)))
    with pytest.raises(Violation, match="left it out"):
        bad.after_step(NodeId(1), raft, raft.term, raft.log.committed)
