"""SQLiteStorage beyond the conformance suite: the data directory's identity, validation of
what is loaded, the Raft checks on saves, the async path, failed writes, locking.

(The whole conformance suite also runs against SQLiteStorage, see conftest.py; the kill -9
test is in test_sqlite_crash.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftlog.core.errors import EntryUnavailable, LogCompacted, StorageError, UsageError
from raftlog.core.types import ConfState, Entry, EntryKind, HardState, NodeId, encode_conf
from raftlog.storage import (
    SQLiteStorage,
    StorageCorrupt,
    StorageFailed,
    StorageLocked,
    WrongCluster,
    WrongDataDir,
    WrongNode,
)
from raftlog.storage.sqlite import (
    DB_NAME,
    SCHEMA_VERSION,
    checkpoint_crc,
    entry_crc,
    hard_state_crc,
)
from raftlog.testing.waiting import eventually_async

NO_LIMIT = 1 << 62
CLUSTER = "cluster-a"


def entry(index: int, term: int, kind: EntryKind = EntryKind.NORMAL) -> Entry:
    return Entry(index, term, kind, f"{index}@{term}".encode())


def run(index_from: int, index_to: int, term: int) -> list[Entry]:
    return [entry(i, term) for i in range(index_from, index_to + 1)]


def whole_log(storage: SQLiteStorage) -> list[Entry]:
    return list(storage.entries(1, storage.last_index() + 1, NO_LIMIT))


# The log most tests start from: terms 1, 1, 2, 2, 2 and a hard state that fits it.
BASE_LOG = [entry(1, 1, EntryKind.NOOP), entry(2, 1), *run(3, 5, 2)]
BASE_HS = HardState(term=2, vote=NodeId(1), commit=3)


def open_storage(data_dir: Path, **kwargs: object) -> SQLiteStorage:
    options: dict[str, object] = {"cluster_id": CLUSTER, "node_id": 1, **kwargs}
    return SQLiteStorage.open(data_dir, **options)  # type: ignore[arg-type]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "node-1"


@pytest.fixture
def storage(data_dir: Path) -> Iterator[SQLiteStorage]:
    s = open_storage(data_dir)
    try:
        yield s
    finally:
        s.close()


def make_base(data_dir: Path) -> None:
    with open_storage(data_dir) as s:
        s.save(BASE_HS, BASE_LOG)


@contextlib.contextmanager
def raw(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the storage's database, committing on exit."""
    conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def reseal(conn: sqlite3.Connection) -> None:
    """Recompute every row's checksum, as a raftlog with a bug (rather than a flipped bit)
    would have written it: what is left to catch is the content, by the other checks.
    Rows whose values do not fit a checksum (wrong types) keep theirs."""
    rows = conn.execute("SELECT idx, term, kind, data FROM log").fetchall()
    for idx, term, kind, data in rows:
        with contextlib.suppress(Exception):
            conn.execute(
                "UPDATE log SET crc = ? WHERE idx = ?", (entry_crc(idx, term, kind, data), idx)
            )
    for term, vote, commit in conn.execute("SELECT term, vote, commit_index FROM hard_state"):
        with contextlib.suppress(Exception):
            conn.execute("UPDATE hard_state SET crc = ?", (hard_state_crc(term, vote, commit),))
    for row in conn.execute(
        "SELECT idx, term, conf, file, sessions, log_start_idx, log_start_term FROM checkpoint"
    ).fetchall():
        with contextlib.suppress(Exception):
            conn.execute("UPDATE checkpoint SET crc = ?", (checkpoint_crc(*row),))


# --- creating, the files, the schema ----------------------------------------------------------


def test_open_creates_the_directory_and_an_empty_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b" / "node-1"
    with open_storage(data_dir) as s:
        assert s.path == data_dir / DB_NAME
        assert s.path.is_file()
        assert s.initial_state() == (HardState(), None)
        assert (s.first_index(), s.last_index(), s.term(0)) == (1, 0, 0)
        # synchronous=FULL is a per-connection setting: ask the storage's own connection.
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    with raw(data_dir) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
        meta = conn.execute("SELECT schema_version, cluster_id, node_id FROM meta").fetchall()
        assert meta == [(SCHEMA_VERSION, CLUSTER, 1)]
        hs = conn.execute("SELECT term, vote, commit_index FROM hard_state").fetchall()
        assert hs == [(0, 0, 0)]
        assert conn.execute("SELECT count(*) FROM log").fetchone()[0] == 0


