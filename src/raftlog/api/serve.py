"""Running one node as a process: storage, peers, the core task and the client API.

Exit codes: 0 stopped cleanly; 1 crashed on an unexpected error; 3 the data directory was
refused or storage failed; 4 a port could not be bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from raftlog.api.http import ApiConfig, ClientApi
from raftlog.core.errors import StorageError
from raftlog.core.messages import Message
from raftlog.core.types import NodeId, Role
from raftlog.server.eventlog import EventLog, EventLogHandler
from raftlog.server.node import NodeConfig, NodeStartError, RaftNode
from raftlog.server.statemachine import ReplicatedLog
from raftlog.server.timing import Timing
from raftlog.storage.sqlite import SQLiteStorage
from raftlog.transport.tcp import TcpConfig, TcpTransport

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_STORAGE, EXIT_BIND = 0, 1, 2, 3, 4


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
class ServeOptions:
    node_id: NodeId
    peers: dict[NodeId, PeerAddress]
    data_dir: Path
    timing: Timing
    cluster_id: str = "raftlog"
    listen_host: str = "0.0.0.0"
    client_port: int = 1234
    peer_port: int | None = None
    log_level: int = logging.INFO
    log_format: str = "text"
    color: bool | None = None
    first_campaign_at: float | None = None
    fault_injection: bool = False
    """Test-only: accept POST /v1/admin/partition (raftlog chaos on loopback)."""
    hold_from: frozenset[NodeId] = frozenset()
    """Test-only (with fault_injection): hold messages from these peers from the start,
    until POST /v1/admin/partition releases them (to stage a split vote)."""
    stop_with_parent: int | None = None
    """Stop once this process is no longer our parent (nodes started by `raftlog cluster`
    pass its pid: if it dies, even before we got this far, we stop)."""
    bugs: frozenset[str] = field(default_factory=frozenset)


async def serve(
    options: ServeOptions, *, on_started: Callable[[RaftNode], None] | None = None
) -> int:
    me = options.node_id
    events = EventLog(me, level=options.log_level, fmt=options.log_format, color=options.color)
    if me not in options.peers:
        events.note(logging.ERROR, Role.FOLLOWER, 0, f"node {me} is not in --peers")
        return EXIT_USAGE
    try:
        storage = SQLiteStorage.open(
            options.data_dir, cluster_id=options.cluster_id, node_id=int(me)
        )
    except StorageError as exc:
        events.note(logging.ERROR, Role.FOLLOWER, 0, f"Refusing to start: {exc}")
        return EXIT_STORAGE
    peer_port = options.peer_port or options.peers[me].peer_port
    timing = options.timing
    config = NodeConfig(
        node_id=me,
        voters=frozenset(options.peers),
        timing=timing,
        cluster_id=options.cluster_id,
        first_campaign_at=options.first_campaign_at,
        bugs=options.bugs,
    )

    def transport(on_message: Callable[[Message], None]) -> TcpTransport:
        return TcpTransport(
            TcpConfig(
                cluster_id=options.cluster_id,
                node_id=me,
                host=options.listen_host,
                port=peer_port,
                peers={n: (a.host, a.peer_port) for n, a in options.peers.items() if n != me},
                # Retry a lost peer at least twice per minimum election timeout.
                backoff_max=min(2.0, max(0.02, timing.election_min_s / 3)),
                backoff_min=min(0.05, max(0.005, timing.election_min_s / 30)),
            ),
            on_message=on_message,
        )

    state_machine = ReplicatedLog()
    node = RaftNode(config, storage, transport, state_machine, events)
    if options.hold_from:
        node.hold_peers(set(options.hold_from))
    library_log = logging.getLogger("raftlog")
    bridge = EventLogHandler(events, lambda: (node.role, node.term))
    library_log.addHandler(bridge)
    library_log.setLevel(options.log_level)
    library_log.propagate = False
    client_urls = {n: f"http://{a.host}:{a.client_port}" for n, a in options.peers.items()}
    api = ClientApi(
        node,
        state_machine,
        ApiConfig(
            client_urls=client_urls,
            commit_timeout_s=max(5.0, 2 * timing.election_max_s),
            fault_injection=options.fault_injection,
        ),
    )
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.listen_host, options.client_port)
        await site.start()
    except OSError as exc:
        events.note(
            logging.ERROR,
            Role.FOLLOWER,
            node.term,
            f"Cannot listen for clients on port {options.client_port}: {exc}",
        )
        await runner.cleanup()
        await storage.aclose()
        return EXIT_BIND
    events.note(
        logging.INFO,
        Role.FOLLOWER,
        node.term,
        f"Serving clients on {options.listen_host}:{options.client_port} (HTTP/JSON and "
        f"XML-RPC), peers on {options.listen_host}:{peer_port}; {timing.describe()}",
    )
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def on_signal(signum: int) -> None:
        if stopping:
            node.stop()  # a second signal: stop at once
            return
        events.note(
            logging.INFO, node.role, node.term, f"Got {signal.Signals(signum).name}, stopping"
        )
        stopping.append(loop.create_task(node.shutdown(transfer=True)))

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
    if options.stop_with_parent is not None:
        stopping.append(loop.create_task(_stop_with_parent(node, options.stop_with_parent)))
    if on_started is not None:
        on_started(node)
    code = EXIT_OK
    try:
        await node.run()
    except StorageError as exc:
        events.note(logging.CRITICAL, node.role, node.term, f"Stopped: storage failed: {exc}")
        code = EXIT_STORAGE
    except NodeStartError as exc:
        events.note(logging.ERROR, node.role, node.term, f"Cannot start: {exc} (port {peer_port})")
        code = EXIT_BIND
    except Exception as exc:  # an unexpected bug: say so loudly, exit non-zero
        events.note(logging.CRITICAL, node.role, node.term, f"Crashed: {type(exc).__name__}: {exc}")
        logging.getLogger("raftlog.server").exception("node crashed")
        code = EXIT_CRASH
    finally:
        for task in stopping:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        await runner.cleanup()
        await storage.aclose()
        library_log.removeHandler(bridge)
    if code == EXIT_OK:
        events.note(logging.INFO, node.role, node.term, "Node stopped")
    return code


async def _stop_with_parent(node: RaftNode, parent: int) -> None:
    """Stop (gracefully) once the parent is gone: this process was re-parented."""
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    await node.shutdown(transfer=True)


def run_node(options: ServeOptions) -> int:
    try:
        return asyncio.run(serve(options))
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout.flush()
