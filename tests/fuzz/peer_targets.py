"""Fuzz targets of the peer plane: message payloads (decoding, validation, the core),
frame streams (the transport's inbound reader) and the handshake.

Everything runs in process: the transport's own reader and handshake code are driven with
in-memory streams, and the messages that pass validation are stepped into the cores of a
simulated 3-node cluster (node 1 the leader), as a node would step them.
"""

from __future__ import annotations

import asyncio
import random
import struct
import zlib
from types import TracebackType
from typing import Any

import msgspec
from fuzzlib import (
    MAX_INT,
    Outcome,
    Violation,
    accepted,
    maybe_odd,
    odd_int,
    odd_text,
    odd_value,
    reason_of,
    rejected,
)

from raftlog.core.messages import (
    AppendEntries,
    InstallSnapshot,
    Message,
    PreVote,
    RequestVote,
    SnapshotAck,
    SnapshotChunk,
    WireMessage,
    message_problem,
)
from raftlog.core.types import (
    ConfState,
    EntryKind,
    NodeId,
    decode_conf,
    encode_conf,
    split_address,
)
from raftlog.sim.harness import Harness, HarnessOptions
from raftlog.transport.tcp import TcpConfig, TcpTransport
from raftlog.transport.wire import (
    HEADER,
    PROTOCOL_VERSION,
    Hello,
    ProtocolError,
    Refused,
    encode_frame,
)

CLUSTER = "fuzz-cluster"
TAGS = {
    "vote": ("src", "dst", "term", "last_log_index", "last_log_term", "transfer"),
    "vote_resp": ("src", "dst", "term", "granted"),
    "prevote": ("src", "dst", "term", "last_log_index", "last_log_term"),
    "prevote_resp": ("src", "dst", "term", "granted"),
    "append": ("src", "dst", "term", "prev_log_index", "prev_log_term", "entries", "commit"),
    "append_resp": (
        "src",
        "dst",
        "term",
        "success",
        "match_index",
        "reject_index",
        "hint_index",
        "hint_term",
    ),
    "heartbeat": ("src", "dst", "term", "commit", "context"),
    "heartbeat_resp": ("src", "dst", "term", "context"),
    "timeout_now": ("src", "dst", "term"),
    "snapshot": ("src", "dst", "term", "snapshot"),
    "snap_chunk": ("src", "dst", "term", "index", "snap_term", "size", "offset", "data"),
    "snap_ack": ("src", "dst", "term", "index", "snap_term", "received", "gap", "error"),
}
_INDEXES = {
    "last_log_index",
    "prev_log_index",
    "commit",
    "match_index",
    "reject_index",
    "hint_index",
    "index",
    "received",
}
_TERMS = {"last_log_term", "prev_log_term", "hint_term", "snap_term"}
_BOOLS = {"transfer", "granted", "success", "gap"}

_encode = msgspec.msgpack.Encoder().encode
_wire_decoder = msgspec.msgpack.Decoder(WireMessage)


def plausible_conf(rng: random.Random) -> dict[str, Any]:
    ids = list(range(1, 6))
    voters = rng.sample(ids, rng.randrange(1, 4))
    learners = [n for n in rng.sample(ids, rng.randrange(0, 2)) if n not in voters]
    members = [[n, f"127.0.0.1:{7000 + n}", f"http://127.0.0.1:{8000 + n}"] for n in voters]
    return {"voters": voters, "learners": learners, "members": members}


