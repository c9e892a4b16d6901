"""Config validation, the wire messages (a msgspec tagged union), the value types, events
and errors: their encodings and their one-line ``describe()`` forms."""

from __future__ import annotations

import random
import typing
from typing import Any

import msgspec
import msgspec.inspect
import pytest

from raftlog.core import events as ev
from raftlog.core.config import KNOWN_BUGS, Config
from raftlog.core.errors import ConfigError, NotLeader, ProposalDropped, RaftError
from raftlog.core.messages import (
    MESSAGE_TYPES,
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    PreVote,
    PreVoteResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from raftlog.core.raft import Raft
from raftlog.core.types import (
    NO_NODE,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Member,
    NodeId,
    ReadState,
    Role,
    SnapshotMeta,
    SoftState,
    decode_conf,
    encode_conf,
    show_data,
)
from raftlog.storage.memory import MemoryStorage

N1, N2, N3, N4 = NodeId(1), NodeId(2), NodeId(3), NodeId(4)
VOTERS = frozenset({N1, N2, N3})

# -- Config -----------------------------------------------------------------------------


def test_default_config_is_valid() -> None:
    config = Config(id=N1, voters=VOTERS)
    assert config.validate() is config
    assert config.pre_vote and config.check_quorum
    assert config.bugs == frozenset()


def test_every_known_bug_can_be_switched_on() -> None:
    config = Config(id=N1, voters=VOTERS, bugs=KNOWN_BUGS)
    assert config.validate() is config
    assert {"commit-old-term", "forget-vote", "truncate-on-stale", "no-prevote-check"} <= (
        KNOWN_BUGS
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"id": NodeId(0), "voters": frozenset({NodeId(0)})}, "positive", id="id-0"),
        pytest.param({"id": NodeId(4)}, "not among the voters", id="id-not-a-voter"),
        pytest.param({"voters": frozenset({N1, NodeId(-2)})}, "voter ids", id="negative-voter"),
        pytest.param({"heartbeat_ticks": 0}, "heartbeat_ticks", id="heartbeat-0"),
        pytest.param(
            {"heartbeat_ticks": 10, "election_timeout_min_ticks": 10},
            "longer than the heartbeat",
            id="heartbeat-equals-election",
        ),
        pytest.param(
            {"heartbeat_ticks": 12, "election_timeout_min_ticks": 10},
            "longer than the heartbeat",
            id="heartbeat-above-election",
        ),
        pytest.param(
            {"election_timeout_min_ticks": 10, "election_timeout_max_ticks": 9},
            "election_timeout_max_ticks",
            id="max-below-min",
        ),
        pytest.param({"max_inflight_msgs": 0}, "max_inflight_msgs", id="inflight-0"),
        pytest.param({"max_entries_per_msg": 0}, "max_entries_per_msg", id="entries-0"),
        pytest.param({"max_bytes_per_msg": 0}, "max_bytes_per_msg", id="bytes-0"),
        pytest.param(
            {"max_committed_bytes_per_ready": 0},
            "max_committed_bytes_per_ready",
            id="committed-bytes-0",
        ),
        pytest.param({"bugs": frozenset({"commit-old-trem"})}, "commit-old-trem", id="typo-bug"),
    ],
)
def test_config_validate_rejects_bad_configs(changes: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"id": N1, "voters": VOTERS, **changes}
    config = Config(**settings)
    with pytest.raises(ConfigError, match=message) as err:
        config.validate()
    assert isinstance(err.value, ValueError)
    assert isinstance(err.value, RaftError)
    with pytest.raises(ConfigError):  # a Raft refuses it too
        Raft(config, MemoryStorage(), random.Random(0))


def test_unknown_bug_error_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        Config(id=N1, voters=VOTERS, bugs=frozenset({"nope"})).validate()
    for name in KNOWN_BUGS:
        assert name in str(err.value)


def test_equal_min_and_max_election_timeout_is_allowed() -> None:
    config = Config(
        id=N1, voters=VOTERS, election_timeout_min_ticks=5, election_timeout_max_ticks=5
    )
    assert config.validate() is config


# -- messages ---------------------------------------------------------------------------

ENTRIES = (
    Entry(4, 2, EntryKind.NOOP),
    Entry(5, 2, EntryKind.NORMAL, b"SET 5"),
    Entry(6, 3, EntryKind.CONF_CHANGE, b"\x00\xff"),
)

