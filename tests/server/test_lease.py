"""The leader's read lease, in process: it is measured from when the acknowledged message
was *sent* (the leader's clock), not from when the acknowledgement was handled, so an
acknowledgement that waited (in a socket, behind a paused leader) renews nothing; and the
followers' side of it: what they echo, when they echo nothing, and what a restarted
follower does about the promise it made in its earlier life.

Real RaftNodes over the in-memory transport. Election timeouts are long (2-4 s) so that
a loaded machine does not start an election in the middle of a test; the lease is then
1 s (LEASE_FRACTION of the minimum)."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiohttp.test_utils import TestServer
from test_node import Cluster, run

from raftlog.api.http import ApiConfig, ClientApi
from raftlog.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    PreVote,
    RequestVote,
    WireMessage,
)
from raftlog.core.types import NodeId
from raftlog.server.eventlog import EventLog
from raftlog.server.lease import lease_clock_ns, max_pending_ticks, promise_left_s
from raftlog.server.node import _READ, RaftNode, ServerConfig, lease_s
from raftlog.server.replicated_log import ReplicatedLog, append_command
from raftlog.server.timing import Timing, fast_timing, lab_timing, timing_for
from raftlog.storage.memory import MemoryStorage
from raftlog.testing.waiting import eventually_async
from raftlog.transport.memory import MemoryNetwork

LONG = Timing(election_min_s=2.0, election_max_s=4.0, heartbeat_s=0.05, tick_s=0.01)


def test_the_lease_is_a_fraction_of_the_election_timeout_that_leaves_room_for_ticks() -> None:
    assert lease_s(fast_timing()) == 0.075  # 150 ms minimum election timeout
    assert lease_s(lab_timing()) == 3.0
    assert lease_s(LONG) == 1.0
    # Ticks coarse beside the timeout: the promise less three ticks and the slack binds.
    assert lease_s(Timing(0.05, 0.1, 0.01, 0.01)) == pytest.approx(2 * 0.01 - 0.002)
    # Ticks as coarse as the timeout: the follower's promise is a tick or two, no lease.
    assert lease_s(Timing(0.2, 0.4, 0.05, 0.1)) == 0.0


def test_a_follower_may_step_with_more_ticks_pending_when_the_timeout_is_many_ticks() -> None:
    node_fast = timing_for(fast=True)  # `raftlog node --fast`: 30 ticks of 5 ms
    cases = {
        node_fast: 13,
        fast_timing(): 6,
        lab_timing(): 28,
        LONG: 98,
        Timing(0.05, 0.1, 0.01, 0.01): 2,  # the lease is what two pending ticks leave
    }
    for timing, expected in cases.items():
        k = max_pending_ticks(timing)
        assert k == expected, timing
        # k pending ticks leave a promise at least as long as the lease; one more does not.
        assert promise_left_s(timing, k) >= lease_s(timing)
        if k > 2:
            assert promise_left_s(timing, k + 1) < lease_s(timing)


def test_a_suspend_of_the_leaders_machine_ends_its_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLOCK_MONOTONIC (asyncio's clock) stands still while the machine is suspended;
    CLOCK_BOOTTIME goes on. A leader whose machine slept for 10 s wakes with echoes that
    are 10 s old on the lease clock: no lease."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:
        pytest.skip("no CLOCK_BOOTTIME here: the lease clock is the monotonic clock")
    real = time.clock_gettime_ns

    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            slept = 0

            def clock(which: int) -> int:
                return real(which) + (slept if which == boottime else 0)

            monkeypatch.setattr(time, "clock_gettime_ns", clock)
            slept = 10 * 10**9  # the machine was suspended for 10 s
            assert not leader._lease_holds()
            # Fresh echoes (of sends on the advanced clock) renew it.
            await eventually_async(leader._lease_holds, 5, what="the lease from fresh echoes")
        finally:
            await c.close()

    run(main())


async def _steady_leader(c: Cluster) -> RaftNode:
    await c.start_all()
    leader = await c.leader()
    await leader.propose(append_command(b"x"), timeout=10)
    await eventually_async(leader._lease_holds, 10, what="the lease to hold")
    return leader


def _followers(c: Cluster, leader: RaftNode) -> list[RaftNode]:
    return [n for i, n in c.nodes.items() if i != leader.id]


@contextmanager
def _sends(node: RaftNode) -> Iterator[list[WireMessage]]:
    """What ``node`` hands its transport (after the lease's stamps), while in the block."""
    sent: list[WireMessage] = []
    real = node.transport.send

    def send(msg: WireMessage) -> bool:
        sent.append(msg)
        return real(msg)

    node.transport.send = send  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        node.transport.send = real  # type: ignore[method-assign]


def _answer(sent: list[WireMessage], context: bytes) -> HeartbeatResponse | None:
    return next(
        (m for m in sent if isinstance(m, HeartbeatResponse) and m.context == context), None
    )


def test_answers_echo_the_send_time_of_the_leaders_message_and_renew_the_lease() -> None:
    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            before = lease_clock_ns()
            await eventually_async(
                lambda: all(at > before for at, _t in leader._acked.values()),
                5,
                what="acknowledgements of heartbeats sent after 'before'",
            )
            for peer, (at, term) in leader._acked.items():
                assert term == leader.term and at <= lease_clock_ns(), peer
            follower = _followers(c, leader)[0]
            stamp = await eventually_async(
                lambda: follower._leader_stamp, 5, what="the follower's stamp"
            )
            assert stamp[:2] == (leader.id, leader.term)
            # A lease read is served without a round of heartbeats, and counted.
            served = leader.lease_reads
            await leader.read_barrier(timeout=5, lease=True)
            assert leader.lease_reads == served + 1
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


async def _cut_off(c: Cluster, leader: RaftNode) -> None:
    """The leader drops what its followers send from now on, and has handled what they
    sent before (a fresh acknowledgement may wait in its inbox); then it forgets the
    promises it holds."""
    leader.block_peers(set(c.ids) - {leader.id})
    await leader.status()  # the inbox is a queue: what came before the block is handled
    leader._acked.clear()


def test_an_acknowledgement_of_an_old_send_handled_late_renews_no_lease() -> None:
    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            await _cut_off(c, leader)
            # Acknowledgements of a message it sent 1.5 leases ago, which arrive only now.
            old = lease_clock_ns() - int(1.5 * lease_s(LONG) * 1e9)
            await _late_acks(c, leader, old)
            assert leader.is_leader and leader._acked, "the acknowledgements were counted"
            assert not leader._lease_holds(), "a promise that ran out renews nothing"
            # The same acknowledgements of a message sent just now do renew it.
            await _late_acks(c, leader, lease_clock_ns())
            assert leader.is_leader and leader._lease_holds()
            # An echoed time after now is no time of ours: ignored.
            leader._acked.clear()
            await _late_acks(c, leader, lease_clock_ns() + 10**12)
            assert not leader._acked and not leader._lease_holds()
        finally:
            await c.close()

    run(main())


@pytest.mark.parametrize(
    ("bug", "echo"),
    [
        ("endless-lease", -60.0),  # an echo of a send a minute ago
        ("ack-at-handling", None),  # no echo at all (a node older than the stamps)
    ],
)
def test_the_injected_lease_bugs_count_the_late_acknowledgement(
    bug: str, echo: float | None
) -> None:
    """The injected bugs the chaos test must catch, seen from inside: the same late
    acknowledgements make their lease hold (the fixed node's does not, above)."""

    async def main() -> None:
        c = Cluster(timing=LONG, bugs=frozenset({bug}))
        try:
            leader = await _steady_leader(c)
            await _cut_off(c, leader)
            sent = 0 if echo is None else lease_clock_ns() + int(echo * 1e9)
            await _late_acks(c, leader, sent)
            assert leader.is_leader and leader._lease_holds()
        finally:
            await c.close()

    run(main())


def test_a_lease_read_is_served_at_the_commit_index_once_it_is_applied() -> None:
    """An acknowledgement that commits an entry and a lease read, handled together: the
    read point is the new commit index (not the applied index behind it), served once
    applied, and with no round of heartbeats (none could be answered here)."""

    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            follower = _followers(c, leader)[0]
            leader.hold_peers(set(c.ids) - {leader.id})  # their answers wait, unread
            entry = leader.propose_nowait(append_command(b"y"), timeout=10)
            index = await eventually_async(
                lambda: (s := leader._core.log.last_index()) > leader.commit and s,
                5,
                what="the entry",
            )
            served = leader.lease_reads
            leader._deliver(
                AppendEntriesResponse(
                    follower.id,
                    leader.id,
                    leader.term,
                    success=True,
                    match_index=index,
                    echo_ns=lease_clock_ns(),
                )
            )
            read = leader._submit(_READ, True, 5.0)  # drained with the acknowledgement
            assert await read >= index
            assert leader.lease_reads == served + 1
            assert (await entry).index == index
            leader.hold_peers(set())
        finally:
            await c.close()

    run(main())


def test_without_check_quorum_there_is_no_lease() -> None:
    """The followers' promise is CheckQuorum's: without it they grant votes whenever
    asked, so a lease read would trust nothing. Lease reads then take ReadIndex."""

    async def main() -> None:
        c = Cluster(timing=LONG, check_quorum=False)
        try:
            await c.start_all()
            leader = await c.leader()
            await leader.propose(append_command(b"x"), timeout=10)
            before = lease_clock_ns()
            await eventually_async(
                lambda: (
                    len(leader._acked) == 2
                    and all(at > before for at, _t in leader._acked.values())
                ),
                5,
                what="fresh acknowledgements from both followers",
            )
            assert not leader._lease_holds()
            await leader.read_barrier(timeout=5, lease=True)  # confirmed by ReadIndex
            assert leader.lease_reads == 0
            # Nor does a restarted node keep quiet: it promised nothing.
            assert all(not n._restarted for n in c.nodes.values())
        finally:
            await c.close()

    run(main())


def test_answers_after_a_burst_of_more_pending_ticks_than_the_promise_allows_echo_nothing() -> None:
    """A follower that steps a leader's message with k ticks due at once (its loop was
    late) has a promise of about (min_ticks - k - 1) ticks left: it echoes the message
    while that still covers the lease, and echoes nothing after a longer stall."""

    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            follower = _followers(c, leader)[0]
            assert max_pending_ticks(LONG) == 98

            async def answer_after_stall(stall_s: float, context: bytes) -> tuple[int, int]:
                at = lease_clock_ns()
                follower._deliver(
                    Heartbeat(leader.id, follower.id, leader.term, 0, context, sent_ns=at)
                )
                time.sleep(stall_s)  # the whole loop stalls (not a wait): its ticks fall due
                answer = await eventually_async(
                    lambda: _answer(sent, context), 5, what="the answer"
                )
                return answer.echo_ns, at

            with _sends(follower) as sent:
                # 10 ticks due: more than the two of a merely late tick, far fewer than 98.
                echo, at = await answer_after_stall(0.1, b"short")
                assert echo == at, "the promise left still covers the lease: echoed"
                # 130 ticks due: the election timer it restarted had 70 left, not 100.
                echo, at = await answer_after_stall(1.3, b"long")
                assert echo == 0, "a promise that no longer covers the lease: no echo"
            assert leader.is_leader
        finally:
            await c.close()

    run(main())


def test_a_message_that_waited_held_is_not_echoed() -> None:
    """A held link delivers late: the follower steps the leader's message long after it
    was sent, but the promise it makes runs from the step, not from the send. It keeps
    echoing its older stamp (whose promise began before), never the held message's."""

    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            follower = _followers(c, leader)[0]
            follower.hold_peers({leader.id})
            await eventually_async(
                lambda: any(
                    isinstance(m, AppendEntries | Heartbeat) for _i, m in follower._held_messages
                ),
                5,
                what="a held message of the leader",
            )
            held = {
                m.sent_ns
                for _i, m in follower._held_messages
                if isinstance(m, AppendEntries | Heartbeat)
            }
            with _sends(follower) as sent:
                follower.hold_peers(set())  # delivered now, in order

                def answers() -> list[int]:
                    return [
                        m.echo_ns
                        for m in sent
                        if isinstance(m, AppendEntriesResponse | HeartbeatResponse)
                    ]

                # Answers to the held messages, then to fresh ones (echoed).
                await eventually_async(
                    lambda: any(e > max(held) for e in answers()), 5, what="fresh echoes"
                )
            assert not held & set(answers()), "a held message's send time was echoed"
        finally:
            await c.close()

    run(main())


def test_a_message_stepped_in_step_mode_is_not_echoed() -> None:
    """In step mode the clock stands still and ticks come by hand, at any pace: no
    promise holds. A message that was in the inbox when step mode began is stepped in it."""

    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            follower = _followers(c, leader)[0]
            with _sends(follower) as sent:
                at = lease_clock_ns()
                follower._deliver(
                    Heartbeat(leader.id, follower.id, leader.term, 0, b"step", sent_ns=at)
                )
                follower.set_stepping(True)  # before the core task takes the heartbeat
                answer = await eventually_async(
                    lambda: _answer(sent, b"step"), 5, what="the answer"
                )
                assert answer.echo_ns == 0
                follower.set_stepping(False)
        finally:
            await c.close()

    run(main())


def test_acknowledgements_that_waited_held_at_the_leader_are_not_counted() -> None:
    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            followers = _followers(c, leader)
            leader.hold_peers({f.id for f in followers})

            def held_acks() -> set[NodeId]:
                return {
                    m.src
                    for _i, m in leader._held_messages
                    if isinstance(m, AppendEntriesResponse | HeartbeatResponse) and m.echo_ns
                }

            await eventually_async(lambda: len(held_acks()) == 2, 5, what="acknowledgements held")
            for f in followers:  # they send the leader nothing more
                f.block_peers({leader.id})
            await leader.status()
            leader._acked.clear()
            leader.hold_peers(set())  # the held acknowledgements are delivered now
            await leader.status()
            assert leader.is_leader and not leader._acked
        finally:
            await c.close()

    run(main())


def test_a_voter_that_leaves_takes_its_acknowledgements_along() -> None:
    """Added back on a fresh disk in the same term, it would have promised nothing."""

    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            gone = _followers(c, leader)[0].id
            await eventually_async(
                lambda: gone in leader._acked, 5, what="an acknowledgement from it"
            )
            await leader.remove_member(gone, timeout=10)
            assert gone not in leader._acked
            assert gone not in leader.conf.voters and leader.is_leader
        finally:
            await c.close()

    run(main())


def test_a_restarted_node_ignores_vote_requests_for_an_election_timeout() -> None:
    """Restarted, a follower forgets the leader it heard (and promised, for the leader's
    lease, not to vote against): it drops other nodes' vote requests of a higher term for
    a minimum election timeout from its start. Transfers, and requests after that, reach
    the core."""

    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            assert all(n._vote_quiet_until is None for n in c.nodes.values())  # fresh: none
            f, other = (n.id for n in _followers(c, leader))
            await c.stop(f)
            node = c.nodes[f] = c.make(f)
            node.block_peers({leader.id})  # it hears nothing from the leader
            c.tasks[f] = asyncio.create_task(node.run())
            before = await node.status()
            term, last_index, last_term = before.term, before.last_index, before.last_term
            assert node._vote_quiet_until is not None

            async def ask(msg: RequestVote | PreVote) -> tuple[int, int]:
                node._deliver(msg)
                status = await node.status()
                return status.term, int(status.vote)

            vote = int(before.vote)
            for msg in (
                PreVote(other, f, term + 1, last_index, last_term),
                RequestVote(other, f, term + 1, last_index, last_term),
            ):
                assert await ask(msg) == (term, vote), msg
            out = c.out[f].getvalue()
            assert f"Ignored a pre-vote request from {other}" in out
            assert f"Ignored a vote request from {other}" in out
            # After a minimum election timeout the core decides: it grants (it hears from
            # no leader).
            until = node._vote_quiet_until
            await eventually_async(lambda: node._now >= until, 10, what="the quiet period to end")
            assert await ask(RequestVote(other, f, term + 1, last_index, last_term)) == (
                term + 1,
                int(other),
            )
        finally:
            await c.close()

    run(main())


def test_a_transfer_reaches_a_restarted_node_at_once() -> None:
    async def main() -> None:
        c = Cluster(timing=LONG)
        try:
            leader = await _steady_leader(c)
            f, other = (n.id for n in _followers(c, leader))
            await c.stop(f)
            node = c.nodes[f] = c.make(f)
            node.block_peers({leader.id})
            c.tasks[f] = asyncio.create_task(node.run())
            s = await node.status()
            node._deliver(RequestVote(other, f, s.term + 1, s.last_index, s.last_term, True))
            after = await node.status()
            assert (after.term, after.vote) == (s.term + 1, other)
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
            transferee, other = _followers(c, leader)
            # The transferee keeps what the leader sends (TimeoutNow too), so leadership
            # stays; the other follower goes on acknowledging: the lease would hold.
            transferee.hold_peers({leader.id})
            leader._acked.pop(transferee.id, None)
            await eventually_async(leader._lease_holds, 5, what="the lease from the other follower")
            term = leader.term
            await leader.transfer_leadership(transferee.id, timeout=5)
            await eventually_async(
                lambda: leader._lease_void_term == term, 5, what="TimeoutNow to be sent"
            )
            assert leader.is_leader and leader.term == term
            assert not leader._lease_holds()
            assert other._leader_stamp is not None
            transferee.hold_peers(set())
        finally:
            await c.close()

    run(main())


def test_a_read_that_waited_through_a_pause_is_handled_before_the_burst_of_ticks() -> None:
    """Pins JUMP_ROUNDS: an HTTP read whose bytes arrived while the node's loop stood
    still (a SIGSTOP) reaches the core before the burst of ticks that follows, over the
    real client API. Its lease read is counted in /v1/status."""

    async def main() -> None:
        timing = Timing(0.5, 1.0, 0.1, 0.01)
        node = RaftNode(
            ServerConfig(node_id=NodeId(1), voters=frozenset({NodeId(1)}), timing=timing, seed=1),
            MemoryStorage(),
            MemoryNetwork().factory(NodeId(1)),
            ReplicatedLog(),
            EventLog(NodeId(1), stream=io.StringIO(), level=logging.ERROR),
        )
        task = asyncio.create_task(node.run())
        api = ClientApi(node, ApiConfig(client_urls={NodeId(1): "http://127.0.0.1:1"}))
        server = TestServer(api.app())
        await server.start_server()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            await eventually_async(lambda: node.is_leader, 10, what="the node to lead")
            await node.propose(append_command(b"x"), timeout=10)
            await eventually_async(node._lease_holds, 10, what="the lease to hold")

            def get(path: str) -> bytes:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                return _http_answer(sock)

            await asyncio.to_thread(get, "/livez")  # a connection the node already serves
            ticks: list[tuple[float, int]] = []
            real_tick = node._core.tick

            def tick() -> None:
                ticks.append((time.monotonic(), node.lease_reads))
                real_tick()

            node._core.tick = tick  # type: ignore[method-assign]
            served = node.lease_reads
            sock.sendall(b"GET /v1/log?from=1&consistency=lease HTTP/1.1\r\nHost: x\r\n\r\n")
            # The core task was ready to run when the loop stopped (the worst case: it
            # runs first when the loop wakes, before the read's bytes are even taken).
            node._wake()
            time.sleep(0.3)  # the loop stands still (not a wait), as under SIGSTOP
            woke = time.monotonic()
            await asyncio.to_thread(_http_answer, sock)
            await eventually_async(
                lambda: any(t >= woke for t, _n in ticks), 5, what="a tick after"
            )
            burst = [n for t, n in ticks if t >= woke]
            assert burst[0] == served + 1, "the burst of ticks came before the read"
            status = await asyncio.to_thread(get, "/v1/status")
            assert b'"lease_reads":%d' % (served + 1) in status.replace(b" ", b"")
        finally:
            sock.close()
            await server.close()
            node.stop()
            await task

    run(main())


def _http_answer(sock: socket.socket) -> bytes:
    """One HTTP answer's body (after a head with a Content-Length), from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    size = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < size:
        body += sock.recv(65536)
    return body
