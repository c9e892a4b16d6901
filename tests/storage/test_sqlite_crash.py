"""kill -9 while writing: what SQLiteStorage acknowledged survives, and a save is atomic.

A child process appends to a storage in a loop: batches of varying sizes, now and then a
new term that truncates the uncommitted tail (as a new leader's entries would), now and
then a hard-state-only save. Before each save it prints what it is about to write, and
``acked`` once ``save`` returned. The parent replays those lines into a model, kills the
child with SIGKILL after a few hundred acks, reopens the storage and checks that what is
on disk is exactly the state after the last acknowledged save, or the state after the one
save in flight: nothing acknowledged is lost, and no save is half applied.
"""

from __future__ import annotations

import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from raftlog.core.types import Entry, EntryKind, HardState, NodeId
from raftlog.storage import SQLiteStorage
from raftlog.storage.sqlite import DB_NAME
from raftlog.testing import walfile

CLUSTER = "crash-test"
ACKS_PER_ROUND = 300
ROUNDS = 4
ROUND_TIMEOUT = 15.0  # seconds; a round normally takes well under one

# The child's payload formula is spelled out again in `payload` below: keep them in step.
CHILD = """
import sys

from raftlog.core.types import Entry, HardState, NodeId
from raftlog.storage import SQLiteStorage

SIZES = [1, 3, 1, 40, 1, 7, 250, 2, 1, 16, 1, 1, 90]


def payload(index, term):
    return f"{index}@{term};".encode() * (1 + index % 23)


storage = SQLiteStorage.open(sys.argv[1], cluster_id=sys.argv[2], node_id=1)
hard = storage.initial_state()[0]
term, vote, commit = max(hard.term, 1), hard.vote, hard.commit
last = storage.last_index()
step = int(sys.argv[3])
while True:
    step += 1
    if step % 9 == 0:
        # A hard-state-only save: a new term and a vote.
        term += 1
        vote = NodeId(step % 3 + 1)
        print(f"saving 0 0 0 {term} {vote} {commit}", flush=True)
        storage.save(HardState(term, vote, commit), [])
        print("acked", flush=True)
        continue
    if step % 11 == 0 and last >= 3 and commit <= last - 3:
        first = last - 2  # a new leader's entries replace the uncommitted tail
        term += 1
    else:
        first = last + 1
    size = SIZES[step % len(SIZES)]
    last = first + size - 1
    commit = max(commit, last - 10)
    batch = [Entry(i, term, data=payload(i, term)) for i in range(first, last + 1)]
    print(f"saving {first} {size} {term} {term} {vote} {commit}", flush=True)
    storage.save(HardState(term, vote, commit), batch)
    print("acked", flush=True)
"""


def payload(index: int, term: int) -> bytes:
    return f"{index}@{term};".encode() * (1 + index % 23)


@dataclass
class Model:
    """A log as a list of terms (entry i has term ``terms[i - 1]``) and a hard state."""

    terms: list[int] = field(default_factory=list)
    hard_state: HardState = field(default_factory=HardState)

    def apply(self, line: str) -> Model:
        _, first, size, term, hs_term, hs_vote, hs_commit = line.split()
        terms = list(self.terms)
        if int(size):
            del terms[int(first) - 1 :]
            terms.extend([int(term)] * int(size))
        return Model(terms, HardState(int(hs_term), NodeId(int(hs_vote)), int(hs_commit)))

    def entries(self) -> list[Entry]:
        return [Entry(i, t, EntryKind.NORMAL, payload(i, t)) for i, t in enumerate(self.terms, 1)]


def read_back(data_dir: Path) -> tuple[Model, list[Entry]]:
    """Open the storage (which validates the log) and return what it holds."""
    with SQLiteStorage.open(data_dir, cluster_id=CLUSTER, node_id=1) as storage:
        hard_state = storage.initial_state()[0]
        entries = list(storage.entries(1, storage.last_index() + 1, 1 << 62))
    assert [e.index for e in entries] == list(range(1, len(entries) + 1))
    return Model([e.term for e in entries], hard_state), entries


def run_and_kill(
    script: Path, data_dir: Path, step: int, stderr_path: Path, aim_at_big_save: bool
) -> list[str]:
    """Run the child until it has acknowledged ACKS_PER_ROUND saves, SIGKILL it (at once, or
    with ``aim_at_big_save`` just after it announces a big batch), and return every
    complete line it printed (including those written just before it died)."""
    with stderr_path.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, str(script), str(data_dir), CLUSTER, str(step)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    acks = 0
    deadline = time.monotonic() + ROUND_TIMEOUT

    def next_line() -> str:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"timed out after {acks} acks") from None
        if line is None:
            raise AssertionError(
                f"the child exited ({child.poll()}) after {acks} acks: " + stderr_path.read_text()
            )
        return line

    try:
        while acks < ACKS_PER_ROUND:
            line = next_line()
            seen.append(line)
            acks += line == "acked\n"
        if aim_at_big_save:
            # Kill right after the child announced a big batch: most likely during its
            # write, the moment that tests atomicity.
            while not (line.startswith("saving ") and int(line.split()[2]) >= 40):
                line = next_line()
                seen.append(line)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        reader.join(timeout=10)
        assert child.stdout is not None
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert not reader.is_alive()
    while (rest := lines.get_nowait()) is not None:  # what it printed before it died
        seen.append(rest)
    return [line for line in seen if line.endswith("\n")]  # drop a line cut by the kill


