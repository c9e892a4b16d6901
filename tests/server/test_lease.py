"""The leader's read lease, in process: it is measured from when the acknowledged message
was *sent* (the leader's clock), not from when the acknowledgement was handled, so an
acknowledgement that waited (in a socket, behind a paused leader) renews nothing.

Real RaftNodes over the in-memory transport. Election timeouts are long (2-4 s) so that
a loaded machine does not start an election in the middle of a test; the lease is then
1 s (LEASE_FRACTION of the minimum)."""

from __future__ import annotations

import time

from test_node import Cluster, eventually, run

from raftlog.core.messages import AppendEntriesResponse, HeartbeatResponse
from raftlog.core.types import NodeId
from raftlog.server.node import RaftNode, lease_s
from raftlog.server.replicated_log import append_command
from raftlog.server.timing import Timing, fast_timing, lab_timing

LONG = Timing(election_min_s=2.0, election_max_s=4.0, heartbeat_s=0.05, tick_s=0.01)


def test_the_lease_is_a_fraction_of_the_election_timeout_that_leaves_room_for_ticks() -> None:
    assert lease_s(fast_timing()) == 0.075  # 150 ms minimum election timeout
    assert lease_s(lab_timing()) == 3.0
    assert lease_s(LONG) == 1.0
    # Ticks as coarse as the timeout: the follower's promise is a tick or two, no lease.
    assert lease_s(Timing(0.2, 0.4, 0.05, 0.1)) == 0.0


async def _steady_leader(c: Cluster) -> RaftNode:
    await c.start_all()
    leader = await c.leader()
    await leader.propose(append_command(b"x"), timeout=10)
    await eventually(leader._lease_holds, 10, "the lease to hold")
    return leader


def test_answers_echo_the_send_time_of_the_leaders_message_and_renew_the_lease() -> None:
    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            before = time.monotonic_ns()
            await eventually(
                lambda: all(at > before for at, _t in leader._acked.values()),
                5,
                "acknowledgements of heartbeats sent after 'before'",
            )
            for peer, (at, term) in leader._acked.items():
                assert term == leader.term and at <= time.monotonic_ns(), peer
            follower = next(n for i, n in c.nodes.items() if i != leader.id)
            stamp = follower._leader_stamp
            assert stamp is not None and stamp[:2] == (leader.id, leader.term)
        finally:
            await c.close()

    run(main())


async def _late_acks(c: Cluster, leader: RaftNode, sent_ns: int) -> None:
    """Every follower's answer to a message sent at ``sent_ns``, handed to the leader now
    (as acknowledgements that waited in its sockets while it was paused would be)."""
    for i in c.ids:
        if i == leader.id:
            continue
        leader._deliver(HeartbeatResponse(NodeId(i), leader.id, leader.term, echo_ns=sent_ns))
        leader._deliver(
            AppendEntriesResponse(
                NodeId(i), leader.id, leader.term, success=True, match_index=1, echo_ns=sent_ns
            )
        )
    await leader.status()  # the core task has handled them by now


def test_an_acknowledgement_of_an_old_send_handled_late_renews_no_lease() -> None:
    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            # Cut the leader off (it drops what its followers send from now on), forget
            # the promises it holds, and hand it acknowledgements of a message it sent
            # 1.5 s ago, which arrive only now.
            leader.block_peers(set(c.ids) - {leader.id})
            leader._acked.clear()
            old = time.monotonic_ns() - int(1.5 * lease_s(LONG) * 1e9)
            await _late_acks(c, leader, old)
            assert leader.is_leader and leader._acked, "the acknowledgements were counted"
            assert not leader._lease_holds(), "a promise that ran out renews nothing"
            # The same acknowledgements of a message sent just now do renew it.
            await _late_acks(c, leader, time.monotonic_ns())
            assert leader.is_leader and leader._lease_holds()
            # An echoed time after now is no time of ours: ignored.
            leader._acked.clear()
            await _late_acks(c, leader, time.monotonic_ns() + 10**12)
            assert not leader._acked and not leader._lease_holds()
        finally:
            await c.close()

    run(main())


def test_the_endless_lease_bug_counts_the_old_acknowledgement() -> None:
    """The injected bug the chaos test must catch, seen from inside: the same late
    acknowledgements make its lease hold."""

    async def main() -> None:
        c = Cluster(timing=LONG, bugs=frozenset({"endless-lease"}))
        try:
            leader = await _steady_leader(c)
            leader.block_peers(set(c.ids) - {leader.id})
            leader._acked.clear()
            await _late_acks(c, leader, time.monotonic_ns() - int(60e9))
            assert leader.is_leader and leader._lease_holds()
        finally:
            await c.close()

    run(main())


def test_a_leader_that_sent_timeout_now_serves_no_lease_read_in_that_term() -> None:
    """A transferee's campaign is granted by followers that still hear from the leader:
    their promises no longer hold once TimeoutNow is out."""

    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            transferee, other = (c.nodes[i] for i in c.ids if i != leader.id)
            # The transferee keeps what the leader sends (TimeoutNow too), so leadership
            # stays; the other follower goes on acknowledging: the lease would hold.
            transferee.hold_peers({leader.id})
            leader._acked.pop(transferee.id, None)
            await eventually(leader._lease_holds, 5, "the lease from the other follower")
            term = leader.term
            await leader.transfer_leadership(transferee.id, timeout=5)
            await eventually(lambda: leader._lease_void_term == term, 5, "TimeoutNow to be sent")
            assert leader.is_leader and leader.term == term
            assert not leader._lease_holds()
            assert other._leader_stamp is not None
            transferee.hold_peers(set())
        finally:
            await c.close()

    run(main())
