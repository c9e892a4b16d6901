"""A leader stopped with SIGTERM hands leadership over first, also when it was started
with ``--stop-with-parent`` (every node of ``raftlog cluster``, the demos, chaos and bench):
the parent watcher is no stop of its own, so SIGTERM is the first signal, not the second
("stop at once")."""

from __future__ import annotations

import re

import pytest
from procsupport import run

from raftlog.local.cluster import LocalCluster
from raftlog.local.demos import DemoFailed, _check_hand_over, line_time
from scaffold import running_cluster


async def _stop_leader() -> tuple[int, int, int | None, LocalCluster]:
    async with running_cluster(3, fast=True) as cluster:
        assert all("--stop-with-parent" in cluster.command(i) for i in cluster.node_ids())
        leader = await cluster.leader()
        code = await cluster.stop(leader, grace_s=20.0)
        others = [i for i in cluster.node_ids() if i != leader]
        new = await cluster.leader(among=others)
        status = await cluster.status(new)
        assert status is not None
        return leader, new, code, cluster


def test_a_leader_started_with_stop_with_parent_hands_over_on_sigterm() -> None:
    leader, _new, code, cluster = run(_stop_leader())
    assert code == 0
    lines = cluster.lines(leader)
    assert any("Got SIGTERM, stopping" in line for line in lines), lines[-10:]
    # The target named in the leader's own line (the node leading now may be another, if
    # an election followed the hand-over on a busy machine).
    handed = [m for line in lines if (m := re.search(r"handing leadership to node (\d+)", line))]
    assert handed, lines[-10:]
    target = int(handed[-1].group(1))
    assert any("State: Candidate (leadership transfer)" in line for line in cluster.lines(target))


class _Lines:
    """Stands in for a cluster: the demo's hand-over check only reads node lines."""

    def __init__(self, lines: dict[int, list[str]]) -> None:
        self._lines = lines

    def lines(self, i: int) -> list[str]:
        return self._lines.get(i, [])


_T = "2026-11-30 07:10:03.015"
_TO_3 = f"{_T} node 1 [Leader t1] Stopping: handing leadership to node 3"
_HANDED = {
    1: [
        f"{_T} node 1 [Leader t1] Got SIGTERM, stopping",
        f"{_T} node 1 [Leader t1] Stopping: handing leadership to node 2",
    ],
    2: [f"{_T} node 2 [Candidate t2] New election term 2. State: Candidate (leadership transfer)"],
}


def test_the_demo_hand_over_check_passes_a_hand_over() -> None:
    _check_hand_over(_Lines(_HANDED), 1, 2, 2, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lines", "code", "why"),
    [
        # What the bug did: the leader stopped at once, node 2 won an ordinary election.
        (
            {
                1: [f"{_T} node 1 [Leader t1] Node stopped"],
                2: [f"{_T} node 2 [Candidate t2] New election term 2. State: Candidate"],
            },
            0,
            "did not log that SIGTERM",
        ),
        ({**_HANDED, 2: []}, 0, "did not stand in term 2 by leadership transfer"),
        (
            {
                **_HANDED,
                1: [_HANDED[1][0], f"{_T} node 1 [Leader t1] handing leadership to node 3"],
            },
            0,
            "did not hand leadership to node 2",
        ),
        (_HANDED, -9, "exited with status -9"),
    ],
)
def test_the_demo_hand_over_check_fails_without_one(
    lines: dict[int, list[str]], code: int, why: str
) -> None:
    with pytest.raises(DemoFailed, match=why):
        _check_hand_over(_Lines(lines), 1, 2, 2, code)  # type: ignore[arg-type]


def test_line_time_reads_the_event_log_stamp() -> None:
    at = line_time(f"{_T} node 1 [Leader t1] Got SIGTERM, stopping")
    later = line_time("2026-11-30 07:10:03.115 node 2 [Leader t2] Received 2 votes. State: Leader")
    assert at is not None and later is not None
    assert round((later - at) * 1000) == 100
    assert line_time("demo: node 1 is the leader") is None
