"""Snapshot files on start: a damaged one stops the node (file and index named), leftovers
of a crash are removed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import BinaryIO

import pytest

import raftlog
from raftlog.core.errors import StorageError
from raftlog.local.cluster import free_ports
from raftlog.server import snapfile


class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def apply(self, index: int, term: int, data: bytes) -> int:
        word = data.decode()
        self.counts[word] = self.counts.get(word, 0) + 1
        return self.counts[word]

    def snapshot(self) -> raftlog.BytesSnapshot:
        return raftlog.BytesSnapshot(json.dumps(self.counts).encode())

    def restore(self, source: BinaryIO) -> None:
        self.counts = json.loads(source.read())


def _config(data_dir: Path) -> raftlog.NodeConfig:
    (port,) = free_ports(1)
    return raftlog.NodeConfig(
        id=1,
        members={1: f"127.0.0.1:{port}"},
        data_dir=data_dir,
        state_machine=Tally(),
        snapshot_entries=10,
        keep_entries=2,
    )


async def _snapshot_taken(data_dir: Path) -> Path:
    """Run a one-node cluster until it recorded a snapshot; return the file the storage
    records once the node stopped. (Not merely the newest file in the directory: a file
    is there before the compaction records it, and one stop sooner it is a leftover that
    the next start removes without reading.)"""
    node = raftlog.Node(_config(data_dir))
    await node.start()
    storage = node.raft.storage
    try:
        async with asyncio.timeout(20):
            while not node.is_leader:
                await asyncio.sleep(0.01)
            for k in range(25):
                await node.apply(f"w{k % 3}".encode())
            while not storage.checkpoint().file:
                await asyncio.sleep(0.01)
    finally:
        await node.stop()
    path = data_dir / "snapshots" / storage.checkpoint().file
    assert path.is_file(), f"the recorded snapshot {path} is missing"
    return path


def test_a_damaged_snapshot_file_stops_the_node_naming_the_file_and_index(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        path = await _snapshot_taken(tmp_path / "n1")
        index, _term = snapfile.parse_name(path.name) or (0, 0)
        with path.open("r+b") as f:  # one bit, in the middle
            f.seek(path.stat().st_size // 2)
            byte = f.read(1)[0]
            f.seek(-1, 1)
            f.write(bytes([byte ^ 1]))
        node = raftlog.Node(_config(tmp_path / "n1"))
        with pytest.raises(StorageError) as caught:
            await node.start()
            await node.wait()  # (the snapshot is read once the node runs)
        message = str(caught.value)
        assert str(path) in message and "checksum mismatch" in message
        assert f"the snapshot of entries up to index {index}," in message

    asyncio.run(asyncio.wait_for(main(), 60))


def test_leftovers_of_a_crash_in_the_snapshot_directory_are_removed_on_start(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        path = await _snapshot_taken(tmp_path / "n1")
        directory = path.parent
        stray = directory / snapfile.file_name(10_000, 9)  # written, never recorded
        stray.write_bytes(b"cut short")
        partial = directory / (snapfile.file_name(10_001, 9) + ".tmp")
        partial.write_bytes(b"half")
        node = raftlog.Node(_config(tmp_path / "n1"))
        await node.start()
        try:
            async with asyncio.timeout(20):
                while not node.is_leader:  # it has prepared its state machine by then
                    await asyncio.sleep(0.01)
            assert path.exists()
            assert not stray.exists() and not partial.exists()
            assert node.state_machine.counts == {"w0": 9, "w1": 8, "w2": 8}  # type: ignore[union-attr]
        finally:
            await node.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
