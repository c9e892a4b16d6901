"""The suites' one "poll until": it returns as soon as the condition holds, and at the
deadline it fails saying what it waited for and what it saw last."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from raftlog.testing.waiting import NotYet, eventually, eventually_async


def test_returns_the_first_acceptable_value() -> None:
    counter = itertools.count()
    assert eventually(lambda: next(counter) >= 3 and "done", what="3 tries") == "done"
    counter = itertools.count()
    assert eventually(lambda: next(counter), what="5", until=lambda n: n >= 5) == 5


def test_fails_at_the_deadline_naming_what_and_the_last_value() -> None:
    values = iter(range(1000))
    with pytest.raises(NotYet) as caught:
        eventually(lambda: next(values), 0.05, what="commit index 1000", until=lambda n: n >= 1000)
    message = str(caught.value)
    assert "waiting for commit index 1000" in message
    assert f"last seen: {caught.value.last}" in message
    assert isinstance(caught.value, AssertionError)  # pytest reports a failure
    assert caught.value.tries >= 2  # it tried again until the deadline, not just once


def test_ignored_exceptions_count_as_not_yet_and_are_reported() -> None:
    def refuse() -> bool:
        raise ConnectionRefusedError("node 2 not up")

    with pytest.raises(NotYet, match="last seen: ConnectionRefusedError: node 2 not up"):
        eventually(refuse, 0.05, what="node 2", ignore=(ConnectionRefusedError,))
    tries = itertools.count()

    def up_at_third() -> str:
        if next(tries) < 2:
            raise ConnectionRefusedError
        return "up"

    assert eventually(up_at_third, what="node 2", ignore=(OSError,)) == "up"


def test_other_exceptions_propagate_at_once() -> None:
    calls = itertools.count()

    def broken() -> bool:
        next(calls)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        eventually(broken, 5, what="anything", ignore=(OSError,))
    assert next(calls) == 1


def test_the_async_twin_takes_plain_and_coroutine_probes() -> None:
    async def main() -> None:
        state = {"n": 0}

        async def bump() -> int:
            state["n"] += 1
            return state["n"]

        assert await eventually_async(bump, what="3", until=lambda n: n >= 3) == 3
        loop_ran = asyncio.Event()
        asyncio.get_running_loop().call_soon(loop_ran.set)
        assert await eventually_async(loop_ran.is_set, what="the loop to run") is True
        with pytest.raises(NotYet, match=r"waiting for never; last seen: \[\]"):
            await eventually_async(list, 0.05, what="never")

    asyncio.run(main())


def test_a_long_list_is_shown_by_its_latest_items() -> None:
    lines = [f"line {k}" for k in range(100)]
    with pytest.raises(NotYet) as caught:
        eventually(lambda: lines, 0.01, what="a line", until=lambda _lines: False)
    message = str(caught.value)
    assert "90 earlier" in message and "'line 99'" in message and "'line 5'" not in message
