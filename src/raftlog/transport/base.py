"""The transport contract: how a node's peer messages leave and arrive.

A transport belongs to one node (``node_id``) and one event loop. The node gives it a
callback at construction and then uses four calls:

* ``await start()``: begin serving (listen, dial the peers). Called once.
* ``send(msg) -> bool``: hand one message to the transport, addressed to ``msg.dst``.
* ``peers() -> dict[NodeId, PeerInfo]``: per-peer connection state, for a status page.
* ``await close()``: stop everything the transport started. Idempotent.

Delivery guarantees are the network's, not a database's: a message is delivered **at most
once**, and messages from one node to another arrive **in the order they were sent** (with
gaps where messages were lost). Nothing is retried by the transport: Raft retries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import msgspec

from raftlog.core.messages import WireMessage
from raftlog.core.types import NodeId

MessageHandler = Callable[[WireMessage], None]
"""The inbound callback, ``on_message(msg)``.

Called on the transport's event loop (never from another thread), once per received
message, in arrival order per peer, and only with messages that passed the transport's
checks: ``msg.src`` is the peer the message came from and ``msg.dst`` is this node. It
must not block (the node puts the message in its own bounded inbox and returns); an
exception it raises is logged and the transport carries on.
"""


class PeerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One peer as its transport sees it: a snapshot for a status page.

    Counters start at zero when the transport is created and only grow.
    """

    node_id: NodeId
    address: str
    """Where the peer is reached (``host:port``, or ``memory`` for the in-memory twin)."""
    connected: bool
    """Messages sent to the peer now have a way to get there (for TCP: the outbound
    connection is open and its handshake done)."""
    inbound: bool = False
    """The peer has an open, handshaken connection to us."""
    last_error: str | None = None
    """Why the last connection (attempt) to or from the peer failed, if one did."""
    queued: int = 0
    """Messages waiting to go out to the peer now."""
    sent: int = 0
    """Messages handed to the network for the peer (written to its connection)."""
    received: int = 0
    """Messages from the peer delivered to ``on_message``."""
    dropped: int = 0
    """Messages for the peer given up on before reaching the network: refused by a full
    queue, still queued when a connection attempt failed or the transport closed, too
    large for a frame, or (in-memory) lost to an injected fault or a missing receiver.
    Messages written to a connection that failed afterwards count as ``sent``."""
    reconnects: int = 0
    """Times the outbound connection was established again after the first time."""
    connect_failures: int = 0
    """Connection attempts (including handshakes) that failed."""


class Transport(Protocol):
    """What a Raft node needs to talk to its peers (see the module docstring).

    Implementations take ``on_message: MessageHandler`` in their constructor. All methods
    are called on the event loop thread.
    """

    @property
    def node_id(self) -> NodeId:
        """The node this transport sends for and receives for."""
        ...

    async def start(self) -> None:
        """Start serving: accept the peers' connections and begin reaching out to them.

        Raises if the transport cannot start at all (e.g. its listen address is taken) or
        was already started or closed. Network trouble with peers is never raised: it
        shows in :meth:`peers` and the log.
        """
        ...

    def set_peers(self, peers: Mapping[NodeId, tuple[str, int]]) -> None:
        """The membership changed: reach these peers (by node id) from now on, and no
        others. Called on the event loop thread."""
        ...

    def send(self, msg: WireMessage) -> bool:
        """Queue ``msg`` for ``msg.dst``; never blocks and never raises for network trouble.

        Returns True if the message was queued (it may still be lost later), False if it
        was dropped now: ``msg.dst`` is not a known peer (or is this node), the peer's
        bounded queue is full, or the transport is closed. May be called before
        :meth:`start` (the message waits in the queue). Raises ``ValueError`` if
        ``msg.src`` is not this node: that is a bug in the caller, not network trouble.
        """
        ...

    async def close(self) -> None:
        """Stop listening, close every connection, cancel and await every task.

        Idempotent, safe before :meth:`start`; after it, :meth:`send` returns False and
        ``on_message`` is not called again. Queued messages are dropped.
        """
        ...

    def peers(self) -> dict[NodeId, PeerInfo]:
        """The state of every known peer (never this node), keyed by node id."""
        ...


class TransportError(RuntimeError):
    """A transport was used wrongly (started twice, started after close)."""
