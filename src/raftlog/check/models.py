"""Sequential specifications (models) that histories are checked against.

A :class:`Model` is a deterministic state machine: :meth:`Model.step` says whether an
operation, with the output it returned, is legal in a state, and what state it leads to. The
checker (:mod:`raftlog.check.wgl`) searches for an order of the operations that the model
accepts and that respects real time.

Two models are provided:

:class:`RegisterModel`
    One register holding any hashable value, initially ``None`` (Jepsen's ``nil``), with
    ``read`` (output: the value), ``write`` (input: the value) and ``cas`` (input:
    ``(expected, new)``).
:class:`KVRegisterModel`
    A map of independent such registers. Every operation names its key: the input is
    ``(key, arg)`` where ``arg`` is what :class:`RegisterModel` would take (``None`` for a
    read), and an ok read's output is ``(key, value)`` (Jepsen's ``independent`` tuples). The
    history is partitioned per key, and each key checked on its own.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import Any, Generic, TypeAlias, TypeVar, cast

from raftlog.check.history import Operation

__all__ = [
    "KVRegisterModel",
    "KVState",
    "Model",
    "RegisterModel",
    "format_value",
]

StateT = TypeVar("StateT", bound=Hashable)

KVState: TypeAlias = frozenset[tuple[Hashable, Hashable]]
"""The state of a :class:`KVRegisterModel`: the ``(key, value)`` pairs of non-nil keys."""

_REGISTER_FS = frozenset({"read", "write", "cas"})


def format_value(value: object) -> str:
    """Render a value the way Jepsen prints it: ``nil``, ``[a b]``, ``"text"``, ``3``."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


class Model(ABC, Generic[StateT]):
    """A sequential specification.

    Contract:

    * States are immutable and hashable; equal states behave identically (the checker
      memoizes on them).
    * :meth:`step` is a pure function of ``(state, op)``. For an ``"info"`` operation it must
      ignore ``op.output`` (the output is unknown, any output is accepted). The checker never
      passes a ``"fail"`` operation (it did not happen).
    * :meth:`partition` (optional) splits a history into sub-histories that are linearizable
      independently: the whole is linearizable iff every part is (P-compositionality).
    """

    name: str = "model"

    @abstractmethod
    def init(self) -> StateT:
        """The initial state."""

    @abstractmethod
    def step(self, state: StateT, op: Operation) -> tuple[bool, StateT]:
        """``(legal, next_state)``: can ``op`` (with its output) take effect in ``state``?

        When not legal, the second element is meaningless.
        """

    def validate(self, op: Operation) -> None:
        """Raise ``ValueError`` if ``op`` is not an operation of this model (bad ``f`` or
        input shape). The checker calls it on every operation before searching."""

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        """Independent sub-histories; by default the history is one partition."""
        return [list(ops)]

    def constrains_nothing(self, op: Operation) -> bool:
        """True if ``op`` is legal in every state and changes none (e.g. a read whose output
        is unknown). The checker drops such operations. Default: False."""
        return False

    def op_key(self, op: Operation) -> Hashable:
        """Operations with equal keys are interchangeable for :meth:`step` (same legality
        and next state in every state). The default, ``(f, input, output, status)``, is
        right for any model that ignores ``id``, ``process`` and the times; override it
        otherwise."""
        return (op.f, op.input, op.output, op.status)

    def describe(self, op: Operation) -> str:
        """A one-line human rendering of ``op``, e.g. ``p3 cas(1->4) ok``."""
        return (
            f"p{op.process} {op.f}({format_value(op.input)}) -> "
            f"{format_value(op.output)} {op.status}"
        )

    def describe_state(self, state: StateT) -> str:
        """A human rendering of a state."""
        return format_value(state)


def _register_step(
    f: str, status: str, arg: Hashable, output: Hashable, value: Hashable
) -> tuple[bool, Hashable]:
    """One register operation on ``value``; ``arg`` is the input with any key stripped."""
    if f == "read":
        if status != "ok":
            return True, value
        return output == value, value
    if f == "write":
        if status == "fail":
            return True, value
        return True, arg
    if f == "cas":
        if status == "fail":
            return True, value
        expected, new = cast("tuple[Hashable, Hashable]", arg)
        if value == expected:
            return True, new
        # An indeterminate cas whose compare fails is a no-op; an ok one is illegal here.
        return status == "info", value
    raise ValueError(f"unknown register operation {f!r}")


