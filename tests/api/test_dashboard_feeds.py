"""What the dashboard reads and drives on a node, in process: step mode (a frozen clock,
messages held and delivered by hand), the election clock in the status, the event
stream's aggregation under load, a node's own log, the admin token, CORS."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from apisupport import sse_events

from raftlog.api import http
from raftlog.api.http import EVENTS_PER_WINDOW, EVENTS_WINDOW_S, ApiConfig, ClientApi
from raftlog.core.types import NodeId, Role
from raftlog.server.eventlog import EventLog
from raftlog.server.node import RaftNode, ServerConfig
from raftlog.server.replicated_log import ReplicatedLog, append_command
from raftlog.server.timing import Timing
from raftlog.storage.memory import MemoryStorage
from raftlog.testing.waiting import eventually_async
from raftlog.transport.memory import MemoryNetwork

# Loose enough that a leader keeps its place on a busy machine (three nodes share one
# event loop here).
TIMING = Timing(0.5, 1.0, 0.05, 0.01)
TOKEN = "s3cret-token"
OTHER = "http://127.0.0.1:2"
"""The origin of node 2's client URL in these clusters (see ``cluster``)."""
STRANGER = "http://evil.example"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Client = TestClient[Any, Any]


@asynccontextmanager
async def cluster(
    n: int, *, stepping: bool = False, admin_token: str | None = TOKEN
) -> AsyncIterator[list[tuple[Client, RaftNode]]]:
    """``n`` nodes on a memory network, each behind its own client API; with
    ``stepping``, in step mode from the start (nobody has ticked: no leader)."""
    net = MemoryNetwork()
    voters = frozenset(NodeId(i) for i in range(1, n + 1))
    urls = {NodeId(i): f"http://127.0.0.1:{i}" for i in range(1, n + 1)}
    out: list[tuple[Client, RaftNode]] = []
    tasks: list[asyncio.Task[None]] = []
    async with AsyncExitStack() as stack:
        for i in range(1, n + 1):
            node = RaftNode(
                ServerConfig(node_id=NodeId(i), voters=voters, timing=TIMING, seed=i),
                MemoryStorage(),
                net.factory(NodeId(i)),
                ReplicatedLog(),
                EventLog(NodeId(i), stream=io.StringIO(), level=logging.ERROR),
            )
            if stepping:
                node.set_stepping(True)
            tasks.append(asyncio.create_task(node.run()))
            api = ClientApi(node, ApiConfig(client_urls=urls, admin_token=admin_token))
            client = await stack.enter_async_context(TestClient(TestServer(api.app())))
            out.append((client, node))
        try:
            yield out
        finally:
            for _client, node in out:
                node.stop()
            await asyncio.gather(*tasks, return_exceptions=True)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


async def _json(client: Client, method: str, path: str, doc: Any = None) -> tuple[int, Any]:
    body = None if doc is None else json.dumps(doc)
    async with client.request(method, path, data=body, headers=AUTH) as r:
        return r.status, await r.json()