SAMPLES: list[Message] = [
    RequestVote(N1, N2, 7, 12, 6),
    RequestVote(N1, N3, 8, 12, 6, transfer=True),
    RequestVoteResponse(N2, N1, 7, granted=True),
    RequestVoteResponse(N2, N1, 7, granted=False),
    PreVote(N3, N1, 9, 5, 4),
    PreVoteResponse(N1, N3, 8, granted=True),
    AppendEntries(N1, N2, 3, 3, 2, ENTRIES, 4),
    AppendEntries(N1, N2, 3, 6, 3, (), 6),
    AppendEntriesResponse(N2, N1, 3, success=True, match_index=6),
    AppendEntriesResponse(N2, N1, 3, success=False, reject_index=6, hint_index=4, hint_term=2),
    Heartbeat(N1, N3, 3, 5),
    Heartbeat(N1, N3, 3, 5, b"read-\x01"),
    HeartbeatResponse(N3, N1, 3, b"read-\x01"),
    TimeoutNow(N1, N2, 3),
    InstallSnapshot(N1, N2, 4, SnapshotMeta(9, 3, ConfState(frozenset({N1, N2, N3})))),
]


def test_message_types_is_the_whole_union() -> None:
    assert set(MESSAGE_TYPES) == set(typing.get_args(Message))
    assert len(MESSAGE_TYPES) == len(set(MESSAGE_TYPES))
    assert {type(m) for m in SAMPLES} == set(MESSAGE_TYPES)
    infos = [msgspec.inspect.type_info(t) for t in MESSAGE_TYPES]
    tags = [info.tag for info in infos if isinstance(info, msgspec.inspect.StructType)]
    assert len(tags) == len(MESSAGE_TYPES)
    assert len(set(tags)) == len(tags)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_messages_round_trip_through_msgpack_as_the_tagged_union(msg: Message) -> None:
    wire = msgspec.msgpack.encode(msg)
    back = msgspec.msgpack.decode(wire, type=Message)
    assert type(back) is type(msg)
    assert back == msg


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_messages_round_trip_through_json(msg: Message) -> None:
    assert msgspec.json.decode(msgspec.json.encode(msg), type=Message) == msg


def test_decoding_a_message_of_unknown_kind_fails() -> None:
    wire = msgspec.msgpack.encode({"type": "snapshot", "src": 1, "dst": 2, "term": 3})
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(wire, type=Message)


def test_entry_encodes_compactly_as_an_array() -> None:
    entry = Entry(5, 2, EntryKind.NORMAL, b"SET 5")
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(entry)) == [5, 2, 0, b"SET 5"]
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(entry), type=Entry) == entry
    assert Entry(1, 1) == Entry(1, 1, EntryKind.NORMAL, b"")


@pytest.mark.parametrize(
    ("msg", "line"),
    [
        (RequestVote(N1, N2, 7, 12, 6), "1->2 RequestVote term=7 last=12@6"),
        (RequestVote(N1, N2, 7, 12, 6, True), "1->2 RequestVote term=7 last=12@6 transfer"),
        (RequestVoteResponse(N2, N1, 7, True), "2->1 RequestVoteResponse term=7 granted"),
        (RequestVoteResponse(N2, N1, 7, False), "2->1 RequestVoteResponse term=7 refused"),
        (PreVote(N3, N1, 9, 5, 4), "3->1 PreVote term=9 last=5@4"),
        (PreVoteResponse(N1, N3, 8, False), "1->3 PreVoteResponse term=8 refused"),
        (
            AppendEntries(N1, N2, 3, 3, 2, ENTRIES, 4),
            "1->2 AppendEntries term=3 prev=3@2 entries=4..6 commit=4",
        ),
        (
            AppendEntries(N1, N2, 3, 6, 3, (), 6),
            "1->2 AppendEntries term=3 prev=6@3 entries=none commit=6",
        ),
        (
            AppendEntriesResponse(N2, N1, 3, success=True, match_index=6),
            "2->1 AppendEntriesResponse term=3 match=6",
        ),
        (
            AppendEntriesResponse(N2, N1, 3, False, reject_index=6, hint_index=4, hint_term=2),
            "2->1 AppendEntriesResponse term=3 reject=6 hint=4@2",
        ),
        (Heartbeat(N1, N3, 3, 5), "1->3 Heartbeat term=3 commit=5"),
        (Heartbeat(N1, N3, 3, 5, b"\x01\xab"), "1->3 Heartbeat term=3 commit=5 ctx=01ab"),
        (HeartbeatResponse(N3, N1, 3), "3->1 HeartbeatResponse term=3"),
        (HeartbeatResponse(N3, N1, 3, b"\x01"), "3->1 HeartbeatResponse term=3 ctx=01"),
        (TimeoutNow(N1, N2, 3), "1->2 TimeoutNow term=3"),
    ],
)
def test_message_describe(msg: Message, line: str) -> None:
    assert msg.describe() == line