def _validate_register_arg(op: Operation, f: str, arg: object) -> None:
    if f not in _REGISTER_FS:
        raise ValueError(
            f"operation {op.id}: register operations are read, write and cas; not {f!r}"
        )
    if f == "cas" and not (isinstance(arg, tuple) and len(arg) == 2):
        raise ValueError(f"operation {op.id}: a cas takes [expected new], got {format_value(arg)}")


def _describe_register(op: Operation, key_text: str, arg: object, output: object) -> str:
    head = f"p{op.process} {op.f}{key_text}"
    if op.f == "read":
        if op.status == "ok":
            return f"{head}() -> {format_value(output)} ok"
        if op.status == "info":
            return f"{head}() -> ? info"
        return f"{head}() fail"
    if op.f == "cas" and isinstance(arg, tuple) and len(arg) == 2:
        return f"{head}({format_value(arg[0])}->{format_value(arg[1])}) {op.status}"
    return f"{head}({format_value(arg)}) {op.status}"


class RegisterModel(Model[Hashable]):
    """A single read/write/compare-and-set register, initially ``None`` (nil).

    * ``read``: input ignored; an ok read's ``output`` must equal the current value. A read
      that is ``"info"`` (or failed) constrains nothing.
    * ``write``: ``input`` is the new value; always legal.
    * ``cas``: ``input`` is ``(expected, new)``. An ok cas is legal only if the register
      holds ``expected``, and sets it to ``new``. A ``"fail"`` cas means the compare failed:
      it changed nothing, and the checker drops it. An ``"info"`` cas, if it takes effect,
      sets ``new`` when the register holds ``expected`` and is a no-op otherwise.
    """

    name = "register"

    def init(self) -> Hashable:
        return None

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        return _register_step(op.f, op.status, op.input, op.output, state)

    def validate(self, op: Operation) -> None:
        _validate_register_arg(op, op.f, op.input)

    def constrains_nothing(self, op: Operation) -> bool:
        return op.f == "read" and op.status != "ok"

    def describe(self, op: Operation) -> str:
        return _describe_register(op, "", op.input, op.output)


def _kv_lookup(state: KVState, key: Hashable) -> Hashable:
    for k, v in state:
        if k == key:
            return v
    return None


def _kv_split(op: Operation) -> tuple[Hashable, Hashable]:
    key, arg = cast("tuple[Hashable, Hashable]", op.input)
    return key, arg


class KVRegisterModel(Model[KVState]):
    """A map from keys to independent registers (each as :class:`RegisterModel`, initially
    nil).

    Every operation's ``input`` is ``(key, arg)``: ``arg`` is ``None`` for a read, the value
    for a write, ``(expected, new)`` for a cas. An ok read's ``output`` is ``(key, value)``.
    :meth:`partition` splits the history per key (keys are independent).
    """

    name = "kv-register"

    def init(self) -> KVState:
        return frozenset()

    def step(self, state: KVState, op: Operation) -> tuple[bool, KVState]:
        key, arg = _kv_split(op)
        current = _kv_lookup(state, key)
        output: Hashable = None
        if op.f == "read" and op.status == "ok":
            output = cast("tuple[Hashable, Hashable]", op.output)[1]
        legal, new = _register_step(op.f, op.status, arg, output, current)
        if not legal or new == current:
            return legal, state
        rest = frozenset(item for item in state if item[0] != key)
        return True, rest if new is None else rest | {(key, new)}

    def validate(self, op: Operation) -> None:
        if not (isinstance(op.input, tuple) and len(op.input) == 2):
            raise ValueError(
                f"operation {op.id}: a kv-register operation takes [key arg], "
                f"got {format_value(op.input)}"
            )
        key, arg = op.input
        _validate_register_arg(op, op.f, arg)
        if op.f == "read" and op.status == "ok":
            out = op.output
            if not (isinstance(out, tuple) and len(out) == 2 and out[0] == key):
                raise ValueError(
                    f"operation {op.id}: a kv-register read of {format_value(key)} must "
                    f"return [key value], got {format_value(out)}"
                )

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        by_key: dict[Hashable, list[Operation]] = {}
        for op in ops:
            by_key.setdefault(_kv_split(op)[0], []).append(op)
        return list(by_key.values())

    def constrains_nothing(self, op: Operation) -> bool:
        return op.f == "read" and op.status != "ok"

    def describe(self, op: Operation) -> str:
        key, arg = _kv_split(op)
        output: Any = op.output[1] if isinstance(op.output, tuple) else op.output
        return _describe_register(op, f"[{format_value(key)}]", arg, output)

    def describe_state(self, state: KVState) -> str:
        items = sorted(state, key=lambda kv: format_value(kv[0]))
        return "{" + ", ".join(f"{format_value(k)} {format_value(v)}" for k, v in items) + "}"
