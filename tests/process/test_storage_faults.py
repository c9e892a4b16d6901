"""Storage faults with real processes: a torn WAL after kill -9, a full disk on the leader.

Every client append is recorded (invoke and completion time, answer) and the history is
checked for linearizability against the final log (:mod:`raftlog.check.logcheck`): an
append answered 200 is at its index, one answered with a "not done" code (507
``disk_full`` among them) is nowhere in the log.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import shutil
import sqlite3
import subprocess
import time
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from procsupport import run, until

from raftlog import wire
from raftlog.check.logcheck import LogOp, check_log_history
from raftlog.local.cluster import LocalCluster, wait_for
from raftlog.testing import walfile


class History:
    """Client appends as they happened (times relative to the start)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.ops: list[tuple[int, str, float, float, str, int]] = []
        """(client, value, call, ret, status, index)"""
        self.codes: dict[str, str] = {}
        """value -> the error code it was answered with (for the failed ones)"""

    def now(self) -> float:
        return time.monotonic() - self.t0

    def acked(self) -> int:
        return sum(1 for op in self.ops if op[4] == "ok")

    def failed_with(self, code: str) -> list[str]:
        return [v for v, c in self.codes.items() if c == code]

    def check(self, log: list[tuple[int, str]]) -> None:
        position = {index: pos for pos, (index, _v) in enumerate(log, start=1)}
        ops = [
            LogOp(
                id=n,
                client=client,
                kind="append",
                call=call,
                ret=ret,
                status=status,  # type: ignore[arg-type]
                value=value.encode(),
                position=position.get(index, -1) if status == "ok" else 0,
            )
            for n, (client, value, call, ret, status, index) in enumerate(self.ops)
        ]
        result = check_log_history(ops, [v.encode() for _i, v in log])
        assert result.ok, result.describe()


async def _writer(
    cluster: LocalCluster, client: int, history: History, stop: asyncio.Event, via: list[int]
) -> None:
    for n in itertools.count():
        if stop.is_set():
            return
        value = f"c{client}-{n}"
        node = via[n % len(via)]
        if not cluster.answers(node):
            await asyncio.sleep(0.02)
            continue
        call = time.monotonic() - history.t0
        try:
            status, doc = await cluster.post(node, "/v1/log", {"data": value}, timeout=3)
        except (OSError, TimeoutError, ValueError, aiohttp.ClientError):
            history.ops.append((client, value, call, math.inf, "info", 0))
            await asyncio.sleep(0.02)
            continue
        ret = time.monotonic() - history.t0
        if status == 200:
            history.ops.append((client, value, call, ret, "ok", doc["index"]))
            continue
        code = doc.get("code") if isinstance(doc, dict) else None
        if code in wire.NOT_DONE:
            history.ops.append((client, value, call, ret, "fail", 0))
        else:
            history.ops.append((client, value, call, math.inf, "info", 0))
        history.codes[value] = str(code)
        await asyncio.sleep(0.02)


async def _log(cluster: LocalCluster, i: int) -> list[tuple[int, str]] | None:
    doc = await cluster.get(i, "/v1/log?consistency=local&limit=10000", timeout=10)
    if not isinstance(doc, dict) or "entries" not in doc or doc.get("next") is not None:
        return None
    return [(e["index"], e["data"]) for e in doc["entries"]]


async def _converged(cluster: LocalCluster) -> list[tuple[int, str]]:
    async def probe() -> list[tuple[int, str]] | None:
        logs = [await _log(cluster, i) for i in cluster.nodes]
        first = logs[0]
        if first is not None and all(log == first for log in logs):
            return first
        return None

    result: list[tuple[int, str]] = await wait_for(probe, 60, "the nodes' logs did not converge")
    return result


# -- kill -9 during appends, then the WAL torn --------------------------------------------------


def _tear(wal: Path, rng: random.Random) -> str:
    """Cut ``wal`` where a power loss could (after its last complete transaction, inside
    the one being written if there is one) and leave garbage after the cut."""
    if not wal.exists():
        return "no WAL"
    ends = walfile.commit_ends(wal)
    size = wal.stat().st_size
    last = ends[-1] if ends else min(size, walfile.HEADER.size)
    # Beyond the last commit there may be frames of the transaction in flight, or older
    # frames of a previous WAL generation: either is unacknowledged, cut into it.
    cut = rng.randrange(last, size + 1) if size > last else last
    with wal.open("r+b") as f:
        f.truncate(cut)
        f.seek(cut)
        f.write(rng.randbytes(rng.randrange(1, 6000)))
    return f"cut at {cut} of {size} (last commit ends at {last})"


def test_kill_9_during_appends_and_a_torn_wal_lose_nothing_acknowledged() -> None:
    async def main() -> None:
        rng = random.Random()
        async with LocalCluster(3) as cluster:
            await cluster.start()
            leader = await cluster.leader()
            history = History()
            stop = asyncio.Event()
            nodes = list(cluster.nodes)
            writers = [
                asyncio.create_task(_writer(cluster, k, history, stop, nodes)) for k in range(8)
            ]
            await until(lambda: history.acked() >= 150, 30, "no appends")
            await cluster.kill(leader)  # mid-stream: its WALs hold the newest writes
            data_dir = cluster.nodes[leader].data_dir
            torn = [_tear(data_dir / name, rng) for name in ("raftlog.db-wal", "records.db-wal")]
            print(f"node {leader}: raftlog.db-wal {torn[0]}; records.db-wal {torn[1]}")
            before = history.acked()
            await until(lambda: history.acked() >= before + 100, 30, "no appends after the kill")
            await cluster.start_node(leader)
            before = history.acked()
            await until(lambda: history.acked() >= before + 100, 30, "no appends after restart")
            stop.set()
            await asyncio.gather(*writers)
            log = await _converged(cluster)
            history.check(log)
            lines = "\n".join(cluster.lines(leader))
            assert "Traceback" not in lines

    run(main(), timeout=180)


