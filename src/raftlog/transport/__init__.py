"""Peer messages between Raft nodes: asyncio TCP, and an in-memory twin for tests.

Both implement :class:`Transport` (see :mod:`raftlog.transport.base` for the contract).
This package imports only :mod:`raftlog.core`, the standard library and msgspec.
"""

from raftlog.transport.base import MessageHandler, PeerInfo, Transport, TransportError
from raftlog.transport.memory import MemoryNetwork, MemoryTransport
from raftlog.transport.tcp import TcpConfig, TcpTransport
from raftlog.transport.wire import PROTOCOL_VERSION, Hello, ProtocolError, Refused

__all__ = [
    "PROTOCOL_VERSION",
    "Hello",
    "MemoryNetwork",
    "MemoryTransport",
    "MessageHandler",
    "PeerInfo",
    "ProtocolError",
    "Refused",
    "TcpConfig",
    "TcpTransport",
    "Transport",
    "TransportError",
]
