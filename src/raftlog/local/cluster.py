"""A cluster of real raftlog node processes on this machine (loopback).

Used by ``raftlog cluster``, the lab's demo runs, ``raftlog chaos``, the process tests and
the benchmarks: start nodes as child processes, read their event logs, and do to them what
an operator (or the lab's ``docker container stop``) would: SIGKILL, SIGTERM then SIGKILL,
SIGSTOP/SIGCONT, start again on the same data directory. It implements
:class:`~raftlog.local.control.ClusterControl`: on loopback a partition is made inside the
nodes (``POST /v1/admin/partition``), so the cluster keeps every node's blocked peers
itself and tells a node again whenever it is back (started, resumed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from raftlog import wire
from raftlog.local.certs import CertFiles
from raftlog.local.clusterbase import ClusterBase, wait_for
from raftlog.local.control import ClusterState, ControlError, NodeState
from raftlog.local.nodeenv import node_environment

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
ADMIN_TOKEN_ENV = "RAFTLOG_ADMIN_TOKEN"
TOKEN_ENV = "RAFTLOG_TOKEN"
FAULT_INJECTION_FLAG = "--enable-fault-injection"
_PARTITION = "/v1/admin/partition"


def free_ports(count: int) -> list[int]:
    """Ports that were free a moment ago (the OS picks them)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class LocalNode:
    id: int
    client_port: int
    peer_port: int
    data_dir: Path
    process: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    starts: int = 0
    paused: bool = False
    """Stopped with SIGSTOP (only while it runs)."""
    joins: bool = False
    """Started with --join (a node added to the running cluster), not --peers."""
    told: frozenset[int] = frozenset()
    """The peers this node's process was last told to block (none when it starts)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by every action on this node (start, stop, kill, pause, resume, telling it its
    partition): actions on one node happen one at a time, on different nodes at once."""
    scheme: str = "http"
    """``https`` when the cluster runs with TLS."""
    _reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class LocalCluster(ClusterBase):
    """``n`` nodes on loopback. Use as ``async with LocalCluster(...) as cluster``.

    ``admin_token``: every node gets it as RAFTLOG_ADMIN_TOKEN (which turns on its
    ``/v1/admin/*`` endpoints) and every admin request made here carries it as
    ``Authorization: Bearer``. Without it, partitions need the nodes started with
    ``--enable-fault-injection`` (in ``node_args``).

    ``tls``: certificates from :func:`raftlog.local.certs.make_certs` (for nodes 1..n):
    every node runs mutual TLS with its peers and serves its clients over TLS, and the
    requests made here trust the CA (and present its client certificate). ``token``:
    every node gets it as RAFTLOG_TOKEN (writes need it), and the writes made here
    carry it.
    """

    kind = "local"

    def __init__(
        self,
        n: int = 3,
        *,
        fast: bool = True,
        base_port: int | None = None,
        data_dir: Path | None = None,
        keep_data: bool = False,
        node_args: Sequence[str] = (),
        echo: Callable[[str], None] | None = None,
        log_level: str = "info",
        color: bool = False,
        admin_token: str | None = None,
        tls: CertFiles | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__()
        if base_port is None:
            ports = free_ports(2 * n)
            client_ports, peer_ports = ports[:n], ports[n:]
        else:
            client_ports = [base_port + i for i in range(n)]
            peer_ports = [base_port + 1000 + i for i in range(n)]
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="raftlog-cluster-"))
        self.keep_data = keep_data or not self._own_dir
        self.fast = fast
        self.node_args = list(node_args)
        self.echo = echo
        self.log_level = log_level
        self.color = color
        self.admin_token = admin_token
        self.tls = tls
        self.token = token
        self._ssl: ssl.SSLContext | None = None
        self.nodes = {
            i: LocalNode(
                i,
                client_ports[i - 1],
                peer_ports[i - 1],
                self.data_dir / f"node-{i}",
                scheme="https" if tls is not None else "http",
            )
            for i in range(1, n + 1)
        }
        self.peers = ",".join(
            f"{i}=127.0.0.1:{node.peer_port}:{node.client_port}" for i, node in self.nodes.items()
        )
        self._isolated: set[int] = set()
        self._cuts: set[tuple[int, int]] = set()
        """Links cut (smaller id first); with the isolations, what every node must block."""

    async def __aenter__(self) -> LocalCluster:
        return self

    def use_tls(self, certs: CertFiles) -> None:
        """Run with TLS from now on (before :meth:`start`: see ``tls``)."""
        if any(node.running for node in self.nodes.values()):
            raise ControlError("TLS must be chosen before the nodes start")
        self.tls = certs
        self._ssl = None
        for node in self.nodes.values():
            node.scheme = "https"

    # -- processes -------------------------------------------------------------------

    def command(self, i: int, extra: Sequence[str] = ()) -> list[str]:
        node = self.nodes[i]
        if node.joins:
            others = [n.url for j, n in self.nodes.items() if j != i and n.running]
            membership = [
                "--join",
                ",".join(others),
                "--advertise",
                "127.0.0.1",
                "--peer-port",
                str(node.peer_port),
            ]
        else:
            membership = ["--peers", self.peers]
        args = [
            sys.executable,
            "-m",
            "raftlog",
            "node",
            "--id",
            str(i),
            *membership,
            "--data-dir",
            str(node.data_dir),
            "--host",
            "127.0.0.1",
            "--client-port",
            str(node.client_port),
            "--log-level",
            self.log_level,
            "--color",
            "always" if self.color else "never",
            "--stop-with-parent",
            str(os.getpid()),
        ]
        if self.fast:
            args.append("--fast")
        if self.tls is not None:
            cert, key = str(self.tls.node_cert(i)), str(self.tls.node_key(i))
            args += ["--peer-cert-file", cert, "--peer-key-file", key]
            args += ["--peer-trusted-ca-file", str(self.tls.ca)]
            args += ["--cert-file", cert, "--key-file", key]
        return args + self.node_args + list(extra)

    def add_node(self, i: int | None = None) -> int:
        """A new node (fresh ports and data directory) that joins the running cluster
        when started (``--join`` with the running members' client URLs)."""
        i = i if i is not None else max(self.nodes) + 1
        if i in self.nodes:
            raise ControlError(f"node {i} exists")
        client_port, peer_port = free_ports(2)
        self.nodes[i] = LocalNode(
            i,
            client_port,
            peer_port,
            self.data_dir / f"node-{i}-{client_port}",
            joins=True,
            scheme="https" if self.tls is not None else "http",
        )
        return i

    def forget(self, i: int) -> None:
        """Stop tracking node ``i`` (after it was removed and stopped)."""
        node = self._node(i)
        if node.running:
            raise ControlError(f"node {i} still runs")
        del self.nodes[i]
        self._isolated.discard(i)
        self._cuts = {c for c in self._cuts if i not in c}

    def node_ids(self) -> list[int]:
        return sorted(self.nodes)

    def url(self, i: int) -> str:
        return self._node(i).url

    def lines(self, i: int) -> list[str]:
        return list(self._node(i).lines)

    def answers(self, i: int) -> bool:
        node = self.nodes.get(i)
        return node is not None and node.running and not node.paused

    def _node(self, i: int) -> LocalNode:
        node = self.nodes.get(i)
        if node is None:
            raise ControlError(f"no node {i}: the cluster has nodes {sorted(self.nodes)}")
        return node

    async def start(self, ids: Sequence[int] | None = None, extra: Sequence[str] = ()) -> None:
        for i in ids or list(self.nodes):
            await self.start_node(i, extra)

    async def start_node(self, i: int, extra: Sequence[str] = (), *, wait: bool = True) -> None:
        """Start node ``i``; with ``wait``, return once it serves HTTP (ControlError if it
        exits first). A node that must block peers (a partition in force) is always waited
        for, and told its partition before this returns."""
        node = self._node(i)
        async with node.lock:
            if node.running:
                raise ControlError(f"node {i} is already running")
            node.data_dir.mkdir(parents=True, exist_ok=True)
            env = node_environment(self.admin_token)
            if self.token is not None:
                env[TOKEN_ENV] = self.token
            node.process = await asyncio.create_subprocess_exec(
                *self.command(i, extra),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the cluster, which stops its nodes
                limit=16 << 20,  # event log lines can be long
            )
            node.starts += 1
            node.paused = False
            node.told = frozenset()
            node._reader = asyncio.create_task(self._read_lines(node, node.process))
            if wait or self._blocked(i):
                await self.wait_live(i)
                await self._tell(node)
        if self._isolated:  # a node new to the cluster: the isolated ones must block it too
            await self._tell_all()

    def _check_alive(self, i: int) -> None:
        node = self.nodes[i]
        if not node.running:
            code = node.process.returncode if node.process else "?"
            raise ControlError(f"node {i} exited with status {code}: {node.lines[-3:]}")

    async def _read_lines(self, node: LocalNode, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            raw = await process.stdout.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\n")
            node.lines.append(_ANSI.sub("", line))
            if self.echo is not None:
                self.echo(line)

    def _signal(self, node: LocalNode, signum: signal.Signals) -> None:
        if node.process is not None and node.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                node.process.send_signal(signum)

    async def kill(self, i: int) -> None:
        """SIGKILL: the process dies at once (a crash). Nothing if it is not running."""
        node = self._node(i)
        async with node.lock:
            self._signal(node, signal.SIGKILL)
            await self.wait_exit(i)
            node.paused = False

    async def stop(self, i: int, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s`` (``docker container stop``)."""
        node = self._node(i)
        async with node.lock:
            if node.paused:
                self._signal(node, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self._signal(node, signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.wait_exit(i), grace_s)
            except TimeoutError:
                self._signal(node, signal.SIGKILL)
                return await self.wait_exit(i)
            finally:
                node.paused = False

    async def pause(self, i: int) -> None:
        """SIGSTOP (``docker pause``)."""
        node = self._node(i)
        async with node.lock:
            if not node.running:
                raise ControlError(f"node {i} is not running: it cannot be paused")
            self._signal(node, signal.SIGSTOP)
            node.paused = True

    async def resume(self, i: int) -> None:
        """SIGCONT (nothing if it is not paused); a partition made meanwhile reaches it."""
        node = self._node(i)
        async with node.lock:
            if not node.paused:
                return
            self._signal(node, signal.SIGCONT)
            node.paused = False
            await self._tell(node)

    async def wait_exit(self, i: int) -> int | None:
        node = self.nodes[i]
        if node.process is None:
            return None
        code = await node.process.wait()
        if node._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await node._reader
            node._reader = None
        return code

    async def close(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL) and remove temporary data. The leader
        goes first, so that it hands leadership over to a follower still running (as an
        operator stopping nodes one by one would see); then the others together."""
        running = [i for i, n in self.nodes.items() if n.running]
        found = await asyncio.gather(
            *(self.get_as(i, "/v1/status", wire.Status, timeout=1.0) for i in running)
        )
        leaders = [i for i, s in zip(running, found, strict=True) if s and s.state == "Leader"]
        await asyncio.gather(*(self.stop(i, grace_s=5.0) for i in leaders))
        rest = [i for i in running if i not in leaders and self.nodes[i].running]
        await asyncio.gather(*(self.stop(i, grace_s=5.0) for i in rest))
        await self._close_client()
        if self._own_dir and not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- partitions: inside the nodes ------------------------------------------------

    async def isolate(self, i: int) -> None:
        self._node(i)
        self._check_can_partition()
        self._isolated.add(i)
        await self._tell_all()

    async def cut(self, a: int, b: int) -> None:
        self._node(a)
        self._node(b)
        if a == b:
            raise ControlError("a cut needs two different nodes")
        self._check_can_partition()
        self._cuts.add((min(a, b), max(a, b)))
        await self._tell_all()

    async def heal(self) -> None:
        self._isolated.clear()
        self._cuts.clear()
        await self._tell_all()

    async def state(self) -> ClusterState:
        nodes = [
            NodeState(
                id=i,
                url=node.url,
                running=node.running,
                paused=node.running and node.paused,
                isolated=i in self._isolated,
            )
            for i, node in sorted(self.nodes.items())
        ]
        return ClusterState(kind=self.kind, nodes=nodes, cuts=sorted(self._cuts))

    def _check_can_partition(self) -> None:
        if self.admin_token is None and FAULT_INJECTION_FLAG not in self.node_args:
            raise ControlError(
                "a partition on loopback is made inside the nodes, through their admin "
                "endpoint: give the cluster an admin_token (or start the nodes with "
                f"{FAULT_INJECTION_FLAG})"
            )

    def _blocked(self, i: int) -> frozenset[int]:
        """The peers node ``i`` must block now."""
        others = set(self.nodes) - {i}
        if i in self._isolated:
            return frozenset(others)
        return frozenset(
            j for j in others if j in self._isolated or (min(i, j), max(i, j)) in self._cuts
        )

    async def _tell_all(self) -> None:
        """Tell every node that runs (and is not paused) what it must block now; the others
        are told when they are back."""

        async def tell(node: LocalNode) -> None:
            async with node.lock:
                await self._tell(node)

        await asyncio.gather(*(tell(node) for node in list(self.nodes.values())))

    async def _tell(self, node: LocalNode) -> None:
        """``POST /v1/admin/partition`` to ``node`` if what it blocks is not what it must
        block (the caller holds ``node.lock``). It reads the partition when it sends, so
        the last one told wins, whatever the order of concurrent changes."""
        want = self._blocked(node.id)
        if not node.running or node.paused or want == node.told or node.id not in self.nodes:
            return
        body = {"blocked": sorted(want)}
        try:
            status, doc = await self.post(node.id, _PARTITION, body, timeout=10.0)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if node.process is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(node.process.wait()), 1.0)
            if not node.running:
                return  # it died meanwhile: it is told when it starts again
            raise ControlError(
                f"node {node.id} could not be told its partition: {type(exc).__name__} {exc}"
            ) from None
        if status != 200:
            why = {
                404: " (the node has no admin endpoint: give the cluster an admin_token, "
                f"or start the nodes with {FAULT_INJECTION_FLAG})",
                401: " (the admin token was refused)",
                403: " (the admin token was refused)",
            }.get(status, "")
            raise ControlError(f"node {node.id} refused its partition: HTTP {status}{why} {doc}")
        node.told = want

    def _headers(self, path: str) -> dict[str, str]:
        if self.admin_token is not None and path.startswith("/v1/admin/"):
            return {"Authorization": f"Bearer {self.admin_token}"}
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def client_ssl(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        if self._ssl is None:
            from raftlog.tls import client_context  # noqa: PLC0415

            files = self.tls
            self._ssl = client_context(files.ca, files.client_cert, files.client_key)
        return self._ssl

    def xmlrpc_url(self, i: int) -> str:
        url = self.url(i)
        if self.token is None:
            return url
        scheme, _, rest = url.partition("://")
        return f"{scheme}://raftlog:{self.token}@{rest}"

    def echo_line(self, text: str) -> None:
        if self.echo is not None:
            self.echo(text)


__all__ = ["LocalCluster", "LocalNode", "free_ports", "wait_for"]
