"""Running many seeded simulations, in parallel processes, and summarising them."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

from raftlog.sim.cluster import SimOptions, SimResult, nodes_for_seed, run


@dataclass
class Summary:
    runs: int = 0
    failures: list[SimResult] = field(default_factory=list)
    steps: int = 0
    virtual_ms: int = 0
    ops_ok: int = 0
    elapsed_s: float = 0.0
    by_property: Counter[str] = field(default_factory=Counter)

    def add(self, result: SimResult) -> None:
        self.runs += 1
        self.steps += result.steps
        self.virtual_ms += result.virtual_ms
        self.ops_ok += result.ops_ok
        if result.violation is not None:
            self.failures.append(result)
            self.by_property[result.violation.prop] += 1


def _run_one(args: tuple[int, SimOptions]) -> SimResult:
    seed, options = args
    return run(seed, options)


def run_seeds(
    seeds: Sequence[int],
    sizes: Sequence[int],
    options: SimOptions,
    *,
    jobs: int = 1,
    fail_fast: bool = False,
    on_result: Callable[[SimResult], None] | None = None,
) -> Summary:
    """Run every seed (cluster size chosen by :func:`nodes_for_seed`) and summarise."""
    summary = Summary()
    started = time.perf_counter()
    work = [(seed, replace(options, nodes=nodes_for_seed(seed, sizes))) for seed in seeds]
    for result in _results(work, jobs):
        summary.add(result)
        if on_result is not None:
            on_result(result)
        if fail_fast and result.violation is not None:
            break
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _results(work: list[tuple[int, SimOptions]], jobs: int) -> Iterator[SimResult]:
    if jobs <= 1 or len(work) < 2:
        for item in work:
            yield _run_one(item)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_run_one, work, chunksize=max(1, min(16, len(work) // (jobs * 8))))


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)
