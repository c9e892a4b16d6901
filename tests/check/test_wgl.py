"""Tests of the linearizability checker (raftlog.check.wgl) and its models."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftlog.check.history import Event, HistoryError, Operation, Status, history_from_events
from raftlog.check.jepsen import load_jepsen
from raftlog.check.models import KVRegisterModel, Model, RegisterModel, format_value
from raftlog.check.wgl import Result, check, format_time

DATA = Path(__file__).resolve().parents[1] / "data" / "jepsen-etcd"
INF = math.inf


class Builder:
    """Writes small histories tersely: b.w(1, 0, 1) is an ok write(1) called at 0, back at 1."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def add(
        self,
        f: str,
        inp: Hashable,
        out: Hashable,
        *,
        call: float,
        ret: float,
        status: Status,
    ) -> Operation:
        op = Operation(
            id=len(self.ops),
            process=len(self.ops),
            f=f,
            input=inp,
            output=out,
            call=call,
            ret=INF if status == "info" else ret,
            status=status,
        )
        self.ops.append(op)
        return op

    def w(self, value: Hashable, call: float, ret: float = INF, status: Status = "ok") -> Operation:
        return self.add("write", value, value, call=call, ret=ret, status=status)

    def r(self, value: Hashable, call: float, ret: float = INF, status: Status = "ok") -> Operation:
        return self.add("read", None, value, call=call, ret=ret, status=status)

    def cas(
        self, old: Hashable, new: Hashable, call: float, ret: float = INF, status: Status = "ok"
    ) -> Operation:
        return self.add("cas", (old, new), (old, new), call=call, ret=ret, status=status)


def verdict(ops: Sequence[Operation], model: Model[Any] | None = None) -> str:
    result = check(model or RegisterModel(), ops, timeout_s=30)
    if result.linearizable:
        assert_valid_witness(model or RegisterModel(), ops, result)
    return result.verdict


def assert_valid_witness(model: Model[Any], ops: Sequence[Operation], result: Result) -> None:
    """The witness of a linearizable result is a legal run that respects real time."""
    assert result.witness is not None
    placed = {op.id for part in result.witness for op in part}
    for op in ops:
        if op.status == "ok" and not model.constrains_nothing(op):
            assert op.id in placed, f"ok operation {op.id} missing from the witness"
        if op.status == "fail":
            assert op.id not in placed
    for part in result.witness:
        state = model.init()
        for op in part:
            legal, state = model.step(state, op)
            assert legal, f"witness step {op} is illegal"
        for a, b in itertools.combinations(part, 2):
            assert not b.ret < a.call, f"{a} placed before {b}, which returned before its call"


# --- hand-written histories ----------------------------------------------------------------


def test_empty_history_is_linearizable() -> None:
    result = check(RegisterModel(), [])
    assert result.verdict == "linearizable"
    assert result.witness == ((),)


def test_sequential_register_run_is_linearizable() -> None:
    b = Builder()
    b.r(None, 0, 1)
    b.w(1, 2, 3)
    b.r(1, 4, 5)
    b.cas(1, 2, 6, 7)
    b.r(2, 8, 9)
    assert verdict(b.ops) == "linearizable"


def test_concurrent_read_may_see_old_or_new_value() -> None:
    for seen in (None, 1):
        b = Builder()
        b.w(1, 0, 10)
        b.r(seen, 1, 2)
        assert verdict(b.ops) == "linearizable", seen


def test_reads_must_be_ordered_consistently_with_concurrent_write() -> None:
    # Both reads overlap the write, but the first read saw the new value and the second
    # (which started after the first ended) the old one.
    b = Builder()
    b.w(1, 0, 10)
    b.r(1, 1, 2)
    b.r(None, 3, 4)
    assert verdict(b.ops) == "not linearizable"


def test_read_of_a_value_never_written() -> None:
    b = Builder()
    b.w(1, 0, 1)
    b.r(7, 2, 3)
    assert verdict(b.ops) == "not linearizable"


