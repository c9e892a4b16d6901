"""Deterministic simulation of Raft clusters under faults, with safety checks."""

from raftlog.sim.cluster import ALL_FAULTS, Cluster, SimOptions, SimResult, parse_faults, run
from raftlog.sim.invariants import SafetyChecker, Violation

__all__ = [
    "ALL_FAULTS",
    "Cluster",
    "SafetyChecker",
    "SimOptions",
    "SimResult",
    "Violation",
    "parse_faults",
    "run",
]
