"""`raftlog demo`: the lab's runs on a local 3-node cluster of real processes.

``typical``, ``split-vote``, ``dead-leader`` and ``dead-follower`` start three node
processes, print their interleaved event logs, and end with a verdict line they checked
themselves. ``simulated`` runs the typical run on three Raft cores in the deterministic
harness instead, in virtual time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from raftlog.core.types import EntryKind, Role
from raftlog.sim.harness import Harness, HarnessOptions

SCENARIOS = ("typical", "split-vote", "dead-leader", "dead-follower")
TICK_S = 0.1  # one core tick is 100 ms of virtual time


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the lab's runs on a local 3-node cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "scenario",
        nargs="?",
        default="typical",
        choices=(*SCENARIOS, "simulated"),
        help="which run (default typical)",
    )
    p.add_argument(
        "--fast", action="store_true", help="150-300 ms timeouts instead of the lab's 6-10 s"
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--graceful",
        action="store_true",
        help="stop the node with SIGTERM, then SIGKILL after a grace period (a leader "
        "hands over first: dead-leader checks that it did)",
    )
    how.add_argument("--pause", action="store_true", help="freeze the node with SIGSTOP instead")
    p.add_argument("--seed", type=int, default=1, help="simulated: seed of the election timeouts")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.scenario == "simulated":
        return run_simulated(args)
    from raftlog.local.control import ControlError  # noqa: PLC0415
    from raftlog.local.demos import DemoFailed, DemoOptions, run_demo  # noqa: PLC0415
    from raftlog.server.eventlog import want_color  # noqa: PLC0415

    options = DemoOptions(
        scenario=args.scenario,
        fast=args.fast,
        graceful=args.graceful,
        pause=args.pause,
        color=want_color(sys.stdout),
        echo=lambda line: print(line, flush=True),
    )
    try:
        verdict = asyncio.run(run_demo(options))
    except (DemoFailed, ControlError, TimeoutError) as exc:
        print(f"{args.scenario}: FAILED: {exc}", flush=True)
        return 1
    print(verdict, flush=True)
    return 0


def run_simulated(args: argparse.Namespace) -> int:
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
