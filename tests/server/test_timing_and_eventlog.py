"""Seconds become ticks in one place; the event log's text and JSON forms."""

from __future__ import annotations

import io
import json
import logging

import pytest

from raftlog.core import events as ev
from raftlog.core.types import NodeId, Role
from raftlog.server.eventlog import EventLog, EventLogHandler
from raftlog.server.timing import Timing, fast_timing, lab_timing, parse_range, timing_for


def test_the_lab_timings_in_ticks() -> None:
    t = timing_for(fast=False)
    assert (t.election_min_s, t.election_max_s, t.heartbeat_s) == (6.0, 10.0, 2.0)
    assert t.tick_s == pytest.approx(0.1)
    assert (t.election_min_ticks, t.election_max_ticks, t.heartbeat_ticks) == (60, 100, 20)
    assert t == Timing(6.0, 10.0, 2.0, t.tick_s) and lab_timing().heartbeat_ticks == 20


def test_the_fast_preset_and_overrides() -> None:
    t = timing_for(fast=True)
    assert (t.election_min_s, t.election_max_s, t.heartbeat_s) == (0.15, 0.3, 0.05)
    assert t.tick_s == pytest.approx(0.005)
    assert t.heartbeat_ticks == 10 and t.election_min_ticks == 30 and t.election_max_ticks == 60
    assert fast_timing().election_max_s == 0.3
    o = timing_for(fast=True, election="1-2", heartbeat=0.25)
    assert (o.election_min_s, o.election_max_s, o.heartbeat_s) == (1.0, 2.0, 0.25)
    assert o.heartbeat_ticks * o.tick_s == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("election", "heartbeat", "message"),
    [("0.3-0.1", None, "min <= max"), ("1", 2.0, "shorter than"), ("x", None, "MIN-MAX")],
)
def test_impossible_timings_are_refused(
    election: str, heartbeat: float | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        timing_for(fast=False, election=election, heartbeat=heartbeat)


def test_parse_range() -> None:
    assert parse_range("6-10") == (6.0, 10.0)
    assert parse_range("0.5") == (0.5, 0.5)


def _event(kind: type[ev.Event], **fields: object) -> ev.Event:
    return kind(node=NodeId(2), role=Role.FOLLOWER, term=3, **fields)


def test_text_lines_start_with_time_node_state_and_term() -> None:
    out = io.StringIO()
    log = EventLog(NodeId(2), stream=out, color=False)
    log.event(_event(ev.VoteGranted, candidate=NodeId(1), candidate_term=3, pre_vote=False))
    line = out.getvalue().strip()
    date, clock, rest = line.split(" ", 2)
    assert len(date) == 10 and clock.count(":") == 2
    assert rest == "node 2 [Follower t3] Voted for node 1 in term 3"


def test_heartbeats_are_hidden_at_info_and_shown_at_debug() -> None:
    quiet, loud = io.StringIO(), io.StringIO()
    for stream, level in ((quiet, logging.INFO), (loud, logging.DEBUG)):
        log = EventLog(NodeId(2), stream=stream, level=level, color=False)
        log.event(_event(ev.HeartbeatReceived, leader=NodeId(1)))
        log.event(_event(ev.LeaderFound, leader=NodeId(1)))
    assert "Heartbeat received from leader" not in quiet.getvalue()
    assert "Following leader 1" in quiet.getvalue()
    assert "Heartbeat received from leader" in loud.getvalue()


def test_json_lines_carry_the_same_fields() -> None:
    out = io.StringIO()
    log = EventLog(NodeId(2), stream=out, fmt="json")
    log.event(_event(ev.EntryCommitted, index=7, entry_term=3, data=b"SET 5", by_leader=False))
    record = json.loads(out.getvalue())
    assert record["node"] == 2 and record["state"] == "Follower" and record["term"] == 3
    assert record["event"] == "EntryCommitted" and record["level"] == "info"
    assert record["msg"] == "Follower committed 'SET 5' (index 7)"
    assert record["index"] == 7 and record["data"] == "SET 5" and record["data_bytes"] == 5
    assert record["time"].endswith("Z")


def test_colour_marks_the_node_on_a_terminal_only() -> None:
    out = io.StringIO()
    EventLog(NodeId(1), stream=out, color=True).note(logging.INFO, Role.LEADER, 1, "hello")
    assert "\x1b[" in out.getvalue()
    plain = io.StringIO()
    EventLog(NodeId(1), stream=plain).note(logging.INFO, Role.LEADER, 1, "hello")  # not a tty
    assert "\x1b[" not in plain.getvalue()


def test_library_records_reach_the_event_log_with_info_turned_down() -> None:
    out = io.StringIO()
    events = EventLog(NodeId(3), stream=out, level=logging.INFO, color=False)
    logger = logging.getLogger("raftlog.test-bridge")
    handler = EventLogHandler(events, lambda: (Role.LEADER, 4))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("node 3: refused a connection from 10.0.0.9: wrong cluster")
        logger.info("node 3: connected to node 1")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "node 3 [Leader t4] refused a connection from 10.0.0.9: wrong cluster" in text
    assert "connected to node 1" not in text  # library chatter is DEBUG in the event log


def test_json_lines_truncate_big_entries_but_give_their_length() -> None:
    out = io.StringIO()
    log = EventLog(NodeId(2), stream=out, fmt="json")
    log.event(_event(ev.ProposalReceived, index=9, data=b"x" * 100_000))
    record = json.loads(out.getvalue())
    assert record["data_bytes"] == 100_000 and len(record["data"]) < 300


class _Broken(io.StringIO):
    def write(self, _text: str) -> int:
        raise OSError(28, "No space left on device")


def test_a_failing_log_stream_does_not_stop_the_node() -> None:
    log = EventLog(NodeId(1), stream=_Broken())
    log.note(logging.INFO, Role.LEADER, 1, "hello")
    assert log.lines_lost == 1 and log.lines_written == 0
