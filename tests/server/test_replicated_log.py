"""The replicated log of strings, on disk: records, reads, retention, snapshots."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest

from raftlog.server.replicated_log import (
    Appended,
    ReplicatedLog,
    Trimmed,
    append_command,
    command_text,
    trim_command,
)


def _fill(sm: ReplicatedLog, first: int, last: int, term: int = 1) -> None:
    for i in range(first, last + 1):
        sm.apply(i, term, append_command(f"v{i}".encode(), time_ms=1000 * i))


async def _settle(sm: ReplicatedLog) -> None:
    """Wait (with a deadline) until everything applied is on disk."""
    async with asyncio.timeout(10):
        while sm.persisted_index() < sm.applied:
            await asyncio.sleep(0.005)


def _data(sm: ReplicatedLog, start: int = 1) -> list[bytes]:
    return [r.data for r in sm.read_sync(start, 1 << 30).records]


@pytest.fixture(params=["memory", "disk"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Path | None:
    return None if request.param == "memory" else tmp_path


def test_appends_become_records_read_back_in_pages(where: Path | None) -> None:
    async def main() -> None:
        sm = ReplicatedLog(where, tail_records=10)
        assert sm.apply(3, 2, append_command(b"SET 5", 7)) == Appended(3, 2)
        _fill(sm, 4, 60)
        await _settle(sm)
        page = await sm.read(1, 5)
        assert [r.index for r in page.records] == [3, 4, 5, 6, 7]
        assert page.records[0].data == b"SET 5" and page.records[0].time_ms == 7
        assert page.next_index == 8 and page.first_index == 1
        recent = await sm.read(58, 100)  # from the in-memory tail
        assert [r.index for r in recent.records] == [58, 59, 60] and recent.next_index is None
        assert (await sm.read(61, 10)).records == ()
        assert len(sm._tail) <= 10  # only a bounded tail stays in memory
        sm.close()

    asyncio.run(main())


def test_malformed_commands_are_appended_as_they_are() -> None:
    sm = ReplicatedLog()
    sm.apply(1, 1, b"SET 5")  # no framing: the bytes themselves
    sm.apply(2, 1, b"\x01not msgpack")
    assert _data(sm) == [b"SET 5", b"\x01not msgpack"]
    assert command_text(append_command(b"ADD 1")) == b"ADD 1"
    assert command_text(trim_command(9)) == b"<trim before 9>"


def test_trim_drops_older_records_and_never_passes_itself(where: Path | None) -> None:
    async def main() -> None:
        sm = ReplicatedLog(where, tail_records=4)
        _fill(sm, 1, 20)
        await _settle(sm)
        assert sm.apply(21, 1, trim_command(11)) == Trimmed(11)
        assert _data(sm) == [f"v{i}".encode() for i in range(11, 21)]
        assert (await sm.read(1, 100)).first_index == 11
        assert sm.apply(22, 1, trim_command(5)) == Trimmed(11)  # never goes back
        assert sm.apply(23, 1, trim_command(10_000)) == Trimmed(23)  # not past itself
        assert _data(sm) == []
        _fill(sm, 24, 25)
        assert _data(sm) == [b"v24", b"v25"]
        sm.close()

    asyncio.run(main())


def test_keep_last_and_newer_than_resolve_to_an_index(where: Path | None) -> None:
    async def main() -> None:
        sm = ReplicatedLog(where, tail_records=3)
        _fill(sm, 1, 30)
        await _settle(sm)
        assert sm.index_keeping_last(5) == 26
        assert sm.index_keeping_last(0) == 31
        assert sm.index_newer_than(10_000) == 10  # records are stamped 1000 * index
        assert sm.index_newer_than(29_500) == 30
        assert sm.index_newer_than(10**9) == 31
        sm.close()

    asyncio.run(main())


def test_records_and_the_applied_index_survive_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        sm = ReplicatedLog(tmp_path, tail_records=5)
        _fill(sm, 1, 50)
        sm.apply(51, 1, trim_command(20))
        await _settle(sm)
        assert sm.persisted_index() == 51
        sm.close()
        again = ReplicatedLog(tmp_path, tail_records=5)
        assert again.persisted_index() == again.applied == 51
        assert again.first_index == 20 and again.last_index == 50
        assert _data(again) == [f"v{i}".encode() for i in range(20, 51)]
        again.close()

    asyncio.run(main())


def test_a_snapshot_restores_the_same_records_elsewhere(where: Path | None, tmp_path: Path) -> None:
    async def main() -> None:
        sm = ReplicatedLog(where, tail_records=8)
        _fill(sm, 1, 40)
        sm.apply(41, 1, trim_command(5))
        snap = sm.snapshot()
        _fill(sm, 42, 45)  # applying goes on while the snapshot is written
        sink = io.BytesIO()
        await asyncio.to_thread(snap.write, sink)
        snap.release()
        target = ReplicatedLog(tmp_path / "other", tail_records=8)
        _fill(target, 1, 3)  # whatever it held is replaced
        sink.seek(0)
        await asyncio.to_thread(target.restore, sink)
        assert target.applied == target.persisted_index() == 41
        assert target.first_index == 5
        assert _data(target) == [f"v{i}".encode() for i in range(5, 41)]
        sm.close()
        target.close()

    asyncio.run(main())


def test_a_truncated_snapshot_is_refused() -> None:
    sm = ReplicatedLog()
    _fill(sm, 1, 10)
    sink = io.BytesIO()
    snap = sm.snapshot()
    snap.write(sink)
    cut = io.BytesIO(sink.getvalue()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        ReplicatedLog().restore(cut)


def test_a_stream_of_appends_is_written_in_few_transactions(tmp_path: Path) -> None:
    """One entry applied at a time, as a sequential client does: the records file gets
    at most one transaction per flush interval, not one per entry, and all of it lands."""

    async def main() -> None:
        sm = ReplicatedLog(tmp_path, flush_every_s=0.05)
        writes = 0
        real_write = sm._write

        def counting(*args: object) -> None:
            nonlocal writes
            writes += 1
            real_write(*args)  # type: ignore[arg-type]

        sm._write = counting  # type: ignore[method-assign]
        began = time.monotonic()
        for i in range(1, 201):
            _fill(sm, i, i)
            await asyncio.sleep(0.001)  # other work on the loop between two appends
        await _settle(sm)
        elapsed = time.monotonic() - began
        assert sm.persisted_index() == 200
        # At most one write per interval, plus the first (however slow the machine).
        assert writes <= elapsed / 0.05 + 2, (writes, elapsed)
        sm.close()
        again = ReplicatedLog(tmp_path)
        assert again.persisted_index() == 200 and len(_data(again)) == 200
        again.close()

    asyncio.run(main())
