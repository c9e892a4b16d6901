"""The local-read check: what a stale read still promises, and that breaking it is caught."""

from __future__ import annotations

from typing import Any

from raftlog.check.localreads import check_local_reads

FINAL = [(2, "c0-1"), (3, "c1-1"), (5, "c0-2"), (6, "c1-2")]
"""Records of the final log (index 1 and 4: a no-op and a configuration, not records)."""
INVOKED = {"c0-1": 0.1, "c1-1": 0.2, "c0-2": 1.0, "c1-2": 2.0}


def _read(window: list[list[Any]], applied: int, *, commit: int = 6, ret: float = 3.0) -> Any:
    return {
        "id": 7,
        "kind": "read",
        "level": "local",
        "status": "ok",
        "node": 2,
        "applied": applied,
        "commit": commit,
        "ret": ret,
        "window": window,
    }


def test_a_stale_but_truthful_local_read_passes() -> None:
    ops = [
        _read([[2, "c0-1"], [3, "c1-1"]], applied=3),  # behind: allowed
        _read([[3, "c1-1"], [5, "c0-2"], [6, "c1-2"]], applied=6),
        _read([], applied=0, commit=0, ret=0.0),  # a fresh node with nothing applied
        {"id": 8, "kind": "read", "level": "lease", "status": "ok"},  # not a local read
    ]
    verdict = check_local_reads(ops, FINAL, INVOKED)
    assert verdict.ok and verdict.checked == 3, verdict.problems


def test_a_local_read_that_lies_about_its_staleness_is_caught() -> None:
    bad = {
        "a gap": _read([[2, "c0-1"], [5, "c0-2"]], applied=5),
        "other data": _read([[2, "c0-1"], [3, "c9-9"]], applied=3),
        "an entry past its applied index": _read([[2, "c0-1"], [3, "c1-1"]], applied=2),
        "applied above commit": _read([[2, "c0-1"]], applied=3, commit=2),
        "a value from the future": _read([[2, "c0-1"], [3, "c1-1"], [5, "c0-2"]], 5, ret=0.5),
    }
    for what, op in bad.items():
        verdict = check_local_reads([op], FINAL, INVOKED)
        assert not verdict.ok and len(verdict.problems) == 1, (what, verdict.problems)
        assert "local read 7 from node 2" in verdict.problems[0]