def test_stale_read_after_completed_write() -> None:
    b = Builder()
    b.w(1, 0, 1)
    b.w(2, 2, 3)
    b.r(1, 4, 5)
    assert verdict(b.ops) == "not linearizable"


def test_sequential_writes_read_back_in_wrong_order() -> None:
    b = Builder()
    b.w(1, 0, 1)
    b.w(2, 2, 3)
    b.r(2, 4, 5)
    b.r(1, 6, 7)
    assert verdict(b.ops) == "not linearizable"


def test_cas_succeeding_on_a_value_the_register_cannot_hold() -> None:
    b = Builder()
    b.w(1, 0, 1)
    b.cas(2, 3, 2, 3)
    assert verdict(b.ops) == "not linearizable"


def test_concurrent_cas_chain_is_linearizable_in_some_order() -> None:
    b = Builder()
    b.w(0, 0, 1)
    b.cas(1, 2, 2, 9)  # must go after the next one
    b.cas(0, 1, 3, 8)
    b.r(2, 10, 11)
    assert verdict(b.ops) == "linearizable"


def test_failed_cas_does_not_take_effect() -> None:
    b = Builder()
    b.w(1, 0, 1)
    b.cas(1, 2, 2, 3, status="fail")
    b.r(2, 4, 5)
    assert verdict(b.ops) == "not linearizable"
    # ... and it is dropped, so the register keeps its value.
    b = Builder()
    b.w(1, 0, 1)
    b.cas(1, 2, 2, 3, status="fail")
    b.r(1, 4, 5)
    assert verdict(b.ops) == "linearizable"


def test_failed_write_and_failed_read_are_dropped() -> None:
    b = Builder()
    b.w(1, 0, 1)
    b.w(2, 2, 3, status="fail")
    b.r(2, 4, 5)
    assert verdict(b.ops) == "not linearizable"
    b = Builder()
    b.w(1, 0, 1)
    b.r(99, 2, 3, status="fail")  # a failed read's value means nothing
    assert verdict(b.ops) == "linearizable"


def test_indeterminate_write_may_take_effect_long_after_its_call() -> None:
    b = Builder()
    b.w(1, 0, status="info")
    b.r(None, 1, 2)
    b.r(None, 3, 4)
    b.r(1, 100, 101)
    assert verdict(b.ops) == "linearizable"


def test_indeterminate_write_may_never_take_effect() -> None:
    b = Builder()
    b.w(1, 0, status="info")
    b.r(None, 10, 11)
    b.r(None, 20, 21)
    assert verdict(b.ops) == "linearizable"


def test_indeterminate_write_cannot_take_effect_before_its_call() -> None:
    b = Builder()
    b.r(1, 0, 1)
    b.w(1, 2, status="info")
    assert verdict(b.ops) == "not linearizable"


def test_indeterminate_write_takes_effect_at_most_once() -> None:
    b = Builder()
    b.w(1, 0, status="info")
    b.r(1, 1, 2)
    b.r(None, 3, 4)
    assert verdict(b.ops) == "not linearizable"
    b = Builder()
    b.w(1, 0, 1)
    b.w(2, 2, status="info")
    b.r(2, 3, 4)
    b.w(1, 5, 6)
    b.r(2, 7, 8)  # the info write already happened: it cannot happen again
    assert verdict(b.ops) == "not linearizable"


def test_indeterminate_cas_needs_its_expected_value() -> None:
    b = Builder()
    b.w(1, 0, 1)
    b.cas(1, 2, 2, status="info")
    b.r(2, 3, 4)
    assert verdict(b.ops) == "linearizable"
    b = Builder()
    b.w(1, 0, 1)
    b.cas(0, 2, 2, status="info")
    b.r(2, 3, 4)
    assert verdict(b.ops) == "not linearizable"


def test_indeterminate_cas_can_wait_for_its_expected_value() -> None:
    b = Builder()
    b.cas(1, 2, 0, status="info")
    b.w(1, 1, 2)
    b.r(2, 3, 4)
    assert verdict(b.ops) == "linearizable"


