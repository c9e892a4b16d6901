"""What a node tells its live watchers besides the core's events: the peer messages it
sends, and in step mode the messages it holds and lets go (see ``GET /v1/events`` and the
dashboard). These never go to the event log: they would drown it."""

from __future__ import annotations

from typing import Any, ClassVar

from raftlog.core import events as ev
from raftlog.core.messages import AppendEntries, WireMessage

PREVIEW_CHARS = 80
"""Characters of a field that is neither a number nor text (its repr) a watcher gets."""


def message_type(msg: WireMessage) -> str:
    """The message's wire tag (``append``, ``vote_resp``, ...)."""
    tag = type(msg).__struct_config__.tag
    return tag if isinstance(tag, str) else type(msg).__name__


def message_fields(msg: WireMessage) -> dict[str, Any]:
    """A message's fields for a person to read: no src/dst/term (given apart), nor the
    lease's send times (clock readings), entries as a count and their first and last
    index, bytes as their length."""
    fields: dict[str, Any] = {}
    for name in msg.__struct_fields__:
        if name in ("src", "dst", "term", "sent_ns", "echo_ns"):
            continue
        value = getattr(msg, name)
        if isinstance(msg, AppendEntries) and name == "entries":
            fields["entries"] = len(value)
            if value:
                fields["first"] = value[0].index
                fields["last"] = value[-1].index
                fields["entry_terms"] = sorted({e.term for e in value})
            continue
        if isinstance(value, bytes | bytearray | memoryview):
            fields[f"{name}_bytes"] = len(value)
        elif isinstance(value, int | str | bool | float) or value is None:
            fields[name] = value
        else:
            fields[name] = repr(value)[:PREVIEW_CHARS]
    return fields


class MessageSent(ev.Event, frozen=True, kw_only=True):
    """This node sent a peer message (``msg_term``: the message's term)."""

    level: ClassVar[ev.Level] = ev.Level.DEBUG
    src: int
    dst: int
    msg_type: str
    msg_term: int
    fields: dict[str, Any]

    def describe(self) -> str:
        return f"Sent {self.msg_type} (term {self.msg_term}) to node {self.dst}"


class MessageHeld(ev.Event, frozen=True, kw_only=True):
    """Step mode (or a held link): a message from a peer waits here, undelivered."""

    level: ClassVar[ev.Level] = ev.Level.DEBUG
    id: int
    src: int
    dst: int
    msg_type: str
    msg_term: int
    fields: dict[str, Any]

    def describe(self) -> str:
        return f"Holding {self.msg_type} (term {self.msg_term}) from node {self.src} (#{self.id})"


class MessageReleased(ev.Event, frozen=True, kw_only=True):
    """A held message was delivered or dropped."""

    level: ClassVar[ev.Level] = ev.Level.DEBUG
    id: int
    action: str
    """``deliver`` or ``drop``."""

    def describe(self) -> str:
        return f"Held message #{self.id}: {self.action}"


def held_view(held_id: int, msg: WireMessage) -> dict[str, Any]:
    """A held message as ``/v1/status`` shows it."""
    return {
        "id": held_id,
        "src": int(msg.src),
        "dst": int(msg.dst),
        "type": message_type(msg),
        "term": msg.term,
        "fields": message_fields(msg),
    }


def feed_dict(event: ev.Event) -> dict[str, Any] | None:
    """The SSE shape of a feed event (None: not one of them): ``term`` is the message's."""
    if isinstance(event, MessageSent):
        return {
            "kind": "Message",
            "src": event.src,
            "dst": event.dst,
            "type": event.msg_type,
            "term": event.msg_term,
            "fields": event.fields,
        }
    if isinstance(event, MessageHeld):
        return {
            "kind": "Held",
            "id": event.id,
            "src": event.src,
            "dst": event.dst,
            "type": event.msg_type,
            "term": event.msg_term,
            "fields": event.fields,
            "text": event.describe(),
        }
    if isinstance(event, MessageReleased):
        return {
            "kind": "Released",
            "id": event.id,
            "action": event.action,
            "text": event.describe(),
        }
    return None
