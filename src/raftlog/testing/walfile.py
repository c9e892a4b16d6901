"""Reading a SQLite write-ahead log the way SQLite's recovery does (for torn-write tests).

The format (https://www.sqlite.org/fileformat2.html#walformat): a 32-byte header (magic,
version, page size, checkpoint sequence, two salts, a checksum of the first 24 bytes), then
frames of a 24-byte header (page number, database size in pages for a commit frame else 0,
the two salts, a cumulative checksum) and one page. A frame is valid while its salts match
the header's and its checksum continues the chain; recovery keeps every valid frame up to
the last valid *commit* frame and ignores the rest. :func:`commit_ends` lists where each
such transaction ends in the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

HEADER = struct.Struct(">IIIIIIII")
FRAME_HEADER = struct.Struct(">IIIIII")
MAGIC_LE, MAGIC_BE = 0x377F0682, 0x377F0683


def _checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def page_size(path: Path) -> int:
    size: int = HEADER.unpack(path.read_bytes()[: HEADER.size])[2]
    return size


def commit_ends(path: Path) -> list[int]:
    """The file offsets at which each transaction of the current WAL generation ends (the
    end of its commit frame), in order, up to the first frame that is not valid."""
    data = path.read_bytes()
    if len(data) < HEADER.size:
        return []
    magic, _version, size, _seq, salt1, salt2, c0, c1 = HEADER.unpack_from(data)
    if magic not in (MAGIC_LE, MAGIC_BE):
        return []
    big = magic == MAGIC_BE
    if (c0, c1) != _checksum(data[:24], 0, 0, big):
        return []
    s0, s1 = c0, c1
    ends: list[int] = []
    offset = HEADER.size
    frame = FRAME_HEADER.size + size
    while offset + frame <= len(data):
        _page, commit, f_salt1, f_salt2, f_c0, f_c1 = FRAME_HEADER.unpack_from(data, offset)
        if (f_salt1, f_salt2) != (salt1, salt2):
            break
        s0, s1 = _checksum(data[offset : offset + 8], s0, s1, big)
        body = data[offset + FRAME_HEADER.size : offset + frame]
        s0, s1 = _checksum(body, s0, s1, big)
        if (s0, s1) != (f_c0, f_c1):
            break
        offset += frame
        if commit:
            ends.append(offset)
    return ends
