"""A cluster of real raftlog node processes on this machine (loopback).

Used by ``raftlog cluster``, the lab's demo runs, the process tests and the benchmarks:
start nodes as child processes, read their event logs, and do to them what an operator (or
the lab's ``docker container stop``) would: SIGKILL, SIGTERM then SIGKILL, SIGSTOP/SIGCONT,
start again on the same data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

from raftlog import wire

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
S = TypeVar("S", bound=msgspec.Struct)


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
    joins: bool = False
    """Started with --join (a node added to the running cluster), not --peers."""
    _reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class LocalCluster:
    """``n`` nodes on loopback. Use as ``async with LocalCluster(...) as cluster``."""

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
    ) -> None:
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
        self.nodes = {
            i: LocalNode(i, client_ports[i - 1], peer_ports[i - 1], self.data_dir / f"node-{i}")
            for i in range(1, n + 1)
        }
        self.peers = ",".join(
            f"{i}=127.0.0.1:{node.peer_port}:{node.client_port}" for i, node in self.nodes.items()
        )
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LocalCluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
        return args + self.node_args + list(extra)

    def add_node(self, i: int | None = None) -> int:
        """A new node (fresh ports and data directory) that joins the running cluster
        when started (``--join`` with the running members' client URLs)."""
        i = i if i is not None else max(self.nodes) + 1
        if i in self.nodes:
            raise ValueError(f"node {i} exists")
        client_port, peer_port = free_ports(2)
        self.nodes[i] = LocalNode(
            i, client_port, peer_port, self.data_dir / f"node-{i}-{client_port}", joins=True
        )
        return i

    def forget(self, i: int) -> None:
        """Stop tracking node ``i`` (after it was removed and stopped)."""
        node = self.nodes.pop(i)
        if node.running:
            raise RuntimeError(f"node {i} still runs")

    async def start(self, ids: Sequence[int] | None = None, extra: Sequence[str] = ()) -> None:
        for i in ids or list(self.nodes):
            await self.start_node(i, extra)

    async def start_node(self, i: int, extra: Sequence[str] = (), *, wait: bool = True) -> None:
        """Start node ``i``; with ``wait``, return once it serves HTTP (raise if it exits
        first)."""
        node = self.nodes[i]
        if node.running:
            raise RuntimeError(f"node {i} is already running")
        node.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
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
        node._reader = asyncio.create_task(self._read_lines(node, node.process))
        if wait:
            await self.wait_live(i)

    async def wait_live(self, i: int, timeout: float = 30.0) -> None:
        node = self.nodes[i]

        async def live() -> bool:
            if not node.running:
                code = node.process.returncode if node.process else "?"
                raise RuntimeError(f"node {i} exited with status {code}: {node.lines[-3:]}")
            return await self.get(i, "/livez", timeout=1.0) is not None

        await wait_for(live, timeout, f"node {i} did not start serving within {timeout} s")

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

    def signal(self, i: int, signum: signal.Signals) -> None:
        node = self.nodes[i]
        if node.process is not None and node.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                node.process.send_signal(signum)

    async def kill(self, i: int) -> None:
        """SIGKILL: the process dies at once (a crash)."""
        self.signal(i, signal.SIGKILL)
        await self.wait_exit(i)

    async def stop(self, i: int, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s`` (``docker container stop``)."""
        node = self.nodes[i]
        if node.paused:
            self.resume(i)
        self.signal(i, signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.wait_exit(i), grace_s)
        except TimeoutError:
            await self.kill(i)
            return node.process.returncode if node.process else None

    def pause(self, i: int) -> None:
        """SIGSTOP (``docker pause``)."""
        self.signal(i, signal.SIGSTOP)
        self.nodes[i].paused = True

    def resume(self, i: int) -> None:
        self.signal(i, signal.SIGCONT)
        self.nodes[i].paused = False

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
        """Stop every node (SIGTERM, then SIGKILL) and remove temporary data."""
        running = [i for i, n in self.nodes.items() if n.running]
        await asyncio.gather(*(self.stop(i, grace_s=5.0) for i in running))
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._own_dir and not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- talking to the nodes --------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        return self._session

    async def _get_body(self, i: int, path: str, timeout: float) -> bytes | None:
        node = self.nodes[i]
        if not node.running or node.paused:
            return None
        try:
            async with self._client().get(
                node.url + path, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def get(self, i: int, path: str, timeout: float = 2.0) -> Any:
        """GET a JSON document from node ``i``; None if it cannot answer."""
        raw = await self._get_body(i, path, timeout)
        try:
            return None if raw is None else msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return None

    async def get_as(self, i: int, path: str, shape: type[S], timeout: float = 2.0) -> S | None:
        """GET an answer of node ``i`` as its :mod:`raftlog.wire` Struct ``shape``; None
        if it cannot answer or answers something else (an error)."""
        raw = await self._get_body(i, path, timeout)
        try:
            return None if raw is None else msgspec.json.decode(raw, type=shape)
        except msgspec.DecodeError:
            return None

    async def post(self, i: int, path: str, doc: Any, timeout: float = 10.0) -> tuple[int, Any]:
        async with self._client().post(
            self.nodes[i].url + path, json=doc, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def status(self, i: int) -> dict[str, Any] | None:
        """``GET /v1/status`` of node ``i`` as JSON; None unless it answers a status."""
        doc = await self.get(i, "/v1/status")
        try:
            msgspec.convert(doc, wire.Status)
        except msgspec.ValidationError:
            return None
        found: dict[str, Any] = doc
        return found

    async def statuses(self) -> dict[int, dict[str, Any] | None]:
        ids = list(self.nodes)
        found = await asyncio.gather(*(self.status(i) for i in ids))
        return dict(zip(ids, found, strict=True))

    async def leader(self, timeout: float = 30.0, *, among: Sequence[int] | None = None) -> int:
        """Wait for a leader that a majority of the answering nodes agree on."""

        async def find() -> int | None:
            ids = list(self.nodes)
            found = await asyncio.gather(*(self.get_as(i, "/v1/status", wire.Status) for i in ids))
            statuses = {i: s for i, s in zip(ids, found, strict=True) if s is not None}
            leaders = [
                i
                for i, s in statuses.items()
                if s.state == "Leader" and (among is None or i in among)
            ]
            if len(leaders) != 1:
                return None
            lead = leaders[0]
            term = statuses[lead].term
            agree = sum(1 for s in statuses.values() if s.leader == lead and s.term == term)
            return lead if agree * 2 > len(self.nodes) else None

        result: int = await wait_for(find, timeout, f"no leader within {timeout} s")
        return result

    def xmlrpc(self, i: int) -> xmlrpc.client.ServerProxy:
        """A lab-style client proxy (blocking: call it from a thread)."""
        return xmlrpc.client.ServerProxy(self.nodes[i].url)

    async def call_xmlrpc(self, i: int, method: str, *args: Any) -> Any:
        def call() -> Any:
            with self.xmlrpc(i) as proxy:
                return getattr(proxy, method)(*args)

        return await asyncio.to_thread(call)

    async def append(self, i: int, text: str, timeout: float = 10.0) -> dict[str, Any]:
        status, doc = await self.post(i, "/v1/log", {"data": text}, timeout)
        if status != 200:
            raise RuntimeError(f"append {text!r} via node {i}: HTTP {status} {doc}")
        assert isinstance(doc, dict)
        return doc

    async def log(self, i: int) -> list[str] | None:
        """The data of node ``i``'s entries as it has them (base64 for binary ones)."""
        page = await self.get_as(
            i, "/v1/log?consistency=local&limit=10000", wire.ReadAnswer, timeout=5.0
        )
        return None if page is None else [e.data for e in page.entries]

    def echo_line(self, text: str) -> None:
        if self.echo is not None:
            self.echo(text)


async def wait_for(
    probe: Callable[[], Awaitable[Any]], timeout: float, message: str, interval: float = 0.05
) -> Any:
    """Poll ``probe`` until it returns something other than None/False, or raise
    TimeoutError(message) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(message)
        await asyncio.sleep(interval)


__all__ = ["LocalCluster", "LocalNode", "free_ports", "wait_for"]
