"""The node's event log: one line per major event, for a person to follow.

Text lines start with the time, the node id, its state and term, then the event in the
lab's words::

    2026-11-26 06:40:01.123 node 1 [Leader t3] Received 2 votes. State: Leader

``--log-format json`` prints one JSON object per line with the same fields. Heartbeat
lines are DEBUG, so that INFO (the default) stays readable.

A node only *emits* its events, as records of the standard ``logging`` module: the logger
``raftlog.events``, with the message in the lab's words and, as extra attributes of the
record, ``node`` (its id), ``role`` (``"Leader"``...), ``term``, ``event`` (the kind, e.g.
``"EntryCommitted"``) and ``fields`` (the event's other fields). The rest of raftlog logs
to other loggers under ``raftlog.`` (``raftlog.transport``, ``raftlog.server``...). The
library adds no handler, sets no level and leaves the root logger alone: the program
decides where records go. The ``raftlog`` command is such a program: it prints them
with :func:`print_events` (an :class:`EventPrinter` on the ``raftlog`` logger), in the
lines above.

An entry's events (received, appended, committed) are INFO. The node makes them only if
``raftlog.events`` is enabled for INFO when it starts (or an event subscriber wants them):
they cost a little per entry.

Colour: ``auto`` means on a terminal, unless the ``NO_COLOR`` environment variable is set
to anything but the empty string (https://no-color.org); see :func:`want_color`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import msgspec

from raftlog.core import events as ev
from raftlog.core.types import NodeId, Role

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
EVENTS_LOGGER = "raftlog.events"
"""The logger a node's events go to."""
LIBRARY_LOGGER = "raftlog"
"""The logger above every raftlog logger."""
_COLORS = ("\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[32m", "\x1b[34m", "\x1b[31m", "\x1b[96m")
_RESET = "\x1b[0m"
_NODE_PREFIX = re.compile(r"^node \d+: ")
_BOLD = "\x1b[1m"

State = Callable[[], tuple[Role, int]]
"""The node's (role, term) now: for records that do not carry them (the library's)."""


def node_color(node: int) -> str:
    return _COLORS[(node - 1) % len(_COLORS)]


def want_color(stream: TextIO, choice: bool | str | None = None) -> bool:
    """Whether to colour what goes to ``stream``: ``True``/``"always"``,
    ``False``/``"never"``, or ``None``/``"auto"``: on a terminal, unless ``NO_COLOR`` is
    set (to anything but the empty string)."""
    if choice in (True, "always"):
        return True
    if choice in (False, "never"):
        return False
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


def shown_level(record: logging.LogRecord) -> int:
    """The level a record has in the event log: the library's own records below WARNING
    (connections and the like) are DEBUG there, so that INFO stays the lab's story."""
    if record.name == EVENTS_LOGGER or record.levelno >= logging.WARNING:
        return record.levelno
    return logging.DEBUG


class EventFormatter(logging.Formatter):
    """Formats raftlog's records as the event log's lines (text or JSON). A record of
    ``raftlog.events`` carries its node, role and term; any other record is told as
    ``node`` (default: the one in its ``node N:`` prefix, else 0) in the state that
    ``state`` gives (default: Follower, term 0)."""

    def __init__(
        self,
        fmt: str = "text",
        *,
        color: bool = False,
        node: int | None = None,
        state: State | None = None,
    ) -> None:
        super().__init__()
        if fmt not in ("text", "json"):
            raise ValueError(f"log format must be text or json, not {fmt!r}")
        self.fmt = fmt
        self.color = color
        self.node = node
        self.state = state

    def format(self, record: logging.LogRecord) -> str:
        attrs = record.__dict__
        if record.name == EVENTS_LOGGER and "node" in attrs:
            node, role, term = attrs["node"], attrs["role"], attrs["term"]
            kind = attrs.get("event", "Note")
            fields: dict[str, Any] = attrs.get("fields") or {}
            text = record.getMessage()
        else:
            message = record.getMessage()
            node = self.node
            if node is None:
                prefix = _NODE_PREFIX.match(message)
                node = int(prefix.group(0)[5:-2]) if prefix else 0
            role_now, term = self.state() if self.state is not None else (Role.FOLLOWER, 0)
            role = role_now.value
            kind, fields = record.name, {}
            text = _NODE_PREFIX.sub("", message, count=1)
            if record.exc_info and record.levelno >= logging.ERROR:
                text += f" ({record.exc_info[1]!r})"
        return self.line(record.created, shown_level(record), node, role, term, kind, text, fields)

    def line(
        self,
        created: float,
        level: int,
        node: int,
        role: str,
        term: int,
        kind: str,
        text: str,
        fields: dict[str, Any],
    ) -> str:
        if self.fmt == "json":
            record = {
                "time": _iso(created),
                "level": logging.getLevelName(level).lower(),
                "node": int(node),
                "state": role,
                "term": term,
                "event": kind,
                "msg": text,
                **{k: _jsonable(v) for k, v in fields.items()},
                **{f"{k}_bytes": len(v) for k, v in fields.items() if isinstance(v, bytes)},
            }
            return json.dumps(record, separators=(",", ":"))
        stamp = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
            + f".{int(created % 1 * 1000):03d}"
        )
        head = f"node {node} [{role} t{term}]"
        if self.color:
            head = f"{node_color(int(node))}{head}{_RESET}"
            if level >= logging.WARNING:
                text = f"{_BOLD}{text}{_RESET}"
        return f"{stamp} {head} {text}"