def plausible_fields(rng: random.Random, tag: str, src: int, dst: int) -> dict[str, Any]:
    """The fields of a message of kind ``tag`` with values a correct peer could send."""
    term = rng.randrange(0, 6)
    doc: dict[str, Any] = {"type": tag}
    for name in TAGS[tag]:
        if name == "src":
            doc[name] = src
        elif name == "dst":
            doc[name] = dst
        elif name == "term":
            doc[name] = term
        elif name in _INDEXES:
            doc[name] = rng.randrange(0, 12)
        elif name in _TERMS:
            doc[name] = rng.randrange(0, term + 1)
        elif name in _BOOLS:
            doc[name] = rng.random() < 0.5
        elif name in ("context", "data"):
            doc[name] = rng.randbytes(rng.randrange(0, 9))
        elif name == "error":
            doc[name] = rng.choice(("", "checksum"))
        elif name == "size":
            doc[name] = rng.randrange(1, 64)
        elif name == "offset":
            doc[name] = rng.randrange(0, 64)
        elif name == "entries":
            prev_term = doc.get("prev_log_term", 0)
            index = doc.get("prev_log_index", 0) + 1
            entries = []
            for _ in range(rng.randrange(0, 5)):
                entry_term = rng.randrange(max(prev_term, 1), max(term, 1) + 1)
                kind = rng.choice((0, 0, 0, 1, 2))
                if kind == 2:
                    data = encode_conf(msgspec.convert(plausible_conf(rng), ConfState))
                else:
                    data = rng.randbytes(rng.randrange(0, 9))
                entries.append([index, entry_term, kind, data])
                index += 1
                prev_term = entry_term
            doc[name] = entries
        elif name == "snapshot":
            doc[name] = {
                "index": rng.randrange(1, 20),
                "term": rng.randrange(1, term + 1) if term else 1,
                "conf": plausible_conf(rng),
            }
    return doc


