"""`raftlog bench`: throughput, latency and failover of a local cluster of real processes."""

from __future__ import annotations

import argparse
import asyncio
import sys


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="measure a local cluster: appends/s, latency, failover, growth, catch-up",
        description=(
            "--what throughput (the default): start a local cluster (fast timings unless "
            "--lab), run CLIENTS concurrent HTTP clients appending to the leader for SECONDS, "
            "then kill -9 the leader FAILOVERS times and measure the time until an append "
            "commits again. --what growth: append in steps (--entries 10000,100000,1000000) "
            "and at each step record every node's memory, its files, and how long a "
            "restarted follower takes to serve and to catch up. --what catchup: a follower "
            "down while --entries entries are appended, then its time to serve once started "
            "and its catch-up time from then on, with snapshots and without. --what "
            "transfer: leadership transfers, from the request to the new leader's first "
            "commit. Numbers depend on the machine and its load: "
            "compare runs made side by side."
        ),
    )
    p.add_argument(
        "--what", choices=("throughput", "growth", "catchup", "transfer"), default="throughput"
    )
    p.add_argument(
        "--entries",
        default=None,
        help="growth: steps, e.g. 10000,100000,1000000; catchup: one count (default 100000)",
    )
    p.add_argument("--snapshot-entries", type=int, default=10_000, help="growth: threshold")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--failovers", type=int, default=3)
    p.add_argument("--lab", action="store_true", help="use the lab's timings (slow failover)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from raftlog.local.bench import run_bench  # noqa: PLC0415

    if args.what != "throughput":
        return run_growth_or_catchup(args)
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


def run_growth_or_catchup(args: argparse.Namespace) -> int:
    from raftlog.local import bench_growth  # noqa: PLC0415

    try:
        counts = [int(x) for x in (args.entries or "").split(",") if x.strip()]
    except ValueError:
        print(f"raftlog bench: --entries takes numbers, not {args.entries!r}", file=sys.stderr)
        return 2
    if any(n < 1 for n in counts):
        print("raftlog bench: --entries must be positive", file=sys.stderr)
        return 2
    if args.what == "transfer":
        import statistics  # noqa: PLC0415

        times = asyncio.run(bench_growth.run_transfer(counts[0] if counts else 20))
        ordered = sorted(times)
        print(
            f"leadership transfer, request to the new leader's first commit ({len(times)} "
            f"rounds): median {statistics.median(times):.1f} ms, "
            f"p90 {ordered[int(0.9 * (len(ordered) - 1))]:.1f} ms, max {ordered[-1]:.1f} ms"
        )
        return 0
    if args.what == "growth":
        steps = sorted(counts or [10_000, 100_000])
        growth = asyncio.run(bench_growth.run_growth(steps, snapshot_entries=args.snapshot_entries))
        print(growth.table())
        return 0
    rows = asyncio.run(bench_growth.run_catchup(counts[0] if counts else 100_000))
    print(bench_growth.catchup_table(rows))
    return 0
