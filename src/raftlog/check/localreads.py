"""Local reads (``consistency=local``) checked against the staleness they report.

A local read answers from the serving node's own applied log, with no round to the
leader: it may be stale, and says how stale (``staleness``: the index it has applied, its
commit index, how long ago it heard from its leader). It is not linearizable and is not
checked as if it were. What a local read does promise, and what is checked here for each
successful one, against the final committed log and the other operations' times:

1. **Complete, no gaps.** Its records are exactly the final log's records from the index
   it asked from (``from``) through its reported ``applied`` index, cut to the number it
   asked for (``limit``): none missing (at the start, between, or at the end), none the
   final log lacks, each with the final log's data. A page the server cut short (its
   byte cap, after one record at least) says where to go on (``next``): it may end
   early, exactly there.
2. **Nothing past what it reports.** No record above its reported ``applied`` index, and
   ``applied`` is not above its reported ``commit``.
3. **Nothing from the future.** The state it reports (the log through ``applied``)
   existed before the read returned: every client append placed at or below ``applied``
   was invoked before the read's return.

So a local read's answer equals the committed log at some point between the reported
applied index and the present, as the node said: a node that served entries it had not
applied (or not committed), invented, reordered or left out entries, or under-reported
its staleness fails this check. How far behind it is allowed to be is not bounded: that is what the
report is for (a follower cut off from its leader answers with what it has).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LocalVerdict:
    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)


def check_local_reads(
    ops: Iterable[Mapping[str, Any]],
    final: Sequence[tuple[int, str]],
    invoked: Mapping[str, float],
) -> LocalVerdict:
    """Check every ok local read in ``ops`` (chaos history records: ``from`` and
    ``limit`` as asked, ``window`` as ``[[index, data], ...]``, ``next``, ``applied``,
    ``commit``, ``ret``) against the ``final`` log (``(index, data)`` records in order)
    and ``invoked``: when each client value's append was first invoked (values no client
    appended, such as the run's own probes, are left out)."""
    indexes = [i for i, _v in final]
    # latest[k]: the latest invocation among the appends of the first k + 1 records.
    latest: list[tuple[float, int]] = []
    for index, value in final:
        at = (invoked.get(value, float("-inf")), index)
        latest.append(max(latest[-1], at) if latest else at)
    problems: list[str] = []
    checked = 0
    for op in ops:
        if op.get("kind") != "read" or op.get("status") != "ok" or op.get("level") != "local":
            continue
        checked += 1
        rid, node, applied, commit = op["id"], op["node"], op["applied"], op["commit"]
        start, limit, following = op["from"], op["limit"], op.get("next")
        window = [(int(i), str(d)) for i, d in op["window"]]
        where = f"local read {rid} from node {node} (from {start}, applied {applied})"
        if applied > commit:
            problems.append(f"{where} reports applied above its commit {commit}")
        lo, hi = bisect.bisect_left(indexes, start), bisect.bisect_right(indexes, applied)
        want = list(final[lo:hi])[:limit]
        problem = _window_problem(window, want, applied, following)
        if problem is not None:
            problems.append(f"{where} {problem}")
        upto = bisect.bisect_right(indexes, applied)
        ret = float(op["ret"])
        if upto and latest[upto - 1][0] > ret:
            call, index = latest[upto - 1]
            problems.append(
                f"{where} returned at {ret:g} a state holding index {index}, "
                f"whose append was invoked later, at {call:g}"
            )
    return LocalVerdict(not problems, checked, problems)


def _window_problem(
    window: list[tuple[int, str]],
    want: list[tuple[int, str]],
    applied: int,
    following: int | None,
) -> str | None:
    """What is wrong with a read's ``window`` that should be ``want`` (None: nothing)."""
    k = next(
        (k for k, (w, e) in enumerate(zip(window, want, strict=False)) if w != e),
        min(len(window), len(want)),
    )
    if k < len(window) and k < len(want):
        return f"returned {window[k]} where the final log has {want[k]}"
    if k < len(window):  # more than it should have
        index = window[k][0]
        if index > applied:
            return f"returned entry {index}, past what it applied"
        return f"returned {window[k]}, which the final log's records there do not hold"
    # Less than it should have: only a page the server cut short (it always holds at
    # least one record) may, ending where its ``next`` says.
    if k < len(want) and (k == 0 or following != want[k][0]):
        return (
            f"is incomplete: it returned {len(window)} records, the final log holds "
            f"{len(want)} there (the first missing: {want[k]})"
        )
    return None