# -- a full disk on the leader -----------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/cluster/node-1`` on a 24 MiB tmpfs (root only)."""
    mount = tmp_path / "cluster" / "node-1"
    mount.mkdir(parents=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(ballast: Path) -> None:
    with ballast.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def _xmlrpc_append(url: str, text: str) -> bool:
    with xmlrpc.client.ServerProxy(url + "/RPC2") as proxy:
        result = proxy.leader_receive_log(text)
    assert isinstance(result, bool)
    return result


def test_a_full_disk_on_the_leader_fails_appends_cleanly_and_the_node_recovers(
    small_disk: Path,
) -> None:
    async def main() -> None:
        async with LocalCluster(3, data_dir=small_disk.parent) as cluster:
            await cluster.start()
            leader = await cluster.leader()
            if leader != 1:
                await cluster.post(leader, "/v1/leader/transfer", {"to": 1})
                await cluster.leader(among=[1])
                assert await cluster.leader() == 1
            history = History()
            stop = asyncio.Event()
            writers = [
                asyncio.create_task(_writer(cluster, k, history, stop, [1, 2, 3])) for k in range(6)
            ]
            await until(lambda: history.acked() >= 50, 30, "no appends")

            ballast = small_disk / "ballast"
            await asyncio.to_thread(_fill, ballast)

            async def full() -> bool:
                doc = await cluster.get(1, "/readyz")
                return isinstance(doc, dict) and "disk full" in str(doc.get("reason"))

            await wait_for(full, 30, "node 1 did not say its disk is full")
            # Node 1 answers appends with 507 disk_full (it cannot write), and the lab's
            # XML-RPC call with False; the other two elect a leader and go on committing.
            call = history.now()
            status, doc = await cluster.post(1, "/v1/log", {"data": "while-full"}, timeout=5)
            assert (status, doc["code"]) == (507, "disk_full"), (status, doc)
            assert "cannot write its log" in doc["error"]
            history.ops.append((100, "while-full", call, history.now(), "fail", 0))
            assert not await asyncio.to_thread(_xmlrpc_append, cluster.url(1), "xml-while-full")
            history.ops.append((101, "xml-while-full", call, math.inf, "info", 0))
            new_leader = await cluster.leader(among=[2, 3])
            before = history.acked()
            await until(lambda: history.acked() >= before + 50, 30, "no commits while full")
            assert history.failed_with("disk_full"), "no writer saw disk_full"
            status_doc = await cluster.status(1)
            assert status_doc is not None  # node 1 still answers its status

            ballast.unlink()  # space returns: node 1 writes again, without a restart

            async def recovered() -> bool:
                doc = await cluster.get(1, "/readyz")
                s1, sl = await cluster.status(1), await cluster.status(new_leader)
                return bool(
                    isinstance(doc, dict)
                    and doc.get("ready")
                    and s1
                    and sl
                    and s1["applied"] >= sl["commit"]
                )

            await wait_for(recovered, 60, "node 1 did not recover once space returned")
            call = history.now()
            done = await cluster.append(1, "after-space-returned")  # through node 1
            history.ops.append(
                (102, "after-space-returned", call, history.now(), "ok", done["index"])
            )
            before = history.acked()
            await until(lambda: history.acked() >= before + 30, 30, "no appends after")
            stop.set()
            await asyncio.gather(*writers)
            log = await _converged(cluster)
            history.check(log)  # a disk_full answer means: not in the log
            values = {v for _i, v in log}
            assert "while-full" not in values and "xml-while-full" not in values
            lines = "\n".join(cluster.lines(1))
            assert "Disk full, the log write failed" in lines
            assert "Disk space is back" in lines
            assert "Traceback" not in lines
            print(
                f"{history.acked()} appends acknowledged; "
                f"{len(history.failed_with('disk_full'))} answered disk_full, "
                f"{len(history.failed_with('outcome_unknown'))} outcome_unknown"
            )

    run(main(), timeout=180)


# -- corruption stops the node, with the file and the index ---------------------------------


def test_a_flipped_entry_on_disk_stops_the_node_with_the_file_and_index() -> None:
    async def main() -> None:
        async with LocalCluster(3) as cluster:
            await cluster.start()
            leader = await cluster.leader()
            for n in range(20):
                await cluster.append(leader, f"v{n}")
            victim = next(i for i in cluster.nodes if i != leader)
            assert await cluster.stop(victim) == 0
            db = cluster.nodes[victim].data_dir / "raftlog.db"
            with sqlite3.connect(db, isolation_level=None) as conn:
                (index,) = conn.execute("SELECT max(idx) - 3 FROM log").fetchone()
                # A bit flipped in the entry's data: SQLite cannot tell.
                (data,) = conn.execute("SELECT data FROM log WHERE idx = ?", (index,)).fetchone()
                flipped = bytes([data[0] ^ 0x10]) + data[1:]
                conn.execute("UPDATE log SET data = ? WHERE idx = ?", (flipped, index))
            await cluster.start_node(victim, wait=False)
            assert await asyncio.wait_for(cluster.wait_exit(victim), 30) == 3
            lines = "\n".join(cluster.lines(victim))
            assert f"{db}: checksum mismatch at entry {index}" in lines, lines
            assert "Traceback" not in lines
            await cluster.append(leader, "the others go on")

    run(main(), timeout=120)
