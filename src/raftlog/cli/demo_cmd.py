"""`raftlog demo`: the lab's typical run, on a simulated 3-node cluster.

Real processes arrive with the node runtime (the next issue); until then the demo drives
three real Raft cores through the deterministic harness, in virtual time with the lab's
timings (election timeout 6-10 s, heartbeat 2 s), and prints their event log.
"""

from __future__ import annotations

import argparse

from raftlog.core.types import EntryKind, Role
from raftlog.sim.harness import Harness, HarnessOptions

TICK_S = 0.1  # one core tick is 100 ms of virtual time


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the lab's typical run on a simulated 3-node cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the election timeouts")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    h = Harness(
        HarnessOptions(
            nodes=3,
            seed=args.seed,
            election_timeout_min_ticks=60,
            election_timeout_max_ticks=100,
            heartbeat_ticks=20,
            quiet_heartbeats=False,
        )
    )
    now = 0

    def show(lines: list[str]) -> None:
        for line in lines:
            if not line.startswith("  "):  # events, not message deliveries
                print(f"{now * TICK_S:6.1f}s {line}")

    def leader() -> int | None:
        found = [n.id for n in h.nodes.values() if n.raft.role is Role.LEADER]
        return found[0] if found else None

    print("raftlog demo: 3 simulated nodes, the lab's timings, virtual time\n")
    show(h.take_lines())
    while leader() is None and now < 1000:
        h.elapse(1)
        now += 1
        show(h.take_lines())
    lead = leader()
    if lead is None:
        print("no leader elected")
        return 1
    for command in ("SET 5", "ADD 1"):
        h.propose(lead, command.encode())
        show(h.take_lines())
        h.elapse(1)
        now += 1
        show(h.take_lines())
    for _ in range(25):  # one heartbeat more
        h.elapse(1)
        now += 1
        show(h.take_lines())
    print()
    for node_id in h.ids:
        log = [e.data.decode() for e in h.log(node_id) if e.kind is EntryKind.NORMAL]
        status = h.status(node_id)
        print(f"node {node_id} ({status.role.value}, term {status.term}): committed log {log}")
    logs = {tuple(e for e in h.log(n)) for n in h.ids}
    print(
        f"\ndemo: ok, leader {lead}, all 3 logs equal" if len(logs) == 1 else "\ndemo: logs differ"
    )
    print("(real processes arrive with the node runtime: `raftlog node`, `raftlog cluster`)")
    return 0 if len(logs) == 1 else 1