def test_acknowledged_saves_survive_kill_9(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    data_dir = tmp_path / "data"
    model = Model()
    step = 0
    in_flight_landed = 0
    for round_ in range(ROUNDS):
        lines = run_and_kill(
            script, data_dir, step, tmp_path / f"stderr-{round_}.txt", round_ % 2 == 0
        )
        acked, in_flight = model, None
        for line in lines:
            if line.startswith("saving "):
                in_flight = acked.apply(line)
                step += 1
            else:
                assert line == "acked\n", line
                assert in_flight is not None
                acked, in_flight = in_flight, None
        assert acked is not model

        on_disk, entries = read_back(data_dir)
        # Exactly the last acknowledged state, or that plus the save in flight: nothing
        # acknowledged is lost, and the save in flight is all there or not at all.
        allowed = [acked] if in_flight is None else [acked, in_flight]
        assert on_disk in allowed, (
            f"round {round_}: on disk {len(on_disk.terms)} entries, {on_disk.hard_state}; "
            f"acked {len(acked.terms)} entries, {acked.hard_state}"
        )
        assert entries == on_disk.entries()  # the data too, entry by entry
        in_flight_landed += on_disk != acked
        model = on_disk
    print(f"{len(model.terms)} entries; the save in flight landed in {in_flight_landed} kills")
    assert len(model.terms) > ROUNDS * ACKS_PER_ROUND / 2
    assert len(set(model.terms)) > 1  # the run did truncate and change terms


# -- a torn last write: the WAL cut short, or followed by garbage ---------------------------


def _open_cut(
    data_dir: Path, work: Path, cut: int | None, garbage: bytes = b""
) -> tuple[Model, list[Entry]]:
    """What a copy of ``data_dir`` opens to with its WAL cut at ``cut`` (None: as it is)
    and ``garbage`` written from there on (a torn write that left noise)."""
    copy = work / f"cut-{cut}-{len(garbage)}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(data_dir, copy)  # the stale -shm too: recovery must not trust it
    wal = copy / (DB_NAME + "-wal")
    with wal.open("r+b") as f:
        if cut is not None:
            f.truncate(cut)
            f.seek(cut)
        else:
            f.seek(0, os.SEEK_END)
        f.write(garbage)
    try:
        return read_back(copy)
    finally:
        shutil.rmtree(copy)


def test_a_torn_wal_opens_at_the_last_acknowledged_save(tmp_path: Path) -> None:
    """After kill -9, the WAL is cut at offsets around the end of the last acknowledged
    save (as a power loss tears the unsynced tail) or followed by garbage: the storage
    opens at the last acknowledged state (or with the save in flight whole), never half a
    save. Cut before that end (data a real disk had synced), it opens at an earlier
    acknowledged state: a cut never leaves a torn save behind either."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    data_dir = tmp_path / "data"
    work = tmp_path / "work"
    work.mkdir()
    model = Model()
    history = [model]  # every acknowledged state, in order
    step = 0
    checked_tears = 0
    rng = random.Random(13)
    for round_ in range(2):
        lines = run_and_kill(script, data_dir, step, tmp_path / f"stderr-{round_}.txt", True)
        acked, in_flight = model, None
        for line in lines:
            if line.startswith("saving "):
                in_flight = acked.apply(line)
                step += 1
            else:
                acked, in_flight = in_flight, None  # type: ignore[assignment]
                history.append(acked)
        allowed = [acked] if in_flight is None else [acked, in_flight]
        wal = data_dir / (DB_NAME + "-wal")
        size = wal.stat().st_size
        ends = walfile.commit_ends(wal)
        whole, entries = _open_cut(data_dir, work, None)
        assert whole in allowed
        assert entries == whole.entries()
        if ends:
            # Where the last acknowledged save ends: the last commit, or the one before
            # it if the save in flight committed too.
            acked_end = ends[-1] if whole == acked else ends[-2]
            frame = walfile.FRAME_HEADER.size + walfile.page_size(wal)
            after = {acked_end, acked_end + 1, acked_end + 24 + 100, acked_end + frame, size}
            after |= {rng.randrange(acked_end, size + 1) for _ in range(3)}
            for cut in sorted(c for c in after if c <= size):
                assert _open_cut(data_dir, work, cut)[0] in allowed, f"cut at {cut} of {size}"
                checked_tears += 1
            garbage = rng.randbytes(frame + 777)
            assert _open_cut(data_dir, work, acked_end, garbage)[0] in allowed
            assert _open_cut(data_dir, work, None, garbage)[0] in allowed
            before = {acked_end - 1, acked_end - frame // 2, *ends[-3:-1]}
            for cut in sorted(c for c in before if walfile.HEADER.size <= c < acked_end):
                assert _open_cut(data_dir, work, cut)[0] in history, f"cut at {cut}"
        model = whole
    assert checked_tears >= 5  # the WAL had frames to cut
