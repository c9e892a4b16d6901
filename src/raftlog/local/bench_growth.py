"""Benchmarks of a node's footprint as the log grows, and of catching up.

``raftlog bench --what growth``: append to a 3-node cluster in steps (e.g. 10k, 100k, 1M
entries); at each step record every node's resident memory, the size of its files, and
the time a restarted follower takes to serve again and to be caught up. Flat is the goal:
with snapshots and compaction, none of them should grow with the number of entries (the
replicated log's records are the state itself, on disk, and do grow).

``raftlog bench --what catchup``: stop a follower, append N entries, start it again, and
time how long it takes to apply all of them: once with snapshots (it is sent one), once
without (it replays the log).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from raftlog.local.cluster import LocalCluster, wait_for

LOAD_CLIENTS = 64
VALUE_BYTES = 100


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def append_load(url: str, first: int, count: int) -> float:
    """Append ``count`` entries of VALUE_BYTES bytes (numbered first..first+count-1) with
    LOAD_CLIENTS concurrent connections; returns appends per second."""
    values = iter(range(first, first + count))
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=LOAD_CLIENTS)) as http:

        async def client() -> None:
            for k in values:
                while True:
                    try:
                        async with http.post(
                            url, json={"data": f"value-{k:09d}".ljust(VALUE_BYTES, ".")}
                        ) as resp:
                            await resp.read()
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(client() for _ in range(LOAD_CLIENTS)))
    return count / (time.perf_counter() - started)


async def _caught_up(cluster: LocalCluster, node: int, target: int, timeout: float) -> None:
    async def done() -> bool:
        s = await cluster.status(node)
        return s is not None and s["applied"] >= target

    await wait_for(done, timeout, f"node {node} did not reach {target}", interval=0.02)


@dataclass
class GrowthRow:
    entries: int
    load_rate: float
    rss_mb: dict[int, float]
    raft_db_mb: float
    records_mb: float
    snapshot_index: int
    first_index: int
    restart_ready_s: float
    restart_caught_up_s: float


@dataclass
class GrowthResult:
    rows: list[GrowthRow] = field(default_factory=list)

    def table(self) -> str:
        head = (
            f"{'entries':>9} {'load/s':>7} {'RSS MB (leader, followers)':>27} "
            f"{'raft db MB':>10} {'records MB':>10} {'log kept':>9} "
            f"{'restart: ready':>14} {'caught up':>9}"
        )
        lines = [head]
        for r in self.rows:
            rss = ", ".join(f"{v:.0f}" for v in r.rss_mb.values())
            kept = r.entries - r.first_index + 1 if r.first_index else r.entries
            lines.append(
                f"{r.entries:>9,} {r.load_rate:>7,.0f} {rss:>27} {r.raft_db_mb:>10.1f} "
                f"{r.records_mb:>10.1f} {kept:>9,} {r.restart_ready_s:>13.2f}s "
                f"{r.restart_caught_up_s:>8.2f}s"
            )
        return "\n".join(lines)


async def run_growth(
    steps: list[int],
    *,
    snapshot_entries: int = 10_000,
    keep_entries: int = 5_000,
    say: Callable[[str], None] = print,
) -> GrowthResult:
    args = ["--snapshot-entries", str(snapshot_entries), "--keep-entries", str(keep_entries)]
    result = GrowthResult()
    async with LocalCluster(3, fast=True, node_args=args, log_level="warning") as cluster:
        await cluster.start()
        done = 0
        for target in steps:
            leader = await cluster.leader()
            say(f"bench: appending up to {target:,} entries ...")
            rate = await append_load(cluster.nodes[leader].url + "/v1/log", done, target - done)
            done = target
            leader = await cluster.leader()
            status = await cluster.status(leader)
            assert status is not None
            rss = {}
            for i, node in sorted(cluster.nodes.items(), key=lambda kv: kv[0] != leader):
                assert node.process is not None
                rss[i] = rss_mb(node.process.pid)
            data = cluster.nodes[leader].data_dir
            raft_db = sum(f.stat().st_size for f in data.glob("raftlog.db*") if f.is_file()) / 1e6
            records = sum(f.stat().st_size for f in data.glob("records.db*") if f.is_file()) / 1e6
            follower = next(i for i in cluster.nodes if i != leader)
            await cluster.stop(follower)
            started = time.monotonic()
            await cluster.start_node(follower, wait=False)

            async def ready(node: int = follower) -> bool:
                doc = await cluster.get(node, "/readyz", 1.0)
                return isinstance(doc, dict) and doc.get("ready") is True

            try:
                await wait_for(ready, 60, "", interval=0.01)
            except TimeoutError:
                node = cluster.nodes[follower]
                state = (
                    "running"
                    if node.running
                    else f"exited {node.process and node.process.returncode}"
                )
                raise RuntimeError(
                    f"the restarted follower {follower} ({state}) was not ready within 60 s; "
                    f"its status: {await cluster.status(follower)}; the leader's: "
                    f"{await cluster.status(leader)}; its last lines:\n"
                    + "\n".join(node.lines[-20:])
                ) from None
            ready_s = time.monotonic() - started
            await _caught_up(cluster, follower, status["commit"], 120)
            caught_s = time.monotonic() - started
            row = GrowthRow(
                entries=target,
                load_rate=rate,
                rss_mb=rss,
                raft_db_mb=raft_db,
                records_mb=records,
                snapshot_index=status["snapshot_index"],
                first_index=status["first_index"],
                restart_ready_s=ready_s,
                restart_caught_up_s=caught_s,
            )
            result.rows.append(row)
            say(result.table().splitlines()[-1])
    return result


@dataclass
class CatchUpRow:
    label: str
    entries: int
    seconds: float
    """From serving (the process started and listens) to caught up."""
    installed_snapshot: bool
    start_seconds: float = 0.0
    """From the process's start to serving (Python start-up, opening the data)."""

    @property
    def rate(self) -> float:
        return self.entries / self.seconds if self.seconds else float("nan")


