"""`raftlog sim`: run seeded simulations of Raft clusters under faults."""

from __future__ import annotations

import argparse
import sys

from raftlog.cli.progress import ProgressBar
from raftlog.core.config import KNOWN_BUGS
from raftlog.sim.cluster import ALL_FAULTS, SimOptions, SimResult, nodes_for_seed, parse_faults, run
from raftlog.sim.runner import default_jobs, run_seeds

DESCRIPTION = """\
Run deterministic simulations of a Raft cluster: real Raft cores over simulated disks and a
simulated network, with faults injected and every safety property checked after every
step. Each seed replays exactly. The last line is `sim: <runs> runs, <violations>
violations`; the exit status is 0 only when there was no violation."""


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--nodes takes sizes like 3,5,7, not {text!r}") from None
    if not sizes or any(n < 1 or n > 15 for n in sizes):
        raise argparse.ArgumentTypeError("cluster sizes must be between 1 and 15")
    return sizes


def _faults(text: str) -> frozenset[str]:
    try:
        return parse_faults(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "sim",
        help="run seeded simulations with fault injection and safety checks",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--seeds", type=int, default=100, help="number of seeds to run (default 100)"
    )
    group.add_argument("--seed", type=int, help="run this one seed (see --trace)")
    p.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    p.add_argument(
        "--nodes",
        type=_sizes,
        default=[3, 5, 7],
        help="cluster sizes, comma-separated; seed S runs with sizes[S %% len(sizes)] "
        "(default 3,5,7)",
    )
    p.add_argument(
        "--faults",
        type=_faults,
        default=frozenset(ALL_FAULTS),
        help=f"all, none, or a list of: {','.join(ALL_FAULTS)} (default all)",
    )
    p.add_argument(
        "--steps", type=int, default=SimOptions.steps, help="events in the chaos phase per run"
    )
    p.add_argument("--clients", type=int, default=SimOptions.clients, help="concurrent clients")
    p.add_argument(
        "--inject-bug",
        action="append",
        default=[],
        choices=sorted(KNOWN_BUGS),
        metavar="NAME",
        help=f"test-only: run with a known bug ({', '.join(sorted(KNOWN_BUGS))})",
    )
    p.add_argument("--trace", action="store_true", help="with --seed: print every event")
    p.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first violation")
    p.set_defaults(handler=run_command)


def _replay_command(result: SimResult, args: argparse.Namespace) -> str:
    faults = (
        "all" if args.faults == frozenset(ALL_FAULTS) else (",".join(sorted(args.faults)) or "none")
    )
    bugs = "".join(f" --inject-bug {b}" for b in args.inject_bug)
    return (
        f"raftlog sim --seed {result.seed} --nodes {result.nodes} --faults {faults} "
        f"--steps {args.steps} --clients {args.clients}{bugs} --trace"
    )


def _report_violation(result: SimResult, args: argparse.Namespace, *, detail: bool) -> None:
    assert result.violation is not None
    out = sys.stdout
    out.write(
        f"VIOLATION seed {result.seed} ({result.nodes} nodes): {result.violation.prop}: "
        f"{result.violation.detail}\n"
    )
    if detail:
        out.write("  last events:\n")
        for line in result.trace[-40:]:
            out.write(f"    {line}\n")
        out.write(f"  replay: {_replay_command(result, args)}\n")


def run_command(args: argparse.Namespace) -> int:
    bugs = frozenset(args.inject_bug)
    options = SimOptions(faults=args.faults, steps=args.steps, clients=args.clients, bugs=bugs)
    if args.seed is not None:
        nodes = nodes_for_seed(args.seed, args.nodes)
        result = run(
            args.seed,
            SimOptions(
                nodes=nodes,
                faults=args.faults,
                steps=args.steps,
                clients=args.clients,
                bugs=bugs,
                trace=args.trace,
            ),
        )
        if args.trace:
            for line in result.trace:
                print(line)
        if result.violation is not None:
            _report_violation(result, args, detail=not args.trace)
        print(
            f"seed {result.seed}: {result.nodes} nodes, {result.steps} steps, "
            f"{result.virtual_ms} ms simulated, {result.ops_ok} ops ok, term {result.max_term}, "
            f"commit {result.commit}"
        )
        print(f"sim: 1 runs, {0 if result.ok else 1} violations")
        return 0 if result.ok else 1

    seeds = range(args.seed_start, args.seed_start + args.seeds)
    bar = ProgressBar(len(seeds), "sim")
    failures = 0

    def on_result(result: SimResult) -> None:
        nonlocal failures
        if result.violation is not None:
            failures += 1
            bar.close()
            _report_violation(result, args, detail=failures == 1)
        bar.update(bar.done + 1, f"{failures} violations")

    summary = run_seeds(
        seeds, args.nodes, options, jobs=args.jobs, fail_fast=args.fail_fast, on_result=on_result
    )
    bar.close()
    rate = summary.runs / max(summary.elapsed_s, 1e-9)
    print(
        f"{summary.runs} runs in {summary.elapsed_s:.1f} s ({rate:.1f} runs/s, "
        f"{summary.steps / max(summary.elapsed_s, 1e-9):,.0f} steps/s, {args.jobs} jobs); "
        f"{summary.ops_ok} client ops acknowledged"
    )
    for prop, count in summary.by_property.most_common():
        print(f"  {prop}: {count} runs")
    print(f"sim: {summary.runs} runs, {len(summary.failures)} violations")
    return 0 if not summary.failures else 1
