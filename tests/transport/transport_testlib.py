"""Helpers for the transport tests: running coroutines, waiting with deadlines, sample
messages of every kind, clusters of transports of either kind, and a raw peer that speaks
the TCP wire by hand (to misbehave on purpose)."""

from __future__ import annotations

import asyncio
import enum
import socket
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

from raftlog.core.messages import (
    MESSAGE_TYPES,
    Message,
    SnapshotAck,
    SnapshotChunk,
    WireMessage,
)
from raftlog.core.types import NodeId
from raftlog.local.certs import CertFiles, make_certs
from raftlog.testing.waiting import eventually_async
from raftlog.tls import PeerTls, peer_tls
from raftlog.transport import (
    MemoryNetwork,
    PeerInfo,
    TcpConfig,
    TcpTransport,
    Transport,
)
from raftlog.transport.wire import HEADER, PROTOCOL_VERSION, Handshake, Hello

T = TypeVar("T")

TEST_DEADLINE = 15.0
"""No test coroutine may run longer than this (a hang fails instead of blocking)."""


def run(coro: Coroutine[Any, Any, T], deadline: float = TEST_DEADLINE) -> T:
    """Run ``coro`` in a fresh event loop, failing if it takes longer than ``deadline``."""

    async def main() -> T:
        async with asyncio.timeout(deadline):
            return await coro

    return asyncio.run(main())


async def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = 5.0, step: float = 0.005
) -> None:
    """Return as soon as ``condition()`` holds; fail with ``what`` after ``timeout``: the
    shared :func:`eventually_async` with this suite's deadline and polling step."""
    await eventually_async(condition, timeout, what=what, interval=step)


async def wait_for(awaitable: Awaitable[T], what: str, timeout: float = 5.0) -> T:
    try:
        async with asyncio.timeout(timeout):
            return await awaitable
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None


# == sample messages ====================================================================


def _value(info: mi.Type, salt: int) -> Any:
    """A value of the given type that differs from any default and depends on ``salt``."""
    match info:
        case mi.IntType():
            return 1000 + salt
        case mi.BoolType():
            return True
        case mi.BytesType():
            return f"bytes-{salt}-\x00\xff".encode("latin-1")
        case mi.StrType():
            return f"str-{salt}-é"
        case mi.EnumType(cls=cls):
            members: list[enum.Enum] = list(cls)
            return members[1 + salt % (len(members) - 1)] if len(members) > 1 else members[0]
        case mi.VarTupleType(item_type=item) | mi.ListType(item_type=item):
            return tuple(_value(item, salt + i) for i in range(3))
        case mi.FrozenSetType(item_type=item) | mi.SetType(item_type=item):
            return frozenset(_value(item, salt + i) for i in range(3))
        case mi.StructType(cls=cls, fields=fields):
            return cls(**{f.name: _value(f.type, salt) for f in fields})
    raise NotImplementedError(f"no sample value for {info}: extend transport_testlib._value")


def sample(kind: type[WireMessage], src: int, dst: int, salt: int = 0) -> WireMessage:
    """A message of ``kind`` from src to dst with every field set to a non-default value."""
    info = mi.type_info(kind)
    assert isinstance(info, mi.StructType)
    values = {f.name: _value(f.type, salt) for f in info.fields}
    values.update(src=NodeId(src), dst=NodeId(dst), term=salt)
    return kind(**values)


WIRE_TYPES: tuple[type[WireMessage], ...] = (*MESSAGE_TYPES, SnapshotChunk, SnapshotAck)
"""Everything a peer connection carries: the Raft messages and snapshot data."""


def samples(src: int, dst: int, salt: int = 0) -> list[WireMessage]:
    """One message of every kind in WIRE_TYPES."""
    return [sample(kind, src, dst, salt) for kind in WIRE_TYPES]


# == clusters ===========================================================================