def test_step_mode_elects_a_leader_only_as_ticks_and_deliveries_are_given() -> None:
    """RaftScope's stepping on real nodes: nobody's clock moves by itself, every message
    waits at its receiver until delivered by hand, and delivering them elects a leader."""

    async def main() -> None:
        async with cluster(3, stepping=True) as nodes:
            (c1, n1), (c2, n2), (_c3, n3) = nodes
            # The clocks stand still: for longer than any election timeout nobody
            # campaigns (an absence can only be watched for a while), and no tick counted.
            await asyncio.sleep(2 * TIMING.election_max_s)
            assert all(n.role is Role.FOLLOWER and n.term == 0 for _c, n in nodes)
            status, doc = await _json(c1, "GET", "/v1/status")
            assert status == 200 and doc["clock"] == "step" and doc["held"] == []
            timeout, elapsed = doc["election_timeout"], doc["election_elapsed"]
            assert timeout >= TIMING.election_min_ticks and elapsed == 0
            # Tick node 1 to its election deadline: it asks the others (pre-vote first).
            status, doc = await _json(c1, "POST", "/v1/admin/tick", {"ticks": timeout})
            assert status == 200, doc

            await eventually_async(
                lambda: (n2.held_list(), n3.held_list()),
                20,
                what="node 1's requests held at nodes 2 and 3 (what each holds)",
                until=all,
            )
            # Deliver everything held, one message at a time, until node 1 leads.
            delivered = 0
            while n1.role is not Role.LEADER:
                progressed = False
                for client, node in nodes:
                    for held in node.held_list():
                        status, doc = await _json(
                            client,
                            "POST",
                            "/v1/admin/release",
                            {"id": held["id"], "action": "deliver"},
                        )
                        assert status == 200, doc
                        delivered += 1
                        progressed = True
                if not progressed:
                    await asyncio.sleep(0.01)
                assert delivered < 100, "no leader after 100 deliveries"
            assert n1.term >= 1 and n2.role is Role.FOLLOWER and n3.role is Role.FOLLOWER
            # Nobody else ticked: nodes 2 and 3 never campaigned.
            assert n2.term == n1.term and n3.term == n1.term
            # A message dropped by hand is gone; an unknown id is a clear 404.
            tick = {"ticks": TIMING.heartbeat_ticks}
            status, doc = await _json(c1, "POST", "/v1/admin/tick", tick)
            assert status == 200

            await eventually_async(
                n2.held_list, 20, what="the leader's heartbeat held at node 2 (what it holds)"
            )
            first = n2.held_list()[0]["id"]
            drop = {"id": first, "action": "drop"}
            status, doc = await _json(c2, "POST", "/v1/admin/release", drop)
            assert status == 200 and first not in [h["id"] for h in doc["held"]]
            status, doc = await _json(
                c1, "POST", "/v1/admin/release", {"id": 999_999, "action": "drop"}
            )
            assert status == 404 and doc["code"] == "not_found"
            # Back to real time: what is held is delivered and the clock runs.
            for client, _node in nodes:
                status, doc = await _json(client, "POST", "/v1/admin/clock", {"mode": "real"})
                assert status == 200 and doc["clock"] == "real" and doc["held"] == []
            await n1.propose(append_command(b"after"), timeout=10)

    run(main)


def test_ticks_need_step_mode_and_the_token() -> None:
    async def main() -> None:
        async with cluster(1) as [(client, node)]:
            await eventually_async(lambda: node.is_leader, 20, what="a leader")
            status, doc = await _json(client, "POST", "/v1/admin/tick", {"ticks": 1})
            assert status == 400 and "step mode" in doc["error"]
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                async with client.post(
                    "/v1/admin/clock", data='{"mode": "step"}', headers=headers
                ) as r:
                    assert r.status == 401
                    assert (await r.json())["code"] == "unauthorized"
            assert not node.stepping
            status, doc = await _json(client, "POST", "/v1/admin/clock", {"mode": "sideways"})
            assert status == 400 and doc["code"] == "bad_request"
            status, doc = await _json(client, "POST", "/v1/admin/tick", {"ticks": 0})
            assert status == 400

    run(main)


def test_admin_endpoints_do_not_exist_without_a_token_or_fault_injection() -> None:
    async def main() -> None:
        async with (
            cluster(1, admin_token=None) as [(client, _node)],
            client.post("/v1/admin/clock", data='{"mode": "step"}') as r,
        ):
            assert r.status == 404

    run(main)


def test_status_gives_the_election_clock_and_only_the_clusters_pages_may_read_it() -> None:
    async def main() -> None:
        async with cluster(3) as nodes:
            await eventually_async(lambda: any(n.is_leader for _c, n in nodes), 20, what="a leader")
            for client, node in nodes:
                async with client.get("/v1/status", headers={"Origin": OTHER}) as r:
                    # A page of another node of the cluster may read it; a stranger not.
                    assert r.headers["Access-Control-Allow-Origin"] == OTHER
                    doc = await r.json()
                async with client.get("/v1/status", headers={"Origin": STRANGER}) as r:
                    assert "Access-Control-Allow-Origin" not in r.headers
                    assert r.status == 200  # (the browser, not the node, keeps it away)
                assert doc["clock"] == "real" and doc["tick_s"] == TIMING.tick_s
                if node.is_leader:
                    assert doc["election_timeout"] == 0
                else:
                    assert TIMING.election_min_ticks <= doc["election_timeout"]
                    assert doc["election_timeout"] <= TIMING.election_max_ticks
                    assert 0 <= doc["election_elapsed"] < doc["election_timeout"]

    run(main)


