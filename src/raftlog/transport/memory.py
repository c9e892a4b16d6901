"""The in-memory twin of the TCP transport, for tests of the node.

A :class:`MemoryNetwork` is a hub on one event loop. It makes a :class:`MemoryTransport`
per node id, and carries messages between them with ``loop.call_soon``: asynchronously
(never inside ``send``), in order per link (a link is one direction between two nodes),
and with the faults a test injects:

* ``cut(a, b)``: a and b cannot reach each other; ``cut_one_way(a, b)``: a's messages to b
  are lost, b's to a still arrive;
* ``isolate(a)``: a can reach nobody and nobody can reach a (also nodes added later);
* ``down(a)`` / ``up(a)``: a is stopped (like SIGSTOP): everything it sends and everything
  sent to it is lost, while its transport stays open;
* ``heal()``: undo every fault above.

A fault applies to messages in flight too: a message is checked when it is sent and again
when it arrives, so a cut made after ``send`` still loses it. In ``peers()``, lost
messages count as ``dropped`` and delivered ones as ``sent``, on the sender's side.

A transport that is not started, or closed, receives nothing (messages arriving for it
are lost); a transport created again for a node id whose previous transport was closed
receives the messages still in flight (like a restarted process whose peer
reconnects).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

import msgspec

from raftlog.core.messages import WireMessage
from raftlog.core.types import NodeId
from raftlog.transport.base import MessageHandler, PeerInfo, TransportError

log = logging.getLogger("raftlog.transport")

DEFAULT_QUEUE_SIZE = 1024


class _Link:
    """One direction between two nodes: messages in flight and what became of them."""

    __slots__ = ("dropped", "in_flight", "sent")

    def __init__(self) -> None:
        self.in_flight = 0
        self.sent = 0
        self.dropped = 0


class MemoryNetwork:
    """A hub of in-memory transports with fault injection (see the module docstring).

    Use it from one event loop. ``queue_size`` is the default bound on messages in flight
    per link: like the TCP transport's per-peer queue, a full link drops new messages.
    With ``encode`` (the default) every message crosses as msgpack bytes and is decoded
    into a new struct, as over TCP: a message the wire cannot carry fails here too, and
    sender and receiver never share an object.
    """

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE, encode: bool = True) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self.encode = encode
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(WireMessage)
        self._open: dict[NodeId, MemoryTransport] = {}
        self._known: set[NodeId] = set()
        self._cut: set[tuple[NodeId, NodeId]] = set()
        self._isolated: set[NodeId] = set()
        self._down: set[NodeId] = set()

    # -- transports -------------------------------------------------------------------

    def create(
        self,
        node_id: NodeId,
        on_message: MessageHandler,
        *,
        peers: Iterable[NodeId] | None = None,
        queue_size: int | None = None,
    ) -> MemoryTransport:
        """A new transport for ``node_id``.

        ``peers`` are the node ids it may send to; None means every other node id this
        network has made a transport for, now or later. Raises ``TransportError`` if a
        transport for ``node_id`` is still open (close it first to model a restart).
        """
        if node_id in self._open:
            raise TransportError(f"node {node_id} already has an open transport")
        transport = MemoryTransport(
            self,
            node_id,
            on_message,
            peers=None if peers is None else frozenset(peers),
            queue_size=self.queue_size if queue_size is None else queue_size,
        )
        self._open[node_id] = transport
        self._known.add(node_id)
        return transport

    def factory(
        self,
        node_id: NodeId,
        *,
        peers: Iterable[NodeId] | None = None,
        queue_size: int | None = None,
    ) -> Callable[[MessageHandler], MemoryTransport]:
        """``create`` with everything but ``on_message`` bound: the shape of a node's
        ``transport_factory``."""

        def make(on_message: MessageHandler) -> MemoryTransport:
            return self.create(node_id, on_message, peers=peers, queue_size=queue_size)

        return make

    @property
    def node_ids(self) -> frozenset[NodeId]:
        """Every node id this network has made a transport for."""
        return frozenset(self._known)

    # -- faults -----------------------------------------------------------------------

    def cut(self, a: NodeId, b: NodeId) -> None:
        """Lose every message between a and b, both ways, until ``heal()``."""
        self._cut.add((a, b))
        self._cut.add((b, a))

    def cut_one_way(self, a: NodeId, b: NodeId) -> None:
        """Lose every message from a to b (b to a still arrives) until ``heal()``."""
        self._cut.add((a, b))

    def isolate(self, a: NodeId) -> None:
        """Lose every message to or from a until ``heal()``."""
        self._isolated.add(a)

    def down(self, a: NodeId) -> None:
        """Node a is stopped: lose every message it sends or is sent until ``up(a)`` or
        ``heal()``."""
        self._down.add(a)

    def up(self, a: NodeId) -> None:
        """Node a runs again (undoes ``down(a)``)."""
        self._down.discard(a)

    def heal(self) -> None:
        """Undo every cut, isolation and ``down``."""
        self._cut.clear()
        self._isolated.clear()
        self._down.clear()

    def link_ok(self, src: NodeId, dst: NodeId) -> bool:
        """Whether a message from src to dst would arrive now (faults only: the
        receiving transport may still be missing or closed)."""
        return (
            (src, dst) not in self._cut
            and src not in self._isolated
            and dst not in self._isolated
            and src not in self._down
            and dst not in self._down
        )

    # -- internals --------------------------------------------------------------------

    def _receiver(self, node_id: NodeId) -> MemoryTransport | None:
        transport = self._open.get(node_id)
        if transport is None or not transport.started:
            return None
        return transport

    def _closed(self, transport: MemoryTransport) -> None:
        if self._open.get(transport.node_id) is transport:
            del self._open[transport.node_id]


class MemoryTransport:
    """One node's end of a :class:`MemoryNetwork`; implements
    :class:`raftlog.transport.base.Transport`. Make it with ``MemoryNetwork.create``."""

    def __init__(
        self,
        network: MemoryNetwork,
        node_id: NodeId,
        on_message: MessageHandler,
        *,
        peers: frozenset[NodeId] | None,
        queue_size: int,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._network = network
        self._node_id = node_id
        self._on_message = on_message
        self._peers = peers
        self._queue_size = queue_size
        self._links: dict[NodeId, _Link] = {}
        self._received: dict[NodeId, int] = {}
        self.started = False
        self.closed = False

    @property
    def node_id(self) -> NodeId:
        return self._node_id

    def _is_peer(self, node_id: NodeId) -> bool:
        if node_id == self._node_id:
            return False
        if self._peers is None:
            return node_id in self._network._known
        return node_id in self._peers

    def _peer_ids(self) -> list[NodeId]:
        ids = self._network._known if self._peers is None else self._peers
        return sorted(i for i in ids if i != self._node_id)

    async def start(self) -> None:
        """Start receiving. Raises ``TransportError`` if started twice or after close."""
        if self.closed:
            raise TransportError("transport is closed")
        if self.started:
            raise TransportError("transport already started")
        self.started = True

    def set_peers(self, peers: Mapping[NodeId, tuple[str, int]]) -> None:
        """Nothing to do: the in-memory network reaches every node by its id."""

    def send(self, msg: WireMessage) -> bool:
        """Queue ``msg`` for delivery on a later turn of the event loop (see
        :meth:`raftlog.transport.base.Transport.send`). Must run on the loop."""
        if msg.src != self._node_id:
            raise ValueError(f"message from {msg.src} sent through node {self._node_id}")
        loop = asyncio.get_running_loop()
        dst = msg.dst
        if self.closed or not self._is_peer(dst):
            return False
        link = self._links.get(dst)
        if link is None:
            link = self._links[dst] = _Link()
        if link.in_flight >= self._queue_size:
            link.dropped += 1
            return False
        if not self._network.link_ok(self._node_id, dst):
            link.dropped += 1
            return True  # accepted, and lost on the way, as on a real network
        link.in_flight += 1
        network = self._network
        if network.encode:
            loop.call_soon(self._arrive_encoded, link, network._encoder.encode(msg))
        else:
            loop.call_soon(self._arrive, link, msg)
        return True

    def _arrive_encoded(self, link: _Link, wire: bytes) -> None:
        self._arrive(link, self._network._decoder.decode(wire))

    def _arrive(self, link: _Link, msg: WireMessage) -> None:
        link.in_flight -= 1
        network = self._network
        receiver = network._receiver(msg.dst)
        if receiver is None or not network.link_ok(msg.src, msg.dst):
            link.dropped += 1
            return
        link.sent += 1
        receiver._deliver(msg)

    def _deliver(self, msg: WireMessage) -> None:
        self._received[msg.src] = self._received.get(msg.src, 0) + 1
        try:
            self._on_message(msg)
        except Exception:
            log.exception("node %s: on_message failed for %s", self._node_id, msg.describe())

    async def close(self) -> None:
        """Stop receiving and sending; idempotent. Messages already in flight from this
        node may still arrive (they left before the close)."""
        if self.closed:
            return
        self.closed = True
        self._network._closed(self)

    def peers(self) -> dict[NodeId, PeerInfo]:
        network = self._network
        me = self._node_id
        infos: dict[NodeId, PeerInfo] = {}
        for peer in self._peer_ids():
            link = self._links.get(peer) or _Link()
            there = network._receiver(peer) is not None
            infos[peer] = PeerInfo(
                node_id=peer,
                address="memory",
                connected=there and not self.closed and network.link_ok(me, peer),
                inbound=there and self.started and not self.closed and network.link_ok(peer, me),
                queued=link.in_flight,
                sent=link.sent,
                received=self._received.get(peer, 0),
                dropped=link.dropped,
            )
        return infos
