"""The client API in process: a one-node cluster behind aiohttp's test server."""

from __future__ import annotations

import asyncio
import io
import logging
import xmlrpc.client
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from apisupport import sse_events

from raftlog.api.http import MAX_READ_BYTES, ApiConfig, ClientApi
from raftlog.core.types import NodeId
from raftlog.server.eventlog import EventLog
from raftlog.server.node import RaftNode, ServerConfig
from raftlog.server.replicated_log import ReplicatedLog, append_command
from raftlog.server.timing import Timing
from raftlog.statemachine import BytesSnapshot
from raftlog.storage.memory import MemoryStorage
from raftlog.transport.memory import MemoryNetwork

TIMING = Timing(0.05, 0.1, 0.01, 0.005)


@asynccontextmanager
async def one_node(
    *, fault_injection: bool = False, sm: Any = None
) -> AsyncIterator[tuple[TestClient[Any, Any], RaftNode]]:
    net = MemoryNetwork()
    sm = sm if sm is not None else ReplicatedLog()
    config = ServerConfig(node_id=NodeId(1), voters=frozenset({NodeId(1)}), timing=TIMING, seed=1)
    node = RaftNode(
        config,
        MemoryStorage(),
        net.factory(NodeId(1)),
        sm,
        EventLog(NodeId(1), stream=io.StringIO(), level=logging.ERROR),
    )
    task = asyncio.create_task(node.run())
    api = ClientApi(
        node,
        ApiConfig(client_urls={NodeId(1): "http://127.0.0.1:1"}, fault_injection=fault_injection),
    )
    async with TestClient(TestServer(api.app())) as client:
        for _ in range(400):
            if node.is_leader:
                break
            await asyncio.sleep(0.01)
        assert node.is_leader
        try:
            yield client, node
        finally:
            node.stop()
            await task


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def test_append_then_read_back_with_index_and_term() -> None:
    async def main() -> None:
        async with one_node() as (client, _node):
            r = await client.post("/v1/log", json={"data": "SET 5"})
            assert r.status == 200
            first = await r.json()
            r = await client.post("/v1/log", json={"data": "AAEC", "encoding": "base64"})
            second = await r.json()
            assert second["index"] == first["index"] + 1 and second["term"] == first["term"]
            r = await client.get("/v1/log")
            doc = await r.json()
            assert [e["data"] for e in doc["entries"]] == ["SET 5", "\x00\x01\x02"]
            assert doc["consistency"] == "linearizable" and doc["next"] is None
            assert doc["commit"] >= second["index"]

    run(main)


