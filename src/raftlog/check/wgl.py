"""A linearizability checker: Wing & Gong's search with Lowe's memoization.

A history is *linearizable* if every operation that took effect can be given a single
instant between its call and its return such that, taken in the order of those instants,
the operations are a legal sequential run of the model (Herlihy & Wing). ``"fail"``
operations did not happen; ``"info"`` operations may have taken effect at any instant after
their call, or never.

The search (Wing & Gong 1993, with the memoization of Lowe 2017, as in Knossos and
Porcupine):

* The calls and returns of the operations are laid out in time order in a doubly linked
  list. At each step the search tries, in turn, each operation whose call comes before the
  first return in the list (an operation cannot be placed after an operation that returned
  before it was called). Placing an operation *lifts* its call and return out of the list;
  backtracking puts them back.
* Reaching a return means that operation should already have been placed: backtrack.
* A configuration is the set of placed operations (a Python ``int`` used as a bitset) and the
  model's state. The same configuration always has the same future, so a cache of those
  already explored cuts the search from factorial to (at worst) exponential.
* Indeterminate operations have no return in the list: they are never forced, and the
  history is linearizable as soon as every ``"ok"`` operation is placed (the others are
  taken to have never happened). Indeterminate operations the model cannot tell apart
  (:meth:`~raftlog.check.models.Model.op_key`) are placed in call order only, which is
  without loss of generality and removes the symmetric half of the search.
* Operations the model says constrain nothing (e.g. reads whose result is unknown) and
  ``"fail"`` operations are dropped first; then the history is split with
  :meth:`~raftlog.check.models.Model.partition` and each part searched on its own (the
  whole is linearizable iff every part is).

Ties in time: a call and a return at the same instant count as concurrent.

When the history is not linearizable, :class:`Explanation` reports the deepest point the
search reached: the longest prefix it could linearize, the state it leads to, and the
operations that were pending there, none of which could take effect next.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from raftlog.check.history import Operation
from raftlog.check.models import Model

__all__ = ["Explanation", "Result", "Verdict", "check", "format_time"]

Verdict: TypeAlias = Literal["linearizable", "not linearizable", "unknown"]

_CHECK_CLOCK_EVERY = 2048  # search steps between two looks at the clock


def format_time(t: float) -> str:
    """A time for humans: integral values without ``.0``, ``inf`` as ``never``."""
    if math.isinf(t):
        return "never"
    if t == int(t):
        return str(int(t))
    return f"{t:g}"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a history is not linearizable, at the deepest point the search reached.

    Attributes:
        partition: index of the offending part in ``model.partition(...)`` of the history
            (after dropping failed and no-op operations); 0 if the model does not partition.
        partitions: how many parts there were.
        linearized: the longest sequence of operations the search could linearize, in
            linearization order.
        state: the model's state after ``linearized``.
        pending: the operations called but not linearized at that point, in call order. None
            of them can take effect next (illegal in ``state``, or every continuation was
            already explored and failed), and ``blocking`` must take effect before it returns.
        blocking: the ``"ok"`` operation whose return the search could not get past.
        window: the operations to look at, in call order: ``pending`` plus the linearized
            ones that overlap them in time (those the search could have ordered differently).
        lines: a human rendering of the above (no trailing newlines).
    """

    partition: int
    partitions: int
    linearized: tuple[Operation, ...]
    state: Hashable
    pending: tuple[Operation, ...]
    blocking: Operation
    window: tuple[Operation, ...]
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of :func:`check`.

    Attributes:
        verdict: ``"linearizable"``, ``"not linearizable"``, or ``"unknown"`` (only when the
            time limit was hit first).
        explanation: set iff the verdict is ``"not linearizable"``.
        witness: iff linearizable, one linearization per partition (the operations that
            took effect, in order; indeterminate ones that are absent never happened).
        elapsed: seconds spent.
        explored: configurations visited (the size of the memo caches).
    """

    verdict: Verdict
    explanation: Explanation | None = None
    witness: tuple[tuple[Operation, ...], ...] | None = None
    elapsed: float = 0.0
    explored: int = 0

    @property
    def linearizable(self) -> bool:
        """True iff the verdict is ``"linearizable"``."""
        return self.verdict == "linearizable"


@dataclass(slots=True)
class _Deepest:
    ok_placed: int
    linearized: list[int]
    state: Hashable
    pending: list[int]
    blocking: int


@dataclass(slots=True)
class _Outcome:
    verdict: Verdict
    witness: list[int] | None
    deepest: _Deepest | None
    explored: int


class _DeadlineError(Exception):
    pass


def check(model: Model[Any], ops: Sequence[Operation], timeout_s: float | None = None) -> Result:
    """Decide whether ``ops`` is linearizable with respect to ``model``.

    Args:
        model: the sequential specification.
        ops: the history, in any order. Operation ids must be unique.
        timeout_s: give up (verdict ``"unknown"``) after this many seconds; ``None`` for no
            limit.

    Returns:
        A :class:`Result`; ``"unknown"`` only if the time limit was hit.

    Raises:
        ValueError: if an operation is not valid for the model (``model.validate``) or ids
            repeat.
    """
    started = time.monotonic()
    deadline = math.inf if timeout_s is None else started + timeout_s
    seen: set[int] = set()
    kept: list[Operation] = []
    for op in ops:
        if op.id in seen:
            raise ValueError(f"operation id {op.id} appears twice in the history")
        seen.add(op.id)
        model.validate(op)
        if op.status == "fail" or model.constrains_nothing(op):
            continue
        kept.append(op)
    parts = [sorted(p, key=lambda o: (o.call, o.id)) for p in model.partition(kept)]
    # Small parts first: a violation in any part decides the verdict.
    order = sorted(range(len(parts)), key=lambda k: len(parts[k]))
    witnesses: list[tuple[Operation, ...]] = [() for _ in parts]
    explored = 0
    for k in order:
        part = parts[k]
        try:
            outcome = _search(model, part, deadline)
        except _DeadlineError:
            return Result("unknown", elapsed=time.monotonic() - started, explored=explored)
        explored += outcome.explored
        if outcome.verdict == "not linearizable":
            assert outcome.deepest is not None
            explanation = _explain(model, part, outcome.deepest, k, len(parts))
            return Result(
                "not linearizable",
                explanation=explanation,
                elapsed=time.monotonic() - started,
                explored=explored,
            )
        assert outcome.witness is not None
        witnesses[k] = tuple(part[i] for i in outcome.witness)
    return Result(
        "linearizable",
        witness=tuple(witnesses),
        elapsed=time.monotonic() - started,
        explored=explored,
    )


def _search(model: Model[Any], ops: list[Operation], deadline: float) -> _Outcome:
    """Wing & Gong's backtracking search with Lowe's cache over one partition.

    ``ops`` holds no ``"fail"`` operation and is sorted by call time.
    """
    n = len(ops)
    total_ok = sum(1 for op in ops if op.status == "ok")
    if total_ok == 0:
        return _Outcome("linearizable", [], None, 0)

    # Events, in time order; at equal times calls come first (they are concurrent).
    events: list[tuple[float, int, int]] = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        if op.status == "ok":
            events.append((op.ret, 1, i))
    events.sort()
    m = len(events)
    # Doubly linked list over nodes 1..m; 0 is the head, m + 1 the tail sentinel.
    head, tail = 0, m + 1
    nxt = [*range(1, m + 2), tail]
    prv = [head, *range(0, m + 1)]
    is_ret = [False] * (m + 2)
    op_of = [-1] * (m + 2)
    call_node = [0] * n
    ret_node = [0] * n
    for node, (_, kind, i) in enumerate(events, start=1):
        op_of[node] = i
        if kind == 0:
            call_node[i] = node
        else:
            is_ret[node] = True
            ret_node[i] = node
    is_ret[tail] = True  # never reached while an "ok" operation is unplaced

    bit = [1 << i for i in range(n)]
    is_ok = [op.status == "ok" for op in ops]
    # Interchangeable indeterminate operations are placed in call order only: an operation
    # may be placed only once its predecessor in its class is (sym_prev is that bit, or 0).
    sym_prev = [0] * n
    last_in_class: dict[Hashable, int] = {}
    for i, op in enumerate(ops):
        if not is_ok[i]:
            key = model.op_key(op)
            if key in last_in_class:
                sym_prev[i] = bit[last_in_class[key]]
            last_in_class[key] = i

    step = model.step
    cache: set[tuple[int, Hashable]] = set()
    stack: list[tuple[int, Hashable]] = []  # (operation placed, state before it)
    placed = 0
    state: Hashable = model.init()
    ok_left = total_ok
    best_ok_placed = -1
    deepest: _Deepest | None = None
    budget = _CHECK_CLOCK_EVERY
    entry = nxt[head]
    while True:
        budget -= 1
        if budget == 0:
            budget = _CHECK_CLOCK_EVERY
            if time.monotonic() > deadline:
                raise _DeadlineError
        if is_ret[entry]:
            # The operation returning here must have been placed already: dead end.
            ok_placed = total_ok - ok_left
            if ok_placed > best_ok_placed:
                best_ok_placed = ok_placed
                pending: list[int] = []
                node = nxt[head]
                while node != entry:
                    pending.append(op_of[node])
                    node = nxt[node]
                deepest = _Deepest(ok_placed, [i for i, _ in stack], state, pending, op_of[entry])
            if not stack:
                return _Outcome("not linearizable", None, deepest, len(cache))
            i, state = stack.pop()
            placed ^= bit[i]
            if is_ok[i]:
                ok_left += 1
            # Unlift: put the return back, then the call (reverse order of removal).
            r = ret_node[i]
            if r:
                prv[nxt[r]] = r
                nxt[prv[r]] = r
            c = call_node[i]
            prv[nxt[c]] = c
            nxt[prv[c]] = c
            entry = nxt[c]
            continue
        i = op_of[entry]
        prev_bit = sym_prev[i]
        if prev_bit and not placed & prev_bit:
            entry = nxt[entry]
            continue
        legal, new_state = step(state, ops[i])
        if legal:
            new_placed = placed | bit[i]
            config = (new_placed, new_state)
            if config not in cache:
                cache.add(config)
                stack.append((i, state))
                state = new_state
                placed = new_placed
                # Lift: take the call (and the return, if any) out of the list.
                c = call_node[i]
                nxt[prv[c]] = nxt[c]
                prv[nxt[c]] = prv[c]
                r = ret_node[i]
                if r:
                    nxt[prv[r]] = nxt[r]
                    prv[nxt[r]] = prv[r]
                if is_ok[i]:
                    ok_left -= 1
                    if ok_left == 0:
                        return _Outcome("linearizable", [j for j, _ in stack], None, len(cache))
                entry = nxt[head]
                continue
        entry = nxt[entry]


def _explain(
    model: Model[Any],
    ops: list[Operation],
    deepest: _Deepest,
    partition: int,
    partitions: int,
) -> Explanation:
    linearized = tuple(ops[i] for i in deepest.linearized)
    pending = tuple(sorted((ops[i] for i in deepest.pending), key=lambda o: (o.call, o.id)))
    blocking = ops[deepest.blocking]
    # Show, besides the pending operations, the linearized ones that overlap them in time
    # (the search could have ordered those differently), and the last ones that had to
    # precede them: those that returned after the latest call of any operation that
    # finished before the first pending determinate one was called.
    since = min((o.call for o in pending if o.status == "ok"), default=blocking.call)
    before = [o.call for o in ops if o.status == "ok" and o.ret < since]
    frontier = max(before, default=-math.inf)
    position = {op.id: k for k, op in enumerate(linearized, start=1)}
    overlapping = [o for o in linearized if o.ret >= frontier]
    window = tuple(sorted([*overlapping, *pending], key=lambda o: (o.call, o.id)))

    where = f" (partition {partition + 1} of {partitions})" if partitions > 1 else ""
    lines = [
        f"linearized at most {len(linearized)} of {len(ops)} operations{where}; "
        f"the state is then {model.describe_state(deepest.state)}",
        f"none of the {len(pending)} pending operations can take effect next, yet "
        f"{model.describe(blocking)} returned at {format_time(blocking.ret)}",
        "the window, in call order (#k: k-th linearized; *: pending):",
    ]
    width = max(len(format_time(o.call)) for o in window)
    ret_width = max(len(format_time(o.ret)) for o in window)
    for o in window:
        tag = f"#{position[o.id]}" if o.id in position else "*"
        lines.append(
            f"  {tag:>5} call {format_time(o.call):>{width}} "
            f"ret {format_time(o.ret):>{ret_width}}  {model.describe(o)}"
        )
    return Explanation(
        partition=partition,
        partitions=partitions,
        linearized=linearized,
        state=deepest.state,
        pending=pending,
        blocking=blocking,
        window=window,
        lines=tuple(lines),
    )
