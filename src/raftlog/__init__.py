"""raftlog: a Raft replicated log for Python.

Embedding: :class:`Node` (asyncio) or :class:`BlockingNode`, built from a
:class:`NodeConfig` with a :class:`StateMachine` of your own (or the replicated log of
strings, :class:`ReplicatedLog`). The protocol lives in :mod:`raftlog.core` (pure,
deterministic, no I/O); the simulator that proves it in :mod:`raftlog.sim`;
linearizability checkers in :mod:`raftlog.check`.

Logging: raftlog only emits records (``raftlog.events`` for a node's events, other
``raftlog.*`` loggers for the rest) and configures nothing; :func:`print_events` prints
them as the ``raftlog`` command does, for programs that want that.
"""

from typing import TYPE_CHECKING, Any

from raftlog.core.errors import NotLeader, ProposalDropped, RaftError, StorageError
from raftlog.statemachine import BytesSnapshot, PersistentStateMachine, Snapshot, StateMachine

__version__ = "0.1.0.dev0"

if TYPE_CHECKING:
    from raftlog.node import BlockingNode, Node, NodeConfig
    from raftlog.server.eventlog import print_events, stop_printing
    from raftlog.server.node import (
        Committed,
        LeadershipLost,
        NodeStopped,
        OutcomeUnknown,
        RequestTimeout,
        StaleSession,
    )
    from raftlog.server.replicated_log import ReplicatedLog

_LAZY = {
    "BlockingNode": "raftlog.node",
    "Node": "raftlog.node",
    "NodeConfig": "raftlog.node",
    "Committed": "raftlog.server.node",
    "LeadershipLost": "raftlog.server.node",
    "NodeStopped": "raftlog.server.node",
    "OutcomeUnknown": "raftlog.server.node",
    "RequestTimeout": "raftlog.server.node",
    "StaleSession": "raftlog.server.node",
    "ReplicatedLog": "raftlog.server.replicated_log",
    "print_events": "raftlog.server.eventlog",
    "stop_printing": "raftlog.server.eventlog",
}


def __getattr__(name: str) -> Any:
    """The node and its parts load on first use (``import raftlog.core`` stays light)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'raftlog' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(module), name)


__all__ = [
    "BlockingNode",
    "BytesSnapshot",
    "Committed",
    "LeadershipLost",
    "Node",
    "NodeConfig",
    "NodeStopped",
    "NotLeader",
    "OutcomeUnknown",
    "PersistentStateMachine",
    "ProposalDropped",
    "RaftError",
    "ReplicatedLog",
    "RequestTimeout",
    "Snapshot",
    "StaleSession",
    "StateMachine",
    "StorageError",
    "__version__",
    "print_events",
    "stop_printing",
]