async def run_catchup(entries: int, *, say: Callable[[str], None] = print) -> list[CatchUpRow]:
    rows: list[CatchUpRow] = []
    configs = [
        ("with snapshots (sent one)", ["--snapshot-entries", "10000", "--keep-entries", "5000"]),
        ("without snapshots (replays the log)", ["--snapshot-entries", str(10 * entries)]),
    ]
    for label, args in configs:
        async with LocalCluster(3, fast=True, node_args=args, log_level="info") as cluster:
            await cluster.start()
            leader = await cluster.leader()
            behind = next(i for i in cluster.nodes if i != leader)
            await cluster.stop(behind)
            say(f"bench: {label}: appending {entries:,} entries with node {behind} down ...")
            await append_load(cluster.nodes[leader].url + "/v1/log", 0, entries)
            status = await cluster.status(leader)
            assert status is not None
            started = time.monotonic()
            await cluster.start_node(behind, wait=True)  # returns once it serves
            serving = time.monotonic()
            await _caught_up(cluster, behind, status["commit"], 600)
            seconds = time.monotonic() - serving
            installed = any("Installed snapshot" in line for line in cluster.nodes[behind].lines)
            rows.append(CatchUpRow(label, entries, seconds, installed, serving - started))
            say(
                f"bench: {label}: {entries:,} entries in {seconds:.2f} s once serving "
                f"({rows[-1].rate:,.0f} entries/s; snapshot installed: {installed}; "
                f"{serving - started:.2f} s from the process's start to serving)"
            )
    return rows


def catchup_table(rows: list[CatchUpRow]) -> str:
    lines = [
        f"{'follower catch-up':<38} {'entries':>9} {'start s':>8} {'catch-up s':>10} "
        f"{'entries/s':>10}"
    ]
    for r in rows:
        lines.append(
            f"{r.label:<38} {r.entries:>9,} {r.start_seconds:>8.2f} {r.seconds:>10.2f} "
            f"{r.rate:>10,.0f}"
        )
    return "\n".join(lines)


async def run_transfer(rounds: int = 20, *, say: Callable[[str], None] = print) -> list[float]:
    """Leadership transfer: from the request to the new leader's first commit, in ms."""
    times: list[float] = []
    async with LocalCluster(3, fast=True, log_level="warning") as cluster:
        await cluster.start()
        async with aiohttp.ClientSession() as http:
            for k in range(rounds):
                leader = await cluster.leader()
                await cluster.append(leader, f"warm-{k}")
                target = next(i for i in sorted(cluster.nodes) if i != leader)
                started = time.perf_counter()
                async with http.post(
                    cluster.nodes[leader].url + "/v1/leader/transfer", json={"to": target}
                ) as resp:
                    doc = await resp.json()
                    if resp.status != 200:
                        raise RuntimeError(f"transfer refused: {doc}")
                while True:
                    async with http.post(
                        cluster.nodes[target].url + "/v1/log",
                        json={"data": f"after-{k}"},
                        headers={"X-Raftlog-Forwarded": "bench"},  # the new leader itself
                    ) as resp:
                        await resp.read()
                        if resp.status == 200:
                            break
                    await asyncio.sleep(0.001)
                times.append((time.perf_counter() - started) * 1000)
                say(f"bench: transfer {k + 1}: {leader} -> {target}: {times[-1]:.1f} ms")
    return times
