"""Durable storage on SQLite (the standard library's ``sqlite3``).

Layout: one database ``DATA_DIR/raftlog.db`` (WAL mode, ``synchronous=FULL``) with four
tables, and a lock file ``DATA_DIR/raftlog.lock``:

- ``meta``: one row, ``schema_version``, ``cluster_id``, ``node_id``;
- ``hard_state``: one row, ``term``, ``vote``, ``commit_index``;
- ``checkpoint``: one row: the latest snapshot (``idx``, ``term``, membership, its file
  name, the client sessions as of it) and the last compacted entry (``log_start_idx``,
  ``log_start_term``);
- ``log``: ``idx INTEGER PRIMARY KEY, term, kind, data BLOB``, one row per entry after
  ``log_start_idx``.

Decisions (see also the class docstring):

- **Reads never touch the disk.** The log that is not yet compacted is loaded and
  validated at open into an in-memory mirror (a
  :class:`~raftlog.storage.memory.MemoryStorage`, so reads have exactly its semantics and
  errors); the core reads it synchronously on the event loop. Its size is bounded by the
  node's snapshot thresholds (entries and bytes between snapshots, plus the entries kept
  for followers), not by the history: etcd keeps its uncompacted log in memory the same
  way.
- **Every write runs on one dedicated writer thread**, which owns all use of the
  connection. ``save_async`` awaits it without blocking the event loop; the blocking
  ``save`` submits to the same thread and waits, so writes are totally ordered whichever
  entry point they come through, and the connection is never used by two threads at once.
- **One save is one transaction**: ``DELETE FROM log WHERE idx >= first``, the inserts
  (``executemany``), the hard state, ``COMMIT``. With WAL and ``synchronous=FULL`` the
  commit fsyncs the WAL, so a save is durable when it returns (group commit: one fsync per
  batch) and ``sync()`` has nothing left to do.
- **A failed write poisons the storage**: the sqlite error becomes
  :class:`~raftlog.storage.errors.StorageFailed` (cause chained) and every later write
  raises too. What reached the disk is then unknown; restarting reloads and validates it.
- **Raft invariants are checked at load and at save** (``check_invariants=True``, the
  default): terms never decrease along the log, the commit index is within the log, and
  the hard state's term is at least the last entry's. The storage thus never makes durable
  a state it would refuse to open. The structural checks (contiguous indexes starting at
  1, known kinds, types, exactly one meta and hard-state row, schema version) are always
  on. ``check_invariants=False`` makes it a plain store, like ``MemoryStorage``, which
  accepts any hard state and any terms (the conformance suite's model relies on that).
- **One storage per data directory**: an exclusive ``flock`` on ``raftlog.lock`` is held
  while open (two processes on one directory could both vote), and released by the kernel
  if the process dies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import itertools
import os
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import msgspec

from raftlog.core.errors import StorageError, UsageError
from raftlog.core.types import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    SnapshotMeta,
    decode_conf,
    encode_conf,
)
from raftlog.storage.base import Checkpoint
from raftlog.storage.errors import (
    StorageCorrupt,
    StorageFailed,
    StorageFull,
    StorageLocked,
    WrongCluster,
    WrongNode,
)
from raftlog.storage.memory import MemoryStorage

__all__ = [
    "DB_NAME",
    "LOCK_NAME",
    "SCHEMA_VERSION",
    "SQLiteStorage",
    "checkpoint_crc",
    "entry_crc",
    "hard_state_crc",
    "is_disk_full",
]

SCHEMA_VERSION = 3
"""Version 3: every row of ``log``, ``hard_state`` and ``checkpoint`` carries a ``crc``
(see :func:`entry_crc`). Version 2 had no checksums: it is migrated on open (the
checksums are computed from the rows as they are, in one transaction). Version 1 had no
checkpoint, and kept client sessions in entries of kind 3: refused."""
MIGRATES_FROM = frozenset({2})
DB_NAME = "raftlog.db"
LOCK_NAME = "raftlog.lock"

_MAX_INT = 2**63 - 1  # SQLite INTEGER is a signed 64-bit integer
_KIND_OF = {int(kind): kind for kind in EntryKind}
_KINDS = frozenset(_KIND_OF)
_TABLES = frozenset({"meta", "hard_state", "checkpoint", "log"})
_SCHEMA = (
    """CREATE TABLE meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        schema_version INTEGER NOT NULL,
        cluster_id TEXT NOT NULL,
        node_id INTEGER NOT NULL
    )""",
    """CREATE TABLE hard_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        term INTEGER NOT NULL,
        vote INTEGER NOT NULL,
        commit_index INTEGER NOT NULL,
        crc INTEGER NOT NULL
    )""",
    """CREATE TABLE checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        idx INTEGER NOT NULL,
        term INTEGER NOT NULL,
        conf BLOB NOT NULL,
        file TEXT NOT NULL,
        sessions BLOB NOT NULL,
        log_start_idx INTEGER NOT NULL,
        log_start_term INTEGER NOT NULL,
        crc INTEGER NOT NULL
    )""",
    """CREATE TABLE log (
        idx INTEGER PRIMARY KEY,
        term INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        data BLOB NOT NULL,
        crc INTEGER NOT NULL
    )""",
)
_ENTRY_HEAD = struct.Struct(">QQB")
_HARD_STATE = struct.Struct(">QQQ")
_CHECKPOINT_HEAD = struct.Struct(">QQQQ")
_LENGTH = struct.Struct(">Q")


def entry_crc(index: int, term: int, kind: int, data: bytes) -> int:
    """The checksum stored with a log row: CRC-32 (zlib's) of the index, term and kind
    (big-endian u64, u64, u8) followed by the data. A flipped bit in any of them, or a
    row moved to another index, no longer matches."""
    return zlib.crc32(data, zlib.crc32(_ENTRY_HEAD.pack(index, term, kind)))


def hard_state_crc(term: int, vote: int, commit: int) -> int:
    """The checksum stored with the hard-state row."""
    return zlib.crc32(_HARD_STATE.pack(term, vote, commit))


def checkpoint_crc(
    idx: int,
    term: int,
    conf: bytes,
    file: str,
    sessions: bytes,
    log_start_idx: int,
    log_start_term: int,
) -> int:
    """The checksum stored with the checkpoint row (each blob length-prefixed)."""
    crc = zlib.crc32(_CHECKPOINT_HEAD.pack(idx, term, log_start_idx, log_start_term))
    for part in (conf, file.encode("utf-8", "surrogateescape"), sessions):
        crc = zlib.crc32(part, zlib.crc32(_LENGTH.pack(len(part)), crc))
    return crc


# sqlite errors that mean "this file is not a sound raftlog database" (rather than "the
# disk or the OS refused"): malformed pages, not a database, our fixed queries not fitting
# the schema, a wrong type.
_CORRUPT_CODES = frozenset(
    {
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_ERROR,
        sqlite3.SQLITE_FORMAT,
        sqlite3.SQLITE_MISMATCH,
    }
)


class SQLiteStorage:
    """A node's durable log and hard state in one SQLite database.

    Open with :meth:`open`; close with :meth:`close` / :meth:`aclose` or use it as a
    (sync or async) context manager. Reads (:meth:`initial_state`, :meth:`first_index`,
    :meth:`last_index`, :meth:`term`, :meth:`entries`) are served from memory and never
    block. Writes:

    - :meth:`save` blocks the calling thread until the write is committed and fsynced;
    - :meth:`save_async` awaits the same write on the writer thread; the event loop keeps
      running meanwhile, and the mirror (what reads see) changes on the event loop once the
      write has returned. If the awaiting task is cancelled the write still completes and
      the mirror still follows it.

    Saves must not overlap: one Ready at a time (a second save while one is in flight
    raises :class:`~raftlog.core.errors.UsageError`). Both are durable when they return;
    :meth:`sync` is a no-op kept for the :class:`~raftlog.storage.base.Storage` protocol
    (it raises if the storage failed or is closed). Reads keep working after ``close``.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        connection: sqlite3.Connection,
        lock_fd: int,
        cluster_id: str,
        node_id: int,
        hard_state: HardState,
        entries: Sequence[Entry],
        checkpoint: Checkpoint,
        log_start: tuple[int, int],
        check_invariants: bool,
    ) -> None:
        """Internal: use :meth:`open`."""
        self._data_dir = data_dir
        self._path = data_dir / DB_NAME
        self._conn = connection
        self._lock_fd: int | None = lock_fd
        self._cluster_id = cluster_id
        self._node_id = node_id
        self._check_invariants = check_invariants
        self._mirror = MemoryStorage(
            hard_state, entries, checkpoint=checkpoint, log_start=log_start
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"raftlog-sqlite-{node_id}"
        )
        self._write_lock = threading.Lock()  # held from validation to mirror update
        self._failed: StorageFailed | None = None
        self._closed = False
        self.on_commit: Callable[[float], None] | None = None
        """Called on the writer thread with the seconds each ``COMMIT`` took (writing
        the WAL and its fsync): the node's fsync histogram."""

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        cluster_id: str,
        node_id: int,
        check_invariants: bool = True,
    ) -> SQLiteStorage:
        """Open the storage in ``data_dir``, creating the directory and database if missing.

        Raises :class:`~raftlog.storage.errors.WrongCluster` / ``WrongNode`` if the
        database belongs to another cluster or node, ``StorageCorrupt`` if it is not a
        valid raftlog database (the message names the file and the problem),
        ``StorageLocked`` if the directory is already open, and ``StorageError`` if the OS
        or sqlite refuses. Blocks while it loads the whole log: call it before the event
        loop starts serving, or in a thread.
        """
        if not isinstance(cluster_id, str) or not cluster_id:
            raise UsageError(f"cluster id must be a non-empty string, not {cluster_id!r}")
        if isinstance(node_id, bool) or not isinstance(node_id, int) or node_id <= 0:
            raise UsageError(f"node id must be a positive integer, not {node_id!r}")
        directory = Path(data_dir)
        _make_directory(directory)
        lock_fd = _lock_directory(directory)
        try:
            conn, loaded = _open_database(
                directory / DB_NAME, cluster_id, node_id, check_invariants
            )
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(
            data_dir=directory,
            connection=conn,
            lock_fd=lock_fd,
            cluster_id=cluster_id,
            node_id=node_id,
            hard_state=loaded.hard_state,
            entries=loaded.entries,
            checkpoint=loaded.checkpoint,
            log_start=loaded.log_start,
            check_invariants=check_invariants,
        )

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def cluster_id(self) -> str:
        return self._cluster_id

    @property
    def node_id(self) -> int:
        return self._node_id

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failed(self) -> StorageFailed | None:
        """The error that poisoned this storage, if a write failed."""
        return self._failed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "failed" if self._failed else "open"
        return (
            f"SQLiteStorage({str(self._path)!r}, cluster_id={self._cluster_id!r}, "
            f"node_id={self._node_id}, last_index={self.last_index()}, {state})"
        )

    # -- LogReader: served from the mirror, never from the disk ------------------------

    def initial_state(self) -> tuple[HardState, ConfState | None]:
        return self._mirror.initial_state()

    def snapshot(self) -> SnapshotMeta:
        return self._mirror.snapshot()

    def checkpoint(self) -> Checkpoint:
        return self._mirror.checkpoint()

    def first_index(self) -> int:
        return self._mirror.first_index()

    def last_index(self) -> int:
        return self._mirror.last_index()

    def term(self, index: int) -> int:
        return self._mirror.term(index)

    def entries(self, lo: int, hi: int, max_bytes: int) -> Sequence[Entry]:
        return self._mirror.entries(lo, hi, max_bytes)

    # -- writes ------------------------------------------------------------------------

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Checkpoint | None = None,
    ) -> None:
        """Write ``snapshot`` (replacing the whole log), ``entries`` (replacing every
        stored entry from the first of them) and ``hard_state`` in one transaction;
        returns once it is durable. Blocks the calling thread (the write itself runs on
        the writer thread)."""
        batch = tuple(entries)
        if not self._begin_write(hard_state, batch, snapshot):
            return
        try:
            future = self._executor.submit(self._write, hard_state, batch, snapshot)
            try:
                future.result()
            except (StorageFailed, StorageFull):
                raise
            except BaseException as exc:
                # Interrupted while waiting (e.g. KeyboardInterrupt): the write goes on
                # without us and the mirror will not follow it. Trust nothing from now on.
                if self._failed is None:
                    failure = StorageFailed(
                        f"{self._path}: a save was interrupted ({exc!r}); its outcome is "
                        "unknown, refusing further writes"
                    )
                    failure.__cause__ = exc
                    self._failed = failure
                raise
            self._mirror.save(hard_state, batch, snapshot)
        finally:
            self._write_lock.release()

    async def save_async(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Checkpoint | None = None,
    ) -> None:
        """:meth:`save` for the event loop: the transaction runs on the writer thread, the
        loop keeps running, and the mirror is updated on the loop once the write returned."""
        batch = tuple(entries)
        if not self._begin_write(hard_state, batch, snapshot):
            return
        await self._run_write(
            lambda: self._write(hard_state, batch, snapshot),
            lambda: self._mirror.save(hard_state, batch, snapshot),
        )

    def compact(self, checkpoint: Checkpoint, upto: int) -> None:
        """Record ``checkpoint`` and drop the entries up to ``upto`` (which it must cover),
        in one transaction; blocking."""
        self._begin_compact(checkpoint, upto)
        try:
            start = self._mirror.log_start()
            term = self._mirror.term(upto) if upto > start[0] else 0
            self._executor.submit(self._write_compact, checkpoint, upto, term, start).result()
            self._mirror.compact(checkpoint, upto)
        finally:
            self._write_lock.release()

    async def compact_async(self, checkpoint: Checkpoint, upto: int) -> None:
        """:meth:`compact` for the event loop (the transaction runs on the writer thread)."""
        self._begin_compact(checkpoint, upto)
        start = self._mirror.log_start()
        term = self._mirror.term(upto) if upto > start[0] else 0
        await self._run_write(
            lambda: self._write_compact(checkpoint, upto, term, start),
            lambda: self._mirror.compact(checkpoint, upto),
        )

    def _begin_compact(self, checkpoint: Checkpoint, upto: int) -> None:
        if not self._write_lock.acquire(blocking=False):
            raise UsageError("a save is already in progress: saves must not overlap")
        try:
            self._check_writable()
            current = self._mirror.checkpoint().meta.index
            if checkpoint.meta.index < current:
                raise UsageError(f"checkpoint {checkpoint.meta.index} is older than {current}")
            if upto > checkpoint.meta.index or upto > self._mirror.last_index():
                raise UsageError(
                    f"cannot compact to {upto}: snapshot ends at {checkpoint.meta.index}, "
                    f"log at {self._mirror.last_index()}"
                )
        except BaseException:
            self._write_lock.release()
            raise

    async def _run_write(self, write: Any, update_mirror: Any) -> None:
        """Run ``write`` on the writer thread; on success run ``update_mirror`` on the
        loop (even if our awaiter was cancelled meanwhile); release the write lock."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finish(write: concurrent.futures.Future[None], on_loop: bool = True) -> None:
            try:
                error = write.exception()
                if error is None:
                    update_mirror()
            finally:
                self._write_lock.release()
            if not on_loop or done.done():  # loop gone, or our awaiter was cancelled
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def written(write: concurrent.futures.Future[None]) -> None:  # on the writer thread
            try:
                loop.call_soon_threadsafe(finish, write)
            except RuntimeError:  # the loop is closed: no one reads the mirror concurrently
                finish(write, on_loop=False)

        try:
            future = self._executor.submit(write)
        except BaseException:
            self._write_lock.release()
            raise
        future.add_done_callback(written)
        await done

    def sync(self) -> None:
        """Nothing to do: every save is committed with ``synchronous=FULL`` (fsynced)
        before it returns. Raises if the storage failed or is closed."""
        self._check_writable()

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database, stop the writer thread (after any write in flight) and
        release the directory lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._executor.submit(self._close_connection).result()
        finally:
            self._executor.shutdown(wait=True)
            self._unlock()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop on the writer thread."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wrap_future(self._executor.submit(self._close_connection))
        finally:
            self._executor.shutdown(wait=True)  # the thread is idle by now: a quick join
            self._unlock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals ---------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._failed is not None:
            raise StorageFailed(
                f"{self._path}: an earlier write failed ({self._failed}); refusing to write"
            ) from self._failed
        if self._closed:
            raise UsageError(f"{self._path}: the storage is closed")

    def _begin_write(
        self, hard_state: HardState | None, batch: tuple[Entry, ...], snapshot: Checkpoint | None
    ) -> bool:
        """Take the write lock and validate. False (lock released) if there is nothing to
        write; True (lock held) if the caller must write and then release it."""
        if not self._write_lock.acquire(blocking=False):
            raise UsageError("a save is already in progress: saves must not overlap")
        try:
            self._check_writable()
            self._validate(hard_state, batch, snapshot)
        except BaseException:
            self._write_lock.release()
            raise
        if (
            snapshot is None
            and not batch
            and (hard_state is None or hard_state == self._mirror.initial_state()[0])
        ):
            self._write_lock.release()
            return False
        return True

    def _validate(
        self, hard_state: HardState | None, batch: tuple[Entry, ...], snapshot: Checkpoint | None
    ) -> None:
        """Raise UsageError, before anything is written, for a save that is not a valid
        continuation of the mirror (same rules as MemoryStorage, plus the invariants)."""
        mirror = self._mirror
        if snapshot is not None:
            meta = snapshot.meta
            if not (1 <= meta.index <= _MAX_INT and 1 <= meta.term <= _MAX_INT):
                raise UsageError(f"cannot install a snapshot at {meta.index}@{meta.term}")
            mirror = MemoryStorage(
                mirror.initial_state()[0], checkpoint=snapshot, log_start=(meta.index, meta.term)
            )
        last = mirror.last_index()
        if batch:
            first = batch[0].index
            for a, b in itertools.pairwise(batch):
                if b.index != a.index + 1:
                    raise UsageError(f"entries are not contiguous: {a.index} then {b.index}")
            if first < mirror.first_index():
                raise UsageError(
                    f"cannot append at {first}: the log starts at {mirror.first_index()}"
                )
            if first > last + 1:
                raise UsageError(f"gap: appending {first} after last index {last}")
            for e in batch:
                if not 1 <= e.term <= _MAX_INT:
                    raise UsageError(f"entry {e.index} has term {e.term!r}")
                if e.kind not in _KINDS:
                    raise UsageError(f"entry {e.index} has unknown kind {e.kind!r}")
                if type(e.data) is not bytes:
                    raise UsageError(f"entry {e.index} data is {type(e.data).__name__}, not bytes")
            if batch[-1].index > _MAX_INT:
                raise UsageError(f"index {batch[-1].index} does not fit in 64 bits")
        if hard_state is not None:
            for name in ("term", "vote", "commit"):
                value = getattr(hard_state, name)
                if not 0 <= value <= _MAX_INT:
                    raise UsageError(f"hard state {name} {value!r} out of range")
        if not self._check_invariants:
            return
        if batch:
            previous = mirror.term(batch[0].index - 1)
            if batch[0].term < previous:
                raise UsageError(
                    f"entry {batch[0].index} has term {batch[0].term}, "
                    f"lower than term {previous} of the entry before it"
                )
            for a, b in itertools.pairwise(batch):
                if b.term < a.term:
                    raise UsageError(
                        f"entry {b.index} has term {b.term}, lower than term {a.term} of {a.index}"
                    )
        new_last = batch[-1].index if batch else last
        new_last_term = batch[-1].term if batch else mirror.term(last)
        state = hard_state if hard_state is not None else mirror.initial_state()[0]
        if state.commit > new_last:
            raise UsageError(
                f"commit index {state.commit} would be beyond the last index {new_last}"
                + (" (truncating committed entries)" if batch and state.commit <= last else "")
            )
        if state.term < new_last_term:
            raise UsageError(
                f"hard state term {state.term} would be lower than the last entry's "
                f"term {new_last_term}"
            )

    def _write_compact(
        self, checkpoint: Checkpoint, upto: int, term: int, log_start: tuple[int, int]
    ) -> None:
        """One transaction: the new checkpoint, and the log up to ``upto`` dropped (if
        ``term``; otherwise the log keeps starting after ``log_start``)."""

        def body(conn: sqlite3.Connection) -> None:
            if term:
                conn.execute("DELETE FROM log WHERE idx <= ?", (upto,))
            _set_checkpoint(conn, checkpoint, (upto, term) if term else log_start)

        self._transaction(body)

    def _write(
        self, hard_state: HardState | None, batch: tuple[Entry, ...], snapshot: Checkpoint | None
    ) -> None:
        """One transaction. Runs on the writer thread only."""

        def body(conn: sqlite3.Connection) -> None:
            if snapshot is not None:
                conn.execute("DELETE FROM log")
                _set_checkpoint(conn, snapshot, (snapshot.meta.index, snapshot.meta.term))
            self._write_body(conn, hard_state, batch)

        self._transaction(body)

    def _transaction(self, body: Any) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                body(conn)
                started = time.perf_counter()
                conn.execute("COMMIT")
                if self.on_commit is not None:
                    self.on_commit(time.perf_counter() - started)
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                raise
        except Exception as exc:
            if is_disk_full(exc) and not conn.in_transaction:
                # SQLITE_FULL: a page could not be written (ENOSPC, or max_page_count).
                # The transaction was rolled back, so the database is as it was before
                # this save: nothing is poisoned, and the same save may be tried again.
                raise StorageFull(
                    f"{self._path}: disk full: the write was not made ({exc}); "
                    "it can be retried once there is space"
                ) from exc
            failure = StorageFailed(f"{self._path}: write failed: {exc}; refusing further writes")
            self._failed = failure
            raise failure from exc

    def _write_body(
        self, conn: sqlite3.Connection, hard_state: HardState | None, batch: tuple[Entry, ...]
    ) -> None:
        if batch:
            conn.execute("DELETE FROM log WHERE idx >= ?", (batch[0].index,))
            conn.executemany(
                "INSERT INTO log (idx, term, kind, data, crc) VALUES (?, ?, ?, ?, ?)",
                [_log_row(e) for e in batch],
            )
        if hard_state is not None:
            term, vote, commit = hard_state.term, int(hard_state.vote), hard_state.commit
            cursor = conn.execute(
                "UPDATE hard_state SET term = ?, vote = ?, commit_index = ?, crc = ? WHERE id = 1",
                (term, vote, commit, hard_state_crc(term, vote, commit)),
            )
            if cursor.rowcount != 1:
                raise StorageCorrupt(f"{self._path}: the hard_state row is missing")

    def _close_connection(self) -> None:
        try:
            self._conn.close()
        except sqlite3.Error as exc:
            raise StorageError(f"{self._path}: closing the database failed: {exc}") from exc

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


# -- opening, loading and validating --------------------------------------------------------


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_directory(directory: Path) -> None:
    """Create the directory (and parents), fsyncing each new entry's parent."""
    missing = []
    probe = directory.absolute()
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for created in reversed(missing):
            _fsync_directory(created.parent)
    except OSError as exc:
        raise StorageError(f"cannot create the data directory {directory}: {exc}") from exc
    if not directory.is_dir():
        raise StorageError(f"the data directory {directory} is not a directory")