# -- value types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "line"),
    [
        (Entry(5, 2, EntryKind.NORMAL, b"SET 5"), "5@2 'SET 5'"),
        (Entry(4, 2, EntryKind.NOOP), "4@2 no-op"),
        (
            Entry(6, 3, EntryKind.CONF_CHANGE, encode_conf(ConfState(VOTERS, frozenset({N4})))),
            "6@3 conf voters=[1, 2, 3] learners=[4]",
        ),
        (Entry(6, 3, EntryKind.CONF_CHANGE, b"x"), "6@3 conf <undecodable>"),
        (Entry(7, 3, EntryKind.NORMAL, b"\xff\x00"), "7@3 <2 bytes 0xff00>"),
        (Entry(8, 3), "8@3 ''"),
    ],
)
def test_entry_describe(entry: Entry, line: str) -> None:
    assert entry.describe() == line


def test_show_data_truncates_long_data() -> None:
    assert show_data(b"a" * 61) == repr("a" * 60 + "…")
    assert show_data(b"a" * 60) == repr("a" * 60)
    assert show_data(b"\xff" * 61) == f"<61 bytes 0x{'ff' * 60}…>"
    assert show_data(b"x y", limit=2) == repr("x " + "…")


def test_state_describe_lines() -> None:
    assert HardState(3, N2, 7).describe() == "term=3 vote=2 commit=7"
    assert HardState() == HardState(0, NO_NODE, 0)
    assert SoftState(N1, Role.LEADER).describe() == "leader=1 role=Leader"
    assert ConfState(VOTERS).describe() == "voters=[1, 2, 3]"
    conf = ConfState(VOTERS, frozenset({N4}), (Member(N4, "h:1", "http://h:2"),))
    assert conf.describe() == "voters=[1, 2, 3] learners=[4]"
    assert conf.member(N4) == Member(N4, "h:1", "http://h:2") and conf.member(N1) is None
    assert decode_conf(encode_conf(conf)) == conf
    assert ReadState(4, b"r") == ReadState(4, b"r")


@pytest.mark.parametrize(
    "value",
    [HardState(3, N2, 7), SoftState(N1, Role.CANDIDATE), ConfState(VOTERS), ReadState(4, b"r")],
    ids=lambda v: type(v).__name__,
)
def test_state_types_round_trip_through_msgpack(value: msgspec.Struct) -> None:
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(value), type=type(value))
    assert back == value


# -- events -----------------------------------------------------------------------------


def event(kind: type[ev.Event], **fields: Any) -> ev.Event:
    return kind(node=N1, role=fields.pop("role", Role.FOLLOWER), term=3, **fields)


