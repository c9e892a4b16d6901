"""`raftlog bench`: measure the server, side by side with etcd and PySyncObj."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="measure a local cluster, side by side with etcd and PySyncObj",
        description=(
            "Start a local 3-node cluster (durable, 300-600 ms election timeouts, 50 ms "
            "heartbeat) and measure it with --workloads: throughput (wrk, or raftlog's own "
            "load generator if wrk is missing, POSTing 100-byte values to the leader over "
            "--connections keep-alive connections), latency (one connection, sequential), "
            "failover (kill -9 the leader, time until a write through a survivor succeeds), "
            "catchup (a follower --entries behind: entries/s with snapshots, and replaying the "
            "log without them), library "
            "(appends in-process through raftlog.Node, 1,000 in flight), dashboard (in "
            "pairs, nobody watching and with the live dashboard open in a headless "
            "chromium: the saturating load and a paced one of about 2,400 appends/s; the "
            "drop, and how late the page's timers fired). --compare etcd "
            "runs the same HTTP workloads against a 3-member etcd cluster (Debian's "
            "etcd-server) and --compare pysyncobj the library workload against PySyncObj "
            "(installed into a virtualenv of its own on first use), and --compare tls "
            "the HTTP workloads against raftlog again with TLS on both planes (a "
            "throwaway CA), in the same run, and prints ratios (above 1: raftlog did "
            "better) and the performance goals met. "
            "--what growth|catchup|transfer runs the older single-purpose benchmarks. "
            "Numbers depend on the machine and its load: compare within one run."
        ),
    )
    p.add_argument(
        "--workloads",
        default=None,
        help="comma-separated: throughput,latency,failover,catchup,library,dashboard "
        "(default throughput,latency,failover,library)",
    )
    p.add_argument("--compare", default="", help="comma-separated: etcd,pysyncobj,tls")
    p.add_argument("--seconds", type=float, default=10.0, help="per load run (default 10)")
    p.add_argument(
        "--connections", default="64,256", help="throughput connections (default 64,256)"
    )
    p.add_argument("--failovers", type=int, default=10, help="failover rounds (default 10)")
    p.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="dashboard: pairs of runs without and with the page, per load (default 3)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    p.add_argument("--chart", metavar="PNG", help="draw the results (needs matplotlib)")
    p.add_argument(
        "--event-loop", choices=("auto", "asyncio", "uvloop"), help="the nodes' event loop"
    )
    p.add_argument(
        "--what",
        choices=("suite", "growth", "catchup", "transfer"),
        default="suite",
        help="growth: memory, files and restart time as the log grows (--entries "
        "10000,100000,1000000); catchup: a follower --entries behind, with and without "
        "snapshots; transfer: leadership transfers; suite (default): the workloads above",
    )
    p.add_argument(
        "--entries",
        default=None,
        help="growth: steps, e.g. 10000,100000,1000000; catchup: one count (default 100000)",
    )
    p.add_argument("--snapshot-entries", type=int, default=10_000, help="growth: threshold")
    p.set_defaults(handler=run)


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def run(args: argparse.Namespace) -> int:
    if args.what != "suite":
        return run_growth_or_catchup(args)
    from raftlog.bench import suite  # noqa: PLC0415

    try:
        connections = [int(c) for c in _csv(args.connections)]
        entries = [int(x) for x in _csv(args.entries or "")]
    except ValueError:
        print("raftlog bench: --connections and --entries take numbers", file=sys.stderr)
        return 2
    if (
        args.seconds <= 0
        or args.failovers < 0
        or args.pairs < 1
        or any(c < 1 for c in connections)
        or any(n < 1 for n in entries)
    ):
        print(
            "raftlog bench: --seconds, --connections, --entries and --pairs must be positive",
            file=sys.stderr,
        )
        return 2
    options = suite.Options(
        workloads=_csv(args.workloads) if args.workloads else suite.DEFAULT_WORKLOADS,
        compare=_csv(args.compare),
        seconds=args.seconds,
        connections=connections,
        failovers=args.failovers,
        catchup_entries=entries[0] if entries else 100_000,
        library_seconds=args.seconds,
        event_loop=args.event_loop,
        dashboard_pairs=args.pairs,
    )
    try:
        report = asyncio.run(suite.run(options, say=lambda s: print(s, file=sys.stderr)))
    except (ValueError, RuntimeError) as exc:
        print(f"raftlog bench: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    if args.json == "-":
        print(report.to_json())
    else:
        print(report.table())
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(report.to_json() + "\n")
            print(f"results: {args.json}")
    if args.chart:
        try:
            report.chart(Path(args.chart))
        except ImportError:
            print(
                "raftlog bench: --chart needs matplotlib (pip install 'raftlog[report]')",
                file=sys.stderr,
            )
            return 1
        print(f"chart: {args.chart}", file=sys.stderr if args.json == "-" else sys.stdout)
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
