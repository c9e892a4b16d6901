"""raftlog chaos against real processes: a clean cluster passes; injected bugs are caught."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from raftlog.chaos.runner import Chaos, ChaosOptions, ChaosResult
from raftlog.local.cluster import LocalCluster


def _run(options: ChaosOptions) -> ChaosResult:
    # A bound against a hang, not a speed goal: after its faults a run waits for the
    # cluster to recover and converge (30 s) and reads every log, and on a loaded machine
    # each restart of a node takes seconds (a CI run at load 9 passed 210 s).
    longest = max(options.time_s, options.max_time_s)
    return asyncio.run(asyncio.wait_for(Chaos(options).run(), longest + 420))


def _check(result: ChaosResult, name: str) -> bool:
    return next(c.ok for c in result.checks if c.name.startswith(name))


def test_a_short_run_with_kill_pause_partition_and_membership_passes_every_check(
    tmp_path: Path,
) -> None:
    result = _run(
        ChaosOptions(
            nodes=3,
            time_s=60,
            clients=8,
            nemesis=("kill", "pause", "partition", "membership"),
            seed=11,
            out=tmp_path / "out",
            min_faults=10,  # a loaded machine makes each fault slower, not the test weaker
            max_time_s=150,
        )
    )
    assert result.ok, "\n".join(f"{c.name}: {c.detail}" for c in result.checks)
    s = result.summary
    assert s["faults"] >= 10 and s["ops_ok"] > 1000
    kinds = {f["kind"] for f in result.faults}
    assert {"kill", "pause", "partition", "membership"} <= kinds
    out = tmp_path / "out"
    assert (out / "report.html").stat().st_size > 1000
    assert (out / "history.jsonl").read_text().count('"type": "op"') == len(result.ops)
    assert all((out / f"node-{i}.log").exists() for i in (1, 2, 3))


def test_stale_reads_from_a_deposed_leader_are_caught() -> None:
    # Every fault cuts the leader off for 1.5-3 s: long enough, even on a loaded machine,
    # for the majority to elect a new leader and acknowledge appends that the old leader
    # (which, with the bug, neither steps down nor confirms its reads) cannot see while
    # the reader bound to it keeps reading. Each such fault exposes the bug; there are
    # several in 30 s, so catching it does not hang on one lucky interleaving.
    result = _run(
        ChaosOptions(
            nodes=3,
            time_s=30,
            clients=8,
            nemesis=("partition",),
            partition_shapes=("isolate-leader",),
            fault_length_s=(1.5, 3.0),
            seed=3,
            inject_bugs=("stale-read",),
            min_faults=3,
            max_time_s=90,
        )
    )
    assert sum(1 for f in result.faults if f["kind"] == "partition") >= 3
    assert not result.ok
    assert not _check(result, "history is linearizable")
    detail = next(c.detail for c in result.checks if c.name == "history is linearizable")
    assert "read" in detail


def test_acknowledging_before_writing_is_caught_by_restarting_every_node() -> None:
    # With the bug, a busy follower is almost always inside the window between promising
    # an entry and writing it, so most restarts of every node lose an acknowledged append
    # (when a follower that lacks it wins the next election). Short faults and gaps give
    # a dozen or more restarts in 30 s, each an independent chance.
    result = _run(
        ChaosOptions(
            nodes=3,
            time_s=30,
            clients=8,
            nemesis=("restart-all",),
            fault_length_s=(0.2, 0.6),
            fault_every_s=(0.6, 1.2),
            seed=5,
            inject_bugs=("ack-before-fsync",),
            min_faults=5,  # each restart of every node takes seconds on a loaded machine
            max_time_s=90,
        )
    )
    assert sum(1 for f in result.faults if f["kind"] == "restart-all") >= 5
    assert not result.ok
    assert not _check(result, "no acknowledged append lost")


def test_a_nemesis_that_fails_ends_the_run_with_the_reason_and_keeps_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real_kill = LocalCluster.kill

    async def kill_then_fail(self: LocalCluster, i: int) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError(f"cannot kill node {i}: simulated")
        await real_kill(self, i)

    monkeypatch.setattr(LocalCluster, "kill", kill_then_fail)
    result = _run(
        ChaosOptions(
            nodes=3,
            time_s=20,
            clients=2,
            nemesis=("kill",),
            seed=3,
            fault_every_s=(0.2, 0.4),
            fault_length_s=(0.3, 0.6),
            out=tmp_path / "out",
        )
    )
    assert not result.ok
    [check] = result.checks
    assert check.name == "the nemesis ran to the end" and not check.ok
    assert "RuntimeError: cannot kill node" in check.detail and "simulated" in check.detail
    assert [f["kind"] for f in result.faults] == ["kill"]  # the one that was made
    assert result.ops, "the clients' operations until then are kept"
    out = tmp_path / "out"
    assert (out / "history.jsonl").read_text().count('"type": "op"') == len(result.ops)
    assert (out / "report.html").exists()


def _pause_leader(
    reads: str,
    bugs: tuple[str, ...] = (),
    nemesis: tuple[str, ...] = ("pause-leader",),
    staged: int = 3,
) -> ChaosResult:
    """Short pause-leader faults: each stops the leader until another leads and
    acknowledged an append, with a read in flight to it when it wakes (the nemesis stages
    that read, and the acknowledgements of pause-leader-acks: no interleaving has to be
    lucky). The run goes on until ``staged`` faults were staged (a loaded machine makes
    each slower), within 90 s."""
    return _run(
        ChaosOptions(
            nodes=3,
            time_s=4,
            clients=6,
            nemesis=nemesis,
            reads=reads,
            fault_length_s=(0.3, 0.6),
            fault_every_s=(0.5, 1.0),
            seed=1,
            inject_bugs=bugs,
            min_staged=staged,
            max_time_s=90,
        )
    )


def _staged_reads(result: ChaosResult, kind: str | None = None) -> list[dict[str, Any]]:
    """The reads the nemesis sent to stopped leaders, of faults that were staged."""
    ids = {
        op_id
        for f in result.faults
        if f.get("staged") and (kind is None or f["kind"] == kind)
        for op_id in [f.get("read")]
        if op_id is not None
    }
    return [op for op in result.ops if op["id"] in ids]


def _named(result: ChaosResult, check: str, op: dict[str, Any]) -> bool:
    """Is ``op`` among the problems the check found?"""
    found = next(c for c in result.checks if c.name == check)
    return any(f"op {op['id']} client {op['client']} read" in p for p in found.problems)


@pytest.mark.parametrize(
    ("bug", "nemesis"),
    [("endless-lease", "pause-leader"), ("ack-at-handling", "pause-leader-acks")],
)
def test_lease_bugs_are_caught_by_reads_staged_at_a_stopped_leader(bug: str, nemesis: str) -> None:
    """endless-lease (the lease never runs out) is caught by pause-leader; ack-at-handling
    (an acknowledgement counted from when it is handled) needs acknowledgements that
    waited in the stopped leader's socket: pause-leader cuts it off first, so they are
    dropped, and pause-leader-acks stages them."""
    result = _pause_leader("lease", (bug,), (nemesis,), staged=2)
    staged = _staged_reads(result, nemesis)
    assert len(staged) >= 2, result.faults
    assert not _check(result, "history is linearizable")
    stale = [op for op in staged if op["status"] == "ok"]
    assert stale, "the woken leader answered a staged read from its lease"
    assert any(_named(result, "history is linearizable", op) for op in stale)


def test_lease_reads_of_the_fixed_node_pass_the_same_runs() -> None:
    result = _pause_leader("lease", nemesis=("pause-leader", "pause-leader-acks"), staged=4)
    assert result.ok, "\n".join(f"{c.name}: {c.detail}" for c in result.checks)
    staged = _staged_reads(result)
    assert len(staged) >= 4 and all(op["level"] == "lease" for op in staged)
    assert {f["kind"] for f in result.faults if f.get("staged")} == {
        "pause-leader",
        "pause-leader-acks",
    }
    # The woken leader's promises ran out while it was stopped: no lease, and ReadIndex
    # cannot be confirmed by a leader that is cut off.
    assert all(op["status"] == "fail" for op in staged)
    # The clients' lease reads were served from the lease (not all by ReadIndex).
    assert result.summary["lease_reads"] > 0


def test_local_reads_are_checked_against_the_staleness_they_report() -> None:
    result = _pause_leader("local", staged=2)
    assert result.ok, "\n".join(f"{c.name}: {c.detail}" for c in result.checks)
    check = next(c for c in result.checks if c.name.startswith("local reads"))
    assert check.ok and int(check.detail.split()[0]) > 100
    # The stopped leader answers from what it has, stale: allowed, and reported.
    assert any(op["status"] == "ok" for op in _staged_reads(result))
