"""``GET /metrics``: three embedded nodes over real TCP, durable, each scraped over HTTP on
its client port (through the append fast path's hand-off to aiohttp), parsed with
prometheus_client's parser; and the pieces the node counts with."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

import raftlog
from raftlog.core.types import NodeId, Role
from raftlog.local.cluster import free_ports
from raftlog.server.metrics import Histogram, NodeMetrics
from raftlog.testing.metrics import SERVER_METRICS, Scrape, scrape
from raftlog.testing.waiting import eventually, eventually_async

DEADLINE_S = 30.0


def _configs(tmp_path: Path) -> list[raftlog.NodeConfig]:
    ports = free_ports(6)
    members = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(3)}
    return [
        raftlog.NodeConfig(
            id=i,
            members=members,
            data_dir=tmp_path / f"n{i}",
            client_port=ports[2 + i],
            client_urls={j: f"http://127.0.0.1:{ports[2 + j]}" for j in members},
        )
        for i in members
    ]


def test_three_nodes_are_scraped_and_their_metrics_are_sane(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = [raftlog.Node(c) for c in _configs(tmp_path)]
        for node in nodes:
            await node.start()
        # One connection per node, kept alive: a scrape after an append on the same
        # connection is handed from the fast path to aiohttp.
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=1))
        try:

            async def get(node: raftlog.Node) -> Scrape:
                url = f"http://127.0.0.1:{node.config.client_port}/metrics"
                async with session.get(url) as answer:
                    assert answer.status == 200
                    assert answer.headers["Content-Type"].startswith("text/plain")
                    return scrape(await answer.text())

            async def scrapes() -> list[Scrape]:
                return [await get(n) for n in nodes]

            async def one_leader() -> list[Scrape] | None:
                got = await scrapes()
                leaders = [s.value("raftlog_server_is_leader") for s in got]
                terms = {s.value("raftlog_server_term") for s in got}
                agreed = all(s.value("raftlog_server_has_leader") == 1 for s in got)
                return got if sorted(leaders) == [0, 0, 1] and len(terms) == 1 and agreed else None

            first = await eventually_async(
                one_leader, DEADLINE_S, what="one leader, one term, known to all"
            )
            for s in first:
                for name in SERVER_METRICS:
                    assert name in s.samples, name
                assert "process_cpu_seconds_total" in s.samples
                assert s.types["raftlog_server_proposals_committed"] == "counter"
                assert s.value("raftlog_server_leader_changes_seen_total") >= 1
            leader = next(n for n in nodes if n.is_leader)
            index = nodes.index(leader)
            committed = first[index].value("raftlog_server_proposals_committed_total")
            url = f"http://127.0.0.1:{leader.config.client_port}/v1/log"
            for k in range(20):
                async with session.post(url, json={"data": f"SET {k}"}) as answer:
                    assert answer.status == 200, await answer.text()
            after = await get(leader)  # the same connection the appends took
            assert after.value("raftlog_server_proposals_committed_total") >= committed + 20
            assert after.value("raftlog_server_commit_index") >= 20
            assert after.value("raftlog_server_proposal_commit_duration_seconds_count") >= 20
            assert after.value("raftlog_disk_wal_fsync_duration_seconds_count") > 0
            assert after.value("raftlog_server_proposals_failed_total") == 0
            followers = {int(n.id) for n in nodes if n is not leader}
            assert set(after.by_peer("raftlog_server_follower_lag_entries")) == followers
            assert set(after.by_peer("raftlog_network_peer_sent_failures_total")) == followers

            async def heartbeats_timed() -> bool:
                rtt = (await get(leader)).by_peer(
                    "raftlog_network_peer_round_trip_time_seconds_count"
                )
                return set(rtt) == followers and min(rtt.values()) > 0

            await eventually_async(
                heartbeats_timed, DEADLINE_S, what="heartbeat round trips to both followers"
            )

            async def followers_applied() -> bool:
                got = await scrapes()
                return all(
                    s.value("raftlog_server_applied_index")
                    >= after.value("raftlog_server_commit_index")
                    for s in got
                )

            await eventually_async(
                followers_applied, DEADLINE_S, what="the followers to apply every entry"
            )
            for s in await scrapes():
                if s.value("raftlog_server_is_leader") == 0:
                    assert s.by_peer("raftlog_server_follower_lag_entries") == {}
                    assert s.value("raftlog_server_proposals_applied_total") >= 20
        finally:
            await session.close()
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(main(), 90))


def test_a_proposal_that_times_out_is_counted_as_failed(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = [raftlog.Node(c) for c in _configs(tmp_path)]
        for node in nodes:
            await node.start()
        try:

            async def leader() -> raftlog.Node | None:
                return next((n for n in nodes if n.is_leader), None)

            chief = await eventually_async(leader, DEADLINE_S, what="a leader")
            await chief.apply(b"SET 1", timeout=DEADLINE_S)
            for node in nodes:
                if node is not chief:
                    await node.stop()
            with pytest.raises((raftlog.RequestTimeout, raftlog.NotLeader)):
                await chief.apply(b"SET 2", timeout=0.2)
            got = scrape(chief.metrics().decode())
            assert got.value("raftlog_server_proposals_failed_total") >= 1
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(main(), 90))


def test_the_exposition_check_can_fail() -> None:
    good = '# TYPE x histogram\nx_bucket{le="0.1"} 1\nx_bucket{le="+Inf"} 2\nx_count 2\nx_sum 0.3\n'
    assert scrape(good).value("x_count") == 2
    not_cumulative = good.replace('x_bucket{le="0.1"} 1', 'x_bucket{le="0.1"} 3')
    with pytest.raises(AssertionError, match="not cumulative"):
        scrape(not_cumulative)
    with pytest.raises(AssertionError, match="Inf"):
        scrape(good.replace("x_count 2", "x_count 5"))


def test_histograms_take_weighted_observations_into_cumulative_buckets() -> None:
    h = Histogram((0.001, 0.01))
    h.observe(0.0005, 3)
    h.observe(0.005)
    h.observe(5.0, 2)
    buckets, total = h.cumulative()
    assert buckets == [("0.001", 3), ("0.01", 4), ("+Inf", 6)]
    assert h.count == 6
    assert total == pytest.approx(0.0015 + 0.005 + 10.0)


def test_a_batch_is_observed_per_entry_as_the_commit_covers_it() -> None:
    m = NodeMetrics()
    m.leader_seen(NodeId(1), Role.LEADER)
    m.appended(5, 9)
    m.appended(10, 10)
    m.committed(4)
    assert m.commit_latency.count == 0
    m.committed(7)  # three of the first batch
    assert m.commit_latency.count == 3
    m.committed(10)
    assert m.commit_latency.count == 6
    m.appended(11, 12)
    m.leader_seen(NodeId(2), Role.FOLLOWER)  # deposed: its batches are forgotten
    m.committed(12)
    assert m.commit_latency.count == 6
    assert m.leader_changes == 2


def test_a_leader_change_is_a_new_leader_not_none() -> None:
    m = NodeMetrics()
    for leader in (1, 0, 1, 2, 2, 0, 3):
        m.leader_seen(NodeId(leader), Role.FOLLOWER)
    assert m.leader_changes == 4  # 1, 1 again after none, 2, 3


def test_round_trips_pair_a_heartbeat_with_its_answer() -> None:
    m = NodeMetrics()
    m.heartbeat_answered(NodeId(2))  # no heartbeat sent: nothing to time
    assert m.rtt == {}
    m.heartbeat_sent(NodeId(2))
    m.heartbeat_answered(NodeId(2))
    m.heartbeat_answered(NodeId(2))  # a duplicate answer times nothing
    assert m.rtt[NodeId(2)].count == 1


def test_a_blocking_node_gives_its_metrics_from_any_thread() -> None:
    port = free_ports(1)[0]
    with raftlog.BlockingNode(raftlog.NodeConfig(id=1, members={1: f"127.0.0.1:{port}"})) as node:
        eventually(lambda: node.is_leader, DEADLINE_S, what="the one node to elect itself")
        node.apply(b"SET 5", timeout=DEADLINE_S)
        got = scrape(node.metrics().decode())
    assert got.value("raftlog_server_is_leader") == 1
    assert got.value("raftlog_server_proposals_committed_total") >= 1
    assert got.value("raftlog_disk_wal_fsync_duration_seconds_count") == 0  # in memory
