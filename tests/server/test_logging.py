"""Logging through the standard ``logging`` module: a node only emits records (its events
on ``raftlog.events``, with node, role and term), a program decides where they go; the
``raftlog`` command prints them in the event log's lines (``print_events``); ``NO_COLOR``."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import Iterator

import pytest

import raftlog
from raftlog.core import events as ev
from raftlog.core.types import NodeId, Role
from raftlog.local.cluster import free_ports
from raftlog.server.eventlog import EventLog, print_events, stop_printing, want_color


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def program_logging() -> Iterator[Collect]:
    """A program that configured logging its own way: a handler on the root logger."""
    root = logging.getLogger()
    handler = Collect()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _untouched() -> None:
    library = logging.getLogger("raftlog")
    assert library.handlers == [] and library.level == logging.NOTSET and library.propagate
    assert all(logging.getLogger(name).handlers == [] for name in ("raftlog.events",))


def test_an_embedding_program_gets_the_records_and_raftlog_prints_nothing(
    program_logging: Collect, capfd: pytest.CaptureFixture[str]
) -> None:
    async def main() -> tuple[int, int]:
        ports = free_ports(3)
        members = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)}
        nodes = [raftlog.Node(raftlog.NodeConfig(id=i, members=members)) for i in members]
        for node in nodes:
            await node.start()
        try:
            _untouched()
            async with asyncio.timeout(30):
                while not any(n.is_leader for n in nodes):
                    await asyncio.sleep(0.01)
            leader = next(n for n in nodes if n.is_leader)
            await leader.apply(b"SET 5", timeout=30)
            return int(leader.id), leader.term
        finally:
            for node in nodes:
                await node.stop()

    leader, term = asyncio.run(asyncio.wait_for(main(), 60))
    _untouched()
    events = [r for r in program_logging.records if r.name == "raftlog.events"]
    won = [r for r in events if r.getMessage().startswith("Received") and r.term == term]
    assert [(r.node, r.role, r.event, r.levelno) for r in won] == [
        (leader, "Leader", "BecameLeader", logging.INFO)
    ]
    committed = [r for r in events if r.getMessage().startswith("Leader committed 'SET 5'")]
    assert committed and committed[0].node == leader and committed[0].fields["data"]
    # Heartbeats are DEBUG: below the program's INFO, so not even made into records.
    assert all(r.levelno >= logging.INFO for r in events)
    assert not [r for r in events if r.event in ("HeartbeatSent", "HeartbeatReceived")]
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_the_deprecated_event_log_still_prints_its_lines_and_gives_the_logger_back() -> None:
    stream = io.StringIO()
    port = free_ports(1)[0]
    with pytest.warns(DeprecationWarning, match="event_log is deprecated"):
        config = raftlog.NodeConfig(id=1, members={1: f"127.0.0.1:{port}"}, event_log=stream)

    async def main() -> None:
        async with raftlog.Node(config) as node:
            async with asyncio.timeout(30):
                while not node.is_leader:
                    await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(main(), 60))
    assert "node 1 [Leader t1] Received 1 votes. State: Leader" in stream.getvalue()
    _untouched()


def _event(kind: type[ev.Event], **fields: object) -> ev.Event:
    return kind(node=NodeId(2), role=Role.FOLLOWER, term=3, **fields)


def _strip_time(line: str) -> str:
    if line.startswith("{"):
        record = json.loads(line)
        del record["time"]
        return json.dumps(record)
    return line.split(" ", 2)[2]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_record_printed_is_the_line_the_event_log_writes(fmt: str) -> None:
    direct, printed = io.StringIO(), io.StringIO()
    commit = _event(ev.EntryCommitted, index=7, entry_term=3, data=b"SET 5", by_leader=False)
    EventLog(NodeId(2), stream=direct, fmt=fmt, color=False).event(commit)
    printer = print_events(printed, fmt=fmt, color=False, node=2)
    try:
        EventLog(NodeId(2)).event(commit)
    finally:
        stop_printing(printer)
    _untouched()
    assert direct.getvalue().count("\n") == printed.getvalue().count("\n") == 1
    assert _strip_time(printed.getvalue().strip()) == _strip_time(direct.getvalue().strip())


def test_the_printer_tells_library_records_in_the_nodes_state_and_hides_chatter() -> None:
    out = io.StringIO()
    printer = print_events(out, color=False, node=3, state=lambda: (Role.LEADER, 4))
    try:
        logging.getLogger("raftlog.transport").warning("node 3: refused a connection: bad id")
        logging.getLogger("raftlog.transport").info("node 3: connected to node 1")
        EventLog(NodeId(3)).event(_event(ev.HeartbeatReceived, leader=NodeId(1)))
    finally:
        stop_printing(printer)
    lines = out.getvalue().splitlines()
    assert [_strip_time(line) for line in lines] == [
        "node 3 [Leader t4] refused a connection: bad id"
    ]


def test_the_printer_at_debug_shows_heartbeats_and_chatter_as_debug() -> None:
    out = io.StringIO()
    printer = print_events(out, fmt="json", level=logging.DEBUG, node=3)
    try:
        logging.getLogger("raftlog.transport").info("node 3: connected to node 1")
        EventLog(NodeId(3)).event(_event(ev.HeartbeatReceived, leader=NodeId(1)))
    finally:
        stop_printing(printer)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["level"], r["event"], r["msg"]) for r in records] == [
        ("debug", "raftlog.transport", "connected to node 1"),
        ("debug", "HeartbeatReceived", "Heartbeat received from leader"),
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("no_color", "choice", "expected"),
    [
        (None, None, True),
        ("1", None, False),
        ("", None, True),  # set but empty: no effect (no-color.org)
        ("1", "auto", False),
        ("1", "always", True),  # asked for explicitly
        (None, "never", False),
        (None, False, False),
    ],
)
def test_no_color_turns_colour_off_in_auto_mode(
    monkeypatch: pytest.MonkeyPatch, no_color: str | None, choice: str | None, expected: bool
) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    assert want_color(_Terminal(), choice) is expected
    assert want_color(io.StringIO(), choice) is (choice == "always")  # not a terminal
    auto = _Terminal()
    EventLog(NodeId(1), stream=auto).note(logging.INFO, Role.LEADER, 1, "hello")
    assert ("\x1b[" in auto.getvalue()) is not bool(no_color)


def test_an_event_record_is_a_complete_log_record_for_any_formatter() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(msecs)d %(relativeCreated)d %(name)s %(levelname)s %(module)s "
            "%(filename)s %(lineno)d %(funcName)s %(process)d %(processName)s %(thread)d "
            "%(threadName)s node=%(node)s role=%(role)s term=%(term)s %(event)s %(message)s"
        )
    )
    events = logging.getLogger("raftlog.events")
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    try:
        EventLog(NodeId(2)).event(_event(ev.VoteGranted, candidate=NodeId(1), candidate_term=3,
                                         pre_vote=False))  # fmt: skip
    finally:
        events.removeHandler(handler)
        events.setLevel(logging.NOTSET)
    line = out.getvalue()
    assert " raftlog.events INFO eventlog eventlog.py 0 event " in line
    assert line.rstrip().endswith(
        "node=2 role=Follower term=3 VoteGranted Voted for node 1 in term 3"
    )
    assert f" {os.getpid()} MainProcess " in line