def test_rows_on_disk_are_the_saved_entries_and_hard_state(data_dir: Path) -> None:
    make_base(data_dir)
    with raw(data_dir) as conn:
        rows = conn.execute("SELECT idx, term, kind, data FROM log ORDER BY idx").fetchall()
        hs = conn.execute("SELECT term, vote, commit_index FROM hard_state").fetchall()
    assert rows == [(e.index, e.term, int(e.kind), e.data) for e in BASE_LOG]
    assert hs == [(2, 1, 3)]


@pytest.mark.parametrize(
    ("cluster_id", "node_id"), [("", 1), (None, 1), (CLUSTER, 0), (CLUSTER, -2), (CLUSTER, True)]
)
def test_open_refuses_invalid_ids(data_dir: Path, cluster_id: object, node_id: object) -> None:
    with pytest.raises(UsageError):
        SQLiteStorage.open(data_dir, cluster_id=cluster_id, node_id=node_id)  # type: ignore[arg-type]
    assert not data_dir.exists()


# --- identity: the directory belongs to one cluster and one node ------------------------------


def test_wrong_cluster_is_refused_with_both_ids_and_the_path(data_dir: Path) -> None:
    make_base(data_dir)
    with pytest.raises(WrongCluster) as caught:
        SQLiteStorage.open(data_dir, cluster_id="cluster-b", node_id=1)
    message = str(caught.value)
    assert "'cluster-a'" in message
    assert "'cluster-b'" in message
    assert str(data_dir / DB_NAME) in message
    assert isinstance(caught.value, WrongDataDir)
    assert isinstance(caught.value, StorageError)
    # Refusing changed nothing: the right ids still open the same data.
    with open_storage(data_dir) as s:
        assert s.initial_state()[0] == BASE_HS
        assert whole_log(s) == BASE_LOG


def test_wrong_node_is_refused_with_both_ids_and_the_path(data_dir: Path) -> None:
    make_base(data_dir)
    with pytest.raises(WrongNode) as caught:
        SQLiteStorage.open(data_dir, cluster_id=CLUSTER, node_id=2)
    message = str(caught.value)
    assert "belongs to node 1" in message
    assert "for node 2" in message
    assert str(data_dir / DB_NAME) in message
    assert isinstance(caught.value, WrongDataDir)
    with open_storage(data_dir) as s:
        assert whole_log(s) == BASE_LOG


def test_a_second_open_of_the_same_directory_is_refused(data_dir: Path) -> None:
    first = open_storage(data_dir)
    try:
        with pytest.raises(StorageLocked, match="already open"):
            open_storage(data_dir)
        first.save(BASE_HS, BASE_LOG)  # the refused open did not disturb the first one
    finally:
        first.close()
    with open_storage(data_dir) as again:  # released on close
        assert whole_log(again) == BASE_LOG


# --- validation of what is loaded --------------------------------------------------------------

