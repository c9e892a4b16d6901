"""``raftlog grade``: any implementation of the lab through the lab's four runs.

:func:`grade` runs the chosen scenarios (:mod:`raftlog.grade.runner`) one after the other,
each on a fresh cluster of the submission's nodes in the lab's topology (network
namespaces: root, Linux), judges each run's record (:mod:`raftlog.grade.checks`) and
returns a :class:`~raftlog.grade.report.GradeResult`; :mod:`raftlog.grade.report` turns it
into text, HTML and JSON. A split-vote run that did not produce a split vote is tried
again on a fresh cluster, up to ``attempts`` times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from raftlog.grade.checks import check_run
from raftlog.grade.model import RUNS, Check, RunRecord, Timings
from raftlog.grade.report import GradeResult, RunResult
from raftlog.grade.runner import run_one
from raftlog.grade.submission import Submission, SubmissionError

__all__ = [
    "RUNS",
    "Check",
    "GradeResult",
    "RunRecord",
    "Submission",
    "SubmissionError",
    "Timings",
    "grade",
]


def _split_seen(checks: list[Check]) -> bool:
    return any(c.name == "split-observed" and c.verdict == "pass" for c in checks)


async def grade_async(
    submission: Submission,
    timings: Timings,
    runs: Sequence[str] = RUNS,
    *,
    attempts: int = 1,
    echo: Callable[[str], None] = print,
) -> GradeResult:
    began = time.monotonic()
    result = GradeResult(
        submission=submission.name,
        directory=str(submission.directory),
        command=submission.command,
        source=submission.source,
        timings=timings,
    )
    for name in runs:
        for attempt in range(1, (attempts if name == "split-vote" else 1) + 1):
            echo(f"{name}" + (f" (attempt {attempt})" if attempt > 1 else "") + ": starting")
            rec = await run_one(name, submission, timings, attempt=attempt, echo=echo)
            checks = check_run(rec)
            result.runs.append(RunResult(rec, checks))
            failed = [c.name for c in checks if c.failed]
            echo(f"{name}: {'FAIL ' + ', '.join(failed) if failed else 'pass'}")
            if name != "split-vote" or _split_seen(checks) or failed:
                break
    result.wall_s = time.monotonic() - began
    return result


def grade(
    submission: Submission,
    timings: Timings,
    runs: Sequence[str] = RUNS,
    *,
    attempts: int = 1,
    echo: Callable[[str], None] = print,
) -> GradeResult:
    """Grade ``submission`` (see the module's docstring)."""
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        raise SubmissionError(f"no run {unknown[0]!r}; the runs are {', '.join(RUNS)}")
    return asyncio.run(grade_async(submission, timings, runs, attempts=attempts, echo=echo))
