"""``raftlog.Node``: a Raft node embedded in a Python program, and the one place where a
node is assembled from its parts (storage, transport, the core's task, snapshots, the
optional client API). ``raftlog node`` builds its nodes here too.

::

    import raftlog

    class Counter:                       # a state machine (see raftlog.statemachine)
        def __init__(self): self.value = 0
        def apply(self, index, term, data): self.value += int(data); return self.value
        def snapshot(self): return raftlog.BytesSnapshot(str(self.value).encode())
        def restore(self, source): self.value = int(source.read())

    config = raftlog.NodeConfig(
        id=1,
        members={1: "127.0.0.1:7001", 2: "127.0.0.1:7002", 3: "127.0.0.1:7003"},
        data_dir="/var/lib/counter/1",
        state_machine=Counter(),
    )
    async with raftlog.Node(config) as node:
        total = await node.apply(b"5")           # on the leader: waits for the commit
        value = await node.read(lambda sm: sm.value)  # linearizable

Errors (all :class:`raftlog.RaftError`): :class:`raftlog.NotLeader` (``leader_hint``
names the leader), :class:`raftlog.OutcomeUnknown` / :class:`raftlog.RequestTimeout` (the
command may or may not be applied), :class:`raftlog.LeadershipLost` (it was not),
:class:`raftlog.NodeStopped`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import ssl
import threading
import warnings
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, TypeVar

from prometheus_client import CollectorRegistry

from raftlog.api.fastpath import ClientServer
from raftlog.api.http import ApiConfig, ClientApi
from raftlog.core.errors import StorageError, UsageError
from raftlog.core.messages import WireMessage
from raftlog.core.types import Member, NodeId, Role, split_address
from raftlog.server import metrics as node_metrics
from raftlog.server.eventlog import EventLog, EventLogHandler
from raftlog.server.node import (
    KEEP_ENTRIES,
    SNAPSHOT_BYTES,
    SNAPSHOT_ENTRIES,
    Committed,
    EventStream,
    NodeStartError,
    RaftNode,
    ServerConfig,
)
from raftlog.server.replicated_log import ReplicatedLog
from raftlog.server.timing import Timing
from raftlog.statemachine import StateMachine
from raftlog.storage.memory import MemoryStorage
from raftlog.storage.sqlite import SQLiteStorage
from raftlog.tls import PeerTls
from raftlog.transport.tcp import TcpConfig, TcpTransport

T = TypeVar("T")
READ_LEVELS = ("linearizable", "lease", "local")


@dataclass(frozen=True)
class PeerAddress:
    host: str
    peer_port: int
    client_port: int


def parse_peers(text: str, default_client_port: int) -> dict[NodeId, PeerAddress]:
    """``1=node_1:4321,2=node_2:4321`` (optionally ``ID=HOST:PEER_PORT:CLIENT_PORT``)."""
    peers: dict[NodeId, PeerAddress] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        ident, eq, address = item.partition("=")
        parts = address.rsplit(":", 2) if address.count(":") >= 2 else address.rsplit(":", 1)
        try:
            if not eq or len(parts) < 2:
                raise ValueError
            node = NodeId(int(ident))
            host = parts[0]
            peer_port = int(parts[1])
            client_port = int(parts[2]) if len(parts) == 3 else default_client_port
        except ValueError:
            raise ValueError(
                f"bad peer {item!r}: expected ID=HOST:PEER_PORT[:CLIENT_PORT], e.g. 1=node_1:4321"
            ) from None
        if node <= 0:
            raise ValueError(f"bad peer {item!r}: node ids are positive integers")
        if node in peers:
            raise ValueError(f"node {node} is listed twice in --peers")
        peers[node] = PeerAddress(host, peer_port, client_port)
    if not peers:
        raise ValueError("--peers lists no node")
    return peers


@dataclass
class NodeConfig:
    """Everything a node is built from. Only ``id`` and ``members`` are required."""

    id: int
    members: Mapping[int, str]
    """Every member's peer address, ``"host:port"``, this node's included."""
    data_dir: str | Path | None = None
    """Where the node keeps its log, snapshots and (for the replicated log) records. None:
    in memory, gone when the process ends (tests, demos)."""
    state_machine: StateMachine | None = None
    """The replicated state machine; None: the replicated log of strings (raftlog's own)."""
    election_timeout_s: tuple[float, float] = (0.15, 0.3)
    heartbeat_s: float = 0.05
    tick_s: float | None = None
    """The core's clock period (default: a tenth of the minimum election timeout, at most
    10 ms)."""
    cluster_id: str = "raftlog"
    listen_host: str | None = None
    """Address to listen on for peers (and clients); default: this member's host."""
    peer_port: int | None = None
    """Port to listen on for peers; default: the port in this member's address."""
    client_port: int | None = None
    """Serve the client API (HTTP/JSON, XML-RPC) on this port; None: no client API."""
    client_urls: Mapping[int, str] | None = None
    """Each member's client URL, for forwarding requests to the leader (default:
    ``http://HOST:client_port`` with the members' hosts; ``https://`` with
    ``client_tls``)."""
    peer_tls: PeerTls | None = None
    """Mutual TLS between the nodes (:func:`raftlog.tls.peer_tls`); None: plaintext."""
    client_tls: ssl.SSLContext | None = None
    """Serve the client API over TLS with this server context
    (:func:`raftlog.tls.server_context`, which can require client certificates)."""
    forward_tls: ssl.SSLContext | None = None
    """How this node reaches the others' ``https://`` client URLs when it forwards a
    request to the leader (:func:`raftlog.tls.client_context`: the CA, and this node's
    certificate for nodes that want one); None: the system's CAs."""
    token: str | None = None
    """Writes through the client API (appends, trims, membership changes, transfers)
    need ``Authorization: Bearer <token>``; reads stay open (``RAFTLOG_TOKEN`` or
    ``--token-file`` for ``raftlog node``)."""
    snapshot_entries: int = SNAPSHOT_ENTRIES
    snapshot_bytes: int = SNAPSHOT_BYTES
    keep_entries: int = KEEP_ENTRIES
    event_log: TextIO | None = None
    """Deprecated: print the event log to this stream, at ``log_level``, as
    ``log_format`` (``text`` or ``json``), coloured if ``color`` (None: on a terminal
    without ``NO_COLOR``); the node then takes over the ``raftlog`` logger, as before.
    Instead, leave it None: the node's events are records of the ``raftlog.events``
    logger, which your logging configuration routes (see raftlog.server.eventlog;
    ``raftlog.print_events()`` prints them as the ``raftlog`` command does). They are
    available from :meth:`Node.events` either way."""
    log_level: int = logging.INFO
    """With ``event_log`` only (deprecated)."""
    log_format: str = "text"
    """With ``event_log`` only (deprecated)."""
    color: bool | None = False
    """With ``event_log`` only (deprecated)."""
    commit_timeout_s: float | None = None
    """How long the client API waits for a commit (default: max(5 s, two election
    timeouts))."""
    first_campaign_at: float | None = None
    join: bool = False
    """This node joins a running cluster (``members`` are its members' addresses, as the
    cluster answered the join request): it starts with no configuration and learns one
    from the leader that added it. See ``raftlog node --join``."""
    joined_at: int = 0
    """The log index of the configuration that added this node (from the add's answer):
    an id removed and added back on a fresh disk replays its earlier removal, which must
    not stop it. 0 when unknown."""
    fault_injection: bool = False
    admin_token: str | None = None
    """Serve the admin endpoints (partitions, step mode) to requests with this bearer
    token (a supervisor's; ``RAFTLOG_ADMIN_TOKEN`` for ``raftlog node``)."""
    cors_origins: tuple[str, ...] = ()
    """Web pages from these origins may read the client API's answers, besides pages of
    the cluster's own nodes (``RAFTLOG_CORS_ORIGINS`` for ``raftlog node``; ``*``: any)."""
    hold_from: frozenset[int] = frozenset()
    bugs: frozenset[str] = field(default_factory=frozenset)
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.event_log is not None:
            warnings.warn(
                "NodeConfig.event_log is deprecated: a node's events are records of the "
                "'raftlog.events' logger; configure logging instead (e.g. "
                "raftlog.print_events(stream) prints them as the raftlog command does)",
                DeprecationWarning,
                stacklevel=3,
            )

    def timing(self) -> Timing:
        low, high = self.election_timeout_s
        tick = self.tick_s if self.tick_s is not None else min(0.01, low / 10)
        return Timing(low, high, self.heartbeat_s, tick)

    def check(self) -> None:
        """Raise ValueError naming what is wrong."""
        if self.id not in self.members:
            raise ValueError(f"node {self.id} is not among the members {sorted(self.members)}")
        if any(type(m) is not int or m <= 0 for m in self.members):
            raise ValueError(f"member ids are positive integers: {sorted(self.members)}")
        for address in self.members.values():
            split_address(address)
        self.timing()
        for name in ("snapshot_entries", "snapshot_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.keep_entries < 0:
            raise ValueError("keep_entries must be at least 0")


class Node:
    """An asyncio Raft node (see the module docstring). ``await start()``, use it,
    ``await stop()``; or ``async with Node(config) as node``."""

    def __init__(self, config: NodeConfig) -> None:
        config.check()
        self.config = config
        self.id = NodeId(config.id)
        self._raft: RaftNode | None = None
        self._storage: SQLiteStorage | MemoryStorage | None = None
        self._runner: ClientServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._bridge: EventLogHandler | None = None
        self._taken_over = (logging.NOTSET, True)
        """The raftlog logger's level and propagation before the deprecated event_log."""
        self._owned_sm: ReplicatedLog | None = None
        self.state_machine: StateMachine | None = config.state_machine

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the storage, restore the state machine, start talking to the peers (and
        serving clients); return once the node runs. Raises StorageError (the data
        directory is refused or unusable), NodeStartError (a port cannot be bound)."""
        if self._task is not None:
            raise UsageError("the node is already started")
        cfg = self.config
        me = self.id
        timing = cfg.timing()
        if cfg.event_log is not None:  # deprecated: the node writes the lines itself
            events = EventLog(
                me, stream=cfg.event_log, level=cfg.log_level, fmt=cfg.log_format, color=cfg.color
            )
        else:  # records of raftlog.events: the program's logging routes them
            events = EventLog(me)
        self.events_log = events
        data_dir = Path(cfg.data_dir) if cfg.data_dir is not None else None
        storage: SQLiteStorage | MemoryStorage
        if data_dir is not None:
            storage = await asyncio.to_thread(
                SQLiteStorage.open, data_dir, cluster_id=cfg.cluster_id, node_id=int(me)
            )
        else:
            storage = MemoryStorage()
        self._storage = storage
        sm = cfg.state_machine
        if sm is None:
            try:
                sm = self._owned_sm = ReplicatedLog(data_dir)
            except Exception as exc:
                await self._close_storage()
                raise StorageError(f"cannot open the replicated log's records: {exc}") from exc
            self.state_machine = sm
        members = {NodeId(i): split_address(a) for i, a in cfg.members.items()}
        host, peer_port = members[me]
        peer_port = cfg.peer_port or peer_port
        listen = cfg.listen_host or host
        urls = self._client_urls(members)
        server_config = ServerConfig(
            node_id=me,
            voters=frozenset(members),
            members={n: Member(n, f"{h}:{p}", urls.get(n, "")) for n, (h, p) in members.items()},
            joining=cfg.join,
            joined_at=cfg.joined_at,
            timing=timing,
            cluster_id=cfg.cluster_id,
            first_campaign_at=cfg.first_campaign_at,
            snapshot_entries=cfg.snapshot_entries,
            snapshot_bytes=cfg.snapshot_bytes,
            keep_entries=cfg.keep_entries,
            bugs=cfg.bugs,
            seed=cfg.seed,
        )

        def transport(on_message: Callable[[WireMessage], None]) -> TcpTransport:
            return TcpTransport(
                TcpConfig(
                    cluster_id=cfg.cluster_id,
                    node_id=me,
                    host=listen,
                    port=peer_port,
                    advertise="{}:{}".format(*members[me]),  # as the others know it
                    peers={n: a for n, a in members.items() if n != me},
                    # Retry a lost peer at least twice per minimum election timeout.
                    backoff_max=min(2.0, max(0.02, timing.election_min_s / 3)),
                    backoff_min=min(0.05, max(0.005, timing.election_min_s / 30)),
                    tls=cfg.peer_tls,
                ),
                on_message=on_message,
            )

        raft = RaftNode(
            server_config,
            storage,
            transport,
            sm,
            events,
            snapshot_dir=data_dir / "snapshots" if data_dir is not None else None,
        )
        if isinstance(storage, SQLiteStorage):
            storage.on_commit = raft.metrics.fsync_observed
        if cfg.hold_from:
            raft.hold_peers({NodeId(i) for i in cfg.hold_from})
        self._raft = raft
        if cfg.event_log is not None:  # deprecated: takes over the raftlog logger
            library_log = logging.getLogger("raftlog")
            self._bridge = EventLogHandler(events, lambda: (raft.role, raft.term))
            self._taken_over = (library_log.level, library_log.propagate)
            library_log.addHandler(self._bridge)
            library_log.setLevel(cfg.log_level)
            library_log.propagate = False
        if cfg.client_port is not None:
            try:
                await self._serve_clients(raft, listen, members, timing)
            except OSError as exc:
                events.note(
                    logging.ERROR,
                    Role.FOLLOWER,
                    raft.term,
                    f"Cannot listen for clients on port {cfg.client_port}: {exc}",
                )
                await self._cleanup()
                raise NodeStartError(f"cannot listen for clients: {exc}") from exc
        events.note(
            logging.INFO,
            Role.FOLLOWER,
            raft.term,
            (
                f"Serving clients on {listen}:{cfg.client_port} (HTTP/JSON and XML-RPC"
                + (", TLS" if cfg.client_tls is not None else "")
                + (", writes need the token" if cfg.token else "")
                + "), "
                if cfg.client_port is not None
                else ""
            )
            + f"peers on {listen}:{peer_port}"
            + (" (mutual TLS)" if cfg.peer_tls is not None else "")
            + f"; {timing.describe()}",
        )
        self._task = asyncio.get_running_loop().create_task(raft.run())
        # Give the node a moment to fail fast (a taken peer port, a refused snapshot).
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if self._task.done():
            await self._finish()

    async def _serve_clients(
        self,
        raft: RaftNode,
        listen: str,
        members: Mapping[NodeId, tuple[str, int]],
        timing: Timing,
    ) -> None:
        cfg = self.config
        assert cfg.client_port is not None
        urls = self._client_urls(members)
        api = ClientApi(
            raft,
            ApiConfig(
                client_urls=urls,
                commit_timeout_s=cfg.commit_timeout_s or max(5.0, 2 * timing.election_max_s),
                fault_injection=cfg.fault_injection,
                admin_token=cfg.admin_token,
                token=cfg.token,
                forward_ssl=cfg.forward_tls,
                cors_origins=cfg.cors_origins,
            ),
        )
        server = ClientServer(api, api.app(), api.config.max_body)
        self._runner = server
        await server.start(listen, cfg.client_port, ssl=cfg.client_tls)

    def _client_urls(self, members: Mapping[NodeId, tuple[str, int]]) -> dict[NodeId, str]:
        cfg = self.config
        if cfg.client_urls:
            return {NodeId(i): u for i, u in cfg.client_urls.items()}
        if cfg.client_port is None:
            return {}
        scheme = "https" if cfg.client_tls is not None else "http"
        return {n: f"{scheme}://{h}:{cfg.client_port}" for n, (h, _p) in members.items()}

    async def stop(self, *, transfer: bool = True) -> None:
        """Stop (a leader first hands leadership over, unless ``transfer`` is False)."""
        if self._raft is not None and self._task is not None and not self._task.done():
            await self._raft.shutdown(transfer=transfer)
        await self._finish()

    async def wait(self) -> None:
        """Wait until the node stops (by :meth:`stop`, or because it failed: then the
        error is raised)."""
        await self._finish()

    async def _finish(self) -> None:
        try:
            if self._task is not None:
                await self._task
        finally:
            await self._cleanup()

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.close()
            self._runner = None
        if self._bridge is not None:  # the raftlog logger as it was before
            library_log = logging.getLogger("raftlog")
            library_log.removeHandler(self._bridge)
            library_log.setLevel(self._taken_over[0])
            library_log.propagate = self._taken_over[1]
            self._bridge = None
        if self._owned_sm is not None:
            await asyncio.to_thread(self._owned_sm.close)
            self._owned_sm = None
        await self._close_storage()

    async def _close_storage(self) -> None:
        if isinstance(self._storage, SQLiteStorage):
            await self._storage.aclose()
        self._storage = None

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- using it --------------------------------------------------------------------

    @property
    def raft(self) -> RaftNode:
        if self._raft is None:
            raise UsageError("the node is not started")
        return self._raft

    @property
    def is_leader(self) -> bool:
        return self._raft is not None and self._raft.is_leader

    @property
    def leader(self) -> int | None:
        """The leader this node knows of (None: none)."""
        return int(self.raft.leader) or None

    @property
    def term(self) -> int:
        return self.raft.term

    @property
    def applied(self) -> int:
        return self.raft.applied

    async def apply(
        self,
        data: bytes,
        *,
        timeout: float | None = None,
        client: str | None = None,
        seq: int | None = None,
    ) -> Any:
        """Replicate a command and return the state machine's result once it is
        committed and applied here. Only the leader takes commands (NotLeader otherwise,
        naming the leader). With ``client``/``seq``, a retry is applied once."""
        return (await self.apply_detailed(data, timeout=timeout, client=client, seq=seq)).result

    async def apply_detailed(
        self,
        data: bytes,
        *,
        timeout: float | None = None,
        client: str | None = None,
        seq: int | None = None,
    ) -> Committed:
        """:meth:`apply`, returning the index and term too."""
        return await self.raft.propose(bytes(data), timeout, client=client, seq=seq)

    async def barrier(self, consistency: str = "linearizable", timeout: float | None = None) -> int:
        """Wait until this node's state machine may be read at ``consistency``; returns
        the applied index the read sees. ``linearizable`` (leader only: confirms its
        leadership first), ``lease`` (leader only, no round trip while its lease holds),
        ``local`` (any node, at once, possibly stale)."""
        if consistency not in READ_LEVELS:
            raise ValueError(f"consistency must be one of {READ_LEVELS}, not {consistency!r}")
        if consistency == "local":
            return self.raft.applied
        return await self.raft.read_barrier(timeout, lease=consistency == "lease")

    async def read(
        self,
        query: Callable[[Any], T],
        *,
        consistency: str = "linearizable",
        timeout: float | None = None,
    ) -> T:
        """Run ``query(state_machine)`` on the event loop once a read at ``consistency``
        may be served (see :meth:`barrier`)."""
        await self.barrier(consistency, timeout)
        return query(self.state_machine)

    async def status(self) -> dict[str, Any]:
        s = await self.raft.status()
        return {
            "id": int(s.id),
            "state": s.role.value,
            "term": s.term,
            "leader": int(s.leader) or None,
            "commit": s.commit,
            "applied": self.raft.applied,
            "first_index": s.first_index,
            "last_index": s.last_index,
            "snapshot_index": s.snapshot_index,
            "voters": [int(v) for v in s.voters],
        }

    async def transfer_leadership(self, to: int, timeout: float | None = None) -> None:
        await self.raft.transfer_leadership(NodeId(to), timeout)

    async def add_learner(
        self, node: int, peer: str, client: str = "", *, timeout: float | None = None
    ) -> Committed:
        """Add a node (at peer address ``host:port``) as a learner; leader only."""
        return await self.raft.add_learner(Member(NodeId(node), peer, client), timeout)

    async def promote(self, node: int, *, timeout: float | None = None) -> Committed:
        """Make a caught-up learner a voter; leader only."""
        return await self.raft.promote(NodeId(node), timeout)

    async def remove_member(self, node: int, *, timeout: float | None = None) -> Committed:
        """Remove a voter or a learner (this node too, if it leads); leader only."""
        return await self.raft.remove_member(NodeId(node), timeout)

    def members(self) -> list[dict[str, Any]]:
        """The configuration in force, as this node knows it."""
        return [
            {"id": int(m.id), "role": role, "peer": m.peer, "client": m.client}
            for m, role in self.raft.member_list()
        ]

    def events(self, maxsize: int = 1000) -> EventStream:
        """The node's events from this call on (elections, votes, commits, snapshots...),
        as typed values with ``describe()``: ``async for event in node.events()``. A slow
        reader loses the oldest; the stream ends when the node stops (or ``close()``)."""
        return self.raft.subscribe(maxsize)

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """This node's own Prometheus registry (its metrics, and the process's): collect
        it on the node's event loop, e.g. ``prometheus_client.generate_latest(...)`` in
        a handler of yours. With ``client_port`` set the node serves it at ``GET
        /metrics``."""
        return node_metrics.registry(self.raft)

    def metrics(self) -> bytes:
        """The node's metrics in the Prometheus text format (call on the node's loop)."""
        return node_metrics.exposition(self.raft)


class BlockingNode:
    """:class:`Node` for programs without asyncio: the node runs on an event loop in a
    background thread; every method blocks until it is done."""

    def __init__(self, config: NodeConfig) -> None:
        self._node = Node(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"raftlog-node-{config.id}", daemon=True
        )
        self._thread.start()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    @property
    def node(self) -> Node:
        return self._node

    def start(self) -> None:
        self._call(self._node.start())

    def stop(self, *, transfer: bool = True) -> None:
        try:
            self._call(self._node.stop(transfer=transfer))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def apply(self, data: bytes, *, timeout: float | None = None) -> Any:
        return self._call(self._node.apply(data, timeout=timeout))

    def read(
        self,
        query: Callable[[Any], T],
        *,
        consistency: str = "linearizable",
        timeout: float | None = None,
    ) -> T:
        async def run() -> T:
            return await self._node.read(query, consistency=consistency, timeout=timeout)

        return self._call(run())

    def status(self) -> dict[str, Any]:
        return self._call(self._node.status())

    def metrics(self) -> bytes:
        """The node's metrics in the Prometheus text format (collected on its loop)."""

        async def collect() -> bytes:
            return self._node.metrics()

        return self._call(collect())

    @property
    def is_leader(self) -> bool:
        return self._node.is_leader

    @property
    def leader(self) -> int | None:
        return self._node.leader

    def __enter__(self) -> BlockingNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["BlockingNode", "Node", "NodeConfig", "PeerAddress", "parse_peers"]