# (name, statements run on the base database, fragment of the expected message)
CORRUPTIONS = [
    ("gap", ["DELETE FROM log WHERE idx = 3"], "gap in the log: entry 2 is followed by entry 4"),
    ("starts-late", ["DELETE FROM log WHERE idx = 1"], "the log starts at index 2"),
    (
        "commit-beyond-last",
        ["UPDATE hard_state SET commit_index = 9"],
        "the commit index 9 is beyond the last index 5",
    ),
    (
        "term-backwards",
        ["UPDATE log SET term = 1 WHERE idx = 4"],
        "the term goes backwards: entry 4 has term 1 after term 2 at entry 3",
    ),
    (
        "hard-state-term-below-log",
        ["UPDATE hard_state SET term = 1"],
        "the hard state's term 1 is lower than the last entry's term 2",
    ),
    ("unknown-kind", ["UPDATE log SET kind = 7 WHERE idx = 2"], "entry 2 has an unknown kind 7"),
    ("term-zero", ["UPDATE log SET term = 0 WHERE idx = 1"], "entry 1 has an invalid term 0"),
    ("text-data", ["UPDATE log SET data = 'text' WHERE idx = 2"], "not a BLOB"),
    ("negative-vote", ["UPDATE hard_state SET vote = -1"], "invalid hard state"),
    (
        "schema-version",
        ["UPDATE meta SET schema_version = 1"],
        "schema version 1; this raftlog reads version 3 (a data directory of an older raftlog",
    ),
    (
        "compacted-past-the-snapshot",
        ["UPDATE checkpoint SET log_start_idx = 2, log_start_term = 1"],
        "the log is compacted to 2, past the snapshot at 0",
    ),
    (
        "log-starts-late",
        [
            "UPDATE checkpoint SET idx = 3, term = 1, conf = x'"
            + encode_conf(ConfState(frozenset({NodeId(1)}))).hex()
            + "'",
            "DELETE FROM log WHERE idx = 1",
        ],
        "the log starts at index 2, expected 1",
    ),
    (
        "bad-membership",
        ["UPDATE checkpoint SET conf = x'0102'"],
        "invalid checkpoint membership",
    ),
    (
        "snapshot-without-voters",
        ["UPDATE checkpoint SET idx = 2, term = 1"],
        "the snapshot at 2 has term 1 and voters []",
    ),
    ("no-hard-state", ["DELETE FROM hard_state"], "the hard_state table has 0 rows"),
    ("no-meta", ["DELETE FROM meta"], "the meta table has 0 rows"),
    ("missing-table", ["DROP TABLE log"], "not a raftlog database: tables"),
    ("extra-table", ["CREATE TABLE users (name TEXT)"], "not a raftlog database: tables"),
    (
        "renamed-column",
        ["ALTER TABLE meta RENAME COLUMN node_id TO nid"],
        "not a valid raftlog database: no such column",
    ),
]


@pytest.mark.parametrize(
    ("statements", "fragment"), [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS]
)
def test_corrupt_database_is_refused(data_dir: Path, statements: list[str], fragment: str) -> None:
    make_base(data_dir)
    with raw(data_dir) as conn:
        for statement in statements:
            conn.execute(statement)
        if "crc" in {row[1] for row in conn.execute("PRAGMA table_info(log)")}:
            reseal(conn)  # the checks on content, not the checksums (tested below)
    with pytest.raises(StorageCorrupt) as caught:
        open_storage(data_dir)
    assert fragment in str(caught.value)
    assert str(data_dir / DB_NAME) in str(caught.value)
    # The failed open released everything: opening again fails the same way, not "locked".
    with pytest.raises(StorageCorrupt):
        open_storage(data_dir)


def test_the_base_database_itself_is_valid(data_dir: Path) -> None:
    # The control for the corruption cases: without the mutation it opens.
    make_base(data_dir)
    with open_storage(data_dir) as s:
        assert s.initial_state()[0] == BASE_HS
        assert whole_log(s) == BASE_LOG


def test_a_file_of_garbage_is_corrupt_not_a_sqlite_traceback(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / DB_NAME).write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(StorageCorrupt) as caught:
        open_storage(data_dir)
    assert "not a valid raftlog database: file is not a database" in str(caught.value)
    assert str(data_dir / DB_NAME) in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    # Nothing was written over the garbage.
    assert (data_dir / DB_NAME).read_bytes() == b"this is not a database\n" * 200


