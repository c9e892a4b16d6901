"""Storage faults: bits flipped on disk, damaged pages, an old schema, a full disk.

(The torn WAL after kill -9 is in test_sqlite_crash.py; the node's side of a full disk in
tests/server/test_disk_full.py and tests/process/test_storage_faults.py.)
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftlog.core.types import Entry, HardState, NodeId
from raftlog.storage import SQLiteStorage, StorageCorrupt, StorageFull
from raftlog.storage.sqlite import DB_NAME, SCHEMA_VERSION
from raftlog.testing import walfile

CLUSTER = "faults"


def open_storage(data_dir: Path) -> SQLiteStorage:
    return SQLiteStorage.open(data_dir, cluster_id=CLUSTER, node_id=1)


def needle(index: int) -> bytes:
    return f"<entry {index:05d} payload>".encode() * 4


def write_log(data_dir: Path, count: int, size: int = 0) -> list[Entry]:
    """``count`` entries of term 1 (data ``needle(i)``, padded to ``size`` bytes), saved
    and checkpointed into the database file (closing removes the WAL)."""
    log = [Entry(i, 1, data=needle(i).ljust(size, b".")) for i in range(1, count + 1)]
    with open_storage(data_dir) as s:
        s.save(HardState(term=1, vote=NodeId(1), commit=count // 2), log)
    assert not (data_dir / (DB_NAME + "-wal")).exists()
    return log


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


def refusal(data_dir: Path) -> str:
    with pytest.raises(StorageCorrupt) as caught:
        open_storage(data_dir)
    message = str(caught.value)
    assert str(data_dir / DB_NAME) in message  # the file is named
    return message


# -- checksums ---------------------------------------------------------------------------


def test_a_bit_flipped_in_an_entrys_data_on_disk_names_the_first_bad_entry(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "n1"
    write_log(data_dir, 100)
    db = data_dir / DB_NAME
    content = db.read_bytes()
    # SQLite itself does not notice: a payload byte is not part of any page structure.
    for index in (77, 42):
        flip_bit(db, content.index(needle(index)) + 9, bit=3)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert "checksum mismatch at entry 42 (term 1)" in refusal(data_dir)


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        ("UPDATE log SET term = 2 WHERE idx = 100", "checksum mismatch at entry 100 (term 2)"),
        ("UPDATE log SET kind = 1 WHERE idx = 5", "checksum mismatch at entry 5"),
        ("UPDATE log SET data = x'00' WHERE idx = 63", "checksum mismatch at entry 63"),
        ("UPDATE log SET crc = crc + 1 WHERE idx = 9", "checksum mismatch at entry 9"),
        ("UPDATE hard_state SET vote = 2", "checksum mismatch in the hard state (term 1, vote 2"),
        ("UPDATE hard_state SET commit_index = 3", "checksum mismatch in the hard state"),
        ("UPDATE checkpoint SET file = 'x.snap'", "checksum mismatch in the checkpoint row"),
    ],
)
def test_a_value_changed_behind_raftlogs_back_is_refused(
    tmp_path: Path, statement: str, fragment: str
) -> None:
    data_dir = tmp_path / "n1"
    write_log(data_dir, 100)
    with sqlite3.connect(data_dir / DB_NAME, isolation_level=None) as conn:
        conn.execute(statement)
    assert fragment in refusal(data_dir)


def test_what_raftlog_wrote_itself_passes_the_checksums(tmp_path: Path) -> None:
    # The control: compaction, truncation, a new hard state, all re-read fine.
    data_dir = tmp_path / "n1"
    log = write_log(data_dir, 30)
    with open_storage(data_dir) as s:
        s.save(HardState(term=2, vote=NodeId(2), commit=15), [Entry(20, 2, data=b"new")])
    with open_storage(data_dir) as s:
        assert s.last_index() == 20
        assert list(s.entries(1, 20, 1 << 40)) == log[:19]
        assert s.initial_state()[0] == HardState(term=2, vote=NodeId(2), commit=15)


# -- damaged pages -------------------------------------------------------------------------


def _table_leaf_pages(db: Path) -> tuple[int, list[int]]:
    """(page size, numbers of the log table's leaf pages, in key order)."""
    with sqlite3.connect(db) as conn:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        roots = {row[0] for row in conn.execute("SELECT rootpage FROM sqlite_master")}
    data = db.read_bytes()
    leaves = []
    for number in range(2, len(data) // page_size + 1):
        if number in roots:
            continue  # the small tables are a single leaf, their root
        if data[(number - 1) * page_size] == 0x0D:  # a table b-tree leaf
            leaves.append(number)
    return page_size, leaves


def _first_rowid(page: bytes) -> int:
    """The rowid of the first cell of a table leaf page (after its 8-byte header)."""
    cell = int.from_bytes(page[8:10], "big")

    def varint(at: int) -> tuple[int, int]:
        value = 0
        for i in range(9):
            byte = page[at + i]
            if i == 8:
                return (value << 8) | byte, at + 9
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                return value, at + i + 1
        raise AssertionError("unreachable")

    _size, at = varint(cell)
    rowid, _ = varint(at)
    return rowid


def test_a_damaged_page_in_the_middle_of_the_log_names_the_entry_where_damage_starts(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "n1"
    write_log(data_dir, 600, size=300)
    db = data_dir / DB_NAME
    page_size, leaves = _table_leaf_pages(db)
    assert len(leaves) > 10
    victim = leaves[len(leaves) // 2]
    start = (victim - 1) * page_size
    first = _first_rowid(db.read_bytes()[start : start + page_size])
    assert 1 < first < 600
    with db.open("r+b") as f:  # the page header: cell count and content offset garbage
        f.seek(start + 3)
        f.write(b"\xff\xff\xff\x01")
    message = refusal(data_dir)
    assert "malformed" in message
    # sqlite3's cursor reads one row ahead: the index named may be one short of the page's
    # first entry (never past it: "at or after" holds).
    said = re.search(r"the first unreadable entry is at or after index (\d+) ", message)
    assert said is not None, message
    assert first - 1 <= int(said.group(1)) <= first


# -- an old schema ---------------------------------------------------------------------------


def _downgrade_to_v2(db: Path) -> None:
    """Make the database what schema 2 wrote: no crc columns, version 2."""
    with sqlite3.connect(db, isolation_level=None) as conn:
        for table in ("log", "hard_state", "checkpoint"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN crc")
        conn.execute("UPDATE meta SET schema_version = 2")


def test_a_schema_2_database_is_migrated_and_then_protected(tmp_path: Path) -> None:
    data_dir = tmp_path / "n1"
    log = write_log(data_dir, 50)
    _downgrade_to_v2(data_dir / DB_NAME)
    with open_storage(data_dir) as s:
        assert list(s.entries(1, 51, 1 << 40)) == log
        assert s.initial_state()[0] == HardState(term=1, vote=NodeId(1), commit=25)
    with sqlite3.connect(data_dir / DB_NAME, isolation_level=None) as conn:
        assert conn.execute("SELECT schema_version FROM meta").fetchone() == (SCHEMA_VERSION,)
        conn.execute("UPDATE log SET data = x'01' WHERE idx = 17")
    assert "checksum mismatch at entry 17" in refusal(data_dir)


def test_a_schema_2_database_with_a_row_that_cannot_be_checksummed_is_refused(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "n1"
    write_log(data_dir, 5)
    _downgrade_to_v2(data_dir / DB_NAME)
    with sqlite3.connect(data_dir / DB_NAME, isolation_level=None) as conn:
        conn.execute("UPDATE log SET term = -3 WHERE idx = 2")
    assert "cannot add checksums to this schema-2 database" in refusal(data_dir)
    with sqlite3.connect(data_dir / DB_NAME) as conn:  # rolled back: still version 2
        assert conn.execute("SELECT schema_version FROM meta").fetchone() == (2,)


# -- a full disk -----------------------------------------------------------------------------


def _limit_pages(storage: SQLiteStorage, pages: int) -> None:
    """Cap the database's size (SQLITE_FULL beyond it), on the storage's writer thread."""
    conn = storage._conn
    storage._executor.submit(conn.execute, f"PRAGMA max_page_count = {pages}").result()


def test_a_full_database_refuses_the_write_whole_and_takes_it_once_there_is_room(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "n1"
    with open_storage(data_dir) as s:
        s.save(HardState(term=1), [Entry(1, 1, data=b"first")])
        _limit_pages(s, 12)
        batch = [Entry(i, 1, data=os.urandom(900)) for i in range(2, 80)]
        with pytest.raises(StorageFull, match=r"raftlog\.db: disk full"):
            s.save(HardState(term=1, commit=1), batch)
        assert s.failed is None  # not poisoned
        assert s.last_index() == 1  # the mirror did not move
        with pytest.raises(StorageFull):  # still full: refused again, still whole
            asyncio.run(s.save_async(HardState(term=1, commit=1), batch))
        _limit_pages(s, 100_000)
        asyncio.run(s.save_async(HardState(term=1, commit=1), batch))
        assert s.last_index() == 79
    with open_storage(data_dir) as s:
        assert [e.data for e in s.entries(1, 80, 1 << 40)] == [b"first"] + [e.data for e in batch]
        assert s.initial_state()[0] == HardState(term=1, commit=1)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, mounted for the test (root only)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_filesystem_fails_saves_cleanly_and_they_succeed_once_space_is_freed(
    small_fs: Path,
) -> None:
    data_dir = small_fs / "n1"
    ballast = small_fs / "ballast"
    with open_storage(data_dir) as s:
        s.save(HardState(term=1), [Entry(1, 1, data=b"first")])
        # Fill the filesystem, leaving too little for the batch below.
        with ballast.open("wb", buffering=0) as f, pytest.raises(OSError):
            while True:
                f.write(b"\0" * 4096)
        batch = [Entry(i, 1, data=os.urandom(3000)) for i in range(2, 60)]
        for _ in range(3):
            with pytest.raises(StorageFull):
                s.save(HardState(term=1, commit=1), batch)
            assert s.failed is None and s.last_index() == 1
        ballast.unlink()
        s.save(HardState(term=1, commit=1), batch)
        assert s.last_index() == 59
    with open_storage(data_dir) as s:
        assert [e.data for e in s.entries(2, 60, 1 << 40)] == [e.data for e in batch]


# -- the WAL reader of the torn-write tests ----------------------------------------------------


def test_the_wal_reader_stops_at_the_first_frame_that_is_not_valid(tmp_path: Path) -> None:
    data_dir = tmp_path / "n1"
    with open_storage(data_dir) as s:
        for i in range(1, 4):
            s.save(HardState(term=1), [Entry(i, 1, data=bytes(500))])
        wal = tmp_path / "copy-wal"
        shutil.copyfile(data_dir / (DB_NAME + "-wal"), wal)
    ends = walfile.commit_ends(wal)
    assert len(ends) >= 3  # (the schema's own transaction may come first)
    frame = walfile.FRAME_HEADER.size + walfile.page_size(wal)
    assert all((end - walfile.HEADER.size) % frame == 0 for end in ends)
    # A flipped bit in the last transaction's page: the chain breaks there.
    flip_bit(wal, ends[-1] - 100)
    assert walfile.commit_ends(wal) == ends[:-1]
    # A flipped bit in the first frame's salt: nothing is valid.
    flip_bit(wal, walfile.HEADER.size + 8)
    assert walfile.commit_ends(wal) == []
