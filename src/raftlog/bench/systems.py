"""The systems ``raftlog bench`` measures, behind one interface: a 3-node raftlog cluster
of ``raftlog node`` processes and a 3-member etcd cluster (Debian's ``etcd-server``), both
on loopback, durable, with the same election timeouts (300-600 ms) and heartbeat (50 ms).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import aiohttp

from raftlog.local.cluster import LocalCluster, free_ports, wait_for

VALUE_BYTES = 100
ELECTION_MS = (300, 600)
HEARTBEAT_MS = 50


def value(n: int = 0) -> str:
    """A 100-byte value (ASCII), distinct per ``n``."""
    head = f"value-{n}-"
    return head + "0" * (VALUE_BYTES - len(head))


class System(ABC):
    """A cluster to measure. ``async with`` it: started on enter, stopped on exit."""

    name: str
    nodes: tuple[int, ...] = (1, 2, 3)

    async def __aenter__(self) -> System:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    async def leader(self, timeout: float = 30.0) -> int: ...

    @abstractmethod
    def write_url(self, node: int) -> str: ...

    @abstractmethod
    def write_body(self, n: int = 0) -> str:
        """The JSON body of a write of a 100-byte value."""

    @abstractmethod
    async def kill(self, node: int) -> None:
        """SIGKILL (a crash)."""

    @abstractmethod
    async def restart(self, node: int) -> None:
        """Start a killed node again on its data; return once it follows the leader."""

    async def try_write(self, http: aiohttp.ClientSession, node: int, n: int) -> bool:
        """One write through ``node``; True if it answered 2xx within a second."""
        try:
            async with http.post(
                self.write_url(node),
                data=self.write_body(n),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=1.0),
            ) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False


class RaftlogSystem(System):
    """raftlog's cluster; with ``tls``, TLS on both planes (``--compare tls``: what TLS
    costs, side by side with the plaintext cluster)."""

    name = "raftlog"

    def __init__(self, event_loop: str | None = None, *, tls: bool = False) -> None:
        args = [
            "--election-timeout",
            f"{ELECTION_MS[0] / 1000}-{ELECTION_MS[1] / 1000}",
            "--heartbeat",
            f"{HEARTBEAT_MS / 1000}",
        ]
        if event_loop:
            args += ["--event-loop", event_loop]
        self.cluster = LocalCluster(3, fast=False, node_args=args, log_level="warning")
        self._loop = "?"
        self.tls = tls
        if tls:
            from raftlog.local.certs import make_certs  # noqa: PLC0415

            self.name = "raftlog-tls"
            self.cluster.use_tls(make_certs(self.cluster.data_dir / "tls", 3))

    async def start(self) -> None:
        await self.cluster.start()
        leader = await self.leader()
        status = await self.cluster.status(leader)
        self._loop = str(status.get("event_loop", "?")) if status else "?"

    async def stop(self) -> None:
        await self.cluster.close()

    def version(self) -> str:
        from importlib.metadata import version  # noqa: PLC0415

        tls = ", TLS on both planes" if self.tls else ""
        return f"raftlog {version('raftlog')} (Python {sys.version.split()[0]}, {self._loop}{tls})"

    async def leader(self, timeout: float = 30.0) -> int:
        return await self.cluster.leader(timeout)

    def write_url(self, node: int) -> str:
        return self.cluster.nodes[node].url + "/v1/log"

    def write_body(self, n: int = 0) -> str:
        return json.dumps({"data": value(n)})

    async def kill(self, node: int) -> None:
        await self.cluster.kill(node)

    async def restart(self, node: int) -> None:
        await self.cluster.start_node(node)
        current = await self.leader()

        async def following() -> bool:
            status = await self.cluster.status(node)
            return bool(status and status["leader"] == current)

        await wait_for(following, 30, f"raftlog node {node} did not rejoin")


def etcd_binary() -> str | None:
    return shutil.which("etcd") or next(
        (p for p in ("/usr/bin/etcd", "/usr/local/bin/etcd") if os.access(p, os.X_OK)), None
    )


class EtcdSystem(System):
    """Three ``etcd`` members; writes are ``POST /v3/kv/put`` on the JSON gateway."""

    name = "etcd"

    def __init__(self) -> None:
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError(
                "etcd is not installed (Debian: apt-get install etcd-server; "
                "or scripts/install-bench-deps.sh)"
            )
        self.binary = binary
        ports = free_ports(6)
        self.client_ports = dict(zip(self.nodes, ports[:3], strict=True))
        self.peer_ports = dict(zip(self.nodes, ports[3:], strict=True))
        self.dir = Path(tempfile.mkdtemp(prefix="raftlog-bench-etcd-"))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._ids: dict[int, str] = {}

    def _command(self, node: int) -> list[str]:
        cluster = ",".join(f"e{i}=http://127.0.0.1:{self.peer_ports[i]}" for i in self.nodes)
        client = f"http://127.0.0.1:{self.client_ports[node]}"
        peer = f"http://127.0.0.1:{self.peer_ports[node]}"
        return [
            self.binary,
            "--name",
            f"e{node}",
            "--data-dir",
            str(self.dir / f"e{node}"),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            cluster,
            "--initial-cluster-state",
            "new",
            # etcd draws its timeout from [T, 2T]: the same 300-600 ms as raftlog's.
            "--election-timeout",
            str(ELECTION_MS[0]),
            "--heartbeat-interval",
            str(HEARTBEAT_MS),
            "--log-level",
            "error",
        ]

    def _spawn(self, node: int) -> None:
        log = (self.dir / f"e{node}.log").open("ab")
        self.procs[node] = subprocess.Popen(
            self._command(node),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        return self._http

    async def _status(self, node: int) -> dict[str, Any] | None:
        url = f"http://127.0.0.1:{self.client_ports[node]}/v3/maintenance/status"
        try:
            async with self._session().post(url, data="{}") as resp:
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return doc if isinstance(doc, dict) and "leader" in doc else None

    async def start(self) -> None:
        for node in self.nodes:
            self._spawn(node)
        await self.leader()

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._http is not None:
            await self._http.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def version(self) -> str:
        out = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, check=False
        ).stdout
        first = out.splitlines()[0] if out else "etcd"
        return first.replace("etcd Version:", "etcd").strip()

    async def leader(self, timeout: float = 30.0) -> int:
        async def find() -> int | None:
            for node in self.nodes:
                proc = self.procs.get(node)
                if proc is None or proc.poll() is not None:
                    continue
                doc = await self._status(node)
                if doc is None:
                    continue
                member = str(doc.get("header", {}).get("member_id"))
                self._ids[node] = member
                if str(doc["leader"]) == member:
                    return node
            return None

        found: int = await wait_for(find, timeout, "etcd elected no leader")
        return found

    def write_url(self, node: int) -> str:
        return f"http://127.0.0.1:{self.client_ports[node]}/v3/kv/put"

    def write_body(self, n: int = 0) -> str:
        key = base64.b64encode(f"key-{n % 1000}".encode()).decode()
        data = base64.b64encode(value(n).encode()).decode()
        return json.dumps({"key": key, "value": data})

    async def kill(self, node: int) -> None:
        proc = self.procs[node]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)

    async def restart(self, node: int) -> None:
        self._spawn(node)
        current = await self.leader()
        leader_id = self._ids.get(current)

        async def following() -> bool:
            doc = await self._status(node)
            return bool(doc and str(doc["leader"]) == leader_id)

        await wait_for(following, 30, f"etcd member {node} did not rejoin")


async def failover(system: System, rounds: int) -> list[float]:
    """Kill -9 the leader ``rounds`` times; each time, milliseconds until a write through a
    survivor succeeds. Writes start every 10 ms at each survivor and overlap (one that
    hangs, e.g. sent to a node still waiting for the dead leader, does not hold up the
    next). The killed node is restarted (and follows) before the next round."""
    times: list[float] = []
    async with aiohttp.ClientSession() as http:
        for r in range(rounds):
            leader = await system.leader()
            survivors = [n for n in system.nodes if n != leader]
            done = asyncio.Event()
            finished: list[float] = []
            attempts: set[asyncio.Task[None]] = set()

            async def attempt(
                node: int, n: int, done: asyncio.Event = done, finished: list[float] = finished
            ) -> None:
                if await system.try_write(http, node, n) and not done.is_set():
                    finished.append(time.perf_counter())
                    done.set()

            killed_at = time.perf_counter()
            await system.kill(leader)
            n = 0
            try:
                while not done.is_set():
                    for node in survivors:
                        n += 1
                        task = asyncio.create_task(attempt(node, 1_000_000 * (r + 1) + n))
                        attempts.add(task)
                        task.add_done_callback(attempts.discard)
                    if time.perf_counter() - killed_at > 30:
                        raise TimeoutError(f"{system.name}: no write within 30 s of the kill")
                    # The period of new attempts: the resolution of the figure.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), 0.01)
            finally:
                for task in list(attempts):
                    task.cancel()
                await asyncio.gather(*attempts, return_exceptions=True)
            times.append((finished[0] - killed_at) * 1000)
            await system.restart(leader)
    return times
