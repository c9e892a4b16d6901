"""raftlog: a Raft replicated log for Python.

The protocol lives in :mod:`raftlog.core` (pure, deterministic, no I/O); the simulator that
proves it in :mod:`raftlog.sim`; linearizability checkers in :mod:`raftlog.check`.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