@pytest.mark.parametrize("damage", ["overwrite-pages", "truncate"])
def test_damaged_pages_are_corrupt(data_dir: Path, damage: str) -> None:
    with open_storage(data_dir) as s:
        s.save(
            HardState(term=1), [Entry(i, 1, data=bytes([i % 256]) * 200) for i in range(1, 2001)]
        )
    path = data_dir / DB_NAME
    assert not path.with_name(DB_NAME + "-wal").exists()  # checkpointed on close
    with path.open("r+b") as f:
        if damage == "truncate":
            f.truncate(4096 * 5)
        else:
            f.seek(4096)
            f.write(b"\xde\xad\xbe\xef" * (4096 * 20 // 4))
    with pytest.raises(StorageCorrupt, match="malformed"):
        open_storage(data_dir)


def test_a_zero_length_file_is_a_new_database(data_dir: Path) -> None:
    # What a crash in the middle of creating the database leaves: it is created again.
    data_dir.mkdir()
    (data_dir / DB_NAME).write_bytes(b"")
    with open_storage(data_dir) as s:
        s.save(BASE_HS, BASE_LOG)
    with open_storage(data_dir) as s:
        assert whole_log(s) == BASE_LOG


def test_without_invariant_checks_only_structure_is_checked(data_dir: Path) -> None:
    make_base(data_dir)
    with raw(data_dir) as conn:
        conn.execute("UPDATE log SET term = 1 WHERE idx = 5")  # term backwards
        conn.execute("UPDATE hard_state SET commit_index = 40, term = 0")
        reseal(conn)
    with pytest.raises(StorageCorrupt):
        open_storage(data_dir)
    with open_storage(data_dir, check_invariants=False) as s:
        assert s.initial_state()[0] == HardState(term=0, vote=NodeId(1), commit=40)
        assert s.term(5) == 1
    with raw(data_dir) as conn:
        conn.execute("DELETE FROM log WHERE idx = 2")
    with pytest.raises(StorageCorrupt, match="gap"):
        open_storage(data_dir, check_invariants=False)


# --- durability across close and reopen --------------------------------------------------------


def test_data_survives_close_and_reopen(data_dir: Path) -> None:
    with open_storage(data_dir) as s:
        s.save(HardState(term=1, vote=NodeId(1)), run(1, 10, 1))
        s.save(HardState(term=3, vote=NodeId(2), commit=4), run(6, 8, 3))  # truncates 9, 10
        s.save(None, [Entry(9, 3, EntryKind.CONF_CHANGE, b"\x00\xff")])
    with open_storage(data_dir) as s:
        assert s.initial_state() == (HardState(term=3, vote=NodeId(2), commit=4), None)
        expected = [*run(1, 5, 1), *run(6, 8, 3), Entry(9, 3, EntryKind.CONF_CHANGE, b"\x00\xff")]
        assert whole_log(s) == expected
        assert s.entries(9, 10, NO_LIMIT)[0].kind is EntryKind.CONF_CHANGE
        s.save(HardState(term=3, vote=NodeId(2), commit=9), run(10, 10, 3))
    with open_storage(data_dir) as s:
        assert s.last_index() == 10
        assert s.initial_state()[0].commit == 9


def test_reads_have_the_memory_storage_errors(storage: SQLiteStorage) -> None:
    storage.save(BASE_HS, BASE_LOG)
    with pytest.raises(EntryUnavailable):
        storage.term(6)
    with pytest.raises(LogCompacted):
        storage.entries(0, 2, NO_LIMIT)
    with pytest.raises(EntryUnavailable):
        storage.entries(4, 7, NO_LIMIT)


# --- the Raft checks on saves ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hard_state", "entries", "fragment"),
    [
        (HardState(term=2, commit=6), [], "commit index 6 would be beyond the last index 5"),
        (
            HardState(term=2, commit=4),
            run(3, 3, 2),
            "commit index 4 would be beyond the last index 3",
        ),
        (None, run(2, 2, 2), "(truncating committed entries)"),
        (HardState(term=2, commit=3), run(6, 6, 1), "entry 6 has term 1, lower than term 2"),
        (HardState(term=3, commit=3), [entry(6, 3), entry(7, 2)], "entry 7 has term 2"),
        (None, run(6, 6, 3), "hard state term 2 would be lower than the last entry's term 3"),
        (HardState(term=1, commit=3), [], "hard state term 1 would be lower"),
        (HardState(term=-1), [], "hard state term -1 out of range"),
        (None, [Entry(6, 2, 9, b"")], "unknown kind 9"),  # type: ignore[arg-type]
        (None, [Entry(6, 2, EntryKind.NORMAL, "text")], "data is str"),  # type: ignore[arg-type]
        (None, [Entry(6, 2**63, EntryKind.NORMAL, b"")], "has term"),
    ],
)
def test_saves_breaking_raft_invariants_are_refused_and_change_nothing(
    data_dir: Path, hard_state: HardState | None, entries: list[Entry], fragment: str
) -> None:
    make_base(data_dir)
    with open_storage(data_dir) as s:
        with pytest.raises(UsageError) as caught:
            s.save(hard_state, entries)
        assert fragment in str(caught.value)
        assert s.failed is None  # refused before writing: the storage stays usable
        assert s.initial_state()[0] == BASE_HS
        assert whole_log(s) == BASE_LOG
        s.save(HardState(term=3, vote=NodeId(1), commit=5), run(6, 6, 3))  # still writable
    with open_storage(data_dir) as s:
        assert whole_log(s) == [*BASE_LOG, entry(6, 3)]


def test_without_invariant_checks_saves_are_a_plain_store(data_dir: Path) -> None:
    with open_storage(data_dir, check_invariants=False) as s:
        s.save(HardState(term=0, commit=30), [entry(1, 5), entry(2, 3)])
    with open_storage(data_dir, check_invariants=False) as s:
        assert s.initial_state()[0] == HardState(term=0, commit=30)
        assert whole_log(s) == [entry(1, 5), entry(2, 3)]


# --- the async path ----------------------------------------------------------------------------


def test_save_async_does_not_block_the_event_loop(storage: SQLiteStorage) -> None:
    storage.save(BASE_HS, BASE_LOG)
    big = [Entry(i, 3, data=bytes([i % 256]) * 512) for i in range(6, 20_006)]
    new_hs = HardState(term=3, vote=NodeId(1), commit=5)

    async def main() -> int:
        # Another connection holds SQLite's write lock, so the writer thread has to wait
        # for it. Only a coroutine on this loop releases it: if save_async blocked the
        # loop, the write would time out and fail instead.
        blocker = sqlite3.connect(storage.path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            save = asyncio.ensure_future(storage.save_async(new_hs, big))
            ticks = 0
            while ticks < 50:
                await asyncio.sleep(0.001)
                ticks += 1
                assert not save.done()
                # The mirror changes only once the write has returned.
                assert storage.last_index() == 5
                assert storage.initial_state()[0] == BASE_HS
            blocker.execute("COMMIT")
            await asyncio.wait_for(save, timeout=10)
        finally:
            blocker.close()
        assert storage.last_index() == 20_005
        assert storage.initial_state()[0] == new_hs
        assert list(storage.entries(6, 20_006, NO_LIMIT)) == big
        return ticks

    assert asyncio.run(main()) == 50
    storage.close()
    with open_storage(storage.data_dir) as again:
        assert again.last_index() == 20_005
        assert again.entries(20_005, 20_006, NO_LIMIT)[0] == big[-1]


def test_the_loop_keeps_running_during_a_big_async_write(storage: SQLiteStorage) -> None:
    big = [Entry(i, 1, data=os.urandom(256)) for i in range(1, 20_001)]

    async def main() -> tuple[int, int]:
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        before = ticks
        await storage.save_async(HardState(term=1), big)
        during = ticks - before
        stop = True
        await tick_task
        return during, storage.last_index()

    during, last = asyncio.run(main())
    assert last == 20_000
    assert during > 1  # the ticker ran while the batch was written
    assert list(storage.entries(1, 20_001, NO_LIMIT)) == big


def test_cancelling_save_async_still_updates_the_mirror(storage: SQLiteStorage) -> None:
    storage.save(BASE_HS, BASE_LOG)

    async def main() -> None:
        blocker = sqlite3.connect(storage.path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            save = asyncio.ensure_future(storage.save_async(None, run(6, 8, 2)))
            await asyncio.sleep(0.01)
            save.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await save
            # The write is still in flight on the writer thread: no overlapping save.
            with pytest.raises(UsageError, match="already in progress"):
                storage.save(None, run(6, 6, 2))
            with pytest.raises(UsageError, match="already in progress"):
                await storage.save_async(None, run(6, 6, 2))
            assert storage.last_index() == 5
            blocker.execute("COMMIT")
            await eventually_async(
                storage.last_index,
                what="the cancelled write to land (the last index)",
                until=lambda last: last == 8,
                interval=0.001,
            )
        finally:
            blocker.close()
        await storage.save_async(None, run(9, 9, 2))  # writable again

    asyncio.run(main())
    storage.close()
    with open_storage(storage.data_dir) as again:
        assert whole_log(again) == [*BASE_LOG, *run(6, 9, 2)]


def test_async_context_manager_and_aclose(data_dir: Path) -> None:
    async def main() -> SQLiteStorage:
        async with open_storage(data_dir) as s:
            await s.save_async(BASE_HS, BASE_LOG)
            await s.save_async(None, [])  # nothing to do
        assert s.closed
        await s.aclose()  # idempotent
        return s

    closed = asyncio.run(main())
    with pytest.raises(UsageError, match="closed"):
        closed.save(None, run(6, 6, 2))
    assert closed.last_index() == 5  # reads still work from memory
    with open_storage(data_dir) as s:
        assert whole_log(s) == BASE_LOG
        assert s.initial_state()[0] == BASE_HS


# --- failed writes -----------------------------------------------------------------------------


def _assert_refuses_writes(s: SQLiteStorage) -> None:
    with pytest.raises(StorageFailed, match="an earlier write failed") as caught:
        s.save(None, run(6, 6, 2))
    assert isinstance(caught.value.__cause__, StorageFailed)
    with pytest.raises(StorageFailed):
        s.save(HardState(term=9), [])
    with pytest.raises(StorageFailed):
        asyncio.run(s.save_async(None, run(6, 6, 2)))
    with pytest.raises(StorageFailed):
        s.sync()


def test_a_failed_write_raises_rolls_back_and_poisons_the_storage(data_dir: Path) -> None:
    make_base(data_dir)
    s = open_storage(data_dir)
    try:
        # Pull the hard_state table away: the DELETE and the INSERTs of the next save
        # succeed, its UPDATE of the hard state fails.
        with raw(data_dir) as conn:
            conn.execute("ALTER TABLE hard_state RENAME TO moved")
        with pytest.raises(StorageFailed, match="no such table: hard_state") as caught:
            s.save(HardState(term=3, vote=NodeId(1), commit=3), run(4, 7, 3))
        assert isinstance(caught.value, StorageError)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert s.failed is caught.value
        # The mirror did not follow the failed write.
        assert whole_log(s) == BASE_LOG
        assert s.initial_state()[0] == BASE_HS
        _assert_refuses_writes(s)
    finally:
        s.close()
    with raw(data_dir) as conn:
        conn.execute("ALTER TABLE moved RENAME TO hard_state")
    # The failed transaction left nothing behind: not its DELETE, not its INSERTs.
    with open_storage(data_dir) as again:
        assert whole_log(again) == BASE_LOG
        assert again.initial_state()[0] == BASE_HS


def test_a_connection_closed_underneath_fails_the_write(data_dir: Path) -> None:
    make_base(data_dir)
    s = open_storage(data_dir)
    try:
        s._conn.close()
        with pytest.raises(StorageFailed) as caught:
            s.save(None, run(6, 6, 2))
        assert isinstance(caught.value.__cause__, sqlite3.ProgrammingError)
        assert s.last_index() == 5
        _assert_refuses_writes(s)
    finally:
        s.close()


def test_a_failed_async_write_raises_on_the_awaiting_task(data_dir: Path) -> None:
    make_base(data_dir)
    s = open_storage(data_dir)
    try:
        with raw(data_dir) as conn:
            conn.execute("ALTER TABLE log RENAME TO moved")

        async def main() -> None:
            with pytest.raises(StorageFailed, match="no such table: log"):
                await s.save_async(None, run(6, 6, 2))

        asyncio.run(main())
        assert s.last_index() == 5
        _assert_refuses_writes(s)
    finally:
        s.close()


# --- misc --------------------------------------------------------------------------------------


def test_sync_is_a_no_op_and_close_is_idempotent(storage: SQLiteStorage) -> None:
    storage.save(BASE_HS, BASE_LOG)
    storage.sync()
    storage.close()
    storage.close()
    assert storage.closed
    with pytest.raises(UsageError, match="closed"):
        storage.sync()
    with pytest.raises(UsageError, match="closed"):
        storage.save(None, run(6, 6, 2))
    assert whole_log(storage) == BASE_LOG
    assert not any(t.name.startswith("raftlog-sqlite") for t in threading.enumerate())


def test_saved_batches_are_copied(storage: SQLiteStorage) -> None:
    batch = run(1, 3, 1)
    storage.save(HardState(term=1), batch)
    batch.clear()
    assert storage.last_index() == 3
