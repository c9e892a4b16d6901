"""``raftlog chaos --netns``: the same run on the lab's topology in network namespaces.

:class:`NetnsCluster` gives :class:`~raftlog.chaos.runner.Chaos` the interface of
:class:`~raftlog.local.cluster.LocalCluster`, but its nodes run in the namespaces of
:mod:`raftlog.local.netcluster` and a partition is cut in the network itself (blackhole
routes between the namespaces), not inside the nodes. The clients stay on the host and
reach every node through the bridge, so, as on loopback, a client keeps talking to its
node whichever side of a partition that node is on.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path

from raftlog.local.cluster import LocalCluster, LocalNode
from raftlog.local.netcluster import CLIENT_PORT, NetCluster, node_name


class _NetnsNode(LocalNode):
    """A node in a namespace: its state comes from the NetCluster, its lines from its
    log file."""

    def __init__(self, i: int, nc: NetCluster) -> None:
        super().__init__(i, CLIENT_PORT, 0, Path())
        self.nc = nc

    @property
    def url(self) -> str:
        return self.nc.url(self.id)

    @property
    def running(self) -> bool:
        return self.nc.running(self.id)

    def read_lines(self) -> None:
        proc = self.nc.state.procs.get(node_name(self.id))
        if proc and proc.log and Path(proc.log).exists():
            self.lines = Path(proc.log).read_text(errors="replace").splitlines()


class NetnsCluster(LocalCluster):
    def __init__(self, n: int, *, node_args: Sequence[str] = ()) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="raftlog-chaos-netns-"))
        super().__init__(n, fast=True, node_args=node_args, data_dir=self._tmp)
        self.nc = NetCluster(self._tmp)
        self.nodes = {i: _NetnsNode(i, self.nc) for i in range(1, n + 1)}
        self._n = n

    async def start(self, ids: Sequence[int] | None = None, extra: Sequence[str] = ()) -> None:
        if ids is not None or extra:
            raise NotImplementedError("a netns cluster starts all its nodes at once")
        await asyncio.to_thread(self.nc.up, self._n, fast=True, extra_args=self.node_args)
        for i in self.nodes:
            await self.wait_live(i)

    async def start_node(self, i: int, extra: Sequence[str] = (), *, wait: bool = True) -> None:
        await asyncio.to_thread(self.nc.start, i)
        self.nodes[i].paused = False
        if wait:
            await self.wait_live(i)

    def signal(self, i: int, signum: signal.Signals) -> None:
        if signum == signal.SIGKILL and self.nc.running(i):
            self.nc.kill(i)
        elif signum == signal.SIGSTOP:
            self.pause(i)
        elif signum == signal.SIGCONT:
            self.resume(i)

    async def kill(self, i: int) -> None:
        await asyncio.to_thread(self.nc.kill, i)

    def pause(self, i: int) -> None:
        self.nc.pause(i)
        self.nodes[i].paused = True

    def resume(self, i: int) -> None:
        if self.nc.running(i):
            self.nc.unpause(i)
        self.nodes[i].paused = False

    async def wait_exit(self, i: int) -> int | None:
        while self.nc.running(i):
            await asyncio.sleep(0.02)
        return None

    async def stop(self, i: int, grace_s: float = 10.0) -> int | None:
        return await asyncio.to_thread(self.nc.stop, i, grace_s)

    async def partition(self, a: set[int], b: set[int]) -> None:
        """Cut every link between the two sides, in the network."""
        for x, y in itertools.product(a, b):
            await asyncio.to_thread(self.nc.cut, x, y)

    async def heal_network(self) -> None:
        await asyncio.to_thread(self.nc.heal)

    def collect_lines(self) -> None:
        for node in self.nodes.values():
            if isinstance(node, _NetnsNode):
                node.read_lines()

    async def close(self) -> None:
        self.collect_lines()
        await asyncio.to_thread(self.nc.down, keep_data=False)
        if self._session is not None:
            await self._session.close()
            self._session = None
        shutil.rmtree(self._tmp, ignore_errors=True)