def test_interchangeable_indeterminate_ops_are_not_overcounted() -> None:
    # Two identical info writes: each may happen once, so the value can come back twice.
    b = Builder()
    b.w(1, 0, status="info")
    b.w(1, 1, status="info")
    b.r(1, 2, 3)
    b.w(0, 4, 5)
    b.r(1, 6, 7)
    b.w(0, 8, 9)
    assert verdict(b.ops) == "linearizable"
    b.r(1, 10, 11)  # ... but not three times
    assert verdict(b.ops) == "not linearizable"


def test_indeterminate_read_constrains_nothing() -> None:
    b = Builder()
    b.w(1, 0, 1)
    b.r(None, 2, status="info")
    assert verdict(b.ops) == "linearizable"


def test_call_and_return_at_the_same_instant_are_concurrent() -> None:
    b = Builder()
    b.w(1, 0, 1)
    b.r(None, 1, 2)
    assert verdict(b.ops) == "linearizable"


def test_duplicate_ids_and_unknown_operations_are_rejected() -> None:
    op = Operation(0, 0, "write", 1, 1, 0, 1, "ok")
    with pytest.raises(ValueError, match="twice"):
        check(RegisterModel(), [op, op])
    with pytest.raises(ValueError, match="increment"):
        check(RegisterModel(), [Operation(0, 0, "increment", 1, 1, 0, 1, "ok")])
    with pytest.raises(ValueError, match="cas"):
        check(RegisterModel(), [Operation(0, 0, "cas", 1, 1, 0, 1, "ok")])


