"""The peer wire format: frames, the handshake, and the errors that close a connection.

A connection carries frames ``u32 big-endian length | msgpack payload``. The first frame
each way is the handshake: the dialer sends a :class:`Hello`, the acceptor answers with its
own :class:`Hello`, or with a :class:`Refused` giving the reason and then closes. After
that, every frame is one :data:`raftlog.core.messages.WireMessage` (a Raft message or a
piece of a snapshot), from the dialer to the acceptor only. Payloads are decoded by
msgspec into typed structs (never pickle).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Annotated

import msgspec

from raftlog.core.types import MAX_INT

PROTOCOL_VERSION = 2
"""Bumped when the frames or the messages change incompatibly (2: snapshots)."""

HEADER = struct.Struct(">I")
"""The frame header: the payload's length in bytes."""

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
MAX_HANDSHAKE_FRAME_SIZE = 64 * 1024
"""A handshake frame is a few dozen bytes; anything this large is not one."""


class Hello(msgspec.Struct, frozen=True, tag="hello", omit_defaults=True):
    """The first frame each way: who is speaking, in which cluster, in which protocol."""

    cluster_id: str
    node_id: Annotated[int, msgspec.Meta(gt=0, le=MAX_INT)]
    """Decoding refuses an id out of range (``bad_handshake``)."""
    version: int
    address: str = ""
    """Where the speaker listens for peers (``host:port``), so that a node that does not
    know it yet can answer it (empty: not said)."""


class Refused(msgspec.Struct, frozen=True, tag="refused"):
    """The acceptor's answer to a :class:`Hello` it will not serve, before it closes."""

    reason: str


Handshake = Hello | Refused


class ProtocolError(Exception):
    """The other side broke the protocol, or cannot be served: close that connection.

    ``kind`` is a short, stable name for counters (``wrong_cluster``, ``frame_too_large``,
    ...); the message is the reason for the log.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def encode_frame(payload: bytes) -> bytes:
    """One frame holding ``payload``."""
    return HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader, max_size: int) -> bytes | None:
    """The payload of the next frame, or None if the connection ended cleanly between
    two frames.

    Raises :class:`ProtocolError` ``frame_too_large`` when the header declares more than
    ``max_size`` bytes (before reading the body), and ``truncated`` when the connection
    ends inside a frame.
    """
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError(
            "truncated", f"connection closed inside a frame header ({len(exc.partial)} of 4 bytes)"
        ) from None
    (size,) = HEADER.unpack(header)
    if size > max_size:
        raise ProtocolError(
            "frame_too_large", f"frame of {size} bytes declared, the limit is {max_size}"
        )
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            "truncated", f"connection closed inside a frame ({len(exc.partial)} of {size} bytes)"
        ) from None
