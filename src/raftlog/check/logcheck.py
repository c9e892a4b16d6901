"""Linearizability of an append-only log of unique values, in O(n log n).

The object: a log that clients append unique values to (each append answers with the
value's 1-based position) and read (a read answers with the whole log as it was). Because
every value is unique and every answer names a position, the order of the linearization
is forced: appends in log order, each read right after the append its answer ends with.
What is left to check is that this order exists and respects real time:

1. the final log holds no value twice, and only values that some append tried to add
   and that were not reported as failed;
2. every acknowledged append's value sits at its acknowledged position;
3. every read's answer is a prefix of the final log;
4. no operation that finished before another began comes after it in the forced order.

Ops whose outcome is unknown (``info``) take part only if their value is in the log, as
appends that finished at an unknown time (never). Failed reads say nothing.

Check 4 compares only pairs of operations; that is enough because real-time precedence
between intervals is an interval order: any cycle through the forced order and real time
contains a cycle of two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import msgspec

Status = Literal["ok", "fail", "info"]


class LogOp(msgspec.Struct, frozen=True):
    """One client operation on the log.

    ``call``/``ret`` are the invoke and completion times (``ret`` is ``math.inf`` when the
    outcome is unknown). An ok append has ``position``; an ok read has ``result``.
    """

    id: int
    client: int
    kind: Literal["append", "read"]
    call: float
    ret: float
    status: Status
    value: bytes = b""
    position: int = 0
    result: tuple[bytes, ...] = ()

    def describe(self) -> str:
        end = "?" if math.isinf(self.ret) else f"{self.ret:g}"
        span = f"[{self.call:g}, {end}]"
        if self.kind == "append":
            what = f"append {self.value!r}"
            if self.status == "ok":
                what += f" -> position {self.position}"
        else:
            what = "read"
            if self.status == "ok":
                what += f" -> {len(self.result)} values"
        return f"op {self.id} client {self.client} {what} {self.status} {span}"


class LogCheckResult(msgspec.Struct, frozen=True):
    ok: bool
    problems: tuple[str, ...]
    checked_ops: int

    def describe(self) -> str:
        if self.ok:
            return f"linearizable ({self.checked_ops} operations)"
        return "not linearizable:\n  " + "\n  ".join(self.problems)


def check_log_history(
    ops: Sequence[LogOp], final_log: Sequence[bytes], *, max_problems: int = 10
) -> LogCheckResult:
    """Is ``ops`` linearizable for an append-only log whose final content is ``final_log``?

    ``final_log`` must hold every value that any node committed: it is the log after the
    run, read from a node that has applied everything.
    """
    problems: list[str] = []
    found = 0

    def problem(text: str) -> None:
        nonlocal found
        found += 1
        if len(problems) < max_problems:
            problems.append(text)

    position_of: dict[bytes, int] = {}
    for pos, value in enumerate(final_log, start=1):
        if value in position_of:
            problem(f"value {value!r} is in the log twice (positions {position_of[value]}, {pos})")
        else:
            position_of[value] = pos

    appends: dict[bytes, LogOp] = {}
    for op in ops:
        if op.kind == "append":
            if op.value in appends:
                problem(f"value {op.value!r} was appended twice: values must be unique")
            appends[op.value] = op

    for value, pos in position_of.items():
        appended = appends.get(value)
        if appended is None:
            problem(f"value {value!r} at position {pos} was never appended by a client")
        elif appended.status == "fail":
            problem(
                f"value {value!r} is at position {pos} but its append failed: {appended.describe()}"
            )

    # (slot, op): an append at position p has slot 2p, a read of length L slot 2L + 1.
    slotted: list[tuple[int, LogOp]] = []
    for op in ops:
        if op.kind == "append":
            pos = position_of.get(op.value, 0)
            if op.status == "ok":
                if pos == 0 or pos != op.position:
                    where = f"at position {pos}" if pos else "not in the log"
                    problem(
                        f"acknowledged append lost or misplaced: {op.describe()}, "
                        f"but the value is {where}"
                    )
                    continue
                slotted.append((2 * pos, op))
            elif op.status == "info" and pos:
                slotted.append((2 * pos, op))
        elif op.status == "ok":
            n = len(op.result)
            if tuple(final_log[:n]) != op.result:
                first_diff = next(
                    (
                        i + 1
                        for i, (a, b) in enumerate(zip(op.result, final_log, strict=False))
                        if a != b
                    ),
                    min(n, len(final_log)) + 1,
                )
                problem(
                    f"read is not a prefix of the final log (differs at position "
                    f"{first_diff}): {op.describe()}"
                )
                continue
            slotted.append((2 * n + 1, op))

    # Real time: nothing placed later may have finished before something placed earlier
    # began. Walk slots from the top, carrying the earliest completion seen above.
    slotted.sort(key=lambda item: item[0], reverse=True)
    earliest_ret = math.inf
    earliest_op: LogOp | None = None
    i = 0
    while i < len(slotted):
        slot = slotted[i][0]
        j = i
        while j < len(slotted) and slotted[j][0] == slot:
            op = slotted[j][1]
            if earliest_op is not None and earliest_ret < op.call:
                problem(
                    "real-time order violated: "
                    f"{earliest_op.describe()} finished before {op.describe()} began, "
                    "yet the log orders it after"
                )
            j += 1
        for k in range(i, j):
            op = slotted[k][1]
            if op.ret < earliest_ret:
                earliest_ret, earliest_op = op.ret, op
        i = j

    return LogCheckResult(ok=not found, problems=tuple(problems), checked_ops=len(slotted))