def test_a_big_read_is_capped_and_says_where_to_continue() -> None:
    async def main() -> None:
        async with one_node() as (client, node):
            big = "x" * (MAX_READ_BYTES // 3 + 1)
            for _ in range(5):
                await node.propose(big.encode(), timeout=5)
            pages, start = [], 1
            while True:
                r = await client.get(f"/v1/log?from={start}&limit=100")
                doc = await r.json()
                pages.append(len(doc["entries"]))
                if doc["next"] is None:
                    break
                assert doc["next"] == doc["entries"][-1]["index"] + 1
                start = doc["next"]
            assert pages == [2, 2, 1]  # two entries of a third of the cap fit in one answer

    run(main)


def test_xmlrpc_as_the_lab_client_speaks_it() -> None:
    async def main() -> None:
        async with one_node() as (client, _node):
            body = xmlrpc.client.dumps(("SET 5",), "leader_receive_log")
            r = await client.post("/RPC2", data=body, headers={"Content-Type": "text/xml"})
            (result,), _ = xmlrpc.client.loads(await r.read())
            assert result is True
            r = await client.post("/", data=xmlrpc.client.dumps((), "is_leader"))
            (result,), _ = xmlrpc.client.loads(await r.read())
            assert result is True
            r = await client.post("/RPC2", data=xmlrpc.client.dumps((5,), "leader_receive_log"))
            assert r.status == 200 and b"bad arguments" in await r.read()

    run(main)


def test_bad_requests_get_json_errors_never_500() -> None:
    async def main() -> None:
        async with one_node() as (client, _node):
            for body in (
                b"",
                b"null",
                b"{",
                b'{"data": null}',
                b'{"data": "\\ud800"}',
                b"[" * 50_000,
            ):
                r = await client.post("/v1/log", data=body)
                assert r.status == 400, body[:20]
                assert "error" in await r.json()
            for query in ("from=0", "limit=-1", "limit=99999", "from=x", "consistency=eventual"):
                r = await client.get(f"/v1/log?{query}")
                assert r.status == 400, query
            r = await client.get("/v1/nope")
            assert r.status == 404 and "error" in await r.json()
            r = await client.put("/v1/log")
            assert r.status == 405 and "error" in await r.json()

    run(main)


def test_a_retried_append_with_the_same_client_and_seq_is_applied_once() -> None:
    async def main() -> None:
        async with one_node() as (client, _node):
            body = {"data": "SET 5", "client_id": "lab-client", "seq": 1}
            first = await (await client.post("/v1/log", json=body)).json()
            again = await (await client.post("/v1/log", json=body)).json()
            assert first["duplicate"] is False and again["duplicate"] is True
            assert (again["index"], again["term"]) == (first["index"], first["term"])
            nxt = await (await client.post("/v1/log", json={**body, "seq": 2})).json()
            assert nxt["index"] > first["index"] and nxt["duplicate"] is False
            stale = await client.post("/v1/log", json=body)
            assert stale.status == 409 and "stale request" in (await stale.json())["error"]
            log = await (await client.get("/v1/log")).json()
            assert [e["data"] for e in log["entries"]] == ["SET 5", "SET 5"]
            for bad in (
                {"data": "x", "seq": 1},
                {"data": "x", "client_id": "a", "seq": 0},
                {"data": "x", "client_id": "", "seq": 1},
                {"data": "x", "client_id": "a", "seq": True},
            ):
                r = await client.post("/v1/log", json=bad)
                assert r.status == 400, bad

    run(main)


def test_read_levels_lease_and_local_say_what_they_are() -> None:
    async def main() -> None:
        async with one_node() as (client, node):
            await node.propose(b"a", timeout=5)
            lease = await (await client.get("/v1/log?consistency=lease")).json()
            assert lease["consistency"] == "lease" and [e["data"] for e in lease["entries"]] == [
                "a"
            ]
            local = await (await client.get("/v1/log?consistency=local")).json()
            assert local["staleness"]["leader"] == 1
            assert local["staleness"]["applied"] == local["applied"] >= 1
            linear = await (await client.get("/v1/log")).json()
            assert "staleness" not in linear

    run(main)


def test_the_test_only_partition_endpoint_checks_its_input() -> None:
    async def main() -> None:
        async with one_node() as (client, _node):
            r = await client.post("/v1/admin/partition", json={"blocked": [2]})
            assert r.status in (404, 405)  # not served unless fault injection is enabled
        async with one_node(fault_injection=True) as (client, node):
            r = await client.post("/v1/admin/partition", json={"held": [2, 3]})
            assert r.status == 200 and await r.json() == {"blocked": [], "held": [2, 3]}
            r = await client.post("/v1/admin/partition", json={"blocked": [3]})
            assert await r.json() == {"blocked": [3], "held": [2, 3]}  # held left as it was
            assert node.held == {2, 3} and node.blocked == {3}
            for bad in ({}, {"held": "2"}, {"held": [0]}, {"held": [True]}, {"other": []}, [2]):
                r = await client.post("/v1/admin/partition", json=bad)
                assert r.status == 400, bad
                assert "expected" in (await r.json())["error"]
            assert node.held == {2, 3} and node.blocked == {3}  # nothing changed

    run(main)


def test_trim_drops_old_entries_and_reads_before_them_are_gone() -> None:
    async def main() -> None:
        async with one_node() as (client, _node):
            indexes = []
            for k in range(10):
                r = await client.post("/v1/log", json={"data": f"v{k}"})
                indexes.append((await r.json())["index"])
            r = await client.post("/v1/log/trim", json={"keep_last": 3})
            assert r.status == 200
            first = (await r.json())["first_index"]
            assert first == indexes[7]
            doc = await (await client.get("/v1/log")).json()  # no "from": the first kept
            assert [e["data"] for e in doc["entries"]] == ["v7", "v8", "v9"]
            assert doc["first_index"] == first
            r = await client.get(f"/v1/log?from={indexes[0]}")
            assert r.status == 410
            gone = await r.json()
            assert gone["first_index"] == first and f"before {first} were trimmed" in gone["error"]
            r = await client.post("/v1/log/trim", json={"before": indexes[9]})
            assert (await r.json())["first_index"] == indexes[9]
            r = await client.post("/v1/log/trim", json={"older_than_s": 0})
            assert r.status == 200  # everything is older than now: all of it goes
            assert (await (await client.get("/v1/log")).json())["entries"] == []
            for bad in (
                {},
                {"before": -1},
                {"keep_last": 1.5},
                {"x": 1},
                [1],
                {"before": 1, "keep_last": 2},
            ):
                r = await client.post("/v1/log/trim", json=bad)
                assert r.status == 400, bad

    run(main)


class Counter:
    """A state machine of a program's own behind the same client API."""

    def __init__(self) -> None:
        self.total = 0

    def apply(self, index: int, term: int, data: bytes) -> Any:
        if data == b"binary":
            return b"\xff\x00"
        self.total += int(data)
        return {"total": self.total, "index": index}

    def snapshot(self) -> BytesSnapshot:
        return BytesSnapshot(str(self.total).encode())

    def restore(self, source: Any) -> None:
        self.total = int(source.read())


def test_a_custom_state_machine_takes_commands_and_answers_with_its_results() -> None:
    async def main() -> None:
        async with one_node(sm=Counter()) as (client, _node):
            r = await client.post("/v1/log", json={"data": "5"})
            doc = await r.json()
            assert r.status == 200 and doc["result"] == {"total": 5, "index": doc["index"]}
            r = await client.post("/v1/log", json={"data": "37", "client_id": "c", "seq": 1})
            assert (await r.json())["result"]["total"] == 42
            r = await client.post("/v1/log", json={"data": "37", "client_id": "c", "seq": 1})
            again = await r.json()  # a retry: applied once, the first answer again
            assert again["duplicate"] is True and again["result"]["total"] == 42
            r = await client.post("/v1/log", json={"data": "binary"})
            assert (await r.json())["result"] == {"base64": "/wA="}
            r = await client.get("/v1/log")
            assert r.status == 404 and "not the replicated log" in (await r.json())["error"]

    run(main)


def test_membership_endpoints_change_one_node_at_a_time_and_say_why_not() -> None:
    async def main() -> None:
        async with one_node() as (client, node):
            r = await client.get("/v1/members")
            doc = await r.json()
            assert [(m["id"], m["role"]) for m in doc["members"]] == [(1, "voter")]
            assert doc["pending"] is False and doc["leader"] == 1
            r = await client.post(
                "/v1/members", json={"id": 2, "peer": "127.0.0.1:9", "client": "http://x:1"}
            )
            assert r.status == 200, await r.text()
            doc = await r.json()
            assert [(m["id"], m["role"], m["peer"]) for m in doc["members"]] == [
                (1, "voter", None),
                (2, "learner", "127.0.0.1:9"),
            ]
            # Node 2 does not exist: it never answers, so it is not promoted.
            r = await client.post("/v1/members/2/promote")
            refusal = await r.json()
            assert r.status == 409 and "has not caught up" in refusal["error"]
            assert refusal["retryable"] is False  # an operator's matter: said at once
            r = await client.post("/v1/members", json={"id": 2, "peer": "h:1"})
            assert r.status == 409 and "already a learner" in (await r.json())["error"]
            r = await client.delete("/v1/members/7")
            assert r.status == 409 and "unknown member 7" in (await r.json())["error"]
            r = await client.delete("/v1/members/2")
            assert r.status == 200
            assert [m["id"] for m in (await r.json())["members"]] == [1]
            for bad in ({}, {"id": 0, "peer": "h:1"}, {"id": 3, "peer": "nowhere"}, {"x": 1}):
                r = await client.post("/v1/members", json=bad)
                assert r.status == 400, bad
            r = await client.post("/v1/members/abc/promote")
            assert r.status == 400
            r = await client.post("/v1/leader/transfer", json={})
            assert r.status == 409 and "no other voter" in (await r.json())["error"]
            assert node.is_leader

    run(main)


def test_the_event_stream_starts_with_the_status_then_shows_what_happens() -> None:
    async def main() -> None:
        async with one_node() as (client, node):
            r = await client.get("/v1/events")
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            [(kind, status)] = await sse_events(r, 1)
            assert kind == "status" and status["state"] == "Leader" and status["id"] == 1
            await node.propose(append_command(b"SET 5"), timeout=5)
            seen: list[tuple[str, dict[str, Any]]] = []
            while not any(k == "EntryCommitted" for k, _d in seen):
                seen += await sse_events(r, 1)
            committed = next(d for k, d in seen if k == "EntryCommitted")
            assert committed["text"] == "Leader committed 'SET 5' (index 2)"
            assert committed["data"] == "SET 5" and committed["role"] == "Leader"
            assert ("ProposalReceived", "SET 5") in [(k, d.get("data")) for k, d in seen]
            r.close()
            # The reader gone, its subscription goes too (entry events off again).
            for _ in range(200):
                if not node._subscribers:
                    break
                await asyncio.sleep(0.01)
            assert not node._subscribers

    run(main)


def test_a_read_holds_no_record_above_the_applied_index_it_reports() -> None:
    """The records of a page are those through the applied index the answer reports (as
    after a restart, when the records file may hold more than the node has replayed)."""

    async def main() -> None:
        async with one_node() as (client, node):
            for text in (b"a", b"b", b"c"):
                await node.propose(append_command(text), timeout=5)
            last = node.applied
            node.applied = last - 1  # the records file is one record ahead of the node
            try:
                doc = await (await client.get("/v1/log?from=1&consistency=local")).json()
            finally:
                node.applied = last
            assert doc["applied"] == last - 1 and doc["staleness"]["applied"] == last - 1
            assert [e["data"] for e in doc["entries"]] == ["a", "b"]
            assert doc["next"] == last  # the record above is for the next page
            doc = await (await client.get("/v1/log?from=1&consistency=local")).json()
            assert [e["data"] for e in doc["entries"]] == ["a", "b", "c"]
            assert doc["applied"] == last and doc["next"] is None

    run(main)
