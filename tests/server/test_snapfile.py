"""Snapshot files: written atomically, checked whole before anything is read from them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import pytest

from raftlog.core.types import ConfState, NodeId, SnapshotMeta
from raftlog.server import snapfile

META = SnapshotMeta(42, 3, ConfState(frozenset({NodeId(1), NodeId(2), NodeId(3)})))
BODY = bytes(range(256)) * 5000  # more than one buffer's worth


def _write(directory: Path, body: bytes = BODY) -> Path:
    return snapfile.write(
        directory, snapfile.header_for(META, b"sessions"), lambda sink: sink.write(body)
    )


def _read_body(path: Path) -> bytes:
    out = io.BytesIO()

    def restore(source: BinaryIO) -> None:
        while block := source.read(7777):
            out.write(block)

    snapfile.open_body(path, restore)
    return out.getvalue()


def test_a_snapshot_file_round_trips(tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert path.name == snapfile.file_name(42, 3)
    assert snapfile.parse_name(path.name) == (42, 3)
    header = snapfile.verify(path)
    assert header.meta() == META and header.sessions == b"sessions"
    assert _read_body(path) == BODY
    assert snapfile.list_snapshots(tmp_path) == [(42, 3, path)]
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[: len(b) // 2], "no end marker"),
        (lambda b: b[:-1], "no end marker"),
        (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "checksum mismatch"),
        (lambda b: b[:10], "truncated"),
        (lambda b: b"x" * 8 + b[8:], "checksum mismatch"),
    ],
    ids=["half", "last-byte", "flipped-bit", "stub", "bad-magic"],
)
def test_a_damaged_file_is_refused_naming_the_file_and_reason(
    tmp_path: Path, damage: object, reason: str
) -> None:
    path = _write(tmp_path)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    restored: list[bytes] = []
    with pytest.raises(snapfile.SnapshotFileError, match=reason) as caught:
        snapfile.open_body(path, lambda source: restored.append(source.read()))
    assert str(path) in str(caught.value)
    assert restored == []  # nothing was handed to the state machine


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    def explode(sink: BinaryIO) -> None:
        sink.write(b"partial")
        raise RuntimeError("state machine bug")

    with pytest.raises(RuntimeError):
        snapfile.write(tmp_path, snapfile.header_for(META, b""), explode)
    assert list(tmp_path.iterdir()) == []


def test_leftover_temporaries_are_removed(tmp_path: Path) -> None:
    (tmp_path / "snap-x.snap.tmp").write_bytes(b"half")
    kept = _write(tmp_path)
    snapfile.remove_temporaries(tmp_path)
    assert list(tmp_path.iterdir()) == [kept]
