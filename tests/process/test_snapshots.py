"""Snapshots and compaction on real processes: many appends with a small snapshot
threshold; the Raft log on disk stays bounded; a follower that was down for all of it
catches up by snapshot to the leader's exact state; a restart is as quick at the end as
at the start.

The default suite appends ``RAFTLOG_SNAPSHOT_APPENDS`` (30,000) entries; ``make soak``
runs the same test with 200,000.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

import aiohttp
from procsupport import run

from raftlog.local.cluster import LocalCluster
from raftlog.testing.waiting import eventually_async

APPENDS = int(os.environ.get("RAFTLOG_SNAPSHOT_APPENDS", "30000"))
SNAPSHOT_ENTRIES = 2000
KEEP_ENTRIES = 500
CLIENTS = 64


async def _append_many(url: str, count: int) -> None:
    """``count`` appends through ``CLIENTS`` concurrent connections to the leader."""
    next_value = iter(range(count))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as http:

        async def client() -> None:
            for k in next_value:
                for _attempt in range(50):
                    async with http.post(url, json={"data": f"v{k}"}) as resp:
                        if resp.status == 200:
                            break
                        await resp.read()
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"append v{k} kept failing")

        await asyncio.gather(*(client() for _ in range(CLIENTS)))


async def _all_records(cluster: LocalCluster, node: int) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    start = 1
    while True:
        doc = await cluster.get(node, f"/v1/log?consistency=local&from={start}&limit=10000", 30)
        assert isinstance(doc, dict), doc
        out += [(e["index"], e["data"]) for e in doc["entries"]]
        if doc["next"] is None:
            return out
        start = doc["next"]


def _log_rows(db: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (rows,) = conn.execute("SELECT COUNT(*) FROM log").fetchone()
        return int(rows)
    finally:
        conn.close()


async def _time_to_serve(cluster: LocalCluster, node: int) -> float:
    started = time.monotonic()
    await cluster.start_node(node, wait=False)

    await eventually_async(
        lambda: cluster.get(node, "/readyz", 1.0),
        60,
        what=f"node {node} to be ready (/readyz)",
        until=lambda doc: isinstance(doc, dict) and doc.get("ready") is True,
    )
    return time.monotonic() - started


def test_a_follower_down_for_every_append_catches_up_by_snapshot() -> None:
    async def main() -> None:
        args = ["--snapshot-entries", str(SNAPSHOT_ENTRIES), "--keep-entries", str(KEEP_ENTRIES)]
        async with LocalCluster(3, fast=True, node_args=args, log_level="info") as cluster:
            for i in cluster.nodes:
                await cluster.start_node(i)
            leader = await cluster.leader()
            down = next(i for i in cluster.nodes if i != leader)
            other = next(i for i in cluster.nodes if i not in (leader, down))
            # A fresh node's time to serve, for comparison at the end.
            await cluster.stop(other)
            fresh_s = await _time_to_serve(cluster, other)
            await cluster.stop(down)
            leader = await cluster.leader(among=[leader, other])
            await _append_many(cluster.nodes[leader].url + "/v1/log", APPENDS)
            status = await cluster.status(leader)
            assert status is not None
            assert status["snapshot_index"] >= APPENDS - SNAPSHOT_ENTRIES
            # The Raft log is compacted: a bounded number of entries stays, whatever
            # the history.
            assert (
                status["last_index"] - status["first_index"] < 2 * SNAPSHOT_ENTRIES + KEEP_ENTRIES
            )
            for i in (leader, other):
                db = str(cluster.nodes[i].data_dir / "raftlog.db")
                assert _log_rows(db) < 2 * SNAPSHOT_ENTRIES + KEEP_ENTRIES, i
            # The follower that missed everything comes back and gets a snapshot.
            await cluster.start_node(down)
            target = status["commit"]

            async def applied() -> int | None:
                s = await cluster.status(down)
                return None if s is None else int(s["applied"])

            await eventually_async(
                applied,
                120,
                what=f"node {down} to catch up to {target} (its applied index)",
                until=lambda index: index is not None and index >= target,
            )
            # Its output is read a little after it is written.
            await eventually_async(
                lambda: list(cluster.nodes[down].lines),
                30,
                what=f"node {down} to have caught up by a snapshot (its lines)",
                until=lambda lines: any("Installed snapshot" in line for line in lines),
            )
            leader_records = await _all_records(cluster, leader)
            assert len(leader_records) == APPENDS
            assert sorted(int(d[1:]) for _i, d in leader_records) == list(range(APPENDS))
            assert await _all_records(cluster, down) == leader_records
            # A restart at the end is as quick as a fresh node's start.
            await cluster.stop(other)
            restart_s = await _time_to_serve(cluster, other)
            print(f"fresh start {fresh_s:.2f} s, restart after {APPENDS} appends {restart_s:.2f} s")
            assert restart_s < max(2.0, 2 * fresh_s), (fresh_s, restart_s)

    run(main(), timeout=900)