def test_the_event_stream_counts_what_a_busy_window_would_flood() -> None:
    """Hundreds of appends at once: a reader gets at most EVENTS_PER_WINDOW per-entry and
    per-message events one by one in a window, and an Aggregate counting the rest."""

    async def main() -> None:
        async with cluster(3) as nodes:
            await eventually_async(lambda: any(n.is_leader for _c, n in nodes), 20, what="a leader")
            client, leader = next((c, n) for c, n in nodes if n.is_leader)
            r = await client.get("/v1/events")
            [(kind, _status)] = await sse_events(r, 1)
            assert kind == "status"
            outcomes = await asyncio.gather(
                *(leader.propose(append_command(f"e{k}".encode()), timeout=20) for k in range(600)),
                return_exceptions=True,  # a busy machine may cost the leader its place
            )
            assert any(not isinstance(o, BaseException) for o in outcomes)
            seen: list[tuple[str, dict[str, Any]]] = []
            while not any(k == "Aggregate" for k, _d in seen):
                seen += await sse_events(r, 1)
            aggregate = next(d for k, d in seen if k == "Aggregate")
            assert sum(aggregate["counts"].values()) > 0
            assert (
                "EntryCommitted" in aggregate["counts"] or "ProposalReceived" in aggregate["counts"]
            )
            bulk = {
                "Message",
                "HeartbeatSent",
                "EntryCommitted",
                "ProposalReceived",
                "EntriesAppended",
            }
            times = sorted(d["t"] for k, d in seen if k in bulk)
            assert times
            # Windows are EVENTS_WINDOW_S long, each with at most EVENTS_PER_WINDOW sent one
            # by one: any stretch that long overlaps two windows at most.
            for k, start in enumerate(times):
                within = sum(1 for t in times[k:] if t < start + EVENTS_WINDOW_S)
                assert within <= 2 * EVENTS_PER_WINDOW
            messages = [d for k, d in seen if k == "Message"]
            assert messages and all(m["src"] == int(leader.id) and "t" in m for m in messages)
            # (A leader that lost its place on a busy machine campaigns again.)
            allowed = {"append", "heartbeat", "snapshot", "timeout_now", "prevote", "vote"}
            assert {m["type"] for m in messages} <= allowed
            r.close()

    run(main)


def test_a_dashboard_stream_without_entry_events_costs_no_entry_events() -> None:
    async def main() -> None:
        async with cluster(1) as [(client, node)]:
            await eventually_async(lambda: node.is_leader, 20, what="a leader")
            r = await client.get("/v1/events?entries=0")
            await sse_events(r, 1)
            assert node._subscribers and not node._entry_subscribers
            assert not node._core.entry_events
            r.close()
            async with client.get("/v1/events?entries=maybe") as bad:
                assert bad.status == 400

    run(main)


def test_debug_log_shows_a_nodes_own_entries_with_their_terms() -> None:
    async def main() -> None:
        async with cluster(1) as [(client, node)]:
            await eventually_async(lambda: node.is_leader, 20, what="a leader")
            for text in ("SET 5", "ADD 1", "x" * 100):
                await node.propose(append_command(text.encode()), timeout=10)
            status, doc = await _json(client, "GET", "/v1/debug/log")
            assert status == 200
            assert doc["last_index"] == 4 and doc["commit"] == 4
            cells = doc["entries"]
            assert [c["index"] for c in cells] == [1, 2, 3, 4]
            assert cells[0]["kind"] == "noop" and {c["term"] for c in cells} == {node.term}
            assert [c["preview"] for c in cells[1:3]] == ["SET 5", "ADD 1"]
            assert len(cells[3]["preview"]) == 40 and cells[3]["preview"].endswith("…")
            status, doc = await _json(client, "GET", "/v1/debug/log?start=3&limit=1")
            assert [c["index"] for c in doc["entries"]] == [3]
            status, doc = await _json(client, "GET", "/v1/debug/log?limit=1001")
            assert status == 400 and doc["code"] == "bad_request"

    run(main)


