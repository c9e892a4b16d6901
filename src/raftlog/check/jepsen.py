"""Parse Jepsen's text history logs into :class:`~raftlog.check.history.Operation` lists.

One event per line::

    INFO  jepsen.util - 3	:invoke	:cas	[3 0]
    INFO  jepsen.util - 3	:fail	:cas	[3 0]

that is ``PROCESS TYPE F VALUE``, separated by tabs or spaces, where ``TYPE`` is ``:invoke``,
``:ok``, ``:fail`` or ``:info``, and ``VALUE`` is an EDN value (``nil``, integers, floats,
``true``/``false``, strings, keywords such as ``:timed-out``, vectors such as ``[3 0]``;
vectors become tuples, keywords :class:`Keyword`). Anything before ``INFO`` on the line (a
timestamp) is ignored. Blank lines and the nemesis's lines (process ``:nemesis``) are
skipped.

Semantics (see :mod:`raftlog.check.history`): an invocation is paired with the next
completion of the same process. ``:ok`` took effect; ``:fail`` did not (``:fail :cas``: the
compare failed; ``:fail :read :timed-out``: a read with no result); ``:info``, and an
invocation never completed, are indeterminate (``ret = inf``, output unknown). The
operation's input is the invocation's value; its output the completion's. Times are line
numbers (1-based), so every event has its own instant.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from raftlog.check.history import (
    Event,
    EventType,
    HistoryError,
    Operation,
    history_from_events,
)

__all__ = ["Keyword", "load_jepsen", "parse_edn", "parse_jepsen"]

_LINE = re.compile(
    r"^(?:.*?\s)?INFO\s+jepsen\.util\s+-\s+"
    r"(?P<process>\S+)\s+:(?P<type>\S+)\s+:(?P<f>\S+)(?:\s+(?P<value>.*?))?\s*$"
)
_TOKEN = re.compile(
    r'(?:(?P<open>\[)|(?P<close>\])|(?P<string>"(?:[^"\\]|\\.)*")|(?P<atom>[^\s\[\]",]+))'
)
_INT = re.compile(r"[+-]?\d+N?")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?M?")
_EVENT_TYPES: dict[str, EventType] = {
    "invoke": "invoke",
    "ok": "ok",
    "fail": "fail",
    "info": "info",
}


@dataclass(frozen=True, slots=True)
class Keyword:
    """An EDN keyword such as ``:timed-out`` (``name`` is ``"timed-out"``)."""

    name: str

    def __str__(self) -> str:
        return f":{self.name}"


def parse_edn(text: str) -> Hashable:
    """Parse the subset of EDN that Jepsen histories of registers use.

    ``nil`` → ``None``; ``true``/``false`` → ``bool``; integers → ``int``; floats →
    ``float``; ``"text"`` → ``str``; ``:kw`` → :class:`Keyword`; ``[a b]`` → ``tuple``.
    Commas are whitespace, as in EDN.

    Raises:
        ValueError: on anything else (maps, sets, unbalanced brackets, trailing text).
    """
    tokens: list[tuple[str, str]] = []
    pos = _skip_space(text, 0)
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"cannot parse value {text!r} at character {pos + 1}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = _skip_space(text, match.end())
    if not tokens:
        raise ValueError("missing value")
    value, used = _parse_tokens(tokens, 0, text)
    if used != len(tokens):
        raise ValueError(f"unexpected text after the value in {text!r}")
    return value


def _skip_space(text: str, pos: int) -> int:
    """Skip whitespace and commas (whitespace in EDN) from ``pos``."""
    while pos < len(text) and (text[pos].isspace() or text[pos] == ","):
        pos += 1
    return pos


def _parse_tokens(tokens: list[tuple[str, str]], k: int, text: str) -> tuple[Hashable, int]:
    if k >= len(tokens):
        raise ValueError(f"unterminated vector in {text!r}")
    kind, token = tokens[k]
    if kind == "open":
        items: list[Hashable] = []
        k += 1
        while True:
            if k >= len(tokens):
                raise ValueError(f"unterminated vector in {text!r}")
            if tokens[k][0] == "close":
                return tuple(items), k + 1
            item, k = _parse_tokens(tokens, k, text)
            items.append(item)
    if kind == "close":
        raise ValueError(f"unbalanced ']' in {text!r}")
    if kind == "string":
        return _unescape(token[1:-1]), k + 1
    return _parse_atom(token, text), k + 1


def _unescape(body: str) -> str:
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
    out: list[str] = []
    chars = iter(body)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if nxt not in escapes:
                raise ValueError(f"unsupported string escape \\{nxt} in {body!r}")
            out.append(escapes[nxt])
        else:
            out.append(ch)
    return "".join(out)


def _parse_atom(token: str, text: str) -> Hashable:
    if token == "nil":
        return None
    if token == "true":
        return True
    if token == "false":
        return False
    if token.startswith(":") and len(token) > 1:
        return Keyword(token[1:])
    if _INT.fullmatch(token):
        return int(token.rstrip("N"))
    if _FLOAT.fullmatch(token):
        return float(token.rstrip("M"))
    raise ValueError(f"cannot parse value {token!r} in {text!r}")


def parse_jepsen(lines: Iterable[str], source: str = "<string>") -> list[Operation]:
    """Parse the lines of a Jepsen history log (see the module docstring).

    Args:
        lines: the log's lines (with or without line ends).
        source: the file name used in error messages.

    Returns:
        The operations, numbered and ordered by invocation; ``call``/``ret`` are line
        numbers (``ret = inf`` for indeterminate operations).

    Raises:
        ValueError: ``"SOURCE:LINE: what is wrong"`` for a line that is not a Jepsen event,
            a value that does not parse, or events that do not pair up (a completion with
            no invocation, an invocation while the same process has one open, a completion
            of another operation than the one invoked).
    """
    events: list[Event] = []
    line_of: list[int] = []  # the line number of each event
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{source}:{number}: not a Jepsen history line: {line.strip()!r}")
        process_text = match["process"]
        if process_text == ":nemesis":
            continue
        try:
            process = int(process_text)
        except ValueError:
            raise ValueError(
                f"{source}:{number}: process must be an integer, got {process_text!r}"
            ) from None
        event_type = _EVENT_TYPES.get(match["type"])
        if event_type is None:
            raise ValueError(
                f"{source}:{number}: event type must be :invoke, :ok, :fail or :info, "
                f"got :{match['type']}"
            )
        value_text = match["value"]
        try:
            value = None if value_text is None else parse_edn(value_text)
        except ValueError as exc:
            raise ValueError(f"{source}:{number}: {exc}") from None
        events.append(Event(process, event_type, match["f"], value, float(number)))
        line_of.append(number)
    try:
        return history_from_events(events)
    except HistoryError as exc:
        raise ValueError(f"{source}:{line_of[exc.index]}: {exc.detail}") from None


def load_jepsen(path: str | os.PathLike[str]) -> list[Operation]:
    """Read and parse a Jepsen history log file (UTF-8).

    Raises:
        OSError: if the file cannot be read.
        ValueError: as :func:`parse_jepsen`, with the path as source.
    """
    with open(path, encoding="utf-8") as stream:
        return parse_jepsen(stream, source=os.fspath(path))