def test_operation_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="status"):
        Operation(0, 0, "read", None, 1, 0, 1, "done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="before call"):
        Operation(0, 0, "read", None, 1, 5, 1, "ok")
    with pytest.raises(ValueError, match="never returned"):
        Operation(0, 0, "read", None, 1, 5, INF, "ok")


def test_timeout_gives_unknown() -> None:
    # 40 concurrent indeterminate writes of distinct values and a read of a value never
    # written: refuting it means trying every subset of the writes.
    b = Builder()
    for v in range(40):
        b.w(v, v, status="info")
    b.r(-1, 50, 51)
    result = check(RegisterModel(), b.ops, timeout_s=0.2)
    assert result.verdict == "unknown"
    assert result.explanation is None and result.witness is None


# --- explanations --------------------------------------------------------------------------


def test_explanation_names_the_stale_read_and_the_write_it_missed() -> None:
    b = Builder()
    b.w(0, 0, 1)
    b.r(0, 2, 3)
    first = b.w(1, 4, 5)
    second = b.w(2, 6, 7)
    stale = b.r(1, 8, 9)
    result = check(RegisterModel(), b.ops)
    assert result.verdict == "not linearizable"
    exp = result.explanation
    assert exp is not None
    assert exp.blocking == stale
    assert stale in exp.pending
    assert exp.state == 2
    assert exp.linearized[-1] == second
    assert second in exp.window and stale in exp.window
    assert first not in exp.window  # it had to precede `second`: not part of the window
    text = "\n".join(exp.lines)
    assert "p4 read() -> 1 ok" in text
    assert "p3 write(2) ok" in text
    assert "call 8 ret 9" in text


def test_explanation_lists_every_candidate_that_could_not_go_next() -> None:
    b = Builder()
    b.w(1, 0, 1)
    a = b.r(2, 2, 6)
    c = b.cas(3, 4, 3, 5)
    result = check(RegisterModel(), b.ops)
    exp = result.explanation
    assert exp is not None
    assert set(exp.pending) == {a, c}
    assert exp.blocking == c
    assert exp.state == 1
    assert any("cas(3->4)" in line for line in exp.lines)


def test_explanation_of_kv_history_points_at_the_bad_key() -> None:
    model = KVRegisterModel()
    ops = [
        Operation(0, 0, "write", ("x", 1), None, 0, 1, "ok"),
        Operation(1, 1, "write", ("y", 5), None, 0, 1, "ok"),
        Operation(2, 0, "read", ("x", None), ("x", 1), 2, 3, "ok"),
        Operation(3, 1, "read", ("y", None), ("y", 6), 2, 3, "ok"),
    ]
    result = check(model, ops)
    assert result.verdict == "not linearizable"
    exp = result.explanation
    assert exp is not None
    assert exp.partitions == 2
    assert exp.blocking.id == 3
    assert any('p1 read["y"]() -> 6 ok' in line for line in exp.lines)


# --- the kv model ----------------------------------------------------------------------------


def kv(id_: int, f: str, key: str, arg: Hashable, out: Hashable) -> Operation:
    """An ok kv operation numbered id_, called at 2 * id_ and back at 2 * id_ + 1."""
    output = (key, out) if f == "read" else None
    return Operation(id_, id_, f, (key, arg), output, 2 * id_, 2 * id_ + 1, "ok")


def test_kv_keys_are_independent() -> None:
    ops = [
        kv(0, "write", "a", 1, None),
        kv(1, "write", "b", 2, None),
        kv(2, "read", "a", None, 1),
        kv(3, "read", "b", None, 2),
        kv(4, "cas", "a", (1, 3), None),
        kv(5, "read", "c", None, None),
        kv(6, "read", "a", None, 3),
    ]
    model = KVRegisterModel()
    assert model.partition(ops) == [[ops[0], ops[2], ops[4], ops[6]], [ops[1], ops[3]], [ops[5]]]
    result = check(model, ops)
    assert result.verdict == "linearizable"
    assert_valid_witness(model, ops, result)
    bad = [*ops, kv(7, "read", "b", None, 1)]
    assert check(model, bad).verdict == "not linearizable"


def test_kv_model_without_partitioning_agrees() -> None:
    class Whole(KVRegisterModel):
        def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
            return [list(ops)]

    ops = [
        kv(0, "write", "a", 1, None),
        kv(1, "write", "b", 1, None),
        kv(2, "cas", "b", (1, None), None),
        kv(3, "read", "a", None, 1),
        kv(4, "read", "b", None, None),
    ]
    assert check(Whole(), ops).verdict == "linearizable"
    assert check(KVRegisterModel(), ops).verdict == "linearizable"
    bad = [*ops, kv(5, "read", "a", None, None)]
    assert check(Whole(), bad).verdict == "not linearizable"
    assert check(KVRegisterModel(), bad).verdict == "not linearizable"


def test_kv_model_rejects_malformed_operations() -> None:
    model = KVRegisterModel()
    with pytest.raises(ValueError, match="key"):
        check(model, [Operation(0, 0, "write", 1, None, 0, 1, "ok")])
    with pytest.raises(ValueError, match="key value"):
        check(model, [Operation(0, 0, "read", ("a", None), 1, 0, 1, "ok")])


def test_describe() -> None:
    model = RegisterModel()
    assert model.describe(Operation(0, 3, "cas", (1, 4), None, 0, 1, "ok")) == "p3 cas(1->4) ok"
    assert model.describe(Operation(0, 2, "write", 4, None, 0, INF, "info")) == "p2 write(4) info"
    assert model.describe(Operation(0, 1, "read", None, None, 0, 1, "ok")) == "p1 read() -> nil ok"
    assert model.describe(Operation(0, 1, "read", None, None, 0, 1, "fail")) == "p1 read() fail"
    assert format_value((1, None, "x", True)) == '[1 nil "x" true]'
    assert format_time(3.0) == "3" and format_time(INF) == "never" and format_time(2.5) == "2.5"


# --- history_from_events -----------------------------------------------------------------------


def test_history_from_events_pairs_invocations_and_completions() -> None:
    ops = history_from_events(
        [
            Event(0, "invoke", "write", 1),
            Event(1, "invoke", "read"),
            Event(1, "ok", "read", 1),
            Event(2, "invoke", "cas", (1, 2)),
            Event(0, "info", "write", "timeout"),
            Event(2, "fail", "cas", (1, 2)),
            Event(1, "invoke", "write", 3),
        ]
    )
    assert ops == [
        Operation(0, 0, "write", 1, None, 0.0, INF, "info"),
        Operation(1, 1, "read", None, 1, 1.0, 2.0, "ok"),
        Operation(2, 2, "cas", (1, 2), (1, 2), 3.0, 5.0, "fail"),
        Operation(3, 1, "write", 3, None, 6.0, INF, "info"),
    ]


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([Event(0, "ok", "read", 1)], "never invoked"),
        ([Event(0, "invoke", "read"), Event(0, "invoke", "read")], "still open"),
        ([Event(0, "invoke", "read"), Event(0, "ok", "write", 1)], "completes write"),
        ([Event(0, "invoke", "read", time=5), Event(0, "ok", "read", time=4)], "backwards"),
        ([Event(0, "invoke", "read"), Event(0, "done", "read")], "unknown event"),  # type: ignore[arg-type]
    ],
)
def test_history_from_events_rejects_bad_streams(events: list[Event], message: str) -> None:
    with pytest.raises(HistoryError, match=message) as info:
        history_from_events(events)
    assert info.value.index == len(events) - 1