class EventLog:
    """A node's events and notes. Without ``stream`` (a node's own), each is a record of
    the ``raftlog.events`` logger (see the module docstring) and the logging
    configuration decides what is kept; ``level`` is then a floor of its own. With
    ``stream``, the lines are written to it directly, at ``level`` and above (default
    INFO), as ``fmt`` with ``color`` (tests and tools that want the lines themselves)."""

    def __init__(
        self,
        node: NodeId,
        *,
        stream: TextIO | None = None,
        level: int | None = None,
        fmt: str = "text",
        color: bool | None = None,
    ) -> None:
        self.formatter = EventFormatter(
            fmt, color=want_color(stream, color) if stream is not None else False, node=node
        )
        self.node = node
        self.stream = stream
        self.fmt = fmt
        self._floor = level if level is not None else (logging.INFO if stream else 0)
        self._logger = logging.getLogger(EVENTS_LOGGER) if stream is None else None
        self.lines_written = 0
        self.lines_lost = 0

    @property
    def color(self) -> bool:
        return self.formatter.color

    @property
    def level(self) -> int:
        """The lowest level that is logged now."""
        if self._logger is None:
            return self._floor
        return max(self._floor, self._logger.getEffectiveLevel())

    @level.setter
    def level(self, value: int) -> None:
        self._floor = value

    def enabled(self, level: int) -> bool:
        if level < self._floor:
            return False
        return self._logger is None or self._logger.isEnabledFor(level)

    def event(self, event: ev.Event) -> None:
        """Log an event of the core."""
        level = int(event.level)
        if not self.enabled(level):
            return
        fields = msgspec.structs.asdict(event)
        for key in ("node", "role", "term"):
            fields.pop(key, None)
        self._write(level, event.role, event.term, event.describe(), type(event).__name__, fields)

    def note(
        self, level: int, role: Role, term: int, text: str, kind: str = "Note", **fields: Any
    ) -> None:
        """Log something the node itself did (started, stopped, storage, peers)."""
        if not self.enabled(level):
            return
        self._write(level, role, term, text, kind, fields)

    def _write(
        self, level: int, role: Role, term: int, text: str, kind: str, fields: dict[str, Any], /
    ) -> None:
        logger = self._logger
        if logger is not None:
            logger.handle(_EventRecord(level, text, int(self.node), role.value, term, kind, fields))
            return
        assert self.stream is not None
        line = self.formatter.line(
            time.time(), level, int(self.node), role.value, term, kind, text, fields
        )
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            self.lines_lost += 1  # nobody reading, or a full disk: the node goes on
            return
        self.lines_written += 1


class _EventRecord(logging.LogRecord):
    """A record of ``raftlog.events``, made for less than LogRecord's own constructor
    costs (a node may log one per entry): the same attributes, without parsing a source
    file name it does not have. (So a record factory set with
    ``logging.setLogRecordFactory`` does not make these.)"""

    def __init__(
        self,
        level: int,
        text: str,
        node: int,
        role: str,
        term: int,
        kind: str,
        fields: dict[str, Any],
    ) -> None:
        now = time.time()
        self.__dict__.update(
            name=EVENTS_LOGGER,
            msg=text,
            args=None,
            levelname=logging.getLevelName(level),
            levelno=level,
            pathname=__file__,
            filename=_FILENAME,
            module=_MODULE,
            exc_info=None,
            exc_text=None,
            stack_info=None,
            lineno=0,
            funcName="event",
            created=now,
            msecs=(now - int(now)) * 1000,
            relativeCreated=(now - _STARTED) * 1000,
            thread=threading.get_ident(),
            threadName=threading.current_thread().name,
            processName=_process_name(),
            process=os.getpid(),
            taskName=None,
            node=node,
            role=role,
            term=term,
            event=kind,
            fields=fields,
        )


