"""State machines a node applies committed entries to.

The contract (as hashicorp/raft's FSM): ``apply`` is called once per committed client
entry, in index order, on every node; it must be deterministic (same entries, same
results) and must not fail for reasons outside the entry itself. What it returns is handed
back to the client that proposed the entry (on the node that proposed it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import msgspec

from raftlog.core.types import ClientCommand, Entry, EntryKind, decode_command


class StateMachine(Protocol):
    def apply(self, entry: Entry) -> object:
        """Apply one committed client entry (``EntryKind.NORMAL`` or ``CLIENT``)."""
        ...


class LogRecord(msgspec.Struct, frozen=True):
    """One client entry of the replicated log, as clients read it."""

    index: int
    term: int
    data: bytes


class Applied(msgspec.Struct, frozen=True):
    """What applying a client entry produced: the record it appended (or, for a retried
    request, the record the first attempt appended) and whether this was a retry."""

    record: LogRecord
    duplicate: bool = False


class StaleRequest(msgspec.Struct, frozen=True):
    """A request older than the client's latest: its answer is no longer known."""

    client: str
    seq: int
    latest: int


class _Session(msgspec.Struct):
    seq: int
    record: LogRecord
    last_used: int


MAX_SESSIONS = 10_000
SESSION_IDLE_ENTRIES = 1_000_000
"""A session unused for this many log entries is forgotten (deterministically: the clock is
the log index, the same on every node)."""


class ReplicatedLog:
    """The state machine of raftlog the service: the ordered log of client entries, with
    client sessions for exactly-once appends.

    ``records[i]`` is the (i+1)-th client entry applied; its ``index`` is its Raft log
    index (no-op entries of new leaders take indexes too, so client indexes have gaps). An
    entry in a session envelope ``(client, seq, data)`` is appended only if ``seq`` is new
    for that client; a retry of the client's latest request returns the original record.
    At most ``MAX_SESSIONS`` sessions are kept (least recently used go first), and a session
    idle for ``SESSION_IDLE_ENTRIES`` entries expires: a client retrying after that long
    gets a new append.
    """

    def __init__(
        self, *, max_sessions: int = MAX_SESSIONS, idle_entries: int = SESSION_IDLE_ENTRIES
    ) -> None:
        self.records: list[LogRecord] = []
        self.sessions: OrderedDict[str, _Session] = OrderedDict()
        self.max_sessions = max_sessions
        self.idle_entries = idle_entries

    def apply(self, entry: Entry) -> Applied | StaleRequest:
        if entry.kind is not EntryKind.CLIENT:
            return Applied(self._append(entry.index, entry.term, entry.data))
        try:
            command = decode_command(entry.data)
        except msgspec.DecodeError:
            # Not an envelope after all: keep the bytes, as every node will.
            return Applied(self._append(entry.index, entry.term, entry.data))
        return self._apply_command(entry, command)

    def _apply_command(self, entry: Entry, command: ClientCommand) -> Applied | StaleRequest:
        self._expire(entry.index)
        session = self.sessions.get(command.client)
        if session is not None:
            session.last_used = entry.index
            self.sessions.move_to_end(command.client)
            if command.seq == session.seq:
                return Applied(session.record, duplicate=True)
            if command.seq < session.seq:
                return StaleRequest(command.client, command.seq, session.seq)
        record = self._append(entry.index, entry.term, command.data)
        if session is None:
            self.sessions[command.client] = _Session(command.seq, record, entry.index)
            while len(self.sessions) > self.max_sessions:
                self.sessions.popitem(last=False)
        else:
            session.seq = command.seq
            session.record = record
        return Applied(record)

    def _expire(self, now: int) -> None:
        while self.sessions:
            client, oldest = next(iter(self.sessions.items()))
            if now - oldest.last_used <= self.idle_entries:
                return
            del self.sessions[client]

    def _append(self, index: int, term: int, data: bytes) -> LogRecord:
        record = LogRecord(index, term, data)
        self.records.append(record)
        return record

    def read(self, start_index: int = 1, limit: int = 100) -> Sequence[LogRecord]:
        """Records with Raft index >= ``start_index``, at most ``limit`` of them."""
        lo, hi = 0, len(self.records)
        while lo < hi:  # first record with index >= start_index
            mid = (lo + hi) // 2
            if self.records[mid].index < start_index:
                lo = mid + 1
            else:
                hi = mid
        return self.records[lo : lo + limit]

    def __len__(self) -> int:
        return len(self.records)