def _lock_directory(directory: Path) -> int:
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot create the lock file {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise StorageLocked(
            f"the data directory {directory} is already open (in this or another process); "
            "one storage per directory"
        ) from exc
    except OSError as exc:
        os.close(fd)
        raise StorageError(f"cannot lock {path}: {exc}") from exc
    return fd


def _log_row(e: Entry) -> tuple[int, int, int, bytes, int]:
    kind = int(e.kind)
    return (e.index, e.term, kind, e.data, entry_crc(e.index, e.term, kind, e.data))


def is_disk_full(exc: BaseException) -> bool:
    """SQLITE_FULL: the disk (or the database's page limit) is full."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_FULL


def _sqlite_failure(path: Path, exc: sqlite3.Error) -> StorageError:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _CORRUPT_CODES:
        return StorageCorrupt(f"{path}: not a valid raftlog database: {exc}")
    return StorageError(f"{path}: cannot open the database: {exc}")


class _Loaded(NamedTuple):
    hard_state: HardState
    entries: list[Entry]
    checkpoint: Checkpoint
    log_start: tuple[int, int]


def _open_database(
    path: Path, cluster_id: str, node_id: int, check_invariants: bool
) -> tuple[sqlite3.Connection, _Loaded]:
    try:
        # isolation_level=None: no implicit transactions, we say BEGIN/COMMIT ourselves.
        # check_same_thread=False: opened here, then used only by the writer thread.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _sqlite_failure(path, exc) from exc
    try:
        loaded = _prepare(conn, path, cluster_id, node_id, check_invariants)
    except sqlite3.Error as exc:
        conn.close()
        raise _sqlite_failure(path, exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn, loaded


def _prepare(
    conn: sqlite3.Connection, path: Path, cluster_id: str, node_id: int, check_invariants: bool
) -> _Loaded:
    """Check the database is ours (before changing anything in it), switch it to WAL,
    create the schema if it is empty, then load and validate everything."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = SCHEMA_VERSION
    if "meta" in tables:
        version = _check_meta(conn, path, cluster_id, node_id)
    if tables and tables != _TABLES:
        raise StorageCorrupt(
            f"{path}: not a raftlog database: tables {sorted(tables)}, expected {sorted(_TABLES)}"
        )
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise StorageError(f"{path}: cannot switch the database to WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous = FULL")
    if version != SCHEMA_VERSION:
        _migrate(conn, path, version)
    if not tables:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (id, schema_version, cluster_id, node_id) VALUES (1, ?, ?, ?)",
                (SCHEMA_VERSION, cluster_id, node_id),
            )
            conn.execute(
                "INSERT INTO hard_state (id, term, vote, commit_index, crc) VALUES (1, 0, 0, 0, ?)",
                (hard_state_crc(0, 0, 0),),
            )
            conf = encode_conf(ConfState(frozenset()))
            conn.execute(
                "INSERT INTO checkpoint (id, idx, term, conf, file, sessions, "
                "log_start_idx, log_start_term, crc) VALUES (1, 0, 0, ?, '', x'', 0, 0, ?)",
                (conf, checkpoint_crc(0, 0, conf, "", b"", 0, 0)),
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        _fsync_directory(path.parent)  # the new database's directory entry
    return _load(conn, path, check_invariants)


def _check_meta(conn: sqlite3.Connection, path: Path, cluster_id: str, node_id: int) -> int:
    """Check the database is this node's; return its schema version (this one's, or one
    it migrates from)."""
    rows = conn.execute("SELECT schema_version, cluster_id, node_id FROM meta").fetchall()
    if len(rows) != 1:
        raise StorageCorrupt(f"{path}: the meta table has {len(rows)} rows, expected 1")
    version, stored_cluster, stored_node = rows[0]
    if version != SCHEMA_VERSION and version not in MIGRATES_FROM:
        raise StorageCorrupt(
            f"{path}: schema version {version!r}; this raftlog reads version "
            f"{SCHEMA_VERSION} (a data directory of an older raftlog: start this node on a "
            "new one and let it catch up from the cluster)"
        )
    if not isinstance(stored_cluster, str) or not _is_int(stored_node):
        raise StorageCorrupt(
            f"{path}: the meta row has cluster id {stored_cluster!r}, node id {stored_node!r}"
        )
    if stored_cluster != cluster_id:
        raise WrongCluster(
            f"{path} belongs to cluster {stored_cluster!r} (node {stored_node}); refusing to "
            f"open it for cluster {cluster_id!r} (node {node_id})"
        )
    if stored_node != node_id:
        raise WrongNode(
            f"{path} belongs to node {stored_node} of cluster {stored_cluster!r}; refusing to "
            f"open it for node {node_id}"
        )
    return int(version)


def _migrate(conn: sqlite3.Connection, path: Path, version: int) -> None:
    """Bring a version-2 database to version 3 in one transaction: add the ``crc``
    columns and compute them from the rows as they are (a row that was already damaged
    stays undetected; every later change is covered)."""
    assert version == 2
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in ("log", "hard_state", "checkpoint"):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN crc INTEGER NOT NULL DEFAULT 0")
        rows = conn.execute("SELECT idx, term, kind, data FROM log").fetchall()
        conn.executemany(
            "UPDATE log SET crc = ? WHERE idx = ?",
            [(entry_crc(i, t, k, bytes(d)), i) for i, t, k, d in rows],
        )
        for term, vote, commit in conn.execute(
            "SELECT term, vote, commit_index FROM hard_state"
        ).fetchall():
            conn.execute("UPDATE hard_state SET crc = ?", (hard_state_crc(term, vote, commit),))
        for row in conn.execute(
            "SELECT idx, term, conf, file, sessions, log_start_idx, log_start_term FROM checkpoint"
        ).fetchall():
            conn.execute("UPDATE checkpoint SET crc = ?", (checkpoint_crc(*row),))
        conn.execute("UPDATE meta SET schema_version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        if isinstance(exc, struct.error | TypeError | ValueError):
            raise StorageCorrupt(
                f"{path}: cannot add checksums to this schema-{version} database: a row "
                f"holds values of the wrong type or range ({exc})"
            ) from exc
        raise


def _is_int(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _MAX_INT


def _set_checkpoint(
    conn: sqlite3.Connection, checkpoint: Checkpoint, log_start: tuple[int, int]
) -> None:
    meta = checkpoint.meta
    conf = encode_conf(meta.conf)
    start_idx, start_term = log_start
    crc = checkpoint_crc(
        meta.index, meta.term, conf, checkpoint.file, checkpoint.sessions, start_idx, start_term
    )
    cursor = conn.execute(
        "UPDATE checkpoint SET idx = ?, term = ?, conf = ?, file = ?, sessions = ?, "
        "log_start_idx = ?, log_start_term = ?, crc = ? WHERE id = 1",
        (
            meta.index,
            meta.term,
            conf,
            checkpoint.file,
            checkpoint.sessions,
            start_idx,
            start_term,
            crc,
        ),
    )
    if cursor.rowcount != 1:
        raise StorageCorrupt("the checkpoint row is missing")


def _load_checkpoint(conn: sqlite3.Connection, corrupt: Any) -> tuple[Checkpoint, tuple[int, int]]:
    rows = conn.execute(
        "SELECT idx, term, conf, file, sessions, log_start_idx, log_start_term, crc FROM checkpoint"
    ).fetchall()
    if len(rows) != 1:
        raise corrupt(f"the checkpoint table has {len(rows)} rows, expected 1")
    idx, term, conf_blob, file, sessions, start_idx, start_term, crc = rows[0]
    if not all(_is_int(v) for v in (idx, term, start_idx, start_term)):
        raise corrupt(
            f"invalid checkpoint position {idx!r}@{term!r} / {start_idx!r}@{start_term!r}"
        )
    if (
        type(conf_blob) is bytes
        and isinstance(file, str)
        and type(sessions) is bytes
        and crc != checkpoint_crc(idx, term, conf_blob, file, sessions, start_idx, start_term)
    ):
        raise corrupt(
            f"checksum mismatch in the checkpoint row (snapshot index {idx}, log start "
            f"{start_idx}): it changed on disk"
        )
    try:
        if type(conf_blob) is not bytes:
            raise ValueError
        conf = decode_conf(conf_blob)
        if not all(_is_int(v) and v > 0 for v in conf.ids()):
            raise ValueError
    except (ValueError, msgspec.DecodeError):
        raise corrupt(f"invalid checkpoint membership {conf_blob!r}") from None
    if not isinstance(file, str) or type(sessions) is not bytes:
        raise corrupt("invalid checkpoint file name or sessions")
    if start_idx > idx:
        raise corrupt(f"the log is compacted to {start_idx}, past the snapshot at {idx}")
    if idx and (not term or not conf.voters):
        raise corrupt(f"the snapshot at {idx} has term {term} and voters {sorted(conf.voters)}")
    meta = SnapshotMeta(idx, term, conf)
    return Checkpoint(meta, file, sessions), (start_idx, start_term)


def _load(conn: sqlite3.Connection, path: Path, check_invariants: bool) -> _Loaded:
    def corrupt(what: str) -> StorageCorrupt:
        return StorageCorrupt(f"{path}: {what}")

    rows = conn.execute("SELECT term, vote, commit_index, crc FROM hard_state").fetchall()
    if len(rows) != 1:
        raise corrupt(f"the hard_state table has {len(rows)} rows, expected 1")
    term, vote, commit, crc = rows[0]
    if not (_is_int(term) and _is_int(vote) and _is_int(commit)):
        raise corrupt(f"invalid hard state: term={term!r} vote={vote!r} commit={commit!r}")
    if crc != hard_state_crc(term, vote, commit):
        raise corrupt(
            f"checksum mismatch in the hard state (term {term}, vote {vote}, commit "
            f"{commit}): it changed on disk"
        )
    hard_state = HardState(term=term, vote=vote, commit=commit)
    checkpoint, log_start = _load_checkpoint(conn, corrupt)
    start_idx, start_term = log_start

    entries: list[Entry] = []
    last_term = start_term
    # The first row of a page that cannot be read raises from the iteration: the entries
    # read so far tell where the damage starts.
    try:
        for idx, e_term, kind, data, crc in conn.execute(
            "SELECT idx, term, kind, data, crc FROM log ORDER BY idx"
        ):
            expected = start_idx + len(entries) + 1
            if idx != expected:
                if not entries:
                    raise corrupt(f"the log starts at index {idx}, expected {expected}")
                raise corrupt(f"gap in the log: entry {expected - 1} is followed by entry {idx}")
            if not _is_int(e_term) or e_term < 1:
                raise corrupt(f"entry {idx} has an invalid term {e_term!r}")
            if check_invariants and e_term < last_term:
                raise corrupt(
                    f"the term goes backwards: entry {idx} has term {e_term} "
                    f"after term {last_term} at entry {idx - 1}"
                )
            if type(kind) is not int or kind not in _KINDS:
                raise corrupt(f"entry {idx} has an unknown kind {kind!r}")
            if type(data) is not bytes:
                raise corrupt(f"entry {idx} has data of type {type(data).__name__}, not a BLOB")
            if crc != entry_crc(idx, e_term, kind, data):
                raise corrupt(
                    f"checksum mismatch at entry {idx} (term {e_term}): its term, kind or data "
                    "changed on disk"
                )
            entries.append(Entry(idx, e_term, _KIND_OF[kind], data))
            last_term = e_term
    except sqlite3.DatabaseError as exc:
        good = start_idx + len(entries)
        raise corrupt(
            f"{exc} reading the log: the first unreadable entry is at or after index "
            f"{good + 1} (entries up to {good} read back whole)"
        ) from exc

    last_index = start_idx + len(entries)
    if check_invariants:
        if hard_state.commit > last_index:
            raise corrupt(
                f"the commit index {hard_state.commit} is beyond the last index {last_index}"
            )
        if hard_state.term < last_term:
            raise corrupt(
                f"the hard state's term {hard_state.term} is lower than the last entry's "
                f"term {last_term} (entry {last_index})"
            )
    return _Loaded(hard_state, entries, checkpoint, log_start)
