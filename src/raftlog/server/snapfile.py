"""Snapshot files: one self-checking file per snapshot, written atomically.

Layout::

    MAGIC (8 bytes: b"RLSNAP\\x00\\x01")
    u32 big-endian header length | msgpack SnapshotHeader
    the state machine's own bytes (whatever its ``Snapshot.write`` produced)
    TRAILER_MAGIC (8 bytes) | u64 big-endian length of everything before the trailer
    | sha256 (32 bytes) of everything before the trailer

A file is written to ``NAME.tmp``, fsynced, renamed to its final name and the directory
fsynced, so a crash leaves either the whole file under its final name or a ``.tmp`` that
is ignored and removed. :func:`verify` checks the trailer (a truncated or altered file is
refused with the file and the reason named) before anything is read from a file, so a
bad snapshot is never half-applied.

The header carries what the node needs besides the state machine's bytes: the index and
term the snapshot covers, the membership, and the client sessions (exactly-once appends)
as of that index.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

import msgspec

from raftlog.core.types import ConfState, NodeId, SnapshotMeta

MAGIC = b"RLSNAP\x00\x01"
TRAILER_MAGIC = b"RLSNAPOK"
_HEADER_LEN = struct.Struct(">I")
_TRAILER = struct.Struct(">8sQ32s")
MAX_HEADER_BYTES = 64 << 20
"""Sessions are bounded; a header larger than this is not one of ours."""
_NAME = re.compile(r"^snap-(\d{20})-(\d{20})\.snap$")


class SnapshotFileError(Exception):
    """A snapshot file is missing, truncated, corrupt or not a snapshot: the message names
    the file and the reason."""


class SnapshotHeader(msgspec.Struct, frozen=True):
    index: int
    term: int
    voters: tuple[int, ...]
    learners: tuple[int, ...] = ()
    sessions: bytes = b""
    """The client session table as of ``index`` (see :mod:`raftlog.server.sessions`)."""

    def meta(self) -> SnapshotMeta:
        return SnapshotMeta(
            self.index,
            self.term,
            ConfState(
                frozenset(NodeId(v) for v in self.voters),
                frozenset(NodeId(v) for v in self.learners),
            ),
        )


_header_encoder = msgspec.msgpack.Encoder()
_header_decoder = msgspec.msgpack.Decoder(SnapshotHeader)


def file_name(index: int, term: int) -> str:
    return f"snap-{index:020d}-{term:020d}.snap"


def parse_name(name: str) -> tuple[int, int] | None:
    """(index, term) of a snapshot file name, or None if it is not one."""
    match = _NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def header_for(meta: SnapshotMeta, sessions: bytes) -> SnapshotHeader:
    return SnapshotHeader(
        index=meta.index,
        term=meta.term,
        voters=tuple(sorted(int(v) for v in meta.conf.voters)),
        learners=tuple(sorted(int(v) for v in meta.conf.learners)),
        sessions=sessions,
    )


class _HashingWriter(io.RawIOBase):
    """A write-only file object that hashes and counts what goes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._out.write(view)
        self.hash.update(view)
        self.size += len(view)
        return len(view)


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(
    directory: Path,
    header: SnapshotHeader,
    write_body: Callable[[BinaryIO], None],
) -> Path:
    """Write a snapshot file atomically (temp file, fsync, rename, directory fsync).
    ``write_body`` writes the state machine's bytes to the file object it is given.
    Blocking: run it in a worker thread. Returns the final path."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / file_name(header.index, header.term)
    tmp = final.with_name(final.name + ".tmp")
    encoded = _header_encoder.encode(header)
    try:
        with open(tmp, "wb") as raw:
            out = _HashingWriter(raw)
            buffered = cast(BinaryIO, io.BufferedWriter(cast(Any, out), buffer_size=1 << 20))
            buffered.write(MAGIC)
            buffered.write(_HEADER_LEN.pack(len(encoded)))
            buffered.write(encoded)
            write_body(buffered)
            buffered.flush()
            raw.write(_TRAILER.pack(TRAILER_MAGIC, out.size, out.hash.digest()))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, final)
        fsync_directory(directory)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def verify(path: Path) -> SnapshotHeader:
    """Check a whole snapshot file (trailer, length, checksum, header) and return its
    header. Raises SnapshotFileError naming the file (and the index it covers, from its
    name) and what is wrong. Blocking."""
    try:
        return _verify(path)
    except SnapshotFileError as exc:
        parsed = parse_name(path.name)
        if parsed is None:
            raise
        raise SnapshotFileError(
            f"{exc} (the snapshot of entries up to index {parsed[0]}, term {parsed[1]})"
        ) from exc.__cause__


def _verify(path: Path) -> SnapshotHeader:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size < len(MAGIC) + _HEADER_LEN.size + _TRAILER.size:
                raise SnapshotFileError(f"{path}: truncated ({size} bytes)")
            f.seek(size - _TRAILER.size)
            magic, length, digest = _TRAILER.unpack(f.read(_TRAILER.size))
            if magic != TRAILER_MAGIC:
                raise SnapshotFileError(f"{path}: no end marker: truncated or not a snapshot")
            if length != size - _TRAILER.size:
                raise SnapshotFileError(
                    f"{path}: the trailer says {length} bytes of content, the file has "
                    f"{size - _TRAILER.size}"
                )
            f.seek(0)
            hasher = hashlib.sha256()
            left = length
            while left:
                block = f.read(min(left, 1 << 20))
                if not block:
                    raise SnapshotFileError(f"{path}: shorter than it was a moment ago")
                hasher.update(block)
                left -= len(block)
            if hasher.digest() != digest:
                raise SnapshotFileError(f"{path}: checksum mismatch: the file is corrupt")
            f.seek(0)
            return _read_header(f, path)
    except OSError as exc:
        raise SnapshotFileError(f"{path}: cannot read: {exc}") from exc


def _read_header(f: BinaryIO, path: Path) -> SnapshotHeader:
    if f.read(len(MAGIC)) != MAGIC:
        raise SnapshotFileError(f"{path}: not a raftlog snapshot (bad magic)")
    (length,) = _HEADER_LEN.unpack(f.read(_HEADER_LEN.size))
    if length > MAX_HEADER_BYTES:
        raise SnapshotFileError(f"{path}: header of {length} bytes declared")
    try:
        return _header_decoder.decode(f.read(length))
    except msgspec.DecodeError as exc:
        raise SnapshotFileError(f"{path}: bad header: {exc}") from exc


class _BodyReader(io.RawIOBase):
    """Read-only view of the state machine's bytes inside an open snapshot file."""

    def __init__(self, f: BinaryIO, start: int, end: int) -> None:
        self._f = f
        self._pos = start
        self._end = end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._end - self._pos
        if left <= 0:
            return 0
        view = memoryview(buffer).cast("B")[: min(len(buffer), left)]
        self._f.seek(self._pos)
        n = self._f.readinto(view)  # type: ignore[attr-defined]
        if not n:
            return 0
        self._pos += n
        return int(n)


