"""Run the fuzz targets: ``python tests/fuzz/run_fuzz.py --inputs N --seed S``.

Prints, per target, the inputs run, what was accepted and rejected (by reason) and the
failures; exits 1 if there was any failure. Each failing input is saved (``--out``,
default ``fuzz-failures/``) as ``TARGET-sSEED-iINDEX.bin`` with its traceback beside it,
and ``--replay FILE`` runs that one input again. ``make fuzz`` runs 1,000,000 inputs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fuzzlib import Report, Target, check_one, quiet_loggers, run_target, split_count  # noqa: E402
from targets import all_targets  # noqa: E402

QUIET = ("raftlog", "aiohttp", "asyncio")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_fuzz.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--inputs", type=int, default=10_000, help="inputs in all (default 10000)")
    p.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    p.add_argument(
        "--targets",
        default="",
        help="comma-separated target names (default: all); --list shows them",
    )
    p.add_argument("--list", action="store_true", help="list the targets and exit")
    p.add_argument("--out", type=Path, default=Path("fuzz-failures"), help="failing inputs go here")
    p.add_argument("--replay", type=Path, help="run one saved input (TARGET-s*-i*.bin) again")
    return p


def pick(names: str) -> list[Target]:
    targets = all_targets()
    if not names:
        return targets
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {t.name: t for t in targets}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown target(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in wanted]


async def replay(path: Path) -> int:
    name = path.name.split("-s")[0]
    (target,) = pick(name)
    data = path.read_bytes()
    async with target:
        try:
            ok, label = await check_one(target, data)
        except Exception:
            traceback.print_exc()
            print(f"{name}: {path}: FAILS")
            return 1
    print(f"{name}: {path}: {'accepted' if ok else 'rejected'}: {label}")
    return 0


async def run(inputs: int, seed: int, targets: list[Target], out: Path) -> list[Report]:
    counts = split_count(inputs, targets)
    reports = []
    for target in targets:
        last = [time.monotonic()]

        def progress(report: Report, last: list[float] = last) -> None:
            now = time.monotonic()
            if now - last[0] >= 30:
                last[0] = now
                print(f"  ... {report.target}: {report.inputs} inputs", flush=True)

        report = await run_target(target, counts[target.name], seed, out, progress)
        print("\n".join(report.lines()), flush=True)
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        for t in all_targets():
            print(f"{t.name:16} weight {t.weight:g}  {(t.__doc__ or '').split(chr(10))[0]}")
        return 0
    with quiet_loggers(*QUIET):
        if args.replay is not None:
            return asyncio.run(replay(args.replay))
        targets = pick(args.targets)
        started = time.perf_counter()
        print(
            f"fuzzing {args.inputs} inputs, seed {args.seed}: {', '.join(t.name for t in targets)}"
        )
        reports = asyncio.run(run(args.inputs, args.seed, targets, args.out))
    total = sum(r.inputs for r in reports)
    failures = sum(len(r.failures) for r in reports)
    print(
        f"total: {total} inputs, {failures} failures, "
        f"{time.perf_counter() - started:.0f} s (seed {args.seed})"
    )
    if failures:
        print(f"failing inputs saved in {args.out}/ (replay: --replay FILE)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
