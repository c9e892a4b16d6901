"""TcpTransport on loopback: the handshake, hostile and broken input, dead and stuck peers,
reconnection, and the state ``peers()`` reports."""

from __future__ import annotations

import ast
import asyncio
import logging
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from transport_testlib import (
    ENCODER,
    HANDSHAKE_DECODER,
    RawPeer,
    bound_socket,
    fast_config,
    frame,
    hello,
    make_cluster,
    run,
    sample,
    wait_for,
    wait_until,
)

from raftlog.core.messages import AppendEntries, Heartbeat, Message
from raftlog.core.types import Entry, NodeId
from raftlog.transport import Refused, TcpConfig, TcpTransport
from raftlog.transport.tcp import MAX_STRANGERS
from raftlog.transport.wire import HEADER, Hello

LOGGER = "raftlog.transport"


def heartbeat(src: int, dst: int, n: int = 0) -> Heartbeat:
    return Heartbeat(src=NodeId(src), dst=NodeId(dst), term=n, commit=n)


def big_append(src: int, dst: int, size: int) -> AppendEntries:
    return AppendEntries(
        src=NodeId(src),
        dst=NodeId(dst),
        term=1,
        prev_log_index=0,
        prev_log_term=0,
        entries=(Entry(1, 1, data=bytes(size)),),
        commit=0,
    )


def logged(caplog: pytest.LogCaptureFixture, text: str, level: int = logging.INFO) -> bool:
    return any(
        r.name == LOGGER and r.levelno >= level and text in r.getMessage() for r in caplog.records
    )


class Node:
    """A TcpTransport with its own inbox, on a socket bound before it starts."""

    def __init__(self, node_id: int, peers: dict[int, int], sock: socket.socket, **kw: Any):
        self.inbox: list[Message] = []
        self.sock = sock
        self.transport = TcpTransport(
            fast_config(node_id, peers, **kw), self.inbox.append, sock=sock
        )

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def close(self) -> None:
        await self.transport.close()
        self.sock.close()


