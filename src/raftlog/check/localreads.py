"""Local reads (``consistency=local``) checked against the staleness they report.

A local read answers from the serving node's own applied log, with no round to the
leader: it may be stale, and says how stale (``staleness``: the index it has applied, its
commit index, how long ago it heard from its leader). It is not linearizable and is not
checked as if it were. What a local read does promise, and what is checked here for each
successful one, against the final committed log and the other operations' times:

1. **A prefix, no gaps.** Its records are exactly the final log's records from the first
   index it returned through the last (none missing between, none the final log lacks,
   each with the final log's data).
2. **Nothing past what it reports.** No record above its reported ``applied`` index, and
   ``applied`` is not above its reported ``commit``.
3. **Nothing from the future.** The state it reports (the log through ``applied``)
   existed before the read returned: every client append placed at or below ``applied``
   was invoked before the read's return.

So a local read's answer equals the committed log at some point between the reported
applied index and the present, as the node said: a node that served entries it had not
applied (or not committed), invented or reordered entries, or under-reported its staleness
fails this check. How far behind it is allowed to be is not bounded: that is what the
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
    """Check every ok local read in ``ops`` (chaos history records: ``window`` as
    ``[[index, data], ...]``, ``applied``, ``commit``, ``ret``) against the ``final`` log
    (``(index, data)`` records in order) and ``invoked``: when each client value's append
    was first invoked (values no client appended, such as the run's own probes, are left out)."""
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
        window = [(int(i), str(d)) for i, d in op["window"]]
        where = f"local read {rid} from node {node} (applied {applied})"
        if applied > commit:
            problems.append(f"{where} reports applied above its commit {commit}")
        if window:
            first, last = window[0][0], window[-1][0]
            lo, hi = bisect.bisect_left(indexes, first), bisect.bisect_right(indexes, last)
            expected = list(final[lo:hi])
            if window != expected:
                k = next(
                    (k for k, (w, e) in enumerate(zip(window, expected, strict=False)) if w != e),
                    min(len(window), len(expected)),
                )
                got = window[k] if k < len(window) else "nothing"
                want = expected[k] if k < len(expected) else "nothing"
                problems.append(
                    f"{where} is not the final log's records {first}..{last}: "
                    f"it returned {got} where the final log has {want}"
                )
            if last > applied:
                problems.append(f"{where} returned entry {last}, past what it applied")
        upto = bisect.bisect_right(indexes, applied)
        ret = float(op["ret"])
        if upto and latest[upto - 1][0] > ret:
            call, index = latest[upto - 1]
            problems.append(
                f"{where} returned at {ret:g} a state holding index {index}, "
                f"whose append was invoked later, at {call:g}"
            )
    return LocalVerdict(not problems, checked, problems)
