"""Commands in log entries, and client sessions for exactly-once appends.

The Raft core carries opaque bytes. The node frames each entry it proposes so that every
node can tell a plain command from one sent in a client session:

- ``0x00`` + data: a plain command;
- ``0x01`` + msgpack ``[client, seq, data]``: a command in client ``client``'s session,
  its ``seq``-th request (a client has one request outstanding; a retry reuses its seq).

The :class:`SessionTable` is the deterministic part of exactly-once: applied on every node
in log order, it lets the first application of (client, seq) through and answers a retry
with the first one's outcome. It is bounded (least recently used sessions go first) and
sessions expire after a number of log entries (the clock is the log index, the same on
every node). It travels in snapshots and checkpoints (:meth:`encode` / :meth:`decode`),
so a node restored from a snapshot still recognises retries.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgspec

PLAIN = 0x00
SESSION = 0x01
MAX_SESSIONS = 10_000
SESSION_IDLE_ENTRIES = 1_000_000
MAX_CLIENT_ID = 128


class Command(msgspec.Struct, frozen=True):
    """A decoded entry: the state machine's bytes, and the session it came in (if any)."""

    data: bytes
    client: str | None = None
    seq: int = 0


_encoder = msgspec.msgpack.Encoder()
_session_decoder = msgspec.msgpack.Decoder(tuple[str, int, bytes])


def encode_command(data: bytes, client: str | None = None, seq: int = 0) -> bytes:
    """Frame ``data`` for a log entry (in ``client``'s session if given)."""
    if client is None:
        return bytes([PLAIN]) + bytes(data)
    if not client or len(client) > MAX_CLIENT_ID:
        raise ValueError(f"a client id is 1..{MAX_CLIENT_ID} characters")
    if seq < 1:
        raise ValueError("a session request needs seq >= 1")
    return bytes([SESSION]) + _encoder.encode((client, seq, bytes(data)))


def decode_command(entry_data: bytes) -> Command:
    """Never raises: bytes that are not a well-formed frame are taken as a plain command
    holding all of them (every node decides the same way)."""
    if entry_data[:1] == b"\x00":
        return Command(entry_data[1:])
    if entry_data[:1] == b"\x01":
        try:
            client, seq, data = _session_decoder.decode(entry_data[1:])
        except msgspec.DecodeError:
            return Command(entry_data)
        return Command(data, client, seq)
    return Command(entry_data)


def command_payload(entry_data: bytes) -> bytes:
    """The state machine's bytes of an entry (for event logs and displays)."""
    return decode_command(entry_data).data


class Session(msgspec.Struct, array_like=True):
    seq: int
    index: int
    """Where the session's latest request was applied."""
    term: int
    last_used: int
    result: bytes | None = None
    """The state machine's answer to it, msgpack-encoded (None if it could not be)."""


class Duplicate(msgspec.Struct, frozen=True):
    """A retry of the session's latest request: it was applied at ``index`` already."""

    index: int
    term: int
    result: Any


class Stale(msgspec.Struct, frozen=True):
    """A request older than the client's latest: its answer is no longer known."""

    client: str
    seq: int
    latest: int


_table_decoder = msgspec.msgpack.Decoder(list[tuple[str, Session]])


def encode_result(result: Any) -> bytes | None:
    try:
        return _encoder.encode(result)
    except (TypeError, ValueError, OverflowError):
        return None


def decode_result(data: bytes | None) -> Any:
    return None if data is None else msgspec.msgpack.decode(data)


class SessionTable:
    def __init__(
        self, *, max_sessions: int = MAX_SESSIONS, idle_entries: int = SESSION_IDLE_ENTRIES
    ) -> None:
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.max_sessions = max_sessions
        self.idle_entries = idle_entries

    def check(self, command: Command, index: int) -> Duplicate | Stale | None:
        """Before applying ``command`` at ``index``: None if it is new (apply it, then
        :meth:`record`), otherwise the answer to give instead of applying it."""
        assert command.client is not None
        self._expire(index)
        session = self.sessions.get(command.client)
        if session is None:
            return None
        session.last_used = index
        self.sessions.move_to_end(command.client)
        if command.seq == session.seq:
            return Duplicate(session.index, session.term, decode_result(session.result))
        if command.seq < session.seq:
            return Stale(command.client, command.seq, session.seq)
        return None

    def record(self, command: Command, index: int, term: int, result: Any) -> None:
        assert command.client is not None
        encoded = encode_result(result)
        session = self.sessions.get(command.client)
        if session is None:
            self.sessions[command.client] = Session(command.seq, index, term, index, encoded)
            while len(self.sessions) > self.max_sessions:
                self.sessions.popitem(last=False)
        else:
            session.seq, session.index, session.term = command.seq, index, term
            session.last_used, session.result = index, encoded
            self.sessions.move_to_end(command.client)

    def _expire(self, now: int) -> None:
        while self.sessions:
            client, oldest = next(iter(self.sessions.items()))
            if now - oldest.last_used <= self.idle_entries:
                return
            del self.sessions[client]

    def encode(self) -> bytes:
        return _encoder.encode(list(self.sessions.items()))

    def load(self, data: bytes) -> None:
        """Replace the table with an encoded one (b"" for empty)."""
        self.sessions = OrderedDict(_table_decoder.decode(data) if data else [])

    def __len__(self) -> int:
        return len(self.sessions)
