"""Peer messages over asyncio TCP.

Each node listens on its peer address and dials every peer: one connection per peer and
direction. An outbound connection carries only our messages to that peer; an inbound one
only the peer's messages to us. The frames and the handshake are in
:mod:`raftlog.transport.wire`.

Outbound, every peer has a bounded queue (``send`` drops rather than blocks when it is
full) and a sender task that dials with a connect timeout, reconnects with exponential
backoff and jitter, batches queued messages into one write, and gives a write
``write_timeout`` seconds to drain: a peer that stopped reading (SIGSTOP) costs a closed
connection and lost messages, never a stalled node. Messages still queued when a
connection attempt fails are dropped, so a peer that comes back gets messages at most
about one backoff interval old, not a backlog of stale ones.

Inbound, every frame is checked: the handshake (cluster id, protocol version, a known peer
that is not this node), the frame size (before reading the body), the decoding into a
typed message, and that ``src`` is the handshaken peer and ``dst`` this node. A
connection that fails any check is closed, with the reason logged on the
``raftlog.transport`` logger and counted in :meth:`TcpTransport.errors`; the other
connections and the listener carry on. A new inbound connection from a peer replaces the
previous one (the peer reconnected).

With :attr:`TcpConfig.tls` (see :mod:`raftlog.tls`), every connection is mutual TLS:
the acceptor runs the TLS handshake before it reads a single byte of the protocol (a
plaintext dialer, or one without a certificate the cluster's CA signed, is refused and
counted as ``tls``), and both ends check that the node id the other's certificate names
is the one its Hello claims (``wrong_identity``). Without it, peers talk plaintext, with
no authentication: run them on a private network then.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
import weakref
from collections import Counter, deque
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from raftlog.core.messages import WireMessage
from raftlog.core.types import NodeId, split_address
from raftlog.tls import PEER_NAME, PeerTls, certified_node, tls_reason
from raftlog.transport.base import MessageHandler, PeerInfo, TransportError
from raftlog.transport.wire import (
    DEFAULT_MAX_FRAME_SIZE,
    HEADER,
    MAX_HANDSHAKE_FRAME_SIZE,
    PROTOCOL_VERSION,
    Handshake,
    Hello,
    ProtocolError,
    Refused,
    encode_frame,
    read_frame,
)

log = logging.getLogger("raftlog.transport")

_READ_BUFFER = 256 * 1024
_YIELD_EVERY = 64
MAX_STRANGERS = 8
"""Inbound connections accepted from nodes not (yet) among the peers. A node that was
down while another joined learns the newcomer's address only from the configuration
entries that newcomer, once leader, sends it: so it must hear a node it cannot name."""
_MAX_REMEMBERED = 1024
"""Inbound frames handled before giving other tasks a turn, when data is all buffered."""
PROBLEM_QUIET_S = 60.0
"""A connection closed for the same kind of problem from the same source within this
long of the last warning about it is logged at DEBUG only (and counted in the next)."""


@dataclass(frozen=True, kw_only=True)
class TcpConfig:
    """Settings of one node's TCP transport. Times are in seconds."""

    cluster_id: str
    """Both ends of every connection must agree on it (the handshake checks)."""
    node_id: NodeId
    host: str = "127.0.0.1"
    """Listen address (a hostname is resolved when the transport starts)."""
    port: int = 0
    """Listen port; 0 picks a free one (see :attr:`TcpTransport.address`)."""
    peers: Mapping[NodeId, tuple[str, int]] = field(default_factory=dict)
    """Every other node: ``{node_id: (host, port)}``. Hostnames (``node_1``) are resolved
    at each connection attempt, so a peer may move or appear in DNS later."""
    advertise: str = ""
    """This node's peer address as the others know it (``host:port``), told in the
    handshake so that a node that does not know this one yet can answer it."""
    queue_size: int = 1024
    """Messages waiting per peer; ``send`` drops beyond it."""
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    """Largest frame accepted (and sent: a larger message is dropped and logged)."""
    connect_timeout: float = 1.0
    """For name resolution and the TCP connect together."""
    handshake_timeout: float = 2.0
    """For the handshake, on either side (a dialer that never says Hello is closed)."""
    write_timeout: float = 1.0
    """How long a write may wait for the peer to read before the connection is closed.
    It must cover sending one batch (``max_batch_bytes`` or one large message)."""
    backoff_min: float = 0.05
    """First delay between connection attempts; also the pause after a lost connection."""
    backoff_max: float = 2.0
    """The delay doubles per failed attempt up to this; each delay is jittered down by up
    to half, and a successful connection resets it."""
    max_batch_bytes: int = 256 * 1024
    """Queued messages are coalesced into one write of up to about this many bytes."""
    tls: PeerTls | None = None
    """Mutual TLS for every connection (:func:`raftlog.tls.peer_tls`); None: plaintext."""

    def __post_init__(self) -> None:
        if self.node_id <= 0:
            raise ValueError(f"node_id must be positive, not {self.node_id}")
        if self.node_id in self.peers:
            raise ValueError(f"peers must not include this node ({self.node_id})")
        if any(peer <= 0 for peer in self.peers):
            raise ValueError("peer node ids must be positive")
        if self.queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if self.max_frame_size < 1024:
            raise ValueError("max_frame_size must be at least 1024 bytes")
        for name in ("connect_timeout", "handshake_timeout", "write_timeout", "backoff_min"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.backoff_max < self.backoff_min:
            raise ValueError("backoff_max must be at least backoff_min")


class _Outbox:
    """A bounded FIFO of messages with one waiting consumer (lighter than asyncio.Queue:
    ``send`` is on the node's hot path)."""

    __slots__ = ("items", "limit", "waiter")

    def __init__(self, limit: int) -> None:
        self.items: deque[WireMessage] = deque()
        self.limit = limit
        self.waiter: asyncio.Future[None] | None = None

    def put(self, msg: WireMessage) -> bool:
        if len(self.items) >= self.limit:
            return False
        self.items.append(msg)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    async def wait(self) -> None:
        """Return when there is at least one message."""
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None


_WATCHERS: weakref.WeakKeyDictionary[ssl.SSLContext, weakref.WeakSet[TcpTransport]] = (
    weakref.WeakKeyDictionary()
)
"""The transports accepting with each server context, told of its failed handshakes."""


class _WatchedHandshakes(ssl.SSLObject):
    """An SSLObject that tells the transports accepting with its context why a handshake
    failed (the event loop's TLS layer says nothing: the connection just closes)."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            for transport in list(_WATCHERS.get(self.context, ())):
                transport._handshake_refused(exc)
            raise


def _watch_handshakes(context: ssl.SSLContext, transport: TcpTransport) -> None:
    context.sslobject_class = _WatchedHandshakes
    _WATCHERS.setdefault(context, weakref.WeakSet()).add(transport)


class _Peer:
    """A peer's sending side (queue, connection state) and counters."""

    def __init__(self, node_id: NodeId, host: str, port: int, queue_size: int) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.outbox = _Outbox(queue_size)
        self.connected = False
        self.ever_connected = False
        self.reachable = True  # for logging transitions only
        self.inbound: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.wake = asyncio.Event()
        """Set when the peer connects to us while we cannot reach it: it is back, so the
        dialer tries again at once instead of sleeping out its backoff."""
        self.task: asyncio.Task[None] | None = None
        """The dialer's task (once the transport runs)."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def flush(self) -> int:
        """Drop every queued message; how many there were."""
        n = len(self.outbox.items)
        self.outbox.items.clear()
        self.dropped += n
        return n


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProtocolError):
        return exc.reason
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TcpTransport:
    """One node's peer transport over TCP; implements
    :class:`raftlog.transport.base.Transport` (see the module docstring for the behaviour).

    ``sock`` is an optional socket already bound to the listen address (the config's
    host and port are then ignored), for socket activation and for tests that must know
    the port before the transport starts; the transport owns it and closes it in
    :meth:`close`. ``rng`` jitters the backoff.
    """

    def __init__(
        self,
        config: TcpConfig,
        on_message: MessageHandler,
        *,
        sock: socket.socket | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._on_message = on_message
        self._sock = sock
        self._rng = rng if rng is not None else random.Random()
        self._peers: dict[NodeId, _Peer] = {
            NodeId(node_id): _Peer(NodeId(node_id), host, port, config.queue_size)
            for node_id, (host, port) in sorted(config.peers.items())
        }
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(WireMessage)
        self._handshake_decoder = msgspec.msgpack.Decoder(Handshake)
        self._hello = encode_frame(
            self._encoder.encode(
                Hello(config.cluster_id, config.node_id, PROTOCOL_VERSION, config.advertise)
            )
        )
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._errors: Counter[str] = Counter()
        self._last_problem: dict[str, tuple[float, int]] = {}
        """By source and kind of problem: until when it is not warned of again, and how
        many times it was not."""
        self._started = False
        self._strangers: dict[NodeId, _Peer] = {}
        """Nodes heard from over inbound connections but not among the peers: receive
        only (nothing can be sent to a node without an address)."""
        self._closing = False
        self._closed = asyncio.Event()
        self._address: tuple[str, int] | None = None

    # == the Transport protocol =======================================================

    @property
    def node_id(self) -> NodeId:
        return self.config.node_id

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the transport listens on; only after :meth:`start`."""
        if self._address is None:
            raise TransportError("transport not started")
        return self._address

    async def start(self) -> None:
        """Listen, and start a sender task per peer.

        Raises ``OSError`` if the listen address cannot be bound, ``TransportError`` if
        started twice or after close.
        """
        if self._closing:
            raise TransportError("transport is closed")
        if self._started:
            raise TransportError("transport already started")
        self._started = True
        # With TLS the event loop runs the handshake first: _on_connect sees only
        # connections whose peer presented a certificate the cluster's CA signed.
        tls: dict[str, Any] = {}
        if self.config.tls is not None:
            context = self.config.tls.server
            _watch_handshakes(context, self)
            tls = {"ssl": context, "ssl_handshake_timeout": self.config.handshake_timeout}
        if self._sock is not None:
            server = await asyncio.start_server(
                self._on_connect, sock=self._sock, limit=_READ_BUFFER, **tls
            )
        else:
            server = await asyncio.start_server(
                self._on_connect, self.config.host, self.config.port, limit=_READ_BUFFER, **tls
            )
        self._server = server
        host, port = server.sockets[0].getsockname()[:2]
        self._address = (host, port)
        log.info("node %s: listening for peers on %s:%s", self.node_id, host, port)
        for peer in self._peers.values():
            self._start_peer(peer)

    def set_peers(self, peers: Mapping[NodeId, tuple[str, int]]) -> None:
        """The cluster's membership changed: talk to these peers from now on (addresses
        by node id; this node is left out). A new peer is dialled at once; a peer no
        longer listed is dropped (its connections closed, its queue discarded); a peer
        whose address changed is dropped and added again."""
        wanted = {NodeId(n): (h, p) for n, (h, p) in peers.items() if n != self.node_id}
        for node_id, peer in list(self._peers.items()):
            if wanted.get(node_id) != (peer.host, peer.port):
                del self._peers[node_id]
                for task in (peer.task, peer.inbound):
                    if task is not None:
                        task.cancel()
                peer.flush()
                log.info("node %s: node %s is no longer a peer", self.node_id, node_id)
        for node_id, (host, port) in sorted(wanted.items()):
            stranger = self._strangers.pop(node_id, None)
            if stranger is not None and stranger.task is not None:
                stranger.task.cancel()  # a peer now: its own dialer takes over
            if node_id not in self._peers:
                peer = _Peer(node_id, host, port, self.config.queue_size)
                self._peers[node_id] = peer
                log.info("node %s: node %s is a peer at %s", self.node_id, node_id, peer.address)
                if self._started and not self._closing:
                    self._start_peer(peer)

    def _start_peer(self, peer: _Peer) -> None:
        peer.task = self._spawn(
            self._peer_loop(peer), f"raftlog-send-{self.node_id}-{peer.node_id}"
        )

    def send(self, msg: WireMessage) -> bool:
        """Queue ``msg`` for its peer; see :meth:`raftlog.transport.base.Transport.send`."""
        if msg.src != self.config.node_id:
            raise ValueError(f"message from {msg.src} sent through node {self.config.node_id}")
        peer = self._peers.get(msg.dst) or self._strangers.get(msg.dst)
        if peer is None or self._closing:
            return False
        if peer.outbox.put(msg):
            return True
        peer.dropped += 1
        return False

    async def close(self) -> None:
        """Stop listening, cancel and await every task, close every connection, drop what
        is queued. Idempotent; a concurrent second call waits for the first."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            if self._server is not None:
                self._server.close()
            while self._tasks:
                tasks = list(self._tasks)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._tasks.difference_update(tasks)
            for writer in list(self._writers):
                self._discard(writer)
            if self._server is not None:
                await self._server.wait_closed()
            elif self._sock is not None:
                self._sock.close()  # ours since construction, even if never used
            for peer in self._peers.values():
                peer.flush()
                peer.connected = False
        finally:
            self._closed.set()
        log.info("node %s: transport closed", self.node_id)

    def peers(self) -> dict[NodeId, PeerInfo]:
        return {
            node_id: PeerInfo(
                node_id=node_id,
                address=peer.address,
                connected=peer.connected,
                inbound=peer.inbound is not None,
                last_error=peer.last_error,
                queued=len(peer.outbox.items),
                sent=peer.sent,
                received=peer.received,
                dropped=peer.dropped,
                reconnects=peer.reconnects,
                connect_failures=peer.connect_failures,
            )
            for node_id, peer in self._peers.items()
        }

    def errors(self) -> dict[str, int]:
        """Connections closed for breaking the protocol, by kind (``tls``,
        ``wrong_identity``, ``wrong_cluster``, ``wrong_version``, ``unknown_node``,
        ``wrong_node``, ``refused``,
        ``bad_handshake``, ``handshake_timeout``, ``frame_too_large``, ``truncated``,
        ``bad_frame``, ``bad_message``, ``unexpected_data``, ``internal``), both
        directions together."""
        return dict(self._errors)

    # == tasks and connections =========================================================

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Every task catches what the network can throw; this is a bug.
            log.error("node %s: task %s failed", self.node_id, task.get_name(), exc_info=exc)

    def _discard(self, writer: asyncio.StreamWriter) -> None:
        """Close a connection now: gracefully if nothing is left to write, else abort."""
        self._writers.discard(writer)
        transport = writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def _protocol_error(
        self, exc: ProtocolError, where: str, peer: _Peer | None, source: str
    ) -> None:
        """Count and log a connection closed for ``exc``. The same kind of problem again
        from the same ``source`` (a peer id or a remote host: a misconfigured peer retries
        every few seconds, garbage comes in floods) within PROBLEM_QUIET_S of the last
        warning about it is logged at DEBUG, so the log shows each problem once a minute."""
        self._errors[exc.kind] += 1
        if peer is not None:
            peer.last_error = exc.reason
        # One warning per source and kind of problem a minute at most: a flood of garbage
        # connections (reasons differ by a byte count) must not flood the log. The next
        # warning says how many went unsaid.
        key = f"{source}/{exc.kind}"
        now = time.monotonic()
        quiet_until, unsaid = self._last_problem.get(key, (0.0, 0))
        if now < quiet_until:
            self._last_problem[key] = (quiet_until, unsaid + 1)
            log.debug("node %s: closing %s: %s", self.node_id, where, exc.reason)
            return
        if len(self._last_problem) >= _MAX_REMEMBERED:
            self._last_problem.clear()
        self._last_problem[key] = (now + PROBLEM_QUIET_S, 0)
        more = f" ({unsaid} more like it since the last warning)" if unsaid else ""
        log.warning("node %s: closing %s: %s%s", self.node_id, where, exc.reason, more)

    def _handshake_refused(self, exc: ssl.SSLError) -> None:
        """An inbound TLS handshake failed (plaintext, no certificate, another CA...)."""
        if self._closing:
            return
        self._protocol_error(
            ProtocolError("tls", f"TLS handshake failed: {tls_reason(exc)}"),
            "an inbound connection",
            None,
            "tls",
        )

    def _hello_problem(
        self, hello: Hello, expected: NodeId | None, writer: asyncio.StreamWriter
    ) -> ProtocolError | None:
        """Why a peer's Hello is not acceptable. ``expected`` is the node a dialer meant to
        reach; None on the accepting side (any known peer may dial). With TLS, the node id
        the peer's certificate names must be the one its Hello claims."""
        config = self.config
        if config.tls is not None:
            ssl_object = writer.get_extra_info("ssl_object")
            named = certified_node(ssl_object.getpeercert() if ssl_object is not None else None)
            if named is None:
                return ProtocolError(
                    "wrong_identity",
                    f"the certificate of node {hello.node_id} names no raftlog node "
                    f"(CN or DNS name {PEER_NAME.format(hello.node_id)})",
                )
            if named != hello.node_id:
                return ProtocolError(
                    "wrong_identity",
                    f"node {hello.node_id} presented the certificate of node {named}",
                )
        if hello.cluster_id != config.cluster_id:
            return ProtocolError(
                "wrong_cluster",
                f"cluster id {hello.cluster_id!r} is not this cluster's ({config.cluster_id!r})",
            )
        if hello.version != PROTOCOL_VERSION:
            return ProtocolError(
                "wrong_version",
                f"protocol version {hello.version} is not this node's ({PROTOCOL_VERSION})",
            )
        if expected is not None:
            if hello.node_id != expected:
                return ProtocolError(
                    "wrong_node", f"the peer at this address is node {hello.node_id}"
                )
        elif hello.node_id == config.node_id:
            return ProtocolError("unknown_node", f"node id {hello.node_id} is this node's own")
        elif (
            hello.node_id not in self._peers
            and hello.node_id not in self._strangers
            and len(self._strangers) >= MAX_STRANGERS
        ):
            return ProtocolError(
                "unknown_node",
                f"node {hello.node_id} is not a known peer, and {MAX_STRANGERS} unknown "
                "nodes are connected already",
            )
        return None

    # == inbound ========================================================================

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback (not a coroutine), so that the connection's task is ours.
        if self._closing:
            writer.transport.abort()
            return
        self._writers.add(writer)
        remote = writer.get_extra_info("peername")
        self._spawn(self._serve_inbound(reader, writer), f"raftlog-recv-{self.node_id}-{remote}")

    async def _serve_inbound(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        remote = writer.get_extra_info("peername")
        where = f"inbound connection from {remote}"
        peer: _Peer | None = None
        me = asyncio.current_task()
        try:
            hello = await self._accept_handshake(reader, writer)
            node_id = NodeId(hello.node_id)
            known = self._peers.get(node_id)
            if known is None:  # not a peer (yet): hear it, answer it once it is one
                known = self._strangers.get(node_id)
                if known is None:
                    try:
                        host, port = split_address(hello.address)
                    except ValueError:  # not said (or nonsense): hear it, cannot answer
                        host, port = "", 0
                    known = _Peer(node_id, host, port, self.config.queue_size)
                    self._strangers[node_id] = known
                    if known.host and known.port and self._started and not self._closing:
                        self._start_peer(known)  # to answer it at the address it gave
                    log.info(
                        "node %s: node %s (not a known peer) connected from %s, listening at %s",
                        self.node_id,
                        node_id,
                        remote,
                        hello.address or "an address it did not say",
                    )
            peer = known
            where = f"inbound connection from node {peer.node_id} ({remote})"
            if peer.inbound is not None:
                log.info("node %s: node %s reconnected", self.node_id, peer.node_id)
                peer.inbound.cancel()
            peer.inbound = me
            if not peer.connected:
                peer.wake.set()
            log.debug("node %s: accepted %s", self.node_id, where)
            await self._receive(reader, peer)
            log.info("node %s: %s closed by the peer", self.node_id, where)
        except ProtocolError as exc:
            host = remote[0] if isinstance(remote, tuple) else str(remote)
            source = f"from node {peer.node_id}" if peer is not None else f"from {host}"
            self._protocol_error(exc, where, peer, source)
        except (OSError, EOFError) as exc:
            if peer is not None:
                peer.last_error = _describe(exc)
            log.info("node %s: %s lost: %s", self.node_id, where, _describe(exc))
        except Exception as exc:
            # Whatever a connection sends must not take the node down: a bug here costs
            # this connection only.
            self._errors["internal"] += 1
            log.exception("node %s: %s failed: %s", self.node_id, where, _describe(exc))
        finally:
            if peer is not None and peer.inbound is me:
                peer.inbound = None
                if self._strangers.get(peer.node_id) is peer:
                    del self._strangers[peer.node_id]
                    if peer.task is not None:
                        peer.task.cancel()
            self._discard(writer)

    async def _accept_handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Hello:
        timeout = self.config.handshake_timeout
        try:
            async with asyncio.timeout(timeout):
                payload = await read_frame(reader, MAX_HANDSHAKE_FRAME_SIZE)
        except TimeoutError:
            raise ProtocolError("handshake_timeout", f"no handshake within {timeout:g} s") from None
        if payload is None:
            raise ProtocolError("bad_handshake", "closed before the handshake")
        try:
            hello = self._handshake_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise ProtocolError("bad_handshake", f"undecodable handshake: {exc}") from None
        if not isinstance(hello, Hello):
            raise ProtocolError("bad_handshake", "expected a Hello")
        problem = self._hello_problem(hello, None, writer)
        if problem is not None:
            refusal = Refused(f"node {self.node_id} refused node {hello.node_id}: {problem}")
            writer.write(encode_frame(self._encoder.encode(refusal)))
            raise problem
        writer.write(self._hello)
        return hello

    async def _receive(self, reader: asyncio.StreamReader, peer: _Peer) -> None:
        """Deliver the peer's messages until the connection ends (clean EOF: return).

        Reads whatever has arrived and handles every complete frame in it (one read per
        many small frames, instead of two per frame); a frame header is checked against
        the size limit as soon as it is complete, before any of its body is read.
        """
        decode = self._decoder.decode
        max_size = self.config.max_frame_size
        unpack_from = HEADER.unpack_from
        me = self.config.node_id
        src = peer.node_id
        on_message = self._on_message
        buf = bytearray()
        handled = 0
        while True:
            chunk = await reader.read(_READ_BUFFER)
            if not chunk:
                if buf:
                    raise ProtocolError(
                        "truncated", f"connection closed inside a frame ({len(buf)} bytes)"
                    )
                return
            buf += chunk
            pos = 0
            end = len(buf)
            with memoryview(buf) as view:
                while end - pos >= 4:
                    (size,) = unpack_from(view, pos)
                    if size > max_size:
                        raise ProtocolError(
                            "frame_too_large",
                            f"frame of {size} bytes declared, the limit is {max_size}",
                        )
                    if end - pos - 4 < size:
                        break
                    try:
                        msg: WireMessage = decode(view[pos + 4 : pos + 4 + size])
                    except msgspec.DecodeError as exc:
                        raise ProtocolError("bad_frame", f"undecodable message: {exc}") from None
                    pos += 4 + size
                    if msg.src != src or msg.dst != me:
                        raise ProtocolError(
                            "bad_message",
                            f"message from {msg.src} to {msg.dst} on a connection from node "
                            f"{src} to node {me}: {msg.describe()}",
                        )
                    peer.received += 1
                    try:
                        on_message(msg)
                    except Exception:
                        log.exception("node %s: on_message failed for %s", me, msg.describe())
                    handled += 1
            del buf[:pos]
            if handled >= _YIELD_EVERY:
                handled = 0
                await asyncio.sleep(0)  # a fast peer must not starve the other tasks

    # == outbound =======================================================================

    async def _peer_loop(self, peer: _Peer) -> None:
        """Connect to the peer and send its queue, forever (until cancelled)."""
        config = self.config
        backoff = config.backoff_min
        while True:
            try:
                reader, writer = await self._dial(peer)
            except (ProtocolError, OSError, TimeoutError, EOFError) as exc:
                self._dial_failed(peer, exc)
                if await self._pause(backoff, peer):
                    backoff = config.backoff_min  # the peer called us: it is back
                else:
                    backoff = min(backoff * 2, config.backoff_max)
                continue
            backoff = config.backoff_min
            if peer.ever_connected:
                peer.reconnects += 1
            peer.ever_connected = True
            peer.connected = True
            peer.reachable = True
            log.info(
                "node %s: connected to node %s at %s", self.node_id, peer.node_id, peer.address
            )
            try:
                await self._pump(reader, writer, peer)
            except Exception as cause:
                if isinstance(cause, ProtocolError):
                    self._protocol_error(
                        cause, f"connection to node {peer.node_id}", peer, f"to node {peer.node_id}"
                    )
                else:
                    peer.last_error = _describe(cause)
                    if not isinstance(cause, OSError | EOFError):
                        self._errors["internal"] += 1
                        log.error(
                            "node %s: sending to node %s failed",
                            self.node_id,
                            peer.node_id,
                            exc_info=cause,
                        )
                    log.info(
                        "node %s: connection to node %s lost: %s",
                        self.node_id,
                        peer.node_id,
                        peer.last_error,
                    )
            finally:
                peer.connected = False
                self._discard(writer)
            await self._pause(config.backoff_min, peer)

    async def _pause(self, delay: float, peer: _Peer) -> bool:
        """Sleep ``delay`` jittered down by up to half, or until the peer connects to us
        (returns True then), unless the task is being cancelled (a cancellation must never
        be lost in the reconnect loop, or close() would hang)."""
        task = asyncio.current_task()
        if self._closing or (task is not None and task.cancelling()):
            raise asyncio.CancelledError
        if not peer.wake.is_set():
            try:
                async with asyncio.timeout(delay * self._rng.uniform(0.5, 1.0)):
                    await peer.wake.wait()
            except TimeoutError:
                return False
        peer.wake.clear()
        return True

    def _dial_failed(self, peer: _Peer, exc: BaseException) -> None:
        """Record a failed attempt and drop what is queued (see the module docstring)."""
        peer.connect_failures += 1
        if isinstance(exc, TimeoutError):
            reason = f"no connection within {self.config.connect_timeout:g} s"
        else:
            reason = _describe(exc)
        # Each new problem is logged once; the same one on every retry only at DEBUG.
        repeat = not peer.reachable and reason == peer.last_error
        peer.last_error = reason
        peer.reachable = False
        lost = peer.flush()
        if isinstance(exc, ProtocolError):
            self._errors[exc.kind] += 1
            level = logging.WARNING
        else:
            level = logging.INFO
        if repeat:
            level = logging.DEBUG
        log.log(
            level,
            "node %s: cannot reach node %s at %s: %s%s",
            self.node_id,
            peer.node_id,
            peer.address,
            reason,
            f" ({lost} queued messages dropped)" if lost else "",
        )

    async def _dial(self, peer: _Peer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the peer, handshake done. Raises OSError, TimeoutError (connect),
        ProtocolError (handshake)."""
        config = self.config
        tls = config.tls
        if tls is None:
            async with asyncio.timeout(config.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    peer.host, peer.port, limit=_READ_BUFFER
                )
        else:
            try:
                async with asyncio.timeout(config.connect_timeout + config.handshake_timeout):
                    reader, writer = await asyncio.open_connection(
                        peer.host,
                        peer.port,
                        limit=_READ_BUFFER,
                        ssl=tls.client,
                        server_hostname=peer.host,
                        ssl_handshake_timeout=config.handshake_timeout,
                    )
            except ssl.SSLError as exc:
                raise ProtocolError("tls", f"TLS handshake failed: {tls_reason(exc)}") from None
        self._writers.add(writer)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            writer.write(self._hello)
            try:
                async with asyncio.timeout(config.handshake_timeout):
                    await writer.drain()
                    payload = await read_frame(reader, MAX_HANDSHAKE_FRAME_SIZE)
            except TimeoutError:
                raise ProtocolError(
                    "handshake_timeout",
                    f"no handshake answer within {config.handshake_timeout:g} s",
                ) from None
            except ssl.SSLError as exc:  # TLS 1.3: the peer refused our certificate
                raise ProtocolError("tls", f"refused by the peer: {tls_reason(exc)}") from None
            if payload is None:
                raise EOFError("closed during the handshake")
            try:
                answer = self._handshake_decoder.decode(payload)
            except msgspec.DecodeError as exc:
                raise ProtocolError("bad_handshake", f"undecodable handshake: {exc}") from None
            if isinstance(answer, Refused):
                raise ProtocolError("refused", f"refused: {answer.reason}")
            problem = self._hello_problem(answer, peer.node_id, writer)
            if problem is not None:
                raise problem
        except BaseException:
            self._discard(writer)
            raise
        return reader, writer

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: _Peer
    ) -> None:
        """Send until the connection fails, then raise why it ended.

        Two tasks: one writes, one watches for the peer closing the connection. (Not a
        TaskGroup: in Python 3.11 a TaskGroup whose child failed swallows a cancellation
        of its parent that arrives meanwhile, and ``close()`` would wait forever.)
        """
        loop = asyncio.get_running_loop()
        tasks = (
            loop.create_task(self._write(writer, peer), name=f"raftlog-write-{peer.node_id}"),
            loop.create_task(self._watch(reader), name=f"raftlog-watch-{peer.node_id}"),
        )
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            errors = [t.exception() for t in tasks if not t.cancelled()]  # retrieve them all
        for error in errors:
            if error is not None:
                raise error
        raise EOFError("connection ended")  # unreachable: both tasks loop until they fail

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        """Notice at once when the peer closes our outbound connection (it never writes)."""
        data = await reader.read(1)
        if data:
            raise ProtocolError("unexpected_data", "the peer wrote on our outbound connection")
        raise EOFError("closed by the peer")

    async def _write(self, writer: asyncio.StreamWriter, peer: _Peer) -> None:
        outbox = peer.outbox
        items = outbox.items
        encode_into = self._encoder.encode_into
        pack_into = HEADER.pack_into
        max_frame = self.config.max_frame_size
        max_batch = self.config.max_batch_bytes
        timeout = self.config.write_timeout
        while True:
            if not items:
                await outbox.wait()
            buf = bytearray()
            count = 0
            while items and len(buf) < max_batch:
                msg = items.popleft()
                start = len(buf)
                buf += b"\0\0\0\0"
                encode_into(msg, buf, start + 4)
                size = len(buf) - start - 4
                if size > max_frame:
                    del buf[start:]
                    peer.dropped += 1
                    log.error(
                        "node %s: dropped a message of %s bytes for node %s "
                        "(the frame limit is %s): %s",
                        self.node_id,
                        size,
                        peer.node_id,
                        max_frame,
                        msg.describe(),
                    )
                else:
                    pack_into(buf, start, size)
                    count += 1
            if not count:
                continue
            writer.write(buf)
            peer.sent += count
            transport = writer.transport
            if not transport.get_write_buffer_size() and not transport.is_closing():
                continue  # all handed to the kernel: nothing to wait for (the usual case)
            try:
                async with asyncio.timeout(timeout):
                    await writer.drain()
            except TimeoutError:
                raise TimeoutError(
                    f"write timed out after {timeout:g} s (peer not reading)"
                ) from None
