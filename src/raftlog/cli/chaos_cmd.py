"""`raftlog chaos`: a built-in Jepsen-style test of a real cluster."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

DESCRIPTION = """\
Start a cluster of real node processes on this machine, run CLIENTS concurrent clients
that append unique values (exactly once, with client ids and sequence numbers) and read
at the --reads level for TIME seconds while a nemesis injects faults, then heal everything
and check the recorded history: no two leaders in one term, committed logs are prefixes
of one another, every acknowledged append is in the final log at its index (once), the
history is linearizable (linearizable and lease reads with it; local reads, which may be
stale, are checked apart: each must hold exactly the committed log's records from where it
asked through the applied index it reports (up to its limit), and nothing appended after
it returned), and the cluster recovered within 10 s of the heal. Exit status 0 only if
every check passed.
--out DIR writes the history (JSON lines), every node's event log, recording.json (the
timeline's typed recording) and report.html, one self-contained page with the verdict,
the checks and the timeline (it opens offline).

Nemeses: kill (SIGKILL, restart later), pause (SIGSTOP/SIGCONT of a node, the leader
half the time), pause-leader (the leader cut off and stopped until another node leads and
has acknowledged an append, with a read at the --reads level in flight to it when it
wakes; then the cut heals), pause-leader-acks (the same, but the leader is stopped with a
follower's acknowledgements waiting in its socket and then cut off by its peers alone, so
that it reads them when it wakes), partition (random halves, the leader cut off, one
link, a node bridging two halves), restart-all (SIGKILL of every node at once),
membership (a node joins, or a member is removed). On loopback a partition is injected
inside the nodes (a test-only endpoint drops their messages); with --netns (root) the
nodes run in the namespaces of `raftlog netcluster` and partitions cut the network
itself."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from raftlog.chaos.runner import NEMESES, READ_LEVELS  # noqa: PLC0415

    p = sub.add_parser(
        "chaos",
        help="attack a real cluster while clients work, then check the history",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nodes", type=int, default=3, help="nodes in the cluster (default 3)")
    p.add_argument("--time", type=float, default=60.0, help="seconds of faults (default 60)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument(
        "--reads",
        choices=READ_LEVELS,
        default="linearizable",
        help="the clients' read level: linearizable (ReadIndex), lease (the leader's lease), "
        "local (the node's own state, checked against the staleness it reports); "
        "default linearizable",
    )
    p.add_argument(
        "--nemesis",
        default="kill,pause,partition",
        help=f"comma-separated faults from {','.join(NEMESES)} (default kill,pause,partition)",
    )
    p.add_argument("--seed", type=int, help="seed of the nemesis and the clients' choices")
    p.add_argument(
        "--netns",
        action="store_true",
        help="run the nodes in network namespaces (root) and cut links in the network",
    )
    p.add_argument("--out", type=Path, help="write the history, node logs and report here")
    p.add_argument(
        "--inject-bug",
        action="append",
        default=[],
        metavar="NAME",
        help="test-only: run the nodes with a known bug (stale-read, ack-before-fsync, "
        "endless-lease, ack-at-handling, or any of the core's)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from raftlog.chaos.report import describe_checks  # noqa: PLC0415
    from raftlog.chaos.runner import NEMESES, Chaos, ChaosOptions  # noqa: PLC0415
    from raftlog.cli.node_cmd import ALL_BUGS  # noqa: PLC0415

    nemesis = tuple(n.strip() for n in args.nemesis.split(",") if n.strip())
    unknown = [n for n in nemesis if n not in NEMESES]
    bad_bugs = [b for b in args.inject_bug if b not in ALL_BUGS]
    if unknown or bad_bugs or args.nodes < 1 or args.clients < 1 or args.time <= 0:
        problem = (
            f"unknown nemesis {unknown}"
            if unknown
            else f"unknown bug {bad_bugs}"
            if bad_bugs
            else "--nodes, --clients and --time must be positive"
        )
        print(f"raftlog chaos: {problem}", file=sys.stderr)
        return 2
    options = ChaosOptions(
        nodes=args.nodes,
        time_s=args.time,
        clients=args.clients,
        nemesis=nemesis,
        seed=args.seed,
        out=args.out,
        inject_bugs=tuple(args.inject_bug),
        netns=args.netns,
        reads=args.reads,
    )
    if args.netns and "membership" in nemesis:
        print(
            "raftlog chaos: the membership nemesis runs on loopback only (the network "
            "namespaces are a fixed node_1..node_N topology)",
            file=sys.stderr,
        )
        return 2
    if args.netns:
        from raftlog.local.netcluster import unavailable_reason  # noqa: PLC0415

        reason = unavailable_reason()
        if reason:
            print(f"raftlog chaos: --netns: {reason}", file=sys.stderr)
            return 2
    tty = sys.stderr.isatty()
    chaos = Chaos(options, echo=lambda line: print(line, file=sys.stderr, flush=True))
    started = time.monotonic()

    async def main() -> object:
        progress = asyncio.create_task(_progress(chaos, options.time_s, tty))
        try:
            return await chaos.run()
        finally:
            progress.cancel()

    result = asyncio.run(main())
    elapsed = time.monotonic() - started
    from raftlog.chaos.runner import ChaosResult  # noqa: PLC0415

    assert isinstance(result, ChaosResult)
    s = result.summary
    print(
        f"chaos: {s['nodes']} nodes, {s['clients']} clients ({s['reads']} reads), "
        f"{s['duration_s']:g} s of {s['nemesis']} ({s['faults']} faults), {elapsed:.0f} s in all"
    )
    served = f"; {s['lease_reads']} reads served from a lease" if s["reads"] == "lease" else ""
    print(
        f"operations: {s['ops_ok']} ok, {s['ops_fail']} failed, {s['ops_info']} unknown; "
        f"final log {s['final_log_entries']} entries{served}"
    )
    print(describe_checks([c.as_dict() for c in result.checks]))
    if options.out is not None:
        print(f"report: {options.out / 'report.html'}")
    print(f"chaos: {'PASS' if result.ok else 'FAIL'}")
    return 0 if result.ok else 1


async def _progress(chaos: object, total: float, tty: bool) -> None:
    from raftlog.chaos.runner import Chaos  # noqa: PLC0415

    assert isinstance(chaos, Chaos)
    started = time.monotonic()
    while True:
        await asyncio.sleep(1.0)
        if not tty:
            continue
        done = min(total, time.monotonic() - started)
        width = 30
        filled = int(width * done / total)
        ops = len(chaos.rec.ops)
        faults = len(chaos.rec.faults)
        sys.stderr.write(
            f"\rchaos [{'#' * filled}{'-' * (width - filled)}] {done:4.0f}/{total:g} s "
            f"{ops} ops {faults} faults   "
        )
        sys.stderr.flush()