_FILENAME = os.path.basename(__file__)
_MODULE = os.path.splitext(_FILENAME)[0]


def _logging_started() -> float:
    """When logging was loaded: where every record's ``relativeCreated`` starts."""
    probe = logging.LogRecord("", 0, "", 0, "", None, None)
    return probe.created - probe.relativeCreated / 1000


_STARTED = _logging_started()


def _process_name() -> str | None:
    multiprocessing = sys.modules.get("multiprocessing")  # as LogRecord finds it
    if multiprocessing is None:
        return "MainProcess"
    try:
        return str(multiprocessing.current_process().name)
    except Exception:
        return None


def _iso(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


JSON_DATA_LIMIT = 200
"""Characters of entry data a JSON line carries (the full length is given too)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.hex()
        return text if len(text) <= JSON_DATA_LIMIT else text[:JSON_DATA_LIMIT] + "…"
    if isinstance(value, Role):
        return value.value
    return value


class EventPrinter(logging.Handler):
    """Prints raftlog's records as the event log's lines (see :class:`EventFormatter`),
    those shown at ``level`` and above (:func:`shown_level`). A line that cannot be
    written (nobody reading, a full disk) is counted in ``lines_lost``, never raised."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        level: int = logging.INFO,
        fmt: str = "text",
        color: bool | str | None = None,
        node: int | None = None,
        state: State | None = None,
    ) -> None:
        super().__init__(level)
        self.stream = stream or sys.stdout
        self.setFormatter(
            EventFormatter(fmt, color=want_color(self.stream, color), node=node, state=state)
        )
        self.lines_written = 0
        self.lines_lost = 0

    def emit(self, record: logging.LogRecord) -> None:
        if shown_level(record) < self.level:
            return
        try:
            line = self.format(record)
        except Exception:  # a log line must never take the node down
            self.handleError(record)
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            self.lines_lost += 1
            return
        self.lines_written += 1


def print_events(
    stream: TextIO | None = None,
    *,
    level: int = logging.INFO,
    fmt: str = "text",
    color: bool | str | None = None,
    node: int | None = None,
    state: State | None = None,
) -> EventPrinter:
    """For a program (the ``raftlog`` command, or one of yours): print raftlog's records
    on ``stream`` (standard output) as the event log's lines. It configures logging, as
    only a program should: an :class:`EventPrinter` on the ``raftlog`` logger, whose level
    becomes ``level``, and whose records no longer propagate to the root logger's
    handlers. Undo with :func:`stop_printing`."""
    printer = EventPrinter(stream, level=level, fmt=fmt, color=color, node=node, state=state)
    library = logging.getLogger(LIBRARY_LOGGER)
    library.addHandler(printer)
    library.setLevel(level)
    library.propagate = False
    return printer


def stop_printing(printer: EventPrinter) -> None:
    """Undo :func:`print_events` (the level and propagation go back to their defaults)."""
    library = logging.getLogger(LIBRARY_LOGGER)
    library.removeHandler(printer)
    if not any(isinstance(h, EventPrinter) for h in library.handlers):
        library.setLevel(logging.NOTSET)
        library.propagate = True


class EventLogHandler(logging.Handler):
    """Sends the library's log records (transport, storage, API) to a stream-writing
    :class:`EventLog`, so that one stream tells the whole story. ``state`` gives the
    current (role, term). (What the deprecated ``NodeConfig.event_log`` uses.)"""

    def __init__(self, events: EventLog, state: State) -> None:
        super().__init__()
        self.events = events
        self.state = state

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == EVENTS_LOGGER:
            return  # a node's events: its own EventLog writes them
        try:
            role, term = self.state()
            text = _NODE_PREFIX.sub("", record.getMessage(), count=1)
            if record.exc_info and record.levelno >= logging.ERROR:
                text += f" ({record.exc_info[1]!r})"
            self.events.note(shown_level(record), role, term, text, kind=record.name)
        except Exception:  # a log line must never take the node down
            self.handleError(record)
