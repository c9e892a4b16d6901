"""Generic concurrent histories, as checked for linearizability.

A history is a list of :class:`Operation`: one entry per operation a client (a *process*)
started, with the time it was invoked, the time its result came back, and what that result
was. The semantics of ``status`` are Jepsen's (and Porcupine's):

``"ok"``
    The operation took effect, atomically, at some instant between ``call`` and ``ret``, and
    returned ``output``.
``"fail"``
    The operation definitely did not take effect. Checkers drop it.
``"info"``
    Indeterminate: the client does not know. The operation may have taken effect at any
    instant after ``call`` (even after the client gave up on it), or never. Its ``ret`` is
    ``math.inf`` and its ``output`` is unknown (``None``); a checker accepts any output for it.

:func:`history_from_events` builds such a history from the invoke/complete event stream a
test harness records (one event per line of a Jepsen log, for instance).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "EVENT_TYPES",
    "STATUSES",
    "Event",
    "EventType",
    "HistoryError",
    "Operation",
    "Status",
    "history_from_events",
]

Status: TypeAlias = Literal["ok", "fail", "info"]
"""How an operation ended: took effect, did not, or unknown."""

EventType: TypeAlias = Literal["invoke", "ok", "fail", "info"]
"""An invocation, or one of the three ways an operation can complete."""

STATUSES: frozenset[str] = frozenset({"ok", "fail", "info"})
EVENT_TYPES: frozenset[str] = frozenset({"invoke", "ok", "fail", "info"})
_STATUS_OF: dict[str, Status] = {"ok": "ok", "fail": "fail", "info": "info"}


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a history.

    Attributes:
        id: unique within the history (the parser numbers operations in invocation order).
        process: the client that ran it; a process runs one operation at a time.
        f: the operation's name, e.g. ``"read"``, ``"write"``, ``"cas"``; the model gives it
            meaning.
        input: the argument (hashable), e.g. the value written, or ``(old, new)`` for a cas.
        output: the result (hashable), e.g. the value read. Meaningless (``None`` by
            convention) when ``status`` is ``"info"``.
        call: the invocation time.
        ret: the completion time; ``math.inf`` for an indeterminate operation.
        status: ``"ok"``, ``"fail"`` or ``"info"`` (see the module docstring).

    Raises:
        ValueError: on an unknown status, or ``ret < call``, or an ``"ok"`` operation that
            never returned (``ret`` infinite).
    """

    id: int
    process: int
    f: str
    input: Hashable
    output: Hashable
    call: float
    ret: float
    status: Status

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"operation {self.id}: unknown status {self.status!r}")
        if not self.ret >= self.call:  # also rejects NaN
            raise ValueError(f"operation {self.id}: returns ({self.ret}) before call ({self.call})")
        if self.status == "ok" and math.isinf(self.ret):
            raise ValueError(f"operation {self.id}: status 'ok' but it never returned")

    @property
    def indeterminate(self) -> bool:
        """True for an ``"info"`` operation (it may or may not have taken effect)."""
        return self.status == "info"


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a recorded history: a process invoking an operation or learning its end.

    Attributes:
        process: the client.
        type: ``"invoke"``, or how the operation ended: ``"ok"``, ``"fail"``, ``"info"``.
        f: the operation's name; a completion names the same ``f`` as its invocation.
        value: for an invocation, the operation's input; for a completion, its output.
        time: when it happened; ``None`` means "the event's index in the stream".
    """

    process: int
    type: EventType
    f: str
    value: Hashable = None
    time: float | None = None


class HistoryError(ValueError):
    """An event stream that does not form a history; ``index`` is the offending event's."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"event {index}: {message}")
        self.index = index
        self.detail = message


def history_from_events(events: Iterable[Event]) -> list[Operation]:
    """Pair each invocation with the next completion of the same process.

    Each process alternates invoke / complete. The resulting operation has the invocation's
    value as ``input``, the completion's value as ``output`` (``None`` if the completion is
    ``"info"``: its output is unknown), ``call``/``ret`` the two events' times, and the
    completion's type as ``status``. An invocation never completed becomes an ``"info"``
    operation; an ``"info"`` operation gets ``ret = math.inf`` whenever the client gave up on
    it, because it may still take effect later. Operations are numbered (``id``) in
    invocation order, and returned in that order.

    Raises:
        HistoryError: (a ``ValueError``) if a process invokes while its previous operation
            is still open, completes an operation it did not invoke, completes a different
            ``f`` than it invoked, if times go backwards, or on an unknown event type.
    """
    open_by_process: dict[int, tuple[int, Event, float]] = {}
    built: dict[int, Operation] = {}
    next_id = 0
    last_time = -math.inf
    for index, event in enumerate(events):
        time = float(index) if event.time is None else float(event.time)
        if not time >= last_time:
            raise HistoryError(index, f"time {time} goes backwards (previous {last_time})")
        last_time = time
        if event.type == "invoke":
            if event.process in open_by_process:
                raise HistoryError(
                    index,
                    f"process {event.process} invokes {event.f} while its previous "
                    "operation is still open",
                )
            open_by_process[event.process] = (next_id, event, time)
            next_id += 1
            continue
        status = _STATUS_OF.get(event.type)
        if status is None:
            raise HistoryError(index, f"unknown event type {event.type!r}")
        opened = open_by_process.pop(event.process, None)
        if opened is None:
            raise HistoryError(
                index, f"process {event.process} completes {event.f} that it never invoked"
            )
        op_id, invoke, call = opened
        if invoke.f != event.f:
            raise HistoryError(
                index, f"process {event.process} invoked {invoke.f} but completes {event.f}"
            )
        built[op_id] = Operation(
            id=op_id,
            process=event.process,
            f=event.f,
            input=invoke.value,
            output=None if status == "info" else event.value,
            call=call,
            ret=math.inf if status == "info" else time,
            status=status,
        )
    for op_id, invoke, call in open_by_process.values():
        built[op_id] = Operation(
            id=op_id,
            process=invoke.process,
            f=invoke.f,
            input=invoke.value,
            output=None,
            call=call,
            ret=math.inf,
            status="info",
        )
    return [built[i] for i in sorted(built)]
