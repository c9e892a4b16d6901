"""Commands and client sessions (exactly-once appends), outside the core."""

from __future__ import annotations

import pytest

from raftlog.server.sessions import (
    Command,
    Duplicate,
    SessionTable,
    Stale,
    command_payload,
    decode_command,
    encode_command,
)


def test_commands_round_trip_and_anything_else_is_plain_data() -> None:
    assert decode_command(encode_command(b"SET 5")) == Command(b"SET 5")
    assert decode_command(encode_command(b"x", "c1", 3)) == Command(b"x", "c1", 3)
    # Bytes that are not a well-formed frame are a plain command of all of them, so that
    # every node decides the same way.
    for raw in (b"", b"no frame", b"\x01garbage", b"\x07"):
        assert decode_command(raw) == Command(raw)
    assert command_payload(encode_command(b"ADD 1", "c", 1)) == b"ADD 1"
    with pytest.raises(ValueError, match="seq >= 1"):
        encode_command(b"x", "c", 0)
    with pytest.raises(ValueError, match="client id"):
        encode_command(b"x", "", 1)


def _apply(table: SessionTable, index: int, client: str, seq: int, log: list[bytes]) -> object:
    """What a node does for a session command at ``index``: check, apply, record."""
    command = Command(f"{client}-{seq}".encode(), client, seq)
    answer = table.check(command, index)
    if answer is not None:
        return answer
    log.append(command.data)
    table.record(command, index, 1, len(log))
    return len(log)


def test_a_retried_request_is_answered_with_the_first_outcome() -> None:
    table, log = SessionTable(), []
    assert _apply(table, 2, "c1", 1, log) == 1
    again = _apply(table, 3, "c1", 1, log)  # retried after a failover
    assert again == Duplicate(2, 1, 1)
    assert log == [b"c1-1"]
    assert _apply(table, 4, "c1", 2, log) == 2


def test_an_older_request_than_the_latest_is_stale() -> None:
    table, log = SessionTable(), []
    _apply(table, 1, "a", 1, log)
    _apply(table, 2, "a", 2, log)
    assert _apply(table, 3, "a", 1, log) == Stale("a", 1, 2)
    assert log == [b"a-1", b"a-2"]


def test_sessions_are_bounded_and_expire_deterministically() -> None:
    table, log = SessionTable(max_sessions=2, idle_entries=10), []
    _apply(table, 1, "a", 1, log)
    _apply(table, 2, "b", 1, log)
    _apply(table, 3, "c", 1, log)  # "a" is the least recently used: forgotten
    assert set(table.sessions) == {"b", "c"}
    assert _apply(table, 4, "a", 1, log) == 4  # no memory of it: applied again
    _apply(table, 20, "c", 2, log)  # "b" and "a" idle for more than 10 entries
    assert set(table.sessions) == {"c"}


def test_the_table_travels_in_snapshots_and_replicas_agree() -> None:
    plan = [(i, f"c{i % 3}", 1 + i // 3) for i in range(1, 40)] + [(40, "c1", 13)]
    replicas = [SessionTable(max_sessions=2, idle_entries=5) for _ in range(3)]
    for table in replicas:
        log: list[bytes] = []
        for index, client, seq in plan:
            _apply(table, index, client, seq, log)
    assert all(t.encode() == replicas[0].encode() for t in replicas)
    restored = SessionTable()
    restored.load(replicas[0].encode())
    assert restored.encode() == replicas[0].encode()
    assert restored.check(Command(b"", "c1", 13), 41) == replicas[0].check(
        Command(b"", "c1", 13), 41
    )
    empty = SessionTable()
    empty.load(b"")
    assert len(empty) == 0
