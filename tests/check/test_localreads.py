"""The local-read check: what a stale read still promises, and that breaking it is caught."""

from __future__ import annotations

from typing import Any

from raftlog.check.localreads import check_local_reads

FINAL = [(2, "c0-1"), (3, "c1-1"), (5, "c0-2"), (6, "c1-2")]
"""Records of the final log (index 1 and 4: a no-op and a configuration, not records)."""
INVOKED = {"c0-1": 0.1, "c1-1": 0.2, "c0-2": 1.0, "c1-2": 2.0}


def _read(
    window: list[list[Any]],
    applied: int,
    *,
    start: int = 2,
    limit: int = 200,
    following: int | None = None,
    commit: int = 6,
    ret: float = 3.0,
) -> Any:
    return {
        "id": 7,
        "kind": "read",
        "level": "local",
        "status": "ok",
        "node": 2,
        "from": start,
        "limit": limit,
        "next": following,
        "applied": applied,
        "commit": commit,
        "ret": ret,
        "window": window,
    }


def test_a_stale_but_truthful_local_read_passes() -> None:
    ops = [
        _read([[2, "c0-1"], [3, "c1-1"]], applied=3),  # behind: allowed
        _read([[3, "c1-1"], [5, "c0-2"], [6, "c1-2"]], applied=6, start=3),
        _read([[5, "c0-2"], [6, "c1-2"]], applied=6, start=4),  # from a non-record index
        _read([], applied=0, commit=0, ret=0.0, start=1),  # a fresh node with nothing applied
        _read([], applied=6, start=7),  # from past the end
        _read([[2, "c0-1"], [3, "c1-1"]], applied=6, limit=2, following=5),  # its limit
        _read([[2, "c0-1"]], applied=6, following=3),  # a page cut short by the server
        {"id": 8, "kind": "read", "level": "lease", "status": "ok"},  # not a local read
    ]
    verdict = check_local_reads(ops, FINAL, INVOKED)
    assert verdict.ok and verdict.checked == 7, verdict.problems


def test_a_local_read_that_lies_about_its_staleness_is_caught() -> None:
    bad = {
        "a gap": _read([[2, "c0-1"], [5, "c0-2"]], applied=5),
        "other data": _read([[2, "c0-1"], [3, "c9-9"]], applied=3),
        "an entry past its applied index": _read([[2, "c0-1"], [3, "c1-1"]], applied=2),
        "applied above commit": _read([[2, "c0-1"], [3, "c1-1"]], applied=3, commit=2),
        "a value from the future": _read([[2, "c0-1"], [3, "c1-1"], [5, "c0-2"]], 5, ret=0.5),
        "nothing, having applied 6": _read([], applied=6),
        "the end missing": _read([[2, "c0-1"], [3, "c1-1"]], applied=6),
        "the start missing": _read([[3, "c1-1"], [5, "c0-2"], [6, "c1-2"]], applied=6),
        "cut short, but not where it says": _read([[2, "c0-1"]], applied=6, following=5),
        "nothing, and a next": _read([], applied=6, following=2),
        "more than its limit": _read([[2, "c0-1"], [3, "c1-1"]], applied=6, limit=1),
    }
    for what, op in bad.items():
        verdict = check_local_reads([op], FINAL, INVOKED)
        assert not verdict.ok and len(verdict.problems) == 1, (what, verdict.problems)
        assert "local read 7 from node 2" in verdict.problems[0]
    incomplete = check_local_reads([bad["nothing, having applied 6"]], FINAL, INVOKED)
    assert "incomplete" in incomplete.problems[0] and "(2, 'c0-1')" in incomplete.problems[0]
