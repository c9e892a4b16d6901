"""The cluster-control interface over the lab's topology in network namespaces (root).

:class:`NetnsCluster` runs its nodes in the ``node_N`` namespaces of
:class:`~raftlog.local.netcluster.NetCluster`, and a partition is cut in the network itself
(blackhole routes between two namespaces), not inside the nodes: it outlives a node's
restart with nothing to tell the node. An isolated node is cut from every other node and
its link to the bridge stays up, so its client API stays reachable from the host, as on
loopback (``raftlog netcluster isolate``, which takes the link down, is the other kind of
isolation, for a person at the command line). The supervisor stays on the host and
reaches every node through the bridge, so a client there keeps talking to its node
whichever side of a partition the node is on.

With ``node_cmd`` the nodes are *foreign* programs (the lab's ``node.py``, see
:class:`~raftlog.local.netcluster.NetCluster`): they serve only the lab's XML-RPC, so a node
counts as live once it accepts connections on its client port, and :meth:`lines` are its
output lines as the stamper wrote them (``TIME | text``).

NetCluster's calls are synchronous (``ip``, signals, waiting for a process): each runs in a
thread. NetCluster changes and saves its state one call at a time; here the process
actions on one node are serialised (a pause and a kill of the same node never cross), and
so are the changes to the network (a cut and a heal never cross).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from raftlog.local.clusterbase import ClusterBase
from raftlog.local.control import ClusterState, ControlError, NodeState
from raftlog.local.netcluster import NetCluster, NetClusterError, node_name, parse_node

T = TypeVar("T")


class ClusterUnavailable(ControlError):
    """The cluster's topology could not be built (no node was started): the namespaces
    exist already (someone else's cluster), an ``ip`` command failed, not root."""


class NetnsCluster(ClusterBase):
    """``n`` nodes in network namespaces. Use as ``async with NetnsCluster(n) as c``;
    :meth:`start` brings the namespaces up and starts every node, :meth:`close` removes
    everything (namespaces, links, data)."""

    kind = "netns"

    def __init__(
        self,
        n: int = 3,
        *,
        fast: bool = True,
        node_args: Sequence[str] = (),
        state_dir: Path | None = None,
        node_cmd: str = "",
        node_dir: str | os.PathLike[str] | None = None,
        node_copy: bool = False,
        node_env: Mapping[str, str] | None = None,
        start_nodes: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.start_nodes = None if start_nodes is None else list(start_nodes)
        """The nodes :meth:`start` starts (None: all; :meth:`start_node` the others)."""
        self.node_cmd = node_cmd
        self.node_dir = node_dir
        self.node_copy = node_copy
        self.node_env = dict(node_env or {})
        self._own_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="raftlog-netns-"))
        self.n = n
        self.fast = fast
        self.node_args = list(node_args)
        self.nc = NetCluster(self.state_dir)
        self._paused: set[int] = set()
        self._isolated: set[int] = set()
        self._cuts: set[tuple[int, int]] = set()
        """Links cut on their own (smaller id first); the network has these and the
        isolations' links cut."""
        self._attached = False
        self._net_lock = asyncio.Lock()
        self._locks = {i: asyncio.Lock() for i in range(1, n + 1)}
        """One per node, held by each process action on it."""

    @classmethod
    def attach(cls, state_dir: Path) -> NetnsCluster:
        """The netcluster ``raftlog netcluster up`` made (its state in ``state_dir``), to
        control while it runs; :meth:`close` leaves it up."""
        nc = NetCluster(state_dir)
        if not nc.exists:
            raise ControlError(f"no netcluster is up (no state in {state_dir})")
        cluster = cls(nc.state.nodes, fast=nc.state.fast, state_dir=state_dir)
        cluster._own_dir = False
        cluster._attached = True
        for a, b in nc.state.cuts:
            x, y = parse_node(a), parse_node(b)
            cluster._cuts.add((min(x, y), max(x, y)))
        return cluster

    @property
    def admin_token(self) -> str | None:
        """The token the nodes' admin endpoints take (None: they have none)."""
        return self.nc.state.admin_token or None

    async def __aenter__(self) -> NetnsCluster:
        return self

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        """A NetCluster call, in a thread; its errors become ControlError. Attached to a
        netcluster that ``raftlog netcluster`` commands change too, it reads the state
        file again first (their pids, cuts), so that it neither acts on a stale state nor
        saves one over theirs."""

        def call() -> T:
            if self._attached:
                self.nc.reload()
            return fn(*args)

        try:
            return await asyncio.to_thread(call)
        except NetClusterError as exc:
            raise ControlError(str(exc)) from None

    def _check(self, i: int) -> int:
        if i not in self._locks:
            raise ControlError(f"no node {i}: the cluster has nodes 1..{self.n}")
        return i

    # -- the control interface -------------------------------------------------------

    def node_ids(self) -> list[int]:
        return list(range(1, self.n + 1))

    def url(self, i: int) -> str:
        self._check(i)
        try:
            return self.nc.url(i)
        except KeyError:
            raise ControlError(f"the namespaces are not up: node {i} has no address") from None

    def lines(self, i: int) -> list[str]:
        proc = self.nc.state.procs.get(node_name(self._check(i)))
        if proc is None or not proc.log or not Path(proc.log).exists():
            return []
        return Path(proc.log).read_text(errors="replace").splitlines()

    def answers(self, i: int) -> bool:
        return i in self._locks and i not in self._paused and self.nc.running(i)

    async def start(self) -> None:
        """Build the topology (:class:`ClusterUnavailable` if it cannot be), then start the
        nodes (``start_nodes``) and wait until each is live."""
        try:
            await self._call(self._up)
        except ControlError as exc:
            raise ClusterUnavailable(str(exc)) from None
        nodes = self.node_ids() if self.start_nodes is None else self.start_nodes
        for i in nodes:
            await self._call(self.nc.start, i)
        for i in nodes:
            await self.wait_live(i)

    def _up(self) -> None:
        self.nc.up(
            self.n,
            fast=self.fast,
            extra_args=self.node_args,
            node_cmd=self.node_cmd,
            node_dir=self.node_dir,
            node_copy=self.node_copy,
            node_env=self.node_env,
            start=[],
        )

    async def wait_live(self, i: int, timeout: float = 30.0) -> None:
        if not self.node_cmd:
            await super().wait_live(i, timeout)
            return
        # A foreign node: live once its client port takes a connection.
        where = urlsplit(self.url(i))
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(i)
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(where.hostname, where.port), 1.0
                )
            except (OSError, TimeoutError):
                if time.monotonic() >= deadline:
                    raise ControlError(
                        f"node {i} did not accept connections on {where.netloc} within "
                        f"{timeout} s (last lines: {self.lines(i)[-3:]})"
                    ) from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def start_node(self, i: int) -> None:
        async with self._locks[self._check(i)]:
            await self._call(self.nc.start, i)
            self._paused.discard(i)
            await self.wait_live(i)

    def _check_alive(self, i: int) -> None:
        if not self.nc.running(i):
            lines = self.lines(i)[-3:]
            raise ControlError(f"node {i} exited: {lines}")

    async def stop(self, i: int, grace_s: float = 10.0) -> int | None:
        async with self._locks[self._check(i)]:
            self._paused.discard(i)  # NetCluster.stop sends SIGCONT first
            if not self.nc.running(i):
                return None
            return await self._call(self.nc.stop, i, grace_s)

    async def kill(self, i: int) -> None:
        async with self._locks[self._check(i)]:
            self._paused.discard(i)
            if self.nc.running(i):
                await self._call(self.nc.kill, i)

    async def pause(self, i: int) -> None:
        async with self._locks[self._check(i)]:
            await self._call(self.nc.pause, i)
            self._paused.add(i)

    async def resume(self, i: int) -> None:
        async with self._locks[self._check(i)]:
            if i not in self._paused:
                return
            if self.nc.running(i):
                await self._call(self.nc.unpause, i)
            self._paused.discard(i)

    async def isolate(self, i: int) -> None:
        self._check(i)
        async with self._net_lock:
            await self._call(self._cut_all, [(i, j) for j in self.node_ids() if j != i])
            self._isolated.add(i)

    async def cut(self, a: int, b: int) -> None:
        self._check(a)
        self._check(b)
        if a == b:
            raise ControlError("a cut needs two different nodes")
        async with self._net_lock:
            await self._call(self._cut_all, [(a, b)])
            self._cuts.add((min(a, b), max(a, b)))

    def _cut_all(self, pairs: list[tuple[int, int]]) -> None:
        for a, b in pairs:
            self.nc.cut(a, b)  # nothing if it is cut already

    async def heal(self) -> None:
        async with self._net_lock:
            await self._call(self.nc.heal)
            self._isolated.clear()
            self._cuts.clear()

    async def state(self) -> ClusterState:
        if self._attached:
            await self._call(lambda: None)  # read the state file again
        recorded = self.nc.state
        isolated = set(self._isolated)
        cuts = sorted(self._cuts)
        nodes = []
        for i in self.node_ids():
            running = self.nc.running(i)
            url = self.nc.url(i) if recorded.addresses else ""
            nodes.append(
                NodeState(
                    id=i,
                    url=url,
                    running=running,
                    paused=running and i in self._paused,
                    isolated=i in isolated,
                )
            )
        return ClusterState(kind=self.kind, nodes=nodes, cuts=cuts)

    async def close(self) -> None:
        """Remove every namespace, link and process, and the nodes' data and logs (read
        :meth:`lines` before); one it was attached to stays up."""
        if not self._attached:
            await asyncio.to_thread(self.nc.down, keep_data=False)
        await self._close_client()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)


__all__ = ["NetnsCluster"]
