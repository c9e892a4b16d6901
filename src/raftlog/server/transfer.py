"""Moving snapshot files between nodes, beside the Raft messages.

The core only says *that* a follower needs a snapshot (an ``InstallSnapshot`` carrying
the metadata). The bytes travel here, in :class:`~raftlog.core.messages.SnapshotChunk`
messages over the same peer connections, with bounded memory on both sides:

- the sender reads the file a chunk at a time (in a worker thread) and keeps at most
  ``window`` chunks unacknowledged;
- the receiver appends each chunk to a temporary file at the offset it has reached, and
  answers every chunk with a :class:`~raftlog.core.messages.SnapshotAck` saying how far it
  got. A chunk at any other offset is not written; an ack for a chunk beyond the gap says
  so, and the sender goes back to the offset the receiver has reached at once (go-back-N).
  So a transfer survives lost messages and broken connections: when no ack comes for a
  while the sender starts again from the last acknowledged offset, and the receiver keeps
  its partial file (the same snapshot) in the meantime. A transfer that makes no progress
  for ``MAX_SILENCES`` ack timeouts is given up;
- once the receiver has every byte it fsyncs the file, verifies it (checksum and header,
  :func:`raftlog.server.snapfile.verify`), moves it to its final name, and only then hands
  the ``InstallSnapshot`` to its core; a file that fails verification is deleted and the
  failure acknowledged, so the sender reports it and the core tries again later.

The sender reports the outcome to its node (success when the last chunk is acknowledged,
failure after repeated silence or an error), which tells the core
(``Raft.report_snapshot``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from raftlog.core.messages import SnapshotAck, SnapshotChunk, WireMessage
from raftlog.core.types import NodeId, SnapshotMeta
from raftlog.server import snapfile

log = logging.getLogger("raftlog.server.transfer")

CHUNK_BYTES = 512 * 1024
WINDOW = 4
ACK_TIMEOUT_S = 2.0
MAX_SILENCES = 5
"""Ack timeouts in a row after which a transfer is given up (and reported failed)."""


@dataclass(frozen=True)
class Outgoing:
    """A snapshot file ready to send: its metadata and path."""

    meta: SnapshotMeta
    path: Path


class SnapshotSender:
    """Streams one snapshot file to one peer; ``run()`` returns True once the peer has
    acknowledged every byte, False if the transfer failed (or was stopped)."""

    def __init__(
        self,
        me: NodeId,
        peer: NodeId,
        term: int,
        outgoing: Outgoing,
        send: Callable[[WireMessage], bool],
        *,
        chunk_bytes: int = CHUNK_BYTES,
        window: int = WINDOW,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self.me, self.peer, self.term = me, peer, term
        self.outgoing = outgoing
        self._send = send
        self._chunk = chunk_bytes
        self._window = window
        self._ack_timeout = ack_timeout_s
        self.size = outgoing.path.stat().st_size
        self.acked = 0
        self.error = ""
        self.resent = 0
        self._progress = asyncio.Event()
        self._rewind_to: int | None = None
        self._rewound: int | None = None

    def on_ack(self, ack: SnapshotAck) -> None:
        meta = self.outgoing.meta
        if (ack.index, ack.snap_term) != (meta.index, meta.term):
            return  # about another transfer
        if ack.error:
            self.error = ack.error
        # A receiver that restarted may have less than it said before: follow it.
        self.acked = min(ack.received, self.size)
        if ack.gap and ack.received != self._rewound:
            self._rewind_to = ack.received  # once per gap, not once per chunk after it
        self._progress.set()

    async def run(self) -> bool:
        meta = self.outgoing.meta
        loop = asyncio.get_running_loop()
        sent_to = 0
        last_progress = loop.time()
        give_up_s = MAX_SILENCES * self._ack_timeout
        with open(self.outgoing.path, "rb") as f:
            while self.acked < self.size and not self.error:
                if self._rewind_to is not None:
                    self.resent += max(0, sent_to - self._rewind_to)
                    sent_to = self._rewound = self._rewind_to
                    self._rewind_to = None
                while sent_to < self.size and sent_to < self.acked + self._window * self._chunk:
                    length = min(self._chunk, self.size - sent_to)
                    data = await asyncio.to_thread(_read_at, f, sent_to, length)
                    self._send(
                        SnapshotChunk(
                            self.me,
                            self.peer,
                            self.term,
                            meta.index,
                            meta.term,
                            self.size,
                            sent_to,
                            data,
                        )
                    )
                    sent_to += length
                self._progress.clear()
                before = self.acked
                try:
                    async with asyncio.timeout(self._ack_timeout):
                        await self._progress.wait()
                except TimeoutError:
                    # Nothing came back: resume from what the peer is known to have.
                    self.resent += max(0, sent_to - self.acked)
                    sent_to = self.acked
                    self._rewound = None
                if self.acked > before:
                    last_progress = loop.time()
                elif loop.time() - last_progress > give_up_s:
                    self.error = f"no progress for {give_up_s:g} s"
                    break
        if self.error:
            log.warning("snapshot %s to node %s failed: %s", meta.index, self.peer, self.error)
            return False
        return True


def _read_at(f: BinaryIO, offset: int, length: int) -> bytes:
    f.seek(offset)
    return f.read(length)


class SnapshotReceiver:
    """Receives snapshot files from leaders, one at a time, into ``directory``.

    ``on_complete(src, term, meta, path)`` is awaited once a whole file arrived and was
    verified (the file is under its final name by then)."""

    def __init__(
        self,
        me: NodeId,
        directory: Path,
        send: Callable[[WireMessage], bool],
        on_complete: Callable[[NodeId, int, SnapshotMeta, Path], Awaitable[None]],
    ) -> None:
        self.me = me
        self.directory = directory
        self._send = send
        self._on_complete = on_complete
        self._queue: asyncio.Queue[SnapshotChunk] = asyncio.Queue(256)
        self._current: tuple[NodeId, int, int, int] | None = None
        """(src, index, snap_term, size) of the partial file."""
        self._received = 0
        self._file: BinaryIO | None = None
        self._done: tuple[NodeId, int, int, int] | None = None
        """The last transfer completed: a late chunk of it is answered "all received"."""
        self.completed = 0
        self.landing: Path | None = None
        """The file a transfer is finishing under its final name but has not yet handed
        to ``on_complete``: whoever prunes snapshot files must keep it."""

    @property
    def _partial(self) -> Path:
        return self.directory / "incoming.snap.tmp"

    def on_chunk(self, chunk: SnapshotChunk) -> None:
        """Transport callback (never blocks; a full queue drops: the sender resends)."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(chunk)

    async def run(self) -> None:
        try:
            while True:
                chunk = await self._queue.get()
                try:
                    await self._handle(chunk)
                except OSError as exc:
                    log.warning("receiving snapshot %s failed: %s", chunk.index, exc)
                    self._discard()
                    self._ack(chunk, 0, f"cannot write the snapshot: {exc}")
        finally:
            self._discard()

    async def _handle(self, chunk: SnapshotChunk) -> None:
        key = (chunk.src, chunk.index, chunk.snap_term, chunk.size)
        if key == self._done:
            self._ack(chunk, chunk.size)  # its last ack was lost: say again that it is done
            return
        if key != self._current:
            if chunk.offset != 0:
                self._ack(chunk, 0, gap=True)  # we hold nothing of this one: from the top
                return
            self._discard()
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = open(self._partial, "wb")  # noqa: SIM115 - held across chunks
            self._current = key
            self._received = 0
        if chunk.offset == self._received and chunk.data:
            await asyncio.to_thread(_write, self._file, chunk.data)
            self._received += len(chunk.data)
        if self._received < chunk.size:
            self._ack(chunk, self._received, gap=chunk.offset > self._received)
            return
        if chunk.offset + len(chunk.data) != chunk.size:
            self._ack(chunk, self._received)  # a duplicate of an earlier chunk
            return
        await self._finish(chunk)

    async def _finish(self, chunk: SnapshotChunk) -> None:
        f = self._file
        self._file = None
        self._current = None
        assert f is not None
        try:
            await asyncio.to_thread(_close_synced, f)
            header = await asyncio.to_thread(snapfile.verify, self._partial)
        except snapfile.SnapshotFileError as exc:
            log.warning("snapshot %s from node %s refused: %s", chunk.index, chunk.src, exc)
            self._partial.unlink(missing_ok=True)
            self._ack(chunk, 0, str(exc))
            return
        if (header.index, header.term) != (chunk.index, chunk.snap_term):
            self._partial.unlink(missing_ok=True)
            self._ack(chunk, 0, f"the file holds snapshot {header.index}@{header.term}")
            return
        final = self.directory / snapfile.file_name(header.index, header.term)
        self.landing = final
        try:
            os.replace(self._partial, final)
            await asyncio.to_thread(snapfile.fsync_directory, self.directory)
            self.completed += 1
            self._done = (chunk.src, chunk.index, chunk.snap_term, chunk.size)
            await self._on_complete(chunk.src, chunk.term, header.meta(), final)
        finally:
            self.landing = None
        self._ack(chunk, chunk.size)

    def _ack(
        self, chunk: SnapshotChunk, received: int, error: str = "", *, gap: bool = False
    ) -> None:
        self._send(
            SnapshotAck(
                self.me,
                chunk.src,
                chunk.term,
                chunk.index,
                chunk.snap_term,
                received,
                gap=gap,
                error=error,
            )
        )

    def _discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        self._current = None
        self._received = 0
        self._partial.unlink(missing_ok=True)


def _write(f: BinaryIO | None, data: bytes) -> None:
    assert f is not None
    f.write(data)


def _close_synced(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()
