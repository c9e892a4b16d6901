"""`raftlog bench`: throughput, latency and failover of a local cluster of real processes."""

from __future__ import annotations

import argparse
import asyncio
import sys


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="measure a local cluster: appends/s, latency, failover time",
        description=(
            "Start a local cluster (fast timings unless --lab), run CLIENTS concurrent HTTP "
            "clients appending to the leader for SECONDS, then kill -9 the leader FAILOVERS "
            "times and measure the time until an append commits again. Numbers depend on "
            "the machine and its load: compare runs made side by side."
        ),
    )
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--failovers", type=int, default=3)
    p.add_argument("--lab", action="store_true", help="use the lab's timings (slow failover)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from raftlog.local.bench import run_bench  # noqa: PLC0415

    if args.nodes < 1 or args.clients < 1 or args.seconds <= 0:
        print("raftlog bench: --nodes, --clients and --seconds must be positive", file=sys.stderr)
        return 2
    if args.failovers and args.nodes < 3:
        print("raftlog bench: failovers need at least 3 nodes (or --failovers 0)", file=sys.stderr)
        return 2

    result = asyncio.run(
        run_bench(
            nodes=args.nodes,
            clients=args.clients,
            seconds=args.seconds,
            failovers=args.failovers,
            fast=not args.lab,
        )
    )
    print(result.table())
    return 0
