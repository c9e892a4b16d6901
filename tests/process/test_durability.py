"""Durability with real processes and real signals: nothing acknowledged is ever lost."""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
from procsupport import run

from raftlog.local.cluster import LocalCluster
from raftlog.testing.waiting import eventually_async
from scaffold import running_cluster


async def _log_with_indexes(cluster: LocalCluster, i: int) -> list[tuple[int, str]] | None:
    doc = await cluster.get(i, "/v1/log?consistency=local&limit=10000", timeout=10)
    if not isinstance(doc, dict):
        return None
    return [(e["index"], e["data"]) for e in doc["entries"]]


async def _converged(cluster: LocalCluster) -> list[tuple[int, str]]:
    async def logs() -> list[list[tuple[int, str]] | None]:
        return [await _log_with_indexes(cluster, i) for i in cluster.nodes]

    found = await eventually_async(
        logs,
        60,
        what="the nodes' logs to converge",
        until=lambda logs: logs[0] is not None and all(log == logs[0] for log in logs),
    )
    first = found[0]
    assert first is not None
    return first


async def _writer(
    cluster: LocalCluster, name: str, acked: dict[str, int], stop: asyncio.Event
) -> None:
    """Append unique values through every node in turn; remember what was acknowledged."""
    for n in itertools.count():
        if stop.is_set():
            return
        value = f"{name}-{n}"
        node = 1 + n % len(cluster.nodes)
        if not cluster.answers(node):
            await asyncio.sleep(0.02)  # never spin without yielding: the test must go on
            continue
        try:
            status, doc = await cluster.post(node, "/v1/log", {"data": value}, timeout=3)
        except (OSError, TimeoutError, ValueError, aiohttp.ClientError):
            await asyncio.sleep(0.02)
            continue
        if status == 200:
            acked[value] = doc["index"]
        else:
            await asyncio.sleep(0.02)


def _assert_all_acked_present(acked: dict[str, int], log: list[tuple[int, str]]) -> None:
    where = {value: index for index, value in log}
    values = [value for _index, value in log]
    assert len(values) == len(set(values)), "a value was applied twice"
    lost = {v: i for v, i in acked.items() if where.get(v) != i}
    assert not lost, f"acknowledged but lost or moved: {sorted(lost.items())[:10]}"


def test_kill_9_of_the_leader_under_a_stream_of_appends_loses_nothing_acknowledged() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            acked: dict[str, int] = {}
            stop = asyncio.Event()
            writers = [
                asyncio.create_task(_writer(cluster, f"w{k}", acked, stop)) for k in range(8)
            ]
            await eventually_async(
                lambda: len(acked), 30, what="100 appends acknowledged", until=lambda n: n >= 100
            )
            before_kill = len(acked)
            await cluster.kill(leader)
            new_leader = await cluster.leader(among=[i for i in cluster.nodes if i != leader])
            await eventually_async(
                lambda: len(acked) - before_kill,
                30,
                what="100 appends acknowledged after the kill",
                until=lambda n: n >= 100,
            )
            await cluster.start_node(leader)
            await eventually_async(
                lambda: len(acked) - before_kill,
                30,
                what="100 more appends acknowledged after the restart",
                until=lambda n: n >= 200,
            )
            stop.set()
            await asyncio.gather(*writers)
            log = await _converged(cluster)
            _assert_all_acked_present(acked, log)
            assert new_leader != leader
            assert len(acked) >= before_kill + 200

    run(main())


def test_kill_9_of_the_whole_cluster_keeps_every_acknowledged_entry() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            await cluster.leader()
            acked: dict[str, int] = {}
            stop = asyncio.Event()
            writers = [
                asyncio.create_task(_writer(cluster, f"w{k}", acked, stop)) for k in range(8)
            ]
            await eventually_async(
                lambda: len(acked), 30, what="300 appends acknowledged", until=lambda n: n >= 300
            )
            # Everyone dies at once, mid-stream.
            await asyncio.gather(*(cluster.kill(i) for i in cluster.node_ids()))
            stop.set()
            await asyncio.gather(*writers)
            await cluster.start()
            await cluster.leader()
            # A new leader commits its no-op, which commits what the old term left.
            await cluster.append(1, "after-restart")
            log = await _converged(cluster)
            _assert_all_acked_present(acked, log)
            assert log[-1][1] == "after-restart"

    run(main())


def test_a_follower_down_for_5000_appends_catches_up() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            follower = next(i for i in cluster.nodes if i != leader)
            await cluster.kill(follower)
            values = [f"e{n}" for n in range(5000)]
            queue: asyncio.Queue[str] = asyncio.Queue()
            for v in values:
                queue.put_nowait(v)

            async def worker() -> None:
                while not queue.empty():
                    value = queue.get_nowait()
                    await cluster.append(leader, value, timeout=10)

            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(32)))
            appended_s = time.monotonic() - started
            await cluster.start_node(follower)
            caught_up_from = time.monotonic()

            async def progress() -> tuple[int | None, int | None]:
                """(the follower's applied index, the leader's commit index)"""
                s_leader = await cluster.status(leader)
                s_follower = await cluster.status(follower)
                return (
                    s_follower["applied"] if s_follower else None,
                    s_leader["commit"] if s_leader else None,
                )

            await eventually_async(
                progress,
                60,
                what="the follower to catch up (its applied index, the leader's commit)",
                until=lambda seen: seen[0] is not None and seen[0] == seen[1] and seen[0] >= 5000,
            )
            catch_up_s = time.monotonic() - caught_up_from
            log = await _converged(cluster)
            assert sorted(v for _i, v in log) == sorted(values)
            print(f"5000 appends in {appended_s:.1f} s; follower caught up in {catch_up_s:.1f} s")

    run(main(), timeout=240)