# --- the Jepsen etcd histories, renamed --------------------------------------------------------


def expected_verdicts() -> dict[str, bool]:
    rows = (DATA / "verdicts.tsv").read_text().splitlines()[1:]
    return {name: value == "true" for name, value in (row.split("\t") for row in rows if row)}


def rename(ops: Sequence[Operation], seed: int) -> list[Operation]:
    """Rename values by a random bijection (nil stays nil), permute processes, shuffle the
    list and renumber the ids."""
    rng = random.Random(seed)
    values: set[Hashable] = set()
    for op in ops:
        for v in (op.input, op.output):
            values.update(v if isinstance(v, tuple) else (v,))
    values.discard(None)
    old = sorted(values, key=repr)
    new: list[Hashable] = rng.sample(range(1000, 10_000), len(old))
    if rng.random() < 0.5:
        new = [f"v{n}" for n in new]
    vmap: dict[Hashable, Hashable] = dict(zip(old, new, strict=True))
    vmap[None] = None

    def mv(v: Hashable) -> Hashable:
        return tuple(vmap[x] for x in v) if isinstance(v, tuple) else vmap[v]

    procs = sorted({op.process for op in ops})
    pmap = dict(zip(procs, rng.sample(range(100, 100 + 10 * len(procs)), len(procs)), strict=True))
    ids = rng.sample(range(10 * len(ops) + 1), len(ops))
    renamed = [
        dataclasses.replace(
            op, id=ids[k], process=pmap[op.process], input=mv(op.input), output=mv(op.output)
        )
        for k, op in enumerate(ops)
    ]
    rng.shuffle(renamed)
    return renamed


@pytest.mark.parametrize("name", sorted(expected_verdicts()))
def test_etcd_history_renamed_keeps_its_verdict(name: str) -> None:
    ops = load_jepsen(DATA / name)
    want = "linearizable" if expected_verdicts()[name] else "not linearizable"
    for seed in range(2):
        result = check(RegisterModel(), rename(ops, seed=hash((name, seed)) & 0xFFFF), 30)
        assert result.verdict == want, (name, seed)


# --- properties --------------------------------------------------------------------------------

_VALUES = [0, 1, 2, 3]
_READ_STATUSES: list[Status] = ["ok", "ok", "ok", "fail", "info"]
_EFFECT_STATUSES: list[Status] = ["ok", "ok", "info"]
_NO_EFFECT_STATUSES: list[Status] = ["fail", "info"]
_ANY_STATUSES: list[Status] = ["ok", "ok", "ok", "info", "fail"]