@pytest.mark.parametrize(
    ("evt", "line"),
    [
        (event(ev.NodeStarted, last_index=0, commit=0), "Node started! State: Follower. Term: 3"),
        (
            event(ev.VoteGranted, candidate=N2, candidate_term=3, pre_vote=False),
            "Voted for node 2 in term 3",
        ),
        (
            event(ev.VoteGranted, candidate=N2, candidate_term=4, pre_vote=True),
            "Pre-voted for node 2 for term 4",
        ),
        (event(ev.BecameLeader, role=Role.LEADER, votes=2), "Received 2 votes. State: Leader"),
        (
            event(
                ev.EntryCommitted,
                role=Role.LEADER,
                index=4,
                entry_term=3,
                data=b"SET 5",
                by_leader=True,
            ),
            "Leader committed 'SET 5' (index 4)",
        ),
        (
            event(ev.EntryCommitted, index=4, entry_term=3, data=b"SET 5", by_leader=False),
            "Follower committed 'SET 5' (index 4)",
        ),
        (event(ev.ElectionStarted, role=Role.CANDIDATE), "New election term 3. State: Candidate"),
        (
            event(ev.ElectionStarted, role=Role.CANDIDATE, transfer=True),
            "New election term 3. State: Candidate (leadership transfer)",
        ),
        (event(ev.PreVoteStarted, next_term=4), "Pre-vote for term 4. State: PreCandidate"),
        (
            event(ev.VoteRefused, candidate=N3, candidate_term=3, pre_vote=False, reason="why"),
            "Didn't vote for 3 (why)",
        ),
        (
            event(ev.SteppedDown, from_role=Role.LEADER, seen_from=N2, new_leader=N2),
            "Saw term 3 from node 2; was Leader. State: Follower, leader 2",
        ),
        (
            event(ev.SteppedDown, from_role=Role.CANDIDATE, seen_from=N2, new_leader=NO_NODE),
            "Saw term 3 from node 2; was Candidate. State: Follower",
        ),
        (event(ev.EntriesAppended, leader=N2, first=4, last=4), "Appended entry 4 from leader 2"),
        (
            event(ev.EntriesAppended, leader=N2, first=4, last=6),
            "Appended entries 4..6 from leader 2",
        ),
        (
            event(ev.ProposalReceived, role=Role.LEADER, index=4, data=b"SET 5"),
            "Leader received log 'SET 5' from client (index 4)",
        ),
        (event(ev.PeerOffline, peer=N3), "Follower node 3 is offline"),
        (
            event(ev.TransferAborted, to=N2, reason="timed out"),
            "Leadership transfer to node 2 aborted (timed out)",
        ),
    ],
)
def test_event_describe_lines(evt: ev.Event, line: str) -> None:
    assert evt.describe() == line


def all_event_types() -> list[type[ev.Event]]:
    found: list[type[ev.Event]] = []
    todo = list(ev.Event.__subclasses__())
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return sorted(found, key=lambda k: k.__name__)


SAMPLE_VALUES: dict[Any, Any] = {
    int: 4,
    bool: True,
    bytes: b"SET 5",
    str: "a reason",
    NodeId: N2,
    Role: Role.CANDIDATE,
    tuple[NodeId, ...]: (N1, N2),
    # The server's feed events (raftlog.server.feed) subclass Event too, when imported.
    dict[str, Any]: {"commit": 4},
}


def sample_event(kind: type[ev.Event]) -> ev.Event:
    fields = {
        f.name: SAMPLE_VALUES[f.type]
        for f in msgspec.structs.fields(kind)
        if f.default is msgspec.NODEFAULT and f.name not in ("node", "role", "term")
    }
    return kind(node=N1, role=Role.FOLLOWER, term=3, **fields)


@pytest.mark.parametrize("kind", all_event_types(), ids=lambda k: k.__name__)
def test_every_event_describes_itself_and_round_trips(kind: type[ev.Event]) -> None:
    evt = sample_event(kind)
    line = evt.describe()
    assert line
    assert "\n" not in line
    assert "{" not in line  # no unformatted placeholder
    assert isinstance(evt.level, ev.Level)
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(evt), type=kind)
    assert back == evt


def test_heartbeat_events_are_debug_and_trouble_is_a_warning() -> None:
    assert ev.HeartbeatSent.level is ev.Level.DEBUG
    assert ev.HeartbeatReceived.level is ev.Level.DEBUG
    assert ev.QuorumLost.level is ev.Level.WARNING
    assert ev.LogTruncated.level is ev.Level.WARNING
    assert ev.BecameLeader.level is ev.Level.INFO


# -- errors -----------------------------------------------------------------------------


def test_not_leader_carries_the_leader_hint() -> None:
    err = NotLeader(N2)
    assert err.leader_hint == N2
    assert "leader is 2" in str(err)
    assert NotLeader().leader_hint == NO_NODE
    assert "no known leader" in str(NotLeader())
    assert isinstance(err, RaftError)


def test_proposal_dropped_carries_the_reason() -> None:
    err = ProposalDropped("transfer in progress")
    assert err.reason == "transfer in progress"
    assert "transfer in progress" in str(err)
