"""The node's event log: one line per major event, for a person to follow.

Text lines start with the time, the node id, its state and term, then the event in the
lab's words::

    2026-11-26 06:40:01.123 node 1 [Leader t3] Received 2 votes. State: Leader

``--log-format json`` prints one JSON object per line with the same fields. Heartbeat
lines are DEBUG, so that INFO (the default) stays readable.
"""

from __future__ import annotations

import json
import logging
import re
import sys
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
_COLORS = ("\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[32m", "\x1b[34m", "\x1b[31m", "\x1b[96m")
_RESET = "\x1b[0m"
_NODE_PREFIX = re.compile(r"^node \d+: ")
_BOLD = "\x1b[1m"


def node_color(node: int) -> str:
    return _COLORS[(node - 1) % len(_COLORS)]


class EventLog:
    """Writes a node's events to a stream, as text or JSON lines."""

    def __init__(
        self,
        node: NodeId,
        *,
        stream: TextIO | None = None,
        level: int = logging.INFO,
        fmt: str = "text",
        color: bool | None = None,
    ) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"log format must be text or json, not {fmt!r}")
        self.node = node
        self.stream = stream or sys.stdout
        self.level = level
        self.fmt = fmt
        self.color = self.stream.isatty() if color is None else color
        self.lines_written = 0
        self.lines_lost = 0

    def event(self, event: ev.Event) -> None:
        """Log an event of the core."""
        level = int(event.level)
        if level < self.level:
            return
        fields = msgspec.structs.asdict(event)
        for key in ("node", "role", "term"):
            fields.pop(key, None)
        self._write(level, event.role, event.term, event.describe(), type(event).__name__, fields)

    def note(
        self, level: int, role: Role, term: int, text: str, kind: str = "Note", **fields: Any
    ) -> None:
        """Log something the node itself did (started, stopped, storage, peers)."""
        if level < self.level:
            return
        self._write(level, role, term, text, kind, fields)

    def _write(
        self, level: int, role: Role, term: int, text: str, kind: str, fields: dict[str, Any], /
    ) -> None:
        now = time.time()
        if self.fmt == "json":
            record = {
                "time": _iso(now),
                "level": logging.getLevelName(level).lower(),
                "node": int(self.node),
                "state": role.value,
                "term": term,
                "event": kind,
                "msg": text,
                **{k: _jsonable(v) for k, v in fields.items()},
                **{f"{k}_bytes": len(v) for k, v in fields.items() if isinstance(v, bytes)},
            }
            line = json.dumps(record, separators=(",", ":"))
        else:
            stamp = (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
                + f".{int(now % 1 * 1000):03d}"
            )
            head = f"node {self.node} [{role.value} t{term}]"
            if self.color:
                head = f"{node_color(int(self.node))}{head}{_RESET}"
                if level >= logging.WARNING:
                    text = f"{_BOLD}{text}{_RESET}"
            line = f"{stamp} {head} {text}"
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            self.lines_lost += 1  # nobody reading, or a full disk: the node goes on
            return
        self.lines_written += 1


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


class EventLogHandler(logging.Handler):
    """Sends the node's library log records (transport, storage, API) to its event log, so
    that one stream tells the whole story. ``state`` gives the current (role, term)."""

    def __init__(self, events: EventLog, state: Callable[[], tuple[Role, int]]) -> None:
        super().__init__()
        self.events = events
        self.state = state

    def emit(self, record: logging.LogRecord) -> None:
        try:
            role, term = self.state()
            text = _NODE_PREFIX.sub("", record.getMessage(), count=1)
            if record.exc_info and record.levelno >= logging.ERROR:
                text += f" ({record.exc_info[1]!r})"
            # INFO stays the lab's story; library chatter (connections) is DEBUG there.
            level = logging.DEBUG if record.levelno < logging.WARNING else record.levelno
            self.events.note(level, role, term, text, kind=record.name)
        except Exception:  # a log line must never take the node down
            self.handleError(record)