def read_header(path: Path) -> SnapshotHeader:
    """The header of a snapshot file, without checking the rest (use :func:`verify` for
    a file that has not been checked). Blocking."""
    try:
        with open(path, "rb") as f:
            return _read_header(f, path)
    except (OSError, struct.error) as exc:
        raise SnapshotFileError(f"{path}: cannot read the header: {exc}") from exc


def open_body(
    path: Path, restore: Callable[[BinaryIO], None], *, verified: bool = False
) -> SnapshotHeader:
    """Verify ``path`` (unless it was just ``verified``), then call ``restore`` with a
    file object holding exactly the state machine's bytes. Blocking. Returns the
    header."""
    header = read_header(path) if verified else verify(path)
    with open(path, "rb") as f:
        _read_header(f, path)
        start = f.tell()
        end = path.stat().st_size - _TRAILER.size
        body = io.BufferedReader(_BodyReader(f, start, end), buffer_size=1 << 20)
        restore(cast(BinaryIO, body))
    return header


def list_snapshots(directory: Path) -> list[tuple[int, int, Path]]:
    """The snapshot files in ``directory`` as (index, term, path), oldest first."""
    found = []
    if directory.is_dir():
        for entry in directory.iterdir():
            parsed = parse_name(entry.name)
            if parsed is not None:
                found.append((parsed[0], parsed[1], entry))
    return sorted(found)


def remove_temporaries(directory: Path) -> None:
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.name.endswith(".tmp"):
                entry.unlink(missing_ok=True)