def oddify(rng: random.Random, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with a few fields given odd values, dropped, or nested oddities added."""
    doc = dict(doc)
    names = [k for k in doc if k != "type"]
    for _ in range(rng.randrange(1, 4)):
        roll = rng.random()
        name = rng.choice(names)
        if roll < 0.45:
            doc[name] = odd_int(rng)
        elif roll < 0.7:
            doc[name] = odd_value(rng)
        elif roll < 0.78:
            doc.pop(name, None)
        elif roll < 0.84:
            doc[odd_text(rng)] = odd_value(rng)
        elif roll < 0.9:
            doc["type"] = maybe_odd(rng, rng.choice(list(TAGS)), 0.5)
        elif isinstance(doc.get("entries"), list) and doc["entries"]:
            picked = rng.choice(doc["entries"])
            # (an entry an earlier oddity made an empty list gets a plausible one)
            entry = list(picked) if isinstance(picked, list) and picked else [1, 1, 0, b""]
            slot = rng.randrange(len(entry))
            entry[slot] = odd_value(rng) if rng.random() < 0.3 else odd_int(rng)
            if slot == 3 and rng.random() < 0.5:
                entry[2] = 2  # a configuration entry with odd data
            doc["entries"] = [*doc["entries"], entry]
        elif "snapshot" in doc and isinstance(doc["snapshot"], dict):
            snap = dict(doc["snapshot"])
            snap[rng.choice(("index", "term", "conf"))] = odd_value(rng)
            doc["snapshot"] = snap
    return doc


def message_doc(rng: random.Random, src: int, dst: int) -> dict[str, Any]:
    doc = plausible_fields(rng, rng.choice(list(TAGS)), src, dst)
    return oddify(rng, doc) if rng.random() < 0.6 else doc


def encode_doc(rng: random.Random, doc: dict[str, Any]) -> bytes:
    try:
        return _encode(doc)
    except (OverflowError, UnicodeEncodeError, TypeError, ValueError, RecursionError):
        tag = doc.get("type")
        return _encode(
            plausible_fields(rng, tag if isinstance(tag, str) and tag in TAGS else "vote", 1, 2)
        )


# -- the invariants, said again independently of message_problem ---------------------------


def _ints(value: Any, path: str = "") -> list[tuple[str, int]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [(path, value)]
    if isinstance(value, msgspec.Struct):
        value = msgspec.structs.asdict(value)
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _ints(v, f"{path}.{k}")]
    if isinstance(value, list | tuple | frozenset | set):
        return [pair for i, v in enumerate(value) for pair in _ints(v, f"{path}[{i}]")]
    return []


def conf_broken(conf: ConfState) -> str | None:
    if not conf.voters:
        return "no voters"
    ids = conf.voters | conf.learners
    if any(not 0 < n <= MAX_INT for n in ids):
        return "a member id out of range"
    if conf.voters & conf.learners:
        return "a node both voter and learner"
    return None


def broken_invariant(msg: WireMessage) -> str | None:
    """Why ``msg`` is not one a correct peer could send (None: it could be): the message
    invariants of :mod:`raftlog.core.messages` and what storage can hold (64-bit signed
    integers), checked without message_problem's code."""
    for path, value in _ints(msg):
        if value < 0 or value > MAX_INT:
            return f"integer {path} = {value} out of range"
    if msg.src <= 0 or msg.dst <= 0:
        return "a node id below 1"
    if isinstance(msg, AppendEntries):
        if msg.prev_log_term > msg.term:
            return "prev_log_term above term"
        term = msg.prev_log_term
        for i, entry in enumerate(msg.entries):
            if entry.index != msg.prev_log_index + 1 + i:
                return "entries not contiguous"
            if entry.term < max(term, 1) or entry.term > msg.term:
                return f"entry {entry.index} term {entry.term} out of order"
            term = entry.term
            if entry.kind is EntryKind.CONF_CHANGE:
                try:
                    problem = conf_broken(decode_conf(entry.data))
                except msgspec.DecodeError:
                    problem = "undecodable"
                if problem is not None:
                    return f"configuration entry {entry.index}: {problem}"
    if isinstance(msg, RequestVote | PreVote) and msg.last_log_term > msg.term:
        return "last_log_term above term"
    if isinstance(msg, InstallSnapshot):
        meta = msg.snapshot
        if meta.index < 1 or not 1 <= meta.term <= msg.term:
            return "snapshot position"
        if (problem := conf_broken(meta.conf)) is not None:
            return f"snapshot configuration: {problem}"
    if isinstance(msg, SnapshotChunk) and (
        min(msg.index, msg.snap_term, msg.size) < 1 or msg.offset + len(msg.data) > msg.size
    ):
        return "chunk position"
    if isinstance(msg, SnapshotAck) and min(msg.index, msg.snap_term) < 1:
        return "ack position"
    return None


# -- peer_messages: payload -> decode -> message_problem -> the core ---------------------


class _Cores:
    """A simulated 3-node cluster (node 1 leading, a few entries committed) to step
    accepted messages into; made again every ``fresh_every`` messages, as odd terms and
    indexes pile up in it."""

    fresh_every = 400

    def __init__(self) -> None:
        self.harness = self._fresh()
        self.stepped = 0

    @staticmethod
    def _fresh() -> Harness:
        harness = Harness(HarnessOptions(nodes=3, seed=7))
        harness.campaign(1)
        harness.stabilize()
        for i in range(3):
            harness.propose(1, b"entry %d" % i)
        harness.stabilize()
        harness.readies.clear()
        harness.lines.clear()
        return harness

    def step(self, msg: Message) -> str:
        self.stepped += 1
        if self.stepped % self.fresh_every == 0:
            self.harness = self._fresh()
        harness = self.harness
        node = harness.nodes.get(msg.dst)
        if node is None or msg.src == msg.dst:
            return "not for a node of the cluster"
        if isinstance(msg, InstallSnapshot):
            node.stage(msg.snapshot, _encode([]))  # as the server: bytes before the message
        node.raft.step(msg)
        node.process_ready()
        harness.inflight.clear()
        harness.readies.clear()
        harness.lines.clear()
        return type(msg).__name__


class PeerMessages:
    """A frame's payload as the node sees it: decoded into a typed message (or refused),
    validated by ``message_problem`` (or dropped), then stepped into a core, which must
    take any message that passed."""

    name = "peer_messages"
    weight = 4.0
    fast = True

    def __init__(self) -> None:
        self.cores = _Cores()

    def seeds(self) -> list[bytes]:
        rng = random.Random(1)
        return [
            _encode(plausible_fields(rng, tag, src, dst))
            for tag in TAGS
            for src, dst in ((1, 2), (2, 1), (3, 1))
        ]

    def generate(self, rng: random.Random) -> bytes:
        src, dst = rng.choice(((1, 2), (2, 1), (3, 1), (1, 3), (2, 3), (4, 1)))
        return encode_doc(rng, message_doc(rng, src, dst))

    async def check(self, data: bytes) -> Outcome:
        try:
            msg = _wire_decoder.decode(data)
        except msgspec.DecodeError as exc:
            return rejected(f"undecodable: {reason_of(str(exc))}")
        problem = message_problem(msg)
        broken = broken_invariant(msg)
        if problem is not None:
            return rejected(f"invalid: {reason_of(problem)}")
        if broken is not None:
            raise Violation(f"message_problem passed a bad message ({broken}): {msg!r}")
        again = _wire_decoder.decode(_encode(msg))
        if again != msg:
            raise Violation(f"does not round-trip: {msg!r} -> {again!r}")
        if isinstance(msg, SnapshotChunk | SnapshotAck):
            return accepted(type(msg).__name__)
        return accepted(self.cores.step(msg))

    async def __aenter__(self) -> PeerMessages:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


# -- peer_frames: a stream of frames through the transport's inbound reader -----------------

MAX_FRAME = 64 * 1024
"""The fuzzed transport's frame limit (small, so that declared lengths around it occur)."""


class _ChunkedReader:
    """A stream reader that hands out ``data`` in pieces whose sizes depend only on the
    data (so an input replays the same), then EOF."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.rng = random.Random(zlib.crc32(data))

    async def read(self, n: int) -> bytes:
        if self.pos >= len(self.data):
            return b""
        small = len(self.data) < 2048  # byte by byte only where it stays cheap
        size = min(n, self.rng.choice((1, 3, 4, 7, 64, 4096, n) if small else (61, 4096, n)))
        piece = self.data[self.pos : self.pos + size]
        self.pos += size
        return piece


def _transport(node_id: int, collect: list[WireMessage]) -> TcpTransport:
    config = TcpConfig(
        cluster_id=CLUSTER,
        node_id=NodeId(node_id),
        peers={NodeId(n): ("127.0.0.1", 9) for n in (1, 2, 3) if n != node_id},
        max_frame_size=MAX_FRAME,
    )
    return TcpTransport(config, collect.append)


def expected_stream(data: bytes, src: int, dst: int) -> tuple[list[WireMessage], str | None]:
    """What the inbound reader must make of ``data``, worked out frame by frame: the
    messages it delivers, and the error kind it stops with (None: a clean end)."""
    messages: list[WireMessage] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < HEADER.size:
            return messages, "truncated"
        (size,) = HEADER.unpack_from(data, pos)
        if size > MAX_FRAME:
            return messages, "frame_too_large"
        if len(data) - pos - HEADER.size < size:
            return messages, "truncated"
        try:
            msg = _wire_decoder.decode(data[pos + HEADER.size : pos + HEADER.size + size])
        except msgspec.DecodeError:
            return messages, "bad_frame"
        if msg.src != src or msg.dst != dst:
            return messages, "bad_message"
        messages.append(msg)
        pos += HEADER.size + size
    return messages, None


class PeerFrames:
    """Bytes arriving on an inbound peer connection after the handshake (node 1 speaking
    to node 2), read by the transport's own reader in odd-sized pieces: it must deliver
    exactly the complete, decodable frames from node 1 to node 2, in order, and stop at
    the first bad one with the right error kind, never with another exception."""

    name = "peer_frames"
    weight = 3.0
    fast = True

    def __init__(self) -> None:
        self.got: list[WireMessage] = []
        self.transport = _transport(2, self.got)

    def seeds(self) -> list[bytes]:
        frames = [encode_frame(p) for p in PeerMessages().seeds()]
        rng = random.Random(2)
        return [b"".join(rng.sample(frames, rng.randrange(1, 6))) for _ in range(40)]

    def generate(self, rng: random.Random) -> bytes:
        parts = []
        for _ in range(rng.randrange(1, 6)):
            src, dst = (1, 2) if rng.random() < 0.85 else rng.choice(((3, 2), (1, 1), (2, 1)))
            payload = encode_doc(rng, message_doc(rng, src, dst))
            roll = rng.random()
            if roll < 0.75:
                parts.append(encode_frame(payload))
            elif roll < 0.85:  # a length that lies
                lie = rng.choice(
                    (0, 1, len(payload) - 1, len(payload) + 1, MAX_FRAME, MAX_FRAME + 1, 2**32 - 1)
                )
                parts.append(struct.pack(">I", max(0, lie)) + payload)
            elif roll < 0.92:  # cut short
                frame = encode_frame(payload)
                parts.append(frame[: rng.randrange(len(frame))])
            else:  # a big frame, just under or over the limit
                size = rng.choice((MAX_FRAME, MAX_FRAME + 1, MAX_FRAME // 2))
                parts.append(struct.pack(">I", size) + rng.randbytes(min(size, 70_000)))
        return b"".join(parts)

    async def check(self, data: bytes) -> Outcome:
        got = self.got
        got.clear()
        transport = self.transport
        peer = transport._peers[NodeId(1)]
        want, error = expected_stream(data, 1, 2)
        try:
            await transport._receive(_ChunkedReader(data), peer)  # type: ignore[arg-type]
        except ProtocolError as exc:
            kind: str | None = exc.kind
        else:
            kind = None
        if got != want:
            pairs = zip([*got, None], [*want, None], strict=False)
            first = next((g, w) for g, w in pairs if g != w)
            raise Violation(
                f"delivered {len(got)} messages, {len(want)} expected (first difference: {first})"
            )
        if kind != error:
            raise Violation(f"stopped with {kind!r}, {error!r} expected")
        if kind is None:
            return accepted(f"{min(len(got), 5)}{'+' if len(got) > 5 else ''} frames, clean end")
        return rejected(f"{kind} (after {min(len(got), 5)}{'+' if len(got) > 5 else ''} frames)")

    async def __aenter__(self) -> PeerFrames:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


# -- handshake ------------------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data


def plausible_hello(rng: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "hello",
        "cluster_id": CLUSTER if rng.random() < 0.8 else odd_text(rng),
        "node_id": rng.choice((1, 3, 4, 2)),
        "version": PROTOCOL_VERSION if rng.random() < 0.85 else rng.choice((1, 3, 0)),
    }
    if rng.random() < 0.7:
        doc["address"] = rng.choice(("127.0.0.1:7004", "node_4:7000", "", odd_text(rng)))
    return doc


class Handshake:
    """The first bytes of an inbound peer connection, through the acceptor's handshake
    (node 2 of cluster ``fuzz-cluster``, peers 1 and 3): a Hello it accepts must be one
    it can serve (its cluster and version, a node id in range that is not its own, an
    address that is either unusable or a real host and port); anything else is refused
    with a ProtocolError, and a Refused frame goes back when the Hello was readable."""

    name = "handshake"
    weight = 2.0
    fast = True

    def __init__(self) -> None:
        self.transport = _transport(2, [])

    def seeds(self) -> list[bytes]:
        rng = random.Random(3)
        return [encode_frame(_encode(plausible_hello(rng))) for _ in range(30)]

    def generate(self, rng: random.Random) -> bytes:
        doc = plausible_hello(rng)
        if rng.random() < 0.5:
            name = rng.choice(list(doc))
            doc[name] = odd_value(rng) if rng.random() < 0.5 else odd_int(rng)
        payload = encode_doc(rng, doc) if rng.random() < 0.9 else _encode(Refused("x"))
        frame = encode_frame(payload)
        if rng.random() < 0.15:
            frame = struct.pack(">I", rng.choice((0, 65536, 65537, 2**32 - 1))) + payload
        if rng.random() < 0.2:  # frames after the Hello
            frame += encode_frame(_encode(plausible_fields(rng, "heartbeat", 1, 2)))
        return frame

    async def check(self, data: bytes) -> Outcome:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        writer = _Writer()
        try:
            hello = await self.transport._accept_handshake(reader, writer)  # type: ignore[arg-type]
        except ProtocolError as exc:
            if exc.kind in ("wrong_cluster", "wrong_version", "unknown_node"):
                answer = msgspec.msgpack.decode(bytes(writer.written[4:]), type=Refused)
                if not answer.reason:
                    raise Violation("refused without a reason") from None
            elif writer.written:
                raise Violation(f"wrote {bytes(writer.written)!r} before refusing") from None
            return rejected(exc.kind)
        if not isinstance(hello, Hello):
            raise Violation(f"accepted {hello!r}")
        if hello.cluster_id != CLUSTER or hello.version != PROTOCOL_VERSION:
            raise Violation(f"accepted a Hello of another cluster or version: {hello!r}")
        if not 0 < hello.node_id <= MAX_INT or hello.node_id == 2:
            raise Violation(f"accepted node id {hello.node_id}")
        if bytes(writer.written) != self.transport._hello:
            raise Violation("did not answer with its own Hello")
        if hello.address:
            try:
                host, port = split_address(hello.address)
            except ValueError:
                return accepted("hello, unusable address")
            if not host or not 0 < port < 65536:
                raise Violation(f"accepted the address {hello.address!r} as ({host!r}, {port})")
            return accepted("hello with an address")
        return accepted("hello")

    async def __aenter__(self) -> Handshake:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


__all__ = ["Handshake", "PeerFrames", "PeerMessages", "broken_invariant"]