def bound_socket(port: int = 0) -> socket.socket:
    """A TCP socket bound to 127.0.0.1 (not listening: connections to it are refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def fast_config(node_id: int, peers: dict[int, int], **overrides: Any) -> TcpConfig:
    """A TcpConfig with test timings; ``peers`` maps node id to a port on localhost."""
    settings: dict[str, Any] = {
        "connect_timeout": 0.5,
        "handshake_timeout": 0.5,
        "write_timeout": 0.5,
        "backoff_min": 0.01,
        "backoff_max": 0.1,
    }
    settings.update(overrides)
    cluster_id = settings.pop("cluster_id", "test-cluster")
    host = settings.pop("peer_host", "localhost")  # a name: resolved at each connect
    return TcpConfig(
        cluster_id=cluster_id,
        node_id=NodeId(node_id),
        peers={NodeId(n): (host, p) for n, p in peers.items()},
        **settings,
    )


@dataclass
class Cluster:
    """Transports for some node ids, each delivering into its own inbox list."""

    kind: str
    transports: dict[int, Transport] = field(default_factory=dict)
    inbox: dict[int, list[Message]] = field(default_factory=dict)
    network: MemoryNetwork | None = None
    sockets: list[socket.socket] = field(default_factory=list)

    def received(self, dst: int, src: int) -> list[Message]:
        return [m for m in self.inbox[dst] if m.src == src]

    def peers(self, node: int) -> dict[NodeId, PeerInfo]:
        return self.transports[node].peers()

    async def start(self) -> None:
        for transport in self.transports.values():
            await transport.start()

    async def ready(self) -> None:
        """Wait until every transport can send to every peer."""

        def all_connected() -> bool:
            return all(
                info.connected for t in self.transports.values() for info in t.peers().values()
            )

        await wait_until(all_connected, "every transport connected to every peer")

    async def close(self) -> None:
        for transport in self.transports.values():
            await transport.close()
        for sock in self.sockets:
            sock.close()


_CERTS: dict[str, CertFiles] = {}


def cert_files(name: str = "cluster") -> CertFiles:
    """A throwaway CA ``name`` with certificates for nodes 1..9, made once per process."""
    if name not in _CERTS:
        _CERTS[name] = make_certs(Path(tempfile.mkdtemp(prefix=f"raftlog-{name}-")), 9)
    return _CERTS[name]


def tls_of(node: int, ca: str = "cluster") -> PeerTls:
    """Node ``node``'s peer TLS with the certificates of CA ``ca``."""
    files = cert_files(ca)
    return peer_tls(files.node_cert(node), files.node_key(node), files.ca)


def make_cluster(kind: str, ids: list[int], **tcp_overrides: Any) -> Cluster:
    """Transports of ``kind`` ("memory", "tcp", or "tls": tcp with mutual TLS) for
    ``ids``, not started yet."""
    cluster = Cluster(kind)
    for node in ids:
        cluster.inbox[node] = []
    if kind == "memory":
        network = cluster.network = MemoryNetwork()
        for node in ids:
            cluster.transports[node] = network.create(NodeId(node), cluster.inbox[node].append)
        return cluster
    assert kind in ("tcp", "tls")
    socks = {node: bound_socket() for node in ids}
    for sock in socks.values():
        sock.listen()  # dials before the peer's start() wait in the backlog, not fail
    cluster.sockets = list(socks.values())
    ports = {node: sock.getsockname()[1] for node, sock in socks.items()}
    for node in ids:
        if kind == "tls":
            tcp_overrides = {**tcp_overrides, "tls": tls_of(node)}
        config = fast_config(node, {n: p for n, p in ports.items() if n != node}, **tcp_overrides)
        cluster.transports[node] = TcpTransport(
            config, cluster.inbox[node].append, sock=socks[node]
        )
    return cluster


# == a hand-driven peer on the TCP wire ==================================================

ENCODER = msgspec.msgpack.Encoder()
HANDSHAKE_DECODER = msgspec.msgpack.Decoder(Handshake)


def frame(obj: Any) -> bytes:
    payload = obj if isinstance(obj, bytes | bytearray) else ENCODER.encode(obj)
    return HEADER.pack(len(payload)) + payload


def hello(node_id: int, cluster_id: str = "test-cluster", version: int = PROTOCOL_VERSION) -> Hello:
    return Hello(cluster_id=cluster_id, node_id=node_id, version=version)


class RawPeer:
    """One raw connection to a transport's listener."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def handshake(self, node_id: int, **kwargs: Any) -> Handshake:
        self.writer.write(frame(hello(node_id, **kwargs)))
        return await self.read_handshake()

    async def read_handshake(self) -> Handshake:
        header = await wait_for(self.reader.readexactly(4), "a handshake frame", 2.0)
        (size,) = HEADER.unpack(header)
        return HANDSHAKE_DECODER.decode(await self.reader.readexactly(size))

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def closed_by_other_side(self, timeout: float = 3.0) -> bool:
        """True once the other side closed the connection (EOF or reset), reading and
        discarding anything before that."""

        async def drain_to_eof() -> None:
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionError:
                pass

        await wait_for(drain_to_eof(), "the transport to close the connection", timeout)
        return True

    def close(self) -> None:
        self.writer.transport.abort()
