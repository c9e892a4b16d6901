"""Snapshot files between nodes: chunked, acknowledged, resumable, verified."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from pathlib import Path

from raftlog.core.messages import SnapshotAck, SnapshotChunk, WireMessage
from raftlog.core.types import ConfState, NodeId, SnapshotMeta
from raftlog.server import snapfile
from raftlog.server.transfer import Outgoing, SnapshotReceiver, SnapshotSender

META = SnapshotMeta(500, 4, ConfState(frozenset({NodeId(1), NodeId(2)})))
BODY = random.Random(7).randbytes(300_000)
L, F = NodeId(1), NodeId(2)


def _file(directory: Path) -> Outgoing:
    path = snapfile.write(directory, snapfile.header_for(META, b"s"), lambda sink: sink.write(BODY))
    return Outgoing(META, path)


class Wire:
    """Connects one sender and one receiver; ``lose`` decides which messages vanish."""

    def __init__(self, lose: Callable[[WireMessage], bool] = lambda _m: False) -> None:
        self.lose = lose
        self.sender: SnapshotSender | None = None
        self.receiver: SnapshotReceiver | None = None
        self.chunks = 0
        self.acks = 0

    def to_follower(self, msg: WireMessage) -> bool:
        assert isinstance(msg, SnapshotChunk) and self.receiver is not None
        self.chunks += 1
        if not self.lose(msg):
            self.receiver.on_chunk(msg)
        return True

    def to_leader(self, msg: WireMessage) -> bool:
        assert isinstance(msg, SnapshotAck) and self.sender is not None
        self.acks += 1
        if not self.lose(msg):
            self.sender.on_ack(msg)
        return True


async def _transfer(tmp_path: Path, wire: Wire, **kw: float) -> tuple[bool, list[Path]]:
    arrived: list[Path] = []

    async def complete(src: NodeId, term: int, meta: SnapshotMeta, path: Path) -> None:
        assert (src, term, meta) == (L, 9, META)
        arrived.append(path)

    outgoing = _file(tmp_path / "leader")
    wire.receiver = SnapshotReceiver(F, tmp_path / "follower", wire.to_leader, complete)
    wire.sender = SnapshotSender(
        L,
        F,
        9,
        outgoing,
        wire.to_follower,
        chunk_bytes=16_384,
        window=4,
        **kw,  # type: ignore[arg-type]
    )
    receiving = asyncio.create_task(wire.receiver.run())
    try:
        ok = await asyncio.wait_for(wire.sender.run(), 30)
    finally:
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)
    return ok, arrived


def test_a_whole_file_arrives_verified_under_its_name(tmp_path: Path) -> None:
    wire = Wire()
    ok, arrived = asyncio.run(_transfer(tmp_path, wire))
    assert ok and len(arrived) == 1
    assert arrived[0].name == snapfile.file_name(500, 4)
    assert snapfile.verify(arrived[0]).meta() == META
    assert arrived[0].read_bytes() == (tmp_path / "leader" / arrived[0].name).read_bytes()
    assert not list((tmp_path / "follower").glob("*.tmp"))


def test_lost_chunks_and_acks_are_resent_from_where_the_follower_is(tmp_path: Path) -> None:
    rng = random.Random(3)
    wire = Wire(lose=lambda _m: rng.random() < 0.2)
    ok, arrived = asyncio.run(_transfer(tmp_path, wire, ack_timeout_s=0.05))
    assert ok and len(arrived) == 1
    assert snapfile.verify(arrived[0]).meta() == META
    assert wire.sender is not None and wire.sender.resent > 0  # some had to go again


def test_a_broken_connection_resumes_instead_of_starting_over(tmp_path: Path) -> None:
    outage = {"left": 0, "done": False}
    sent_offsets: list[int] = []

    def lose(msg: WireMessage) -> bool:
        if isinstance(msg, SnapshotChunk):
            sent_offsets.append(msg.offset)
            if msg.offset >= 150_000 and not outage["done"]:
                outage.update(left=12, done=True)  # the link drops the next 12 messages
        if outage["left"]:
            outage["left"] -= 1
            return True
        return False

    wire = Wire(lose=lose)
    ok, arrived = asyncio.run(_transfer(tmp_path, wire, ack_timeout_s=0.05))
    assert ok and len(arrived) == 1
    assert snapfile.verify(arrived[0]).meta() == META
    back = [b for a, b in itertools.pairwise(sent_offsets) if b < a]
    assert back and min(back) >= 100_000  # resumed near the break, never from 0


def test_a_corrupted_transfer_is_refused_and_reported(tmp_path: Path) -> None:
    def corrupt(msg: WireMessage) -> bool:
        return False

    wire = Wire(lose=corrupt)
    original = wire.to_follower

    def flip(msg: WireMessage) -> bool:
        assert isinstance(msg, SnapshotChunk)
        if msg.offset == 32_768:
            data = bytearray(msg.data)
            data[5] ^= 1
            msg = SnapshotChunk(
                msg.src,
                msg.dst,
                msg.term,
                msg.index,
                msg.snap_term,
                msg.size,
                msg.offset,
                bytes(data),
            )
        return original(msg)

    wire.to_follower = flip  # type: ignore[method-assign]
    ok, arrived = asyncio.run(_transfer(tmp_path, wire))
    assert not ok and arrived == []
    assert wire.sender is not None and "checksum mismatch" in wire.sender.error
    assert list((tmp_path / "follower").iterdir()) == []  # nothing half-kept


def test_a_silent_follower_is_given_up(tmp_path: Path) -> None:
    wire = Wire(lose=lambda _m: True)
    ok, arrived = asyncio.run(_transfer(tmp_path, wire, ack_timeout_s=0.02))
    assert not ok and arrived == []
    assert wire.sender is not None and "no progress" in wire.sender.error