def test_dashboard_files_are_served_by_name_only() -> None:
    async def main() -> None:
        async with cluster(1) as [(client, _node)]:
            for path in ("/dashboard/nope.js", "/dashboard/..%2Fpyproject.toml"):
                async with client.get(path) as r:
                    assert r.status == 404
                    assert (await r.json())["code"] == "not_found"

    run(main)


def test_a_node_in_step_mode_stops_when_told() -> None:
    async def main() -> None:
        async with cluster(1, stepping=True) as [(_client, node)]:
            node.stop()  # no tick will come to wake it: stopping must
            await eventually_async(lambda: node._stopped, 5, what="the node stopped")

    run(main)


def test_step_mode_leaves_no_lease_no_tick_burst_and_no_message_from_a_blocked_peer() -> None:
    async def main() -> None:
        async with cluster(3) as nodes:
            await eventually_async(lambda: any(n.is_leader for _c, n in nodes), 20, what="a leader")
            leader = next(n for _c, n in nodes if n.is_leader)
            follower = next(n for _c, n in nodes if not n.is_leader)
            await leader.propose(append_command(b"x"), timeout=10)
            # Promises counted before step mode do not count after it (either way).
            assert leader._acked
            leader.set_stepping(True)
            assert not leader._acked and not leader._lease_holds()
            leader.set_stepping(False)
            assert not leader._acked
            # Ticks asked for in step mode lapse when real time comes first: no burst.
            term = follower.term
            follower.set_stepping(True)
            follower.step_ticks(10 * TIMING.election_max_ticks)
            follower.set_stepping(False)
            await follower.status()  # the core task has handled the ticks by now
            assert follower.term == term and follower.role is Role.FOLLOWER
            # A message held from a peer that is then blocked is lost, not delivered.
            follower.set_stepping(True)

            await eventually_async(
                follower.held_list, 20, what="the leader's heartbeat held (what the follower holds)"
            )
            follower.block_peers({leader.id})
            stream = follower.subscribe(100)
            follower.set_stepping(False)
            assert follower.held_list() == []
            released = [e for e in _drain(stream) if type(e).__name__ == "MessageReleased"]
            assert released and all(e.action == "drop" for e in released)
            stream.close()
            follower.block_peers(set())

    run(main)


def _drain(stream: Any) -> list[Any]:
    out = []
    while not stream.queue.empty():
        out.append(stream.queue.get_nowait())
    return out


def test_an_allowed_origin_reads_appends_through_the_fast_path_too() -> None:
    async def main() -> None:
        async with cluster(1) as [(client, node)]:
            await eventually_async(lambda: node.is_leader, 20, what="a leader")
            body = json.dumps({"data": "from a page"})
            async with client.post("/v1/log", data=body, headers={"Origin": OTHER}) as r:
                assert r.status == 200, await r.text()
                assert r.headers.get("Access-Control-Allow-Origin") is None  # 1 node: no 2
            async with client.post(
                "/v1/log", data=body, headers={"Origin": "http://127.0.0.1:1"}
            ) as r:
                assert r.status == 200
                assert r.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:1"
                assert r.headers["Vary"] == "Origin"
            async with client.post("/v1/log", data=body, headers={"Origin": STRANGER}) as r:
                assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers

    run(main)


def test_a_reader_gone_in_a_quiet_time_is_noticed_and_readers_are_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Step mode: nothing happens, so only the keep-alive line finds the reader gone;
    and a node feeds at most MAX_EVENT_READERS readers."""
    monkeypatch.setattr(http, "KEEPALIVE_S", 0.3)
    monkeypatch.setattr(http, "MAX_EVENT_READERS", 1)

    async def main() -> None:
        async with cluster(1, stepping=True) as [(client, node)]:
            r = await client.get("/v1/events")
            [(kind, _status)] = await sse_events(r, 1)
            assert kind == "status" and len(node._subscribers) == 1
            async with client.get("/v1/events") as second:
                assert second.status == 503
                assert (await second.json())["code"] == "unavailable"
            r.close()

            await eventually_async(
                lambda: len(node._subscribers),
                10,
                what="the gone reader's subscription to end (subscribers)",
                until=lambda n: n == 0,
            )
            r = await client.get("/v1/events")  # its place is free again
            assert r.status == 200
            r.close()

    run(main)
