"""The replicated log of strings (the lab's state machine), kept on disk.

Every committed append becomes a record ``(index, term, time_ms, data)``; clients read the
records back by index. The records live in SQLite (``records.db`` in the node's data
directory, WAL, ``synchronous=FULL``), written by one writer thread in batches while the
node goes on applying; only a bounded tail of recent records is kept in memory, so a
node's memory and start-up time do not grow with the number of records. Reads of recent
records are served from that tail; older ones page through the database in a reader
thread.

It is a :class:`~raftlog.statemachine.PersistentStateMachine`: ``persisted_index()`` says
up to where its state is on disk, so after a restart the node applies only the entries
after it, and compacts its Raft log no further than it.

Commands (the bytes of a log entry, after the node's own framing):

- ``0x00 | u64 time_ms | data``: append ``data``; ``time_ms`` is the proposer's clock,
  stamped when the append was requested (apply never reads a clock);
- ``0x01 | msgpack {"before": N}``: retention: drop every record with an index below
  ``N`` (never past the trim command itself). "Keep the last K" and "newer than T" are
  resolved to such an index by the node that takes the request.

Anything else is appended as it is (every node decides the same way).

Without a directory (``ReplicatedLog()``) the records are kept in an in-memory database
written on the calling thread: the same code, for tests and programs without a disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sqlite3
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from raftlog.storage.sqlite import is_disk_full

APPEND = 0x00
TRIM = 0x01
_TIME = struct.Struct(">Q")
_BLOCK = struct.Struct(">I")
DB_NAME = "records.db"
FLUSH_EVERY_S = 0.02
"""At most one records transaction (one fsync) per this long: under a stream of appends
the records file is written in batches instead of once per entry, so its fsyncs do not
queue in front of the Raft log's on the disk. Nothing waits for it but compaction (the
Raft log keeps every entry the records file does not yet hold)."""
FULL_RETRY_S = 0.5
"""A records write that found the disk full is tried again after this long (the records
stay in memory meanwhile, and the Raft log keeps every entry they do not hold)."""
SCHEMA_VERSION = 1
TAIL_RECORDS = 4096
"""Recent records kept in memory for reads (plus every record not yet on disk)."""
_SNAPSHOT_BLOCK = 1024
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL,"
    " time_ms INTEGER NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " version INTEGER NOT NULL, applied INTEGER NOT NULL, first_index INTEGER NOT NULL)",
)


log = logging.getLogger("raftlog.server")


class RecordsFailed(RuntimeError):
    """Writing the records failed: the node must stop (its state is no longer known)."""


class LogRecord(msgspec.Struct, frozen=True, array_like=True):
    """One append, as clients read it."""

    index: int
    term: int
    time_ms: int
    data: bytes


class Appended(msgspec.Struct, frozen=True):
    """The result of applying an append: where the record went."""

    index: int
    term: int


class Trimmed(msgspec.Struct, frozen=True):
    """The result of applying a trim: the first index still kept."""

    first_index: int


class TrimSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    before: int


class ReadPage(msgspec.Struct, frozen=True):
    records: tuple[LogRecord, ...]
    first_index: int
    """The first index still retained (records before it were trimmed away)."""
    next_index: int | None
    """The index to continue from, if there are more records after this page."""


class _Header(msgspec.Struct, frozen=True):
    applied: int
    first_index: int
    version: int = SCHEMA_VERSION


_encoder = msgspec.msgpack.Encoder()
_trim_decoder = msgspec.msgpack.Decoder(TrimSpec)
_header_decoder = msgspec.msgpack.Decoder(_Header)
_block_decoder = msgspec.msgpack.Decoder(list[LogRecord])


def append_command(data: bytes, time_ms: int | None = None) -> bytes:
    stamp = int(time.time() * 1000) if time_ms is None else time_ms
    return bytes([APPEND]) + _TIME.pack(stamp) + bytes(data)


def trim_command(before: int) -> bytes:
    return bytes([TRIM]) + _encoder.encode(TrimSpec(before))


def _decode(data: bytes) -> tuple[int, Any]:
    """(APPEND, (time_ms, data)) or (TRIM, TrimSpec); malformed: an append of it all."""
    if data[:1] == b"\x00" and len(data) >= 1 + _TIME.size:
        return APPEND, (_TIME.unpack_from(data, 1)[0], data[1 + _TIME.size :])
    if data[:1] == b"\x01":
        try:
            return TRIM, _trim_decoder.decode(data[1:])
        except msgspec.DecodeError:
            pass
    return APPEND, (0, data)


def command_text(data: bytes) -> bytes:
    """What a person should see of a command: the appended data."""
    kind, value = _decode(data)
    if kind == APPEND:
        return bytes(value[1])
    return f"<trim before {value.before}>".encode()


def _connect(path: Path | None, *, create: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        ":memory:" if path is None else str(path), isolation_level=None, check_same_thread=False
    )
    if create:
        if path is not None:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO meta (id, version, applied, first_index) VALUES (1, ?, 0, 1)",
            (SCHEMA_VERSION,),
        )
    return conn


class ReplicatedLog:
    """See the module docstring. ``apply``, ``snapshot`` and the reads run on the event
    loop (or one thread of the caller's); ``restore`` runs in a worker thread while
    nothing else is called."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        tail_records: int = TAIL_RECORDS,
        flush_every_s: float = FLUSH_EVERY_S,
    ) -> None:
        self.path = None if data_dir is None else Path(data_dir) / DB_NAME
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tail_size = tail_records
        self._tail: deque[LogRecord] = deque()
        """The latest records, in index order: at least every record not yet on disk."""
        self._pending: list[LogRecord] = []
        self._pending_trim = 0
        self._written_applied = 0
        self._writing = False
        self._restoring = False
        self._epoch = 0
        """Bumped by a restore: a write handed out before it reports nothing after it."""
        self._persisted = 0
        self._flush_every = flush_every_s
        self._next_write_at = 0.0
        self._flush_timer: asyncio.TimerHandle | None = None
        self.failed: BaseException | None = None
        self.disk_full = False
        """The last records write found the disk full (it is retried)."""
        self._closed = False
        self.applied = 0
        self.first_index = 1
        self.last_index = 0
        self._read_lock = threading.Lock()
        self._writer = concurrent.futures.ThreadPoolExecutor(1, "raftlog-records-writer")
        self._reader = concurrent.futures.ThreadPoolExecutor(1, "raftlog-records-reader")
        self._conn = _connect(self.path, create=True)
        self._read_conn = self._conn if self.path is None else _connect(self.path, create=False)
        self._load()

    def _load(self) -> None:
        row = self._conn.execute("SELECT version, applied, first_index FROM meta").fetchone()
        version, applied, first = row
        if version != SCHEMA_VERSION:
            raise RecordsFailed(f"{self.path}: records schema {version}, expected {SCHEMA_VERSION}")
        self.applied = self._persisted = self._written_applied = applied
        self.first_index = first
        rows = self._conn.execute(
            "SELECT idx, term, time_ms, data FROM records ORDER BY idx DESC LIMIT ?",
            (self._tail_size,),
        ).fetchall()
        self._tail = deque(LogRecord(*r) for r in reversed(rows))
        self.last_index = self._tail[-1].index if self._tail else 0

    # -- the StateMachine contract ---------------------------------------------------

    def apply(self, index: int, term: int, data: bytes) -> Appended | Trimmed:
        if self.failed is not None:
            raise RecordsFailed(f"{self.path}: an earlier write failed: {self.failed}")
        kind, value = _decode(data)
        self.applied = index
        if kind == TRIM:
            result: Appended | Trimmed = Trimmed(self._trim(min(value.before, index)))
        else:
            time_ms, payload = value
            record = LogRecord(index, term, time_ms, bytes(payload))
            self._tail.append(record)
            self._pending.append(record)
            self.last_index = index
            result = Appended(index, term)
        self._flush()
        return result

    def _trim(self, before: int) -> int:
        if before > self.first_index:
            self.first_index = before
            self._pending_trim = before
            while self._tail and self._tail[0].index < before:
                self._tail.popleft()
            self._pending = [r for r in self._pending if r.index >= before]
        return self.first_index

    def persisted_index(self) -> int:
        return self._persisted

    def describe(self, data: bytes) -> bytes:
        return command_text(data)

    # -- writing ---------------------------------------------------------------------

    def _flush(self) -> None:
        """Hand what is pending to the writer thread (one transaction per batch); while a
        write is in flight, the next batch waits for it."""
        if self._writing or self._restoring or self.applied == self._written_applied:
            return
        if self.path is not None and self._flush_every > 0:
            try:
                loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                wait = self._next_write_at - time.monotonic()
                if wait > 0:
                    if self._flush_timer is None:
                        self._flush_timer = loop.call_later(wait, self._flush_later)
                    return
                self._next_write_at = time.monotonic() + self._flush_every
        batch, self._pending = self._pending, []
        trim, self._pending_trim = self._pending_trim, 0
        applied = self._written_applied = self.applied
        if self.path is None:
            self._write(batch, trim, applied)
            self._done_writing(applied)
            return
        self._writing = True
        epoch = self._epoch
        future = self._writer.submit(self._write, batch, trim, applied)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the caller waits
            self._after_write(future, applied, epoch, batch, trim)
            return

        def done(f: concurrent.futures.Future[None]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: close() flushes
                loop.call_soon_threadsafe(self._after_write, f, applied, epoch, batch, trim)

        future.add_done_callback(done)

    def _flush_later(self) -> None:
        self._flush_timer = None
        if not self._closed:
            self._flush()

    def _after_write(
        self,
        future: concurrent.futures.Future[None],
        applied: int,
        epoch: int,
        batch: Sequence[LogRecord] = (),
        trim: int = 0,
    ) -> None:
        self._writing = False
        try:
            future.result()
        except BaseException as exc:
            if is_disk_full(exc) and not self._closed:
                self._retry_when_full(exc, epoch, batch, trim)
                return
            self.failed = exc  # recorded: the next apply raises
            return
        if self.disk_full:
            self.disk_full = False
            log.warning("%s: disk space is back, the records are written again", self.path)
        if epoch == self._epoch:
            self._done_writing(applied)
        else:
            self._flush()

    def _retry_when_full(
        self, exc: BaseException, epoch: int, batch: Sequence[LogRecord], trim: int
    ) -> None:
        """The write was rolled back whole: put its records back in front of what is
        pending and try again later (a restore meanwhile rewrote everything anyway)."""
        if not self.disk_full:
            self.disk_full = True
            log.warning("%s: disk full, the records wait in memory: %s", self.path, exc)
        if epoch == self._epoch:
            self._pending[:0] = [r for r in batch if r.index >= self.first_index]
            self._pending_trim = max(self._pending_trim, trim)
        self._written_applied = self._persisted
        self._next_write_at = time.monotonic() + FULL_RETRY_S
        if self._flush_timer is None:
            with contextlib.suppress(RuntimeError):  # no loop: the next apply retries
                loop = asyncio.get_running_loop()
                self._flush_timer = loop.call_later(FULL_RETRY_S, self._flush_later)

    def _done_writing(self, applied: int) -> None:
        self._persisted = max(self._persisted, applied)
        while len(self._tail) > self._tail_size and self._tail[0].index <= self._persisted:
            self._tail.popleft()
        self._flush()

    def _write(self, batch: Sequence[LogRecord], trim: int, applied: int) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if batch:
                conn.executemany(
                    "INSERT OR REPLACE INTO records (idx, term, time_ms, data) VALUES (?, ?, ?, ?)",
                    [(r.index, r.term, r.time_ms, r.data) for r in batch],
                )
            if trim:
                conn.execute("DELETE FROM records WHERE idx < ?", (trim,))
                conn.execute("UPDATE meta SET first_index = ? WHERE id = 1", (trim,))
            conn.execute("UPDATE meta SET applied = ? WHERE id = 1", (applied,))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    # -- reading ---------------------------------------------------------------------

    def read_recent(self, start: int, limit: int) -> ReadPage | None:
        """A page served from memory if the tail covers ``start``; None otherwise."""
        start = max(start, self.first_index)
        if start > self.last_index:
            return ReadPage((), self.first_index, None)
        if not self._tail or start < self._tail[0].index:
            return None
        records = [r for r in self._tail if r.index >= start][: limit + 1]
        return self._page(records, limit, self.first_index)

    async def read(self, start: int, limit: int) -> ReadPage:
        """Records with index >= ``start`` (at most ``limit``), in index order, as of the
        moment of the call: the recent ones from memory, older ones from the database in
        the reader thread."""
        page = self.read_recent(start, limit)
        if page is not None:
            return page
        start = max(start, self.first_index)
        memory, first = list(self._tail), self.first_index
        rows = await asyncio.get_running_loop().run_in_executor(
            self._reader, self._query, start, limit + 1
        )
        return self._merge(rows, memory, start, first, limit)

    def read_sync(self, start: int, limit: int) -> ReadPage:
        """:meth:`read` for code without an event loop (it blocks)."""
        page = self.read_recent(start, limit)
        if page is not None:
            return page
        start = max(start, self.first_index)
        rows = self._query(start, limit + 1)
        return self._merge(rows, list(self._tail), start, self.first_index, limit)

    def _query(self, start: int, limit: int) -> list[LogRecord]:
        with self._read_lock:
            rows = self._read_conn.execute(
                "SELECT idx, term, time_ms, data FROM records WHERE idx >= ? ORDER BY idx LIMIT ?",
                (start, limit),
            ).fetchall()
        return [LogRecord(*r) for r in rows]

    def _merge(
        self, rows: list[LogRecord], memory: list[LogRecord], start: int, first: int, limit: int
    ) -> ReadPage:
        merged = {r.index: r for r in rows if r.index >= first}
        if memory:
            # Records after what the database returned come from memory (the database
            # may not have them yet); the two agree wherever both have a record.
            horizon = rows[-1].index if len(rows) > limit else None
            for r in memory:
                if r.index >= start and (horizon is None or r.index <= horizon):
                    merged[r.index] = r
        records = [merged[i] for i in sorted(merged)][: limit + 1]
        return self._page(records, limit, first)

    @staticmethod
    def _page(records: list[LogRecord], limit: int, first: int) -> ReadPage:
        more = records[limit].index if len(records) > limit else None
        return ReadPage(tuple(records[:limit]), first, more)

    def index_keeping_last(self, keep: int) -> int:
        """The index from which the last ``keep`` records start ("keep the last K")."""
        if keep <= 0:
            return self.last_index + 1
        if keep <= len(self._tail):
            return self._tail[-keep].index
        unwritten = [r for r in self._tail if r.index > self._persisted]
        with self._read_lock:
            row = self._read_conn.execute(
                "SELECT idx FROM records WHERE idx >= ? AND idx <= ? ORDER BY idx DESC "
                "LIMIT 1 OFFSET ?",
                (self.first_index, self._persisted, keep - len(unwritten) - 1),
            ).fetchone()
        return int(row[0]) if row else self.first_index

    def index_newer_than(self, time_ms: int) -> int:
        """The first retained index whose record was appended at or after ``time_ms``."""
        with self._read_lock:
            (found,) = self._read_conn.execute(
                "SELECT MIN(idx) FROM records WHERE time_ms >= ? AND idx >= ?",
                (time_ms, self.first_index),
            ).fetchone()
        candidates = [r.index for r in self._tail if r.time_ms >= time_ms]
        if found is not None:
            candidates.append(int(found))
        return min(candidates) if candidates else self.last_index + 1

    # -- snapshots -------------------------------------------------------------------

    def snapshot(self) -> LogSnapshot:
        """Capture the records as of now: a read transaction on the database (WAL keeps
        what it sees stable while writes go on) plus the records not written yet."""
        if self.path is None:
            rows = self._conn.execute(
                "SELECT idx, term, time_ms, data FROM records WHERE idx >= ? ORDER BY idx",
                (self.first_index,),
            ).fetchall()
            return LogSnapshot(
                None, 0, [LogRecord(*r) for r in rows], self.first_index, self.applied
            )
        conn = _connect(self.path, create=False)
        conn.execute("BEGIN")
        (on_disk,) = conn.execute("SELECT applied FROM meta").fetchone()
        memory = [r for r in self._tail if r.index > on_disk and r.index >= self.first_index]
        return LogSnapshot(conn, on_disk, memory, self.first_index, self.applied)

    def restore(self, source: BinaryIO) -> None:
        """Replace every record with the snapshot's (blocking; in a worker thread)."""
        header = _header_decoder.decode(_read_block(source))
        if header.version != SCHEMA_VERSION:
            raise ValueError(f"replicated log snapshot version {header.version}")
        # What was pending is replaced; a write in flight finishes first (the writer
        # thread runs one thing at a time) and nothing new is handed to it meanwhile.
        self._restoring = True
        self._epoch += 1
        try:
            self._pending, self._pending_trim = [], 0
            if self.path is None:
                self._restore_into(self._conn, source, header)
            else:
                self._writer.submit(self._restore_file, source, header).result()
            self._load()
        finally:
            self._restoring = False

    def _restore_file(self, source: BinaryIO, header: _Header) -> None:
        assert self.path is not None
        tmp = self.path.with_name(self.path.name + ".restore")
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = FULL")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (id, version, applied, first_index) VALUES (1, ?, 0, 1)",
                (SCHEMA_VERSION,),
            )
            self._restore_into(conn, source, header)
        finally:
            conn.close()
        with self._read_lock:
            self._read_conn.close()
            self._conn.close()
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            os.replace(tmp, self.path)
            fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._conn = _connect(self.path, create=True)
            self._read_conn = _connect(self.path, create=False)

    @staticmethod
    def _restore_into(conn: sqlite3.Connection, source: BinaryIO, header: _Header) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM records")
            while block := _read_block(source):
                conn.executemany(
                    "INSERT INTO records (idx, term, time_ms, data) VALUES (?, ?, ?, ?)",
                    [(r.index, r.term, r.time_ms, r.data) for r in _block_decoder.decode(block)],
                )
            conn.execute(
                "UPDATE meta SET applied = ?, first_index = ? WHERE id = 1",
                (header.applied, header.first_index),
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """Write what is pending and close the database. Idempotent; blocking."""
        if self._closed:
            return
        self._closed = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        if self.failed is None and self.applied != self._written_applied:
            try:
                self._write(self._pending, self._pending_trim, self.applied)
            except sqlite3.Error as exc:
                if not is_disk_full(exc):
                    raise
                # The Raft log still holds these entries: the next start applies them.
                log.warning(
                    "%s: disk full, records after %s left unwritten", self.path, self._persisted
                )
        with self._read_lock:
            if self._read_conn is not self._conn:
                self._read_conn.close()
            self._conn.close()


def _read_block(source: BinaryIO) -> bytes:
    raw = source.read(_BLOCK.size)
    if len(raw) != _BLOCK.size:
        raise ValueError("replicated log snapshot: truncated block header")
    (size,) = _BLOCK.unpack(raw)
    data = source.read(size)
    if len(data) != size:
        raise ValueError("replicated log snapshot: truncated block")
    return data


class LogSnapshot:
    """The records as of one moment (see :meth:`ReplicatedLog.snapshot`)."""

    def __init__(
        self,
        conn: sqlite3.Connection | None,
        on_disk: int,
        memory: list[LogRecord],
        first_index: int,
        applied: int,
    ) -> None:
        self._conn = conn
        self._on_disk = on_disk
        self._memory = memory
        self._first = first_index
        self._applied = applied

    def write(self, sink: BinaryIO) -> None:
        def block(data: bytes) -> None:
            sink.write(_BLOCK.pack(len(data)))
            sink.write(data)

        block(_encoder.encode(_Header(self._applied, self._first)))
        if self._conn is not None:
            cursor = self._conn.execute(
                "SELECT idx, term, time_ms, data FROM records WHERE idx >= ? AND idx <= ? "
                "ORDER BY idx",
                (self._first, self._on_disk),
            )
            while rows := cursor.fetchmany(_SNAPSHOT_BLOCK):
                block(_encoder.encode([LogRecord(*r) for r in rows]))
        for i in range(0, len(self._memory), _SNAPSHOT_BLOCK):
            block(_encoder.encode(self._memory[i : i + _SNAPSHOT_BLOCK]))
        sink.write(_BLOCK.pack(0))

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None


__all__ = [
    "Appended",
    "LogRecord",
    "LogSnapshot",
    "ReadPage",
    "RecordsFailed",
    "ReplicatedLog",
    "Trimmed",
    "append_command",
    "command_text",
    "trim_command",
]