class FakeAcceptor:
    """A listener that plays a peer by hand: it reads each dialer's Hello, writes
    ``answer(hello)`` back, and then reads (recording what arrives) or, with
    ``read=False``, never reads again (a stopped process)."""

    def __init__(
        self, answer: Callable[[Hello], bytes], *, read: bool = True, rcvbuf: int | None = None
    ) -> None:
        self.answer = answer
        self.read = read
        self.sock = bound_socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.port = self.sock.getsockname()[1]
        self.hellos: list[Hello] = []
        self.after_handshake: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._release = asyncio.Event()

    async def start(self) -> FakeAcceptor:
        self._server = await asyncio.start_server(self._handle, sock=self.sock)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.append(writer)
        self.connections += 1
        index = len(self.after_handshake)
        self.after_handshake.append(b"")
        try:
            (size,) = HEADER.unpack(await reader.readexactly(4))
            greeting = HANDSHAKE_DECODER.decode(await reader.readexactly(size))
            assert isinstance(greeting, Hello)
            self.hellos.append(greeting)
            writer.write(self.answer(greeting))
            if not self.read:
                await self._release.wait()
                return
            while data := await reader.read(65536):
                self.after_handshake[index] += data
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    async def close(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(self._handlers)
        self.sock.close()


# == the handshake ========================================================================


@pytest.mark.parametrize(
    ("greeting", "kind", "reason"),
    [
        (hello(2, cluster_id="other-cluster"), "wrong_cluster", "cluster id 'other-cluster'"),
        (hello(2, version=99), "wrong_version", "protocol version 99"),
        (hello(1), "unknown_node", "is this node's own"),
    ],
    ids=["cluster", "version", "itself"],
)
def test_the_acceptor_refuses_a_bad_hello_with_the_reason(
    greeting: Hello, kind: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        unused = bound_socket()
        node = Node(1, {2: unused.getsockname()[1]}, bound_socket())
        await node.transport.start()
        try:
            raw = await RawPeer.connect(node.port)
            raw.write(frame(greeting))
            answer = await raw.read_handshake()
            assert isinstance(answer, Refused)
            assert reason in answer.reason
            raw.write(frame(heartbeat(2, 1)))  # ignored: the node hung up
            assert await raw.closed_by_other_side()
            raw.close()
            await wait_until(lambda: node.transport.errors().get(kind) == 1, f"{kind} counted")
            assert node.inbox == []
            assert node.transport.peers()[NodeId(2)].received == 0
        finally:
            await node.close()
            unused.close()

    run(main())
    assert logged(caplog, reason, logging.WARNING)


def test_a_node_not_among_the_peers_is_heard_within_a_limit() -> None:
    """A node that was down while another joined hears the newcomer (its leader now)
    before it knows its address; a flood of unknown ids is still refused."""

    async def main() -> None:
        unused = bound_socket()
        node = Node(1, {2: unused.getsockname()[1]}, bound_socket())
        await node.transport.start()
        raws = []
        try:
            for k in range(MAX_STRANGERS):
                raw = await RawPeer.connect(node.port)
                raws.append(raw)
                raw.write(frame(hello(10 + k)))
                answer = await raw.read_handshake()
                assert isinstance(answer, Hello), answer
                raw.write(frame(heartbeat(10 + k, 1, n=k + 1)))
            await wait_until(lambda: len(node.inbox) == MAX_STRANGERS, "strangers heard")
            assert {m.src for m in node.inbox} == set(range(10, 10 + MAX_STRANGERS))
            extra = await RawPeer.connect(node.port)
            extra.write(frame(hello(99)))
            refused = await extra.read_handshake()
            assert isinstance(refused, Refused) and "not a known peer" in refused.reason
            extra.close()
            # One of them hangs up: its place is free again.
            raws.pop().close()
            await wait_until(lambda: len(node.transport._strangers) < MAX_STRANGERS, "a slot")
            again = await RawPeer.connect(node.port)
            again.write(frame(hello(99)))
            assert isinstance(await again.read_handshake(), Hello)
            again.close()
        finally:
            for raw in raws:
                raw.close()
            await node.close()
            unused.close()

    run(main())


def test_nodes_of_different_clusters_refuse_each_other_both_ways(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        s1, s2 = bound_socket(), bound_socket()
        p1, p2 = s1.getsockname()[1], s2.getsockname()[1]
        a = Node(1, {2: p2}, s1, cluster_id="cluster-a")
        b = Node(2, {1: p1}, s2, cluster_id="cluster-b")
        await a.transport.start()
        await b.transport.start()
        try:
            a.transport.send(heartbeat(1, 2))
            b.transport.send(heartbeat(2, 1))

            def refused_both_ways(node: Node) -> bool:
                errors = node.transport.errors()
                return errors.get("wrong_cluster", 0) >= 3 and errors.get("refused", 0) >= 3

            await wait_until(lambda: refused_both_ways(a), "node 1 refusing and refused")
            await wait_until(lambda: refused_both_ways(b), "node 2 refusing and refused")
            assert a.inbox == [] and b.inbox == []
            info = a.transport.peers()[NodeId(2)]
            assert not info.connected and not info.inbound
            assert info.last_error is not None and "refused" in info.last_error
            assert info.connect_failures >= 1
        finally:
            await a.close()
            await b.close()

    run(main())
    for reason in (
        "cluster id 'cluster-a' is not this cluster's ('cluster-b')",
        "cluster id 'cluster-b' is not this cluster's ('cluster-a')",
    ):
        warnings = [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and reason in r.getMessage()
        ]
        # Logged once by the acceptor and once by the dialer; the retries only at DEBUG.
        assert len(warnings) == 2, warnings
        assert any("refused:" in w for w in warnings)


def _answer_hello(node_id: int = 2, **kw: Any) -> Callable[[Hello], bytes]:
    return lambda _: frame(hello(node_id, **kw))


@pytest.mark.parametrize(
    ("answer", "kind", "reason"),
    [
        (_answer_hello(cluster_id="other"), "wrong_cluster", "cluster id 'other'"),
        (_answer_hello(version=99), "wrong_version", "protocol version 99"),
        (_answer_hello(3), "wrong_node", "the peer at this address is node 3"),
        (lambda _: frame(Refused("go away")), "refused", "go away"),
        (lambda _: frame(b"\x93\x01\x02\x03"), "bad_handshake", "undecodable handshake"),
        (lambda _: frame(hello(2)) + b"extra", "unexpected_data", "wrote on our outbound"),
    ],
    ids=["cluster", "version", "wrong-node", "refused", "garbage", "talks-back"],
)
def test_the_dialer_checks_the_answer_and_sends_nothing_on_a_bad_one(
    answer: Callable[[Hello], bytes], kind: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        fake = await FakeAcceptor(answer).start()
        node = Node(1, {2: fake.port}, bound_socket())
        await node.transport.start()
        try:
            for n in range(5):
                node.transport.send(heartbeat(1, 2, n))
            await wait_until(
                lambda: node.transport.errors().get(kind, 0) >= 1 and fake.connections >= 2,
                f"{kind} counted and a retry",
            )
            assert fake.hellos[0] == hello(1)
            info = node.transport.peers()[NodeId(2)]
            assert info.last_error is not None and reason in info.last_error
            if kind != "unexpected_data":  # there the handshake itself was fine
                assert info.sent == 0
                assert set(fake.after_handshake) <= {b""}, "a message went to a bad peer"
                assert not info.connected
        finally:
            await node.close()
            await fake.close()

    run(main())
    assert logged(caplog, reason, logging.WARNING)


def test_a_dialer_that_never_says_hello_is_closed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        cluster = make_cluster("tcp", [1, 2], handshake_timeout=0.2)
        await cluster.start()
        try:
            raw = await RawPeer.connect(cluster.transports[1].address[1])  # type: ignore[attr-defined]
            assert await raw.closed_by_other_side()
            raw.close()
            assert cluster.transports[1].errors() == {"handshake_timeout": 1}  # type: ignore[attr-defined]
        finally:
            await cluster.close()

    run(main())
    assert logged(caplog, "no handshake within 0.2 s", logging.WARNING)


# == hostile and broken input ==============================================================


@pytest.mark.parametrize(
    ("data", "hang_up", "kind"),
    [
        (b"GET / HTTP/1.1\r\nHost: node_1\r\n\r\n", False, "frame_too_large"),
        (b"\x00\x00\x00\x05hello", False, "bad_handshake"),
        (frame(heartbeat(2, 1)), False, "bad_handshake"),
        (bytes(range(256)) * 4, False, "frame_too_large"),
        (b"\x00\x00\x00\x10" + bytes(range(16)), False, "bad_handshake"),
        (b"\x00\x00", True, "truncated"),
        (b"\x00\x00\x00\x20abc", True, "truncated"),
        (b"", True, "bad_handshake"),
    ],
    ids=[
        "http",
        "garbage",
        "message-first",
        "binary",
        "binary-frame",
        "short-header",
        "short-body",
        "silent",
    ],
)
def test_garbage_before_the_handshake_closes_only_that_connection(
    data: bytes, hang_up: bool, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        cluster = make_cluster("tcp", [1, 2])
        await cluster.start()
        await cluster.ready()
        t1: TcpTransport = cluster.transports[1]  # type: ignore[assignment]
        try:
            raw = await RawPeer.connect(t1.address[1])
            raw.write(data)
            if hang_up:
                raw.writer.write_eof()
            assert await raw.closed_by_other_side()
            raw.close()
            await wait_until(lambda: t1.errors().get(kind) == 1, f"{kind} counted")
            # The listener and the other connections carry on.
            assert cluster.transports[2].send(heartbeat(2, 1, 42))
            await wait_until(lambda: cluster.inbox[1] == [heartbeat(2, 1, 42)], "delivery")
            assert t1.peers()[NodeId(2)].last_error is None  # not blamed on node 2
        finally:
            await cluster.close()

    run(main())
    assert logged(caplog, "closing inbound connection from", logging.WARNING)


@pytest.mark.parametrize(
    ("bad", "kind", "reason"),
    [
        (HEADER.pack(16 * 1024 * 1024 + 1), "frame_too_large", "frame of 16777217 bytes"),
        (frame(b"\xc1 not msgpack"), "bad_frame", "undecodable message"),
        (frame({"type": "heartbeat", "src": 3}), "bad_frame", "undecodable message"),
        (frame({"type": "snapshot", "src": 3, "dst": 1}), "bad_frame", "undecodable message"),
        (frame(heartbeat(2, 1, 9)), "bad_message", "message from 2 to 1 on a connection from"),
        (frame(heartbeat(3, 2, 9)), "bad_message", "message from 3 to 2 on a connection from"),
        (frame(heartbeat(3, 1, 9))[:-3], "truncated", "inside a frame"),
    ],
    ids=["oversized", "garbage", "missing-fields", "unknown-kind", "wrong-src", "wrong-dst", "cut"],
)
def test_a_bad_frame_after_the_handshake_closes_only_that_connection(
    bad: bytes, kind: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        # Node 3 is a known peer of node 1, played by hand; 1 and 2 are real.
        cluster = make_cluster("tcp", [1, 2, 3])
        t1: TcpTransport = cluster.transports[1]  # type: ignore[assignment]
        await t1.start()
        await cluster.transports[2].start()
        try:
            raw = await RawPeer.connect(t1.address[1])
            assert await raw.handshake(3) == hello(1)
            raw.write(frame(heartbeat(3, 1, 1)))
            await wait_until(lambda: cluster.inbox[1] == [heartbeat(3, 1, 1)], "a good message")
            raw.write(bad)
            if kind == "truncated":
                raw.writer.write_eof()
            # Nothing more is read after an oversized header: the body need not come.
            assert await raw.closed_by_other_side()
            raw.close()
            await wait_until(lambda: t1.errors().get(kind) == 1, f"{kind} counted")
            assert cluster.inbox[1] == [heartbeat(3, 1, 1)]  # the bad message was dropped
            info = t1.peers()[NodeId(3)]
            assert info.last_error is not None and reason in info.last_error
            assert info.received == 1

            # Others still deliver, and node 3 itself may come back.
            assert cluster.transports[2].send(heartbeat(2, 1, 2))
            again = await RawPeer.connect(t1.address[1])
            assert await again.handshake(3) == hello(1)
            again.write(frame(heartbeat(3, 1, 3)))
            await wait_until(
                lambda: (
                    heartbeat(2, 1, 2) in cluster.inbox[1]
                    and heartbeat(3, 1, 3) in cluster.inbox[1]
                ),
                "deliveries after the bad connection",
            )
            again.close()
        finally:
            await cluster.close()

    run(main())
    assert logged(caplog, reason, logging.WARNING)


def test_a_new_connection_from_a_peer_replaces_its_old_one() -> None:
    async def main() -> None:
        cluster = make_cluster("tcp", [1, 2, 3])
        t1: TcpTransport = cluster.transports[1]  # type: ignore[assignment]
        await t1.start()
        try:
            old = await RawPeer.connect(t1.address[1])
            await old.handshake(3)
            new = await RawPeer.connect(t1.address[1])
            await new.handshake(3)
            assert await old.closed_by_other_side()
            new.write(frame(heartbeat(3, 1, 5)))
            await wait_until(lambda: cluster.inbox[1] == [heartbeat(3, 1, 5)], "delivery")
            assert t1.peers()[NodeId(3)].inbound
            old.close()
            new.close()
            await wait_until(lambda: not t1.peers()[NodeId(3)].inbound, "inbound gone")
        finally:
            await cluster.close()

    run(main())


def test_an_outgoing_message_above_the_frame_limit_is_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        cluster = make_cluster("tcp", [1, 2], max_frame_size=64 * 1024)
        await cluster.start()
        await cluster.ready()
        t1: TcpTransport = cluster.transports[1]  # type: ignore[assignment]
        try:
            assert t1.send(big_append(1, 2, 100_000))
            assert t1.send(heartbeat(1, 2, 1))
            await wait_until(lambda: cluster.inbox[2] == [heartbeat(1, 2, 1)], "the heartbeat")
            info = t1.peers()[NodeId(2)]
            assert (info.dropped, info.sent, info.reconnects) == (1, 1, 0)
        finally:
            await cluster.close()

    run(main())
    assert logged(caplog, "the frame limit is 65536", logging.ERROR)


# == dead, restarted and stuck peers ======================================================


def test_a_peer_that_is_not_listening_never_blocks_send_and_is_reached_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        s1, s2 = bound_socket(), bound_socket()  # s2 is bound, not listening: refused
        p1, p2 = s1.getsockname()[1], s2.getsockname()[1]
        one = Node(1, {2: p2}, s1, queue_size=100)
        t1 = one.transport
        await t1.start()
        two: Node | None = None
        try:
            started = time.perf_counter()
            results = [t1.send(heartbeat(1, 2, n)) for n in range(1000)]
            elapsed = time.perf_counter() - started
            assert elapsed < 0.5, f"1000 sends took {elapsed:.3f} s"
            assert results == [True] * 100 + [False] * 900
            info = t1.peers()[NodeId(2)]
            assert (info.queued, info.dropped, info.connected) == (100, 900, False)

            # A failed attempt drops what was queued: no backlog of stale messages.
            await wait_until(
                lambda: (
                    t1.peers()[NodeId(2)].connect_failures >= 1
                    and t1.peers()[NodeId(2)].queued == 0
                ),
                "a failed attempt",
            )
            info = t1.peers()[NodeId(2)]
            assert info.dropped == 1000
            assert info.last_error is not None and "Connect call failed" in info.last_error

            # Node 2 starts listening: node 1 reconnects (backoff is at most 0.1 s here).
            two = Node(2, {1: p1}, s2)
            await two.transport.start()
            await wait_until(lambda: t1.peers()[NodeId(2)].connected, "the reconnection")
            later = [heartbeat(1, 2, 1000 + n) for n in range(10)]
            assert all(t1.send(m) for m in later)
            await wait_until(lambda: two.inbox == later, "later messages delivered")
            info = t1.peers()[NodeId(2)]
            assert info.reconnects == 0  # the first connection that worked
            assert info.sent == 10

            # Node 2 stops: node 1 notices; it comes back on the same port: reconnect.
            await two.close()
            await wait_until(
                lambda: not t1.peers()[NodeId(2)].connected and not t1.peers()[NodeId(2)].inbound,
                "node 1 noticing that node 2 is gone",
            )
            assert t1.peers()[NodeId(2)].last_error is not None
            two = Node(2, {1: p1}, bound_socket(p2))
            await two.transport.start()
            await wait_until(lambda: t1.peers()[NodeId(2)].connected, "the second connection")
            assert t1.send(heartbeat(1, 2, 7))
            await wait_until(lambda: two.inbox == [heartbeat(1, 2, 7)], "delivery after restart")
            assert t1.peers()[NodeId(2)].reconnects == 1
        finally:
            await one.close()
            if two is not None:
                await two.close()
            s2.close()

    run(main())
    assert logged(caplog, "cannot reach node 2")
    assert logged(caplog, "connected to node 2")


def test_reconnect_attempts_back_off_exponentially_up_to_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    async def main() -> None:
        refused = bound_socket()
        one = Node(1, {2: refused.getsockname()[1]}, bound_socket(), backoff_max=0.08)
        started = time.monotonic()
        await one.transport.start()
        try:
            await wait_until(
                lambda: one.transport.peers()[NodeId(2)].connect_failures >= 8, "8 attempts"
            )
            # Delays 10, 20, 40, 80, 80, 80, 80 ms, each jittered down by at most half:
            # at least 195 ms in all (with no backoff, 8 refusals take a millisecond).
            assert time.monotonic() - started >= 0.19
        finally:
            await one.close()
            refused.close()

    run(main())
    # The first refusal is logged at INFO, the identical ones after it at DEBUG only.
    refusals = [r for r in caplog.records if "cannot reach node 2" in r.getMessage()]
    assert len(refusals) >= 8
    assert [r.levelno for r in refusals[:3]] == [logging.INFO, logging.DEBUG, logging.DEBUG]


def test_a_peer_that_calls_us_is_dialled_again_at_once_not_after_the_backoff() -> None:
    """Node 1 has been failing to reach node 2 for a while (its backoff is long). When
    node 2 comes back it connects to node 1; node 1 takes that as a sign of life and dials
    node 2 at once, instead of sleeping out a backoff longer than an election timeout."""

    async def main() -> None:
        s1, s2 = bound_socket(), bound_socket()
        p1, p2 = s1.getsockname()[1], s2.getsockname()[1]
        one = Node(1, {2: p2}, s1, backoff_min=3.0, backoff_max=5.0)
        await one.transport.start()
        two: Node | None = None
        try:
            await wait_until(
                lambda: one.transport.peers()[NodeId(2)].connect_failures >= 1, "a refusal"
            )
            # Node 1 now sleeps 1.5-3 s before its next attempt.
            two = Node(2, {1: p1}, s2, backoff_min=0.01)
            await two.transport.start()
            started = time.monotonic()
            await wait_until(
                lambda: one.transport.peers()[NodeId(2)].connected, "node 1 redialling", 1.2
            )
            assert time.monotonic() - started < 1.2
        finally:
            await one.close()
            if two is not None:
                await two.close()

    run(main())


def test_a_peer_that_stops_reading_stalls_neither_send_nor_other_peers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Node 2 completes the handshake and then never reads (like a SIGSTOPped process):
    node 1's writes to it fill the socket buffers and time out, the queue stays bounded,
    and node 3 keeps receiving all along."""
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        stuck = await FakeAcceptor(_answer_hello(2), read=False, rcvbuf=4096).start()
        s1, s3 = bound_socket(), bound_socket()
        three = Node(3, {1: s1.getsockname()[1]}, s3)
        one = Node(
            1,
            {2: stuck.port, 3: three.port},
            s1,
            queue_size=32,
            write_timeout=0.3,
            handshake_timeout=0.3,
        )
        t1 = one.transport
        await three.transport.start()
        await t1.start()
        try:
            await wait_until(
                lambda: all(i.connected for i in t1.peers().values()), "both connections"
            )
            chunk = big_append(1, 2, 512 * 1024)
            # A burst larger than the queue while the writer cannot run (no await): the
            # excess is dropped at once and the queue stays bounded. (Counting on the
            # loop below to overflow it raced the write timeout on a loaded machine.)
            for _ in range(40):
                t1.send(chunk)
            assert t1.peers()[NodeId(2)].queued <= 32
            assert t1.peers()[NodeId(2)].dropped >= 8
            deadline = time.monotonic() + 5
            n = 0
            slowest = 0.0
            # Keep both peers busy until the write to node 2 times out.
            while "write timed out" not in (t1.peers()[NodeId(2)].last_error or ""):
                assert time.monotonic() < deadline, "the write to node 2 never timed out"
                started = time.perf_counter()
                t1.send(chunk)
                t1.send(heartbeat(1, 3, n))
                slowest = max(slowest, time.perf_counter() - started)
                assert t1.peers()[NodeId(2)].queued <= 32
                n += 1
                await asyncio.sleep(0.005)
            assert slowest < 0.1, f"a send took {slowest:.3f} s"
            info = t1.peers()[NodeId(2)]
            assert info.dropped > 0
            # Node 3 got every heartbeat sent so far, in order, while node 2 was stuck.
            await wait_until(lambda: len(three.inbox) == n, "node 3's heartbeats")
            assert three.inbox == [heartbeat(1, 3, i) for i in range(n)]
            # Node 1 dials node 2 again after the timeout (it answers the handshake).
            await wait_until(lambda: stuck.connections >= 2, "a new connection to node 2")
        finally:
            await one.close()
            await three.close()
            await stuck.close()

    run(main())
    assert logged(caplog, "write timed out after 0.3 s (peer not reading)")


def test_a_peer_that_accepts_but_never_answers_the_handshake() -> None:
    async def main() -> None:
        mute = bound_socket()
        mute.listen()  # the kernel accepts; nobody ever reads
        s1, s3 = bound_socket(), bound_socket()
        three = Node(3, {1: s1.getsockname()[1]}, s3)
        one = Node(1, {2: mute.getsockname()[1], 3: three.port}, s1, handshake_timeout=0.2)
        t1 = one.transport
        await three.transport.start()
        await t1.start()
        try:
            assert t1.send(heartbeat(1, 2))
            assert t1.send(heartbeat(1, 3))
            await wait_until(lambda: three.inbox == [heartbeat(1, 3)], "node 3 served")
            await wait_until(
                lambda: t1.peers()[NodeId(2)].connect_failures >= 2, "handshake timeouts"
            )
            info = t1.peers()[NodeId(2)]
            assert not info.connected
            assert info.last_error == "no handshake answer within 0.2 s"
            assert t1.errors()["handshake_timeout"] >= 2
        finally:
            await one.close()
            await three.close()
            mute.close()

    run(main())


# == configuration and layering ===========================================================


def test_listening_on_port_zero_reports_the_real_address() -> None:
    async def main() -> None:
        config = TcpConfig(cluster_id="c", node_id=NodeId(1), host="127.0.0.1", port=0)
        transport = TcpTransport(config, lambda m: None)
        await transport.start()
        try:
            host, port = transport.address
            assert host == "127.0.0.1" and port > 0
            raw = await RawPeer.connect(port)
            assert isinstance(await raw.handshake(2), Refused)  # no peers configured
            raw.close()
        finally:
            await transport.close()

    run(main())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"peers": {NodeId(1): ("h", 1)}}, "must not include this node"),
        ({"node_id": NodeId(0)}, "node_id must be positive"),
        ({"queue_size": 0}, "queue_size"),
        ({"max_frame_size": 10}, "max_frame_size"),
        ({"write_timeout": 0}, "write_timeout must be positive"),
        ({"backoff_min": 1.0, "backoff_max": 0.5}, "backoff_max"),
    ],
)
def test_config_validation(change: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"cluster_id": "c", "node_id": NodeId(1)}
    settings.update(change)
    with pytest.raises(ValueError, match=message):
        TcpConfig(**settings)


def test_the_transport_package_imports_only_core_tls_stdlib_and_msgspec() -> None:
    package = Path(__file__).parents[2] / "src" / "raftlog" / "transport"
    allowed = set(sys.stdlib_module_names) | {"msgspec"}
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "raftlog":
                    assert parts[1] in {"core", "transport", "tls"}, f"{path.name} imports {name}"
                else:
                    assert parts[0] in allowed, f"{path.name} imports {name}"
                assert parts[0] != "pickle"


def test_wire_encoding_is_plain_msgpack() -> None:
    # The handshake is readable by any msgpack library: a tagged map.
    assert ENCODER.encode(hello(2)) == (
        b"\x84\xa4type\xa5hello\xaacluster_id\xactest-cluster\xa7node_id\x02\xa7version\x02"
    )


def test_wait_for_reports_what_it_waited_for() -> None:
    async def main() -> None:
        with pytest.raises(AssertionError, match="never"):
            await wait_for(asyncio.Event().wait(), "never", timeout=0.01)

    run(main())


def test_set_peers_drops_a_peer_that_is_gone_and_dials_one_that_is_added() -> None:
    """Membership changes reach the transport: a removed member is no longer reachable
    (its queue dropped, its connections closed); one added is dialled at once."""

    async def main() -> None:
        cluster = make_cluster("tcp", [1, 2, 3])
        try:
            await cluster.start()
            one = cluster.transports[1]
            assert isinstance(one, TcpTransport)
            two, three = cluster.transports[2].address, cluster.transports[3].address
            one.set_peers({NodeId(2): two})
            assert set(one.peers()) == {2}
            assert one.send(sample(Heartbeat, 1, 3, salt=1)) is False
            one.set_peers({NodeId(2): two, NodeId(3): three})
            assert set(one.peers()) == {2, 3}
            assert one.send(sample(Heartbeat, 1, 3, salt=2)) is True
            await wait_until(
                lambda: any(m.term == 2 for m in cluster.inbox[3]), what="node 3 hears node 1"
            )
        finally:
            await cluster.close()

    run(main())
