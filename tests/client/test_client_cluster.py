"""The client against a real cluster of three node processes (fast timings)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from clientfakes import run

from raftlog.client import AsyncClient, BadRequest, Client, NoLeader
from raftlog.local.cluster import free_ports
from raftlog.testing.waiting import eventually_async
from scaffold import running_cluster


def test_round_trip_through_a_follower_only_seed_list() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            followers = [i for i in cluster.nodes if i != leader]
            seeds = [cluster.nodes[i].url.removeprefix("http://") for i in followers]
            async with AsyncClient(seeds, timeout=5, retry_for=20) as client:
                first = await client.append("SET 5")
                # learnt from /v1/nodes after the first answer
                assert client.known_leader == leader
                assert client.members == {i: n.url for i, n in cluster.nodes.items()}
                second = await client.append(b"\x00\x01\xff")
                assert second.index > first.index and second.term == first.term
                assert not first.duplicate and not second.duplicate

                page = await client.read()
                assert [(r.index, r.data) for r in page.entries] == [
                    (first.index, b"SET 5"),
                    (second.index, b"\x00\x01\xff"),
                ]
                assert page.node == leader and page.commit >= second.index
                assert page.next is None and page.staleness is None
                assert (await client.read(consistency="lease")).entries == page.entries
                assert await client.read_all(page=1) == page.entries
                assert await client.leader() == leader

                rows = await client.cluster_status()
                assert [r.id for r in rows] == [1, 2, 3] and all(r.reachable for r in rows)
                assert sorted(r.status.state for r in rows if r.status) == [
                    "Follower",
                    "Follower",
                    "Leader",
                ]

                with pytest.raises(BadRequest) as bad:
                    await client.read(limit=10**6)
                assert bad.value.status == 400 and "limit" in bad.value.message
                with pytest.raises(BadRequest, match="surrogate"):
                    await client.append("\ud800")  # a lone surrogate: not UTF-8

            async with AsyncClient([cluster.nodes[followers[0]].url]) as local_client:

                async def applied() -> list[bytes]:
                    page = await local_client.read(consistency="local")
                    return [e.data for e in page.entries]

                await eventually_async(
                    applied,
                    10,
                    what="the follower to apply both entries",
                    until=lambda data: len(data) == 2,
                )
                page = await local_client.read(consistency="local")
                assert page.node == followers[0] and page.staleness is not None
                assert page.staleness.leader == leader

    run(main())


def test_a_retried_append_after_the_leader_is_killed_is_applied_once() -> None:
    """The followers are paused, so the append cannot commit; the leader is killed with the
    entry in its log; the client retries with the same (client_id, seq) on the new leader.
    The entry may or may not have survived in a follower's log: either way it is in the
    log exactly once."""

    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            followers = [i for i in cluster.nodes if i != leader]
            urls = [n.url for n in cluster.nodes.values()]
            async with AsyncClient(urls, timeout=8, retry_for=40) as client:
                await client.append("warm-up")
                assert client.known_leader == leader  # so the append goes to it
                status = await cluster.status(leader)
                assert status is not None
                before = status["last_index"]

                for i in followers:
                    await cluster.pause(i)
                append = asyncio.create_task(client.append("ONCE"))

                async def last_index() -> int | None:
                    s = await cluster.status(leader)
                    return None if s is None else int(s["last_index"])

                await eventually_async(
                    last_index,
                    10,
                    what=f"the leader to take the append (its last index, was {before})",
                    until=lambda index: index is not None and index > before,
                )
                assert not append.done()
                seq = client.last_seq
                await cluster.kill(leader)
                for i in followers:
                    await cluster.resume(i)
                result = await asyncio.wait_for(append, 60)
                assert client.last_seq == seq  # retried, not a new append
                new_leader = await cluster.leader(among=followers)

                records = await client.read_all()
                assert [r.data for r in records].count(b"ONCE") == 1
                assert [r.index for r in records if r.data == b"ONCE"] == [result.index]

                # The same (client_id, seq) sent again by hand: the server answers the
                # original and appends nothing.
                status_code, doc = await cluster.post(
                    new_leader,
                    "/v1/log",
                    {"data": "ONCE", "client_id": client.client_id, "seq": seq},
                )
                assert status_code == 200
                assert doc == {"index": result.index, "term": result.term, "duplicate": True}
                # Through the other follower (forwarded), too.
                other = next(i for i in followers if i != new_leader)
                status_code, doc = await cluster.post(
                    other, "/v1/log", {"data": "ONCE", "client_id": client.client_id, "seq": seq}
                )
                assert status_code == 200 and doc["duplicate"] and doc["index"] == result.index
                records = await client.read_all()
                assert [r.data for r in records].count(b"ONCE") == 1
                # What the seq buys: the same data without it is a new entry.
                plain = await cluster.append(new_leader, "ONCE")
                assert plain["index"] > result.index
                records = await client.read_all()
                assert [r.data for r in records].count(b"ONCE") == 2

                async def applied() -> list[int | None]:
                    found = [await cluster.status(i) for i in followers]
                    return [None if s is None else int(s["applied"]) for s in found]

                await eventually_async(
                    applied,
                    10,
                    what=f"the survivors to apply up to {plain['index']} (their applied index)",
                    until=lambda found: all(i is not None and i >= plain["index"] for i in found),
                )
                for i in followers:  # once from the client, once by the plain append
                    log = await cluster.log(i)
                    assert log is not None and log.count("ONCE") == 2, (i, log)

    run(main(), timeout=120)


def test_the_blocking_client_from_threads_and_typed_errors_when_nodes_are_gone() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            down, up = (i for i in cluster.nodes if i != leader)
            await cluster.kill(down)
            not_a_node = f"127.0.0.1:{free_ports(1)[0]}"
            seeds = [not_a_node, cluster.nodes[down].url, cluster.nodes[up].url]

            def shared_by_threads() -> list[bytes]:
                with Client(seeds, timeout=5, retry_for=20) as client:

                    def worker(w: int) -> list[int]:
                        return [client.append(f"w{w}-{n}").index for n in range(5)]

                    with ThreadPoolExecutor(4) as pool:
                        indexes = [i for got in pool.map(worker, range(4)) for i in got]
                    assert len(set(indexes)) == 20
                    assert client.known_leader == leader
                    rows = client.cluster_status()
                    assert [r.reachable for r in rows] == [i != down for i in (1, 2, 3)]
                    return [r.data for r in client.read_all()]

            data = await asyncio.to_thread(shared_by_threads)
            assert sorted(data) == sorted(f"w{w}-{n}".encode() for w in range(4) for n in range(5))

            for i in cluster.nodes:
                await cluster.stop(i)

            def nobody_home() -> float:
                with Client(seeds, timeout=2, retry_for=1.0) as client:
                    began = time.monotonic()
                    with pytest.raises(NoLeader) as caught:
                        client.append("lost")
                    assert len(caught.value.errors) == 3
                    assert client.leader() is None
                    return time.monotonic() - began

            took = await asyncio.to_thread(nobody_home)
            assert 1.0 <= took < 10

    run(main(), timeout=120)