@st.composite
def true_runs(draw: st.DrawFn) -> list[Operation]:
    """A history recorded around a real sequential register.

    Operation k takes effect at instant 10 * k; its call and return are drawn around that
    point (so intervals overlap freely). Writes and cases may be recorded as indeterminate
    (they did take effect), failed cases are those whose compare failed, and some reads
    fail or are indeterminate.
    """
    n = draw(st.integers(min_value=1, max_value=30))
    value: Hashable = None
    ops: list[Operation] = []
    for k in range(n):
        point = 10 * k
        call = point - draw(st.integers(min_value=0, max_value=35))
        ret: float = point + draw(st.integers(min_value=0, max_value=35))
        f = draw(st.sampled_from(["read", "write", "cas"]))
        status: Status = "ok"
        if f == "read":
            inp: Hashable = None
            out: Hashable = value
            status = draw(st.sampled_from(_READ_STATUSES))
        elif f == "write":
            inp = out = draw(st.sampled_from(_VALUES))
            value = inp
            status = draw(st.sampled_from(_EFFECT_STATUSES))
        else:
            expected = draw(st.sampled_from([value, *_VALUES]))
            inp = out = (expected, draw(st.sampled_from(_VALUES)))
            if value == expected:
                value = inp[1]
                status = draw(st.sampled_from(_EFFECT_STATUSES))
            else:
                # The compare failed: recorded as a failure, or unknown to the client.
                status = draw(st.sampled_from(_NO_EFFECT_STATUSES))
        if status == "info":
            out, ret = None, INF
        ops.append(Operation(k, k % 5, f, inp, out, call, ret, status))
    return ops


@settings(max_examples=200, deadline=None)
@given(true_runs(), st.randoms(use_true_random=False))
def test_histories_of_a_real_register_are_linearizable(
    ops: list[Operation], rng: random.Random
) -> None:
    result = check(RegisterModel(), ops, timeout_s=30)
    assert result.verdict == "linearizable"
    assert_valid_witness(RegisterModel(), ops, result)
    # Corrupting one ok read to return a value never written breaks it.
    reads = [k for k, op in enumerate(ops) if op.f == "read" and op.status == "ok"]
    if reads:
        k = rng.choice(reads)
        mutated = list(ops)
        mutated[k] = dataclasses.replace(ops[k], output=99)
        result = check(RegisterModel(), mutated, timeout_s=30)
        assert result.verdict == "not linearizable"
        assert result.explanation is not None
        assert any(op.id == k for op in result.explanation.window)


def brute_force_linearizable(model: Model[Any], ops: Sequence[Operation]) -> bool:
    """The definition, by enumeration: some subset of the indeterminate operations, with all
    ok ones, in some order that respects real time, is a legal run."""
    ok = [op for op in ops if op.status == "ok"]
    info = [op for op in ops if op.status == "info"]
    for size in range(len(info) + 1):
        for chosen in itertools.combinations(info, size):
            for order in itertools.permutations([*ok, *chosen]):
                if any(b.ret < a.call for a, b in itertools.combinations(order, 2)):
                    continue
                state = model.init()
                for op in order:
                    legal, state = model.step(state, op)
                    if not legal:
                        break
                else:
                    return True
    return False


@st.composite
def arbitrary_histories(draw: st.DrawFn) -> list[Operation]:
    n = draw(st.integers(min_value=0, max_value=6))
    values = [None, 1, 2]
    ops = []
    for k in range(n):
        f = draw(st.sampled_from(["read", "write", "cas"]))
        status = draw(st.sampled_from(_ANY_STATUSES))
        call = draw(st.integers(min_value=0, max_value=8))
        ret = INF if status == "info" else call + draw(st.integers(min_value=0, max_value=6))
        inp: Hashable
        out: Hashable
        if f == "read":
            inp, out = None, draw(st.sampled_from(values))
        elif f == "write":
            inp = out = draw(st.sampled_from(values))
        else:
            inp = out = (draw(st.sampled_from(values)), draw(st.sampled_from(values)))
        if status == "info":
            out = None
        ops.append(Operation(k, k, f, inp, out, call, ret, status))
    return ops


@settings(max_examples=400, deadline=None)
@given(arbitrary_histories())
def test_agrees_with_brute_force_on_small_histories(ops: list[Operation]) -> None:
    model = RegisterModel()
    kept = [op for op in ops if op.status != "fail" and not model.constrains_nothing(op)]
    expected = brute_force_linearizable(model, kept)
    result = check(model, ops)
    assert result.verdict == ("linearizable" if expected else "not linearizable")
    if result.linearizable:
        assert_valid_witness(model, ops, result)
