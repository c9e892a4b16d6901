"""The replicated log's state machine: exactly-once appends through client sessions."""

from __future__ import annotations

from raftlog.core.types import ClientCommand, Entry, EntryKind, encode_command
from raftlog.server.statemachine import Applied, ReplicatedLog, StaleRequest


def _cmd(index: int, client: str, seq: int, data: bytes, term: int = 1) -> Entry:
    return Entry(index, term, EntryKind.CLIENT, encode_command(ClientCommand(client, seq, data)))


def test_a_retried_request_is_applied_once_and_answered_with_the_first_record() -> None:
    sm = ReplicatedLog()
    first = sm.apply(_cmd(2, "c1", 1, b"SET 5"))
    again = sm.apply(_cmd(3, "c1", 1, b"SET 5", term=2))  # retried after a failover
    assert isinstance(first, Applied) and isinstance(again, Applied)
    assert not first.duplicate and again.duplicate
    assert again.record == first.record == sm.records[0]
    assert [r.data for r in sm.records] == [b"SET 5"]
    nxt = sm.apply(_cmd(4, "c1", 2, b"ADD 1"))
    assert isinstance(nxt, Applied) and nxt.record.index == 4 and len(sm) == 2


def test_clients_are_independent_and_plain_entries_always_append() -> None:
    sm = ReplicatedLog()
    sm.apply(_cmd(1, "a", 1, b"x"))
    sm.apply(_cmd(2, "b", 1, b"x"))
    sm.apply(Entry(3, 1, EntryKind.NORMAL, b"x"))
    sm.apply(Entry(4, 1, EntryKind.NORMAL, b"x"))
    assert len(sm) == 4


def test_an_older_request_than_the_latest_is_stale() -> None:
    sm = ReplicatedLog()
    sm.apply(_cmd(1, "a", 1, b"one"))
    sm.apply(_cmd(2, "a", 2, b"two"))
    stale = sm.apply(_cmd(3, "a", 1, b"one"))
    assert stale == StaleRequest("a", 1, 2)
    assert len(sm) == 2


def test_sessions_are_bounded_and_expire_deterministically() -> None:
    sm = ReplicatedLog(max_sessions=2, idle_entries=10)
    sm.apply(_cmd(1, "a", 1, b"a1"))
    sm.apply(_cmd(2, "b", 1, b"b1"))
    sm.apply(_cmd(3, "c", 1, b"c1"))  # "a" is the least recently used: forgotten
    assert set(sm.sessions) == {"b", "c"}
    again = sm.apply(_cmd(4, "a", 1, b"a1"))
    assert isinstance(again, Applied) and not again.duplicate  # no memory of it: appended
    sm.apply(_cmd(20, "c", 2, b"c2"))  # "b" and "a" idle for more than 10 entries
    assert set(sm.sessions) == {"c"}


def test_every_replica_ends_in_the_same_state() -> None:
    entries = [_cmd(i, f"c{i % 3}", 1 + i // 3, f"v{i}".encode()) for i in range(1, 40)]
    entries += [_cmd(40, "c1", 13, b"v37")]  # a retry of c1's latest
    replicas = [ReplicatedLog(max_sessions=2, idle_entries=5) for _ in range(3)]
    for sm in replicas:
        for entry in entries:
            sm.apply(entry)
    assert all(sm.records == replicas[0].records for sm in replicas)
    assert all(list(sm.sessions) == list(replicas[0].sessions) for sm in replicas)
