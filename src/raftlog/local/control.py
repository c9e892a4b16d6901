"""One interface for controlling a cluster of raftlog node processes.

Implemented by :class:`~raftlog.local.cluster.LocalCluster` (child processes on loopback;
a partition is made inside the nodes, through their admin endpoint) and by the
network-namespace cluster (nodes in ``node_N`` namespaces; a partition is cut in the
network). ``raftlog cluster``, the lab's demos, ``raftlog chaos`` and the dashboard's
supervisor drive clusters through it alone, so that each fault means one thing whatever
hosts the nodes.

Every action is a coroutine and is safe to run concurrently with the others (each
implementation serialises what must be serialised). An action that cannot be done raises
:class:`ControlError` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class ControlError(RuntimeError):
    """A control action could not be done (the message says why).

    A RuntimeError, as the errors of starting a node were before this interface (callers
    that catch RuntimeError when a node fails to start go on working)."""


@dataclass(frozen=True)
class NodeState:
    """What the supervisor knows of one node (not what the node says of itself)."""

    id: int
    url: str
    """The node's client API, reachable from the supervisor's host."""
    running: bool
    paused: bool
    isolated: bool
    """Cut off from every other node (the client API stays reachable)."""


@dataclass(frozen=True)
class ClusterState:
    kind: str
    """``local`` (loopback processes) or ``netns`` (network namespaces)."""
    nodes: list[NodeState]
    cuts: list[tuple[int, int]] = field(default_factory=list)
    """Links cut between two nodes (smaller id first), isolations not included."""


@runtime_checkable
class ClusterControl(Protocol):
    """start, stop, kill, pause/resume, isolate, cut a link, heal, state."""

    kind: str

    def node_ids(self) -> list[int]:
        """The nodes this cluster tracks (running or not)."""
        ...

    def url(self, i: int) -> str:
        """Node ``i``'s client API URL."""
        ...

    def lines(self, i: int) -> list[str]:
        """Node ``i``'s event log lines so far, every run of its process, oldest first."""
        ...

    async def start_node(self, i: int) -> None:
        """Start a stopped node on its data; returns once it serves HTTP."""
        ...

    async def stop(self, i: int, grace_s: float = 10.0) -> int | None:
        """SIGTERM (a leader hands over first), SIGKILL after ``grace_s``; the exit code."""
        ...

    async def kill(self, i: int) -> None:
        """SIGKILL; returns once the process is gone."""
        ...

    async def pause(self, i: int) -> None:
        """SIGSTOP."""
        ...

    async def resume(self, i: int) -> None:
        """SIGCONT (nothing if it is not paused)."""
        ...

    async def isolate(self, i: int) -> None:
        """Cut every link between node ``i`` and the others."""
        ...

    async def cut(self, a: int, b: int) -> None:
        """Cut the link between nodes ``a`` and ``b`` (both ways)."""
        ...

    async def heal(self) -> None:
        """Repair every cut and isolation (stopped or paused nodes stay so)."""
        ...

    async def state(self) -> ClusterState:
        """Every node's process state, and the cuts in force."""
        ...
