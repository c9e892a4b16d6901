"""The client API's wire format (:mod:`raftlog.wire`): every body round-trips in the
shape the API has always had, requests are checked by their Structs, every failure class
answers with its code over HTTP, and the client decides by the code, not by the text."""

from __future__ import annotations

import ast
import asyncio
import io
import logging
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from test_http_api import Counter, one_node, run

from raftlog import wire
from raftlog.api.http import ApiConfig, ClientApi
from raftlog.client import (
    AsyncClient,
    BadRequest,
    ChangeRefused,
    NoLeader,
    StaleRequest,
)
from raftlog.client import OutcomeUnknown as ClientOutcomeUnknown
from raftlog.core.errors import ProposalDropped
from raftlog.core.types import NodeId
from raftlog.server.eventlog import EventLog
from raftlog.server.node import (
    LeadershipLost,
    NodeStopped,
    OutcomeUnknown,
    RaftNode,
    RequestTimeout,
    ServerConfig,
)
from raftlog.server.replicated_log import ReplicatedLog
from raftlog.server.timing import Timing
from raftlog.storage.memory import MemoryStorage
from raftlog.transport.memory import MemoryNetwork

PEER = wire.PeerStatus(
    id=2,
    match=7,
    next=8,
    state="Replicate",
    recent_active=True,
    inflight=0,
    learner=False,
    last_contact_s=0.01,
)
STATUS = wire.Status(
    id=1,
    state="Leader",
    term=3,
    leader=1,
    vote=1,
    commit=7,
    applied=7,
    last_index=7,
    last_term=3,
    first_index=1,
    snapshot_index=0,
    voters=[1, 2],
    learners=[],
    conf_index=0,
    client_url="http://127.0.0.1:1234",
    event_loop="asyncio",
    peers=[PEER],
)
ROWS = [
    wire.MemberRow(id=1, role="voter", peer=None, client="http://a:1"),
    wire.MemberRow(
        id=2, role="learner", peer="b:2", client=None, match=5, caught_up=2, active=True
    ),
]

SAMPLES: list[msgspec.Struct] = [
    wire.AppendRequest("SET 5"),
    wire.AppendRequest("AAEC", "base64", "client-1", 7),
    wire.AppendAnswer(3, 1),
    wire.AppendAnswer(3, 1, True, {"total": 5}),
    wire.Entry(1, 1, "x"),
    wire.Entry.of(2, 1, b"\xff\x00"),
    wire.Staleness(None, 3, 4, None),
    wire.ReadAnswer(1, "linearizable", 4, 4, 1, [wire.Entry(1, 1, "x")], None),
    wire.ReadAnswer(2, "local", 4, 3, 1, [], 5, wire.Staleness(1, 3, 4, 0.25)),
    wire.TrimRequest(before=5),
    wire.TrimRequest(keep_last=0),
    wire.TrimRequest(older_than_s=1.5),
    wire.TrimAnswer(5, 9, 2),
    PEER,
    STATUS,
    wire.NodeInfo(1, "http://a:1"),
    wire.NodesAnswer(None, [wire.NodeInfo(1, "http://a:1"), wire.NodeInfo(2, None)]),
    *ROWS,
    wire.MembersAnswer(1, 1, 3, 0, False, ROWS),
    wire.AddMemberRequest(2, "b:2", "http://b:1"),
    wire.AddMemberRequest(2, "b:2"),
    wire.ChangeAnswer(9, 3, ROWS),
    wire.TransferRequest(),
    wire.TransferRequest(2),
    wire.TransferAnswer(2, 12.5),
    wire.PartitionRequest(blocked=[2]),
    wire.PartitionRequest(blocked=[], held=[2, 3]),
    wire.PartitionAnswer([], [2]),
    wire.ClockRequest(mode="step"),
    wire.TickRequest(ticks=3),
    wire.ReleaseRequest(id=4, action="drop"),
    wire.StepAnswer(
        "step", [wire.HeldMessage(4, 2, 1, "vote", 3, {"last_log_index": 7, "transfer": False})]
    ),
    wire.HeldMessage(1, 1, 2, "heartbeat", 2, {"commit": 5, "context_bytes": 0}),
    wire.LogCell(3, 2, "normal", "SET 5"),
    wire.DebugLogAnswer(1, 3, 2, 0, [wire.LogCell(1, 1, "noop", "")]),
    wire.Liveness(True, 1),
    wire.Readiness(True, leader=1),
    wire.Readiness(False, reason="no known leader"),
    wire.Error("no leader", wire.NO_LEADER, leader=None),
    wire.Error("entries before 5 were trimmed", wire.TRIMMED, first_index=5),
    wire.Error("refused: not caught up", wire.REFUSED, retryable=False),
    wire.Error("bad", wire.BAD_REQUEST),
]


def _as_json(value: msgspec.Struct) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


# -- the Structs ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_every_body_round_trips(value: msgspec.Struct) -> None:
    encoded = msgspec.json.encode(value)
    assert msgspec.json.decode(encoded, type=type(value)) == value
    assert msgspec.convert(msgspec.json.decode(encoded), type(value)) == value


def test_every_struct_of_the_module_has_a_sample() -> None:
    structs = {
        v for v in vars(wire).values() if isinstance(v, type) and issubclass(v, msgspec.Struct)
    }
    assert structs == {type(v) for v in SAMPLES}


def test_the_json_shapes_are_the_apis() -> None:
    assert _as_json(wire.AppendRequest("x")) == {"data": "x"}
    assert _as_json(wire.AppendRequest.of(b"\x00", "c", 1)) == {
        "data": "AA==",
        "encoding": "base64",
        "client_id": "c",
        "seq": 1,
    }
    assert _as_json(wire.AppendAnswer(3, 1)) == {"index": 3, "term": 1, "duplicate": False}
    assert _as_json(wire.AppendAnswer(3, 1, False, None))["result"] is None  # a null result
    assert _as_json(wire.Entry.of(1, 1, b"x")) == {"index": 1, "term": 1, "data": "x"}
    assert _as_json(wire.Entry.of(1, 1, b"\xff"))["encoding"] == "base64"
    linear = _as_json(SAMPLES[7])
    assert "staleness" not in linear and linear["next"] is None
    assert _as_json(SAMPLES[8])["staleness"]["last_leader_contact_s"] == 0.25
    status = _as_json(msgspec.structs.replace(STATUS, leader=None, vote=None, peers=[]))
    assert status["leader"] is None and status["vote"] is None and status["event_loop"]
    assert _as_json(ROWS[0]) == {"id": 1, "role": "voter", "peer": None, "client": "http://a:1"}
    assert _as_json(wire.TransferRequest()) == {}
    assert _as_json(wire.Readiness(False, reason="r")) == {"ready": False, "reason": "r"}
    assert _as_json(wire.Readiness(True, leader=2)) == {"ready": True, "leader": 2}
    assert _as_json(wire.Error("no leader", wire.NO_LEADER, leader=None)) == {
        "error": "no leader",
        "code": "no_leader",
        "leader": None,  # said: no leader known
    }
    assert _as_json(wire.Error("x", wire.REFUSED, retryable=False)) == {
        "error": "x",
        "code": "refused",
        "retryable": False,
    }
    assert _as_json(wire.Error("x", wire.BAD_REQUEST)) == {"error": "x", "code": "bad_request"}


def test_every_code_has_one_status_and_one_class() -> None:
    codes = set(get_args(wire.ErrorCode))
    assert set(wire.HTTP_STATUS) == codes
    classes = [wire.NOT_DONE, wire.UNFINISHED, wire.FINAL, {wire.REFUSED}]
    assert set().union(*classes) == codes
    assert sum(len(c) for c in classes) == len(codes)  # no code in two classes
    assert all(400 <= s < 600 for s in wire.HTTP_STATUS.values())
    for code in codes:  # each code is documented in the module's table
        assert f"\n{code} " in wire.__doc__  # type: ignore[operator]


def test_the_wire_module_imports_only_the_standard_library_and_msgspec() -> None:
    path = Path(wire.__file__)
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            assert top == "msgspec" or top in sys.stdlib_module_names, name


REQUESTS: list[tuple[type[msgspec.Struct], dict[str, Any]]] = [
    (wire.AppendRequest, {"data": "x"}),
    (wire.TrimRequest, {"before": 1}),
    (wire.AddMemberRequest, {"id": 2, "peer": "b:2"}),
    (wire.TransferRequest, {}),
    (wire.PartitionRequest, {"held": []}),
]


@pytest.mark.parametrize("kind, valid", REQUESTS, ids=lambda v: getattr(v, "__name__", ""))
def test_requests_refuse_unknown_fields(kind: type[msgspec.Struct], valid: dict[str, Any]) -> None:
    msgspec.convert(valid, kind)
    with pytest.raises(msgspec.ValidationError, match="unknown field `zzz`"):
        msgspec.json.decode(msgspec.json.encode({**valid, "zzz": 1}), type=kind)


BAD_REQUESTS: list[tuple[type[msgspec.Struct], Any, str]] = [
    (wire.AppendRequest, {"data": 5}, "$.data"),
    (wire.AppendRequest, {}, "`data`"),
    (wire.AppendRequest, ["SET 5"], "Expected `object`"),
    (wire.AppendRequest, {"data": "x", "encoding": "rot13"}, "$.encoding"),
    (wire.AppendRequest, {"data": "x", "client_id": "a", "seq": 0}, "$.seq"),
    (wire.AppendRequest, {"data": "x", "client_id": "a", "seq": True}, "$.seq"),
    (wire.AppendRequest, {"data": "x", "client_id": "a", "seq": 1 << 63}, "$.seq"),
    (wire.AppendRequest, {"data": "x", "client_id": "", "seq": 1}, "$.client_id"),
    (wire.AppendRequest, {"data": "x", "client_id": "c" * 129, "seq": 1}, "$.client_id"),
    (wire.AppendRequest, {"data": "x", "client_id": 5, "seq": 1}, "$.client_id"),
    (wire.AppendRequest, {"data": "x", "seq": 1}, '"client_id" and "seq" go together'),
    (wire.AppendRequest, {"data": "x", "client_id": "a"}, '"client_id" and "seq" go together'),
    (wire.TrimRequest, {"before": -1}, "$.before"),
    (wire.TrimRequest, {"keep_last": 1.5}, "$.keep_last"),
    (wire.TrimRequest, {"older_than_s": "1"}, "$.older_than_s"),
    (wire.TrimRequest, {"older_than_s": -0.5}, "$.older_than_s"),
    (wire.TrimRequest, {}, '"before", "keep_last", "older_than_s"'),
    (wire.TrimRequest, {"before": 1, "keep_last": 2}, "exactly one"),
    (wire.AddMemberRequest, {"id": 0, "peer": "b:2"}, "$.id"),
    (wire.AddMemberRequest, {"id": True, "peer": "b:2"}, "$.id"),
    (wire.AddMemberRequest, {"id": 2}, "`peer`"),
    (wire.AddMemberRequest, {"id": 2, "peer": 5}, "$.peer"),
    (wire.AddMemberRequest, {"id": 2, "peer": ""}, "$.peer"),
    (wire.AddMemberRequest, {"id": 2, "peer": "b:2", "client": None}, "$.client"),
    (wire.TransferRequest, {"to": 0}, "$.to"),
    (wire.TransferRequest, {"to": "2"}, "$.to"),
    (wire.PartitionRequest, {"held": "2"}, "$.held"),
    (wire.PartitionRequest, {"held": [0]}, "$.held[0]"),
    (wire.PartitionRequest, {"blocked": [True]}, "$.blocked[0]"),
    (wire.PartitionRequest, {}, '"blocked" or "held"'),
]


@pytest.mark.parametrize("kind, body, named", BAD_REQUESTS)
def test_bad_requests_fail_naming_the_field(
    kind: type[msgspec.Struct], body: Any, named: str
) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(msgspec.json.encode(body), type=kind)
    assert named in str(caught.value)


def test_the_data_of_an_append_and_of_an_entry() -> None:
    assert wire.AppendRequest.of("é").payload() == "é".encode()
    assert wire.AppendRequest.of(bytearray(b"\x00\xff")).payload() == b"\x00\xff"
    with pytest.raises(TypeError):
        wire.AppendRequest.of(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base64"):
        wire.AppendRequest("!!", "base64").payload()
    assert wire.Entry.of(1, 1, b"\xff\x00").payload() == b"\xff\x00"
    assert wire.Entry.of(1, 1, b"text").payload() == b"text"


# -- the codes over HTTP -------------------------------------------------------------------


async def _error(response: Any) -> dict[str, Any]:
    """An error answer, checked against its Struct and its code's status."""
    doc: dict[str, Any] = await response.json()
    error = msgspec.convert(doc, wire.Error)
    assert response.status == wire.HTTP_STATUS[error.code], doc
    return doc


def test_the_failures_of_a_request_answer_with_their_codes() -> None:
    async def main() -> None:
        async with one_node() as (client, _node):
            r = await client.post("/v1/log", data=b"{")
            doc = await _error(r)
            assert doc["code"] == "bad_request" and "not valid JSON" in doc["error"]
            r = await client.post("/v1/log", json={"data": 5})
            doc = await _error(r)
            assert doc["code"] == "bad_request" and "$.data" in doc["error"]
            r = await client.post("/v1/log", json={"data": "!!", "encoding": "base64"})
            assert (await _error(r))["code"] == "bad_request"
            r = await client.post("/v1/log/trim", json={"before": 1, "keep_last": 2})
            doc = await _error(r)
            assert doc["code"] == "bad_request" and "exactly one" in doc["error"]
            r = await client.post("/v1/members", json={"id": 0, "peer": "h:1"})
            doc = await _error(r)
            assert doc["code"] == "bad_request" and "$.id" in doc["error"]
            r = await client.post("/v1/members", json={"id": 2, "peer": "nowhere"})
            doc = await _error(r)
            assert doc["code"] == "bad_request" and '"peer"' in doc["error"]
            r = await client.post("/v1/leader/transfer", json={"to": "x"})
            assert (await _error(r))["code"] == "bad_request"
            r = await client.post("/v1/members/abc/promote")
            assert (await _error(r))["code"] == "bad_request"
            r = await client.get("/v1/log?from=x")
            assert (await _error(r))["code"] == "bad_request"

            r = await client.get("/v1/nope")
            assert (await _error(r))["code"] == "not_found"
            r = await client.post("/v1/admin/partition", json={"blocked": [2]})
            assert (await _error(r))["code"] == "not_found"  # no fault injection here
            r = await client.put("/v1/log")
            assert (await _error(r))["code"] == "method_not_allowed"
            assert {"GET", "POST"} <= set(r.headers["Allow"].split(", "))
            r = await client.post("/v1/log", data=io.BytesIO(b"x" * (2 << 20)))
            doc = await _error(r)
            assert doc["code"] == "too_large" and "too large" in doc["error"]

            for k in range(4):
                await client.post("/v1/log", json={"data": f"v{k}"})
            first = (await (await client.post("/v1/log/trim", json={"keep_last": 1})).json())[
                "first_index"
            ]
            r = await client.get("/v1/log?from=1")
            doc = await _error(r)
            assert doc["code"] == "trimmed" and doc["first_index"] == first

            body = {"data": "x", "client_id": "c", "seq": 2}
            await client.post("/v1/log", json=body)
            r = await client.post("/v1/log", json={**body, "seq": 1})
            doc = await _error(r)
            assert doc["code"] == "stale_request" and "leader" not in doc

            await client.post("/v1/members", json={"id": 2, "peer": "127.0.0.1:9"})
            r = await client.post("/v1/members/2/promote")  # node 2 never catches up
            doc = await _error(r)
            assert doc["code"] == "refused" and doc["retryable"] is False
            r = await client.delete("/v1/members/7")
            assert (await _error(r))["code"] == "refused"
            r = await client.post("/v1/leader/transfer")
            assert (await _error(r))["code"] == "refused"

        async with one_node(sm=Counter()) as (client, _node):
            r = await client.get("/v1/log")
            assert (await _error(r))["code"] == "not_found"
            r = await client.post("/v1/log/trim", json={"before": 1})
            assert (await _error(r))["code"] == "not_found"

        async with one_node(fault_injection=True) as (client, _node):
            r = await client.post("/v1/admin/partition", json={"held": [0]})
            doc = await _error(r)
            assert doc["code"] == "bad_request" and "$.held[0]" in doc["error"]

    run(main)


async def _raise(exc: BaseException) -> Any:
    raise exc


NODE_FAILURES: list[tuple[str, BaseException, str, bool]] = [
    # (what fails, the exception, the code, whether the answer names the leader)
    ("propose", ProposalDropped("the inbox is full"), wire.DROPPED, True),
    ("propose", LeadershipLost("another entry took index 5"), wire.NOT_COMMITTED, True),
    ("propose", RequestTimeout("no commit within 10 s"), wire.OUTCOME_UNKNOWN, False),
    ("propose", OutcomeUnknown("stopped after accepting"), wire.OUTCOME_UNKNOWN, False),
    ("propose", NodeStopped("the node is stopping"), wire.STOPPING, False),
    ("propose", RuntimeError("a bug"), wire.INTERNAL, False),
    ("read_barrier", RequestTimeout("no quorum answered"), wire.TIMEOUT, False),
    ("read_barrier", NodeStopped("the node is stopping"), wire.STOPPING, False),
    ("status", TimeoutError(), wire.UNAVAILABLE, False),
]


@pytest.mark.parametrize(
    "method, exc, code, names_leader", NODE_FAILURES, ids=lambda v: getattr(v, "__name__", "")
)
def test_the_failures_of_the_node_answer_with_their_codes(
    method: str, exc: BaseException, code: str, names_leader: bool
) -> None:
    paths = {"propose": "/v1/log", "read_barrier": "/v1/log", "status": "/v1/status"}

    async def main() -> None:
        async with one_node() as (client, node):
            setattr(node, method, lambda *_a, **_k: _raise(exc))
            if method == "propose":
                r = await client.post(paths[method], json={"data": "x"})
            else:
                r = await client.get(paths[method])
            doc = await _error(r)
            assert doc["code"] == code
            assert ("leader" in doc) == names_leader
            if names_leader:
                assert doc["leader"] == 1

    run(main)


@asynccontextmanager
async def leaderless() -> AsyncIterator[TestClient[Any, Any]]:
    """Node 1 of two voters, node 2 never there: it never learns of a leader."""
    timing = Timing(0.05, 0.1, 0.01, 0.005)
    config = ServerConfig(
        node_id=NodeId(1), voters=frozenset({NodeId(1), NodeId(2)}), timing=timing, seed=1
    )
    node = RaftNode(
        config,
        MemoryStorage(),
        MemoryNetwork().factory(NodeId(1)),
        ReplicatedLog(),
        EventLog(NodeId(1), stream=io.StringIO(), level=logging.ERROR),
    )
    task = asyncio.create_task(node.run())
    api = ClientApi(node, ApiConfig(client_urls={NodeId(1): "http://127.0.0.1:1"}))
    try:
        async with TestClient(TestServer(api.app())) as client:
            yield client
    finally:
        node.stop()
        await task


def test_a_node_without_a_leader_says_no_leader() -> None:
    async def main() -> None:
        async with leaderless() as client:
            r = await client.post("/v1/log", json={"data": "x"})
            doc = await _error(r)
            assert doc == {"error": "no leader", "code": "no_leader", "leader": None}
            r = await client.get("/v1/log")  # linearizable: the leader's to serve
            assert (await _error(r))["code"] == "no_leader"
            r = await client.get("/readyz")
            assert r.status == 503 and await r.json() == {
                "ready": False,
                "reason": "no known leader",
            }
            r = await client.get("/v1/log?consistency=local")
            page = msgspec.json.decode(await r.read(), type=wire.ReadAnswer)
            assert page.staleness is not None and page.staleness.leader is None
            r = await client.get("/v1/status")
            status = msgspec.json.decode(await r.read(), type=wire.Status)
            assert status.leader is None and status.peers == []

    run(main)


def test_the_answers_of_a_node_decode_as_their_structs() -> None:
    async def main() -> None:
        async with one_node(fault_injection=True) as (client, _node):

            async def answer(kind: type[Any], r: Awaitable[Any]) -> Any:
                response = await r
                assert response.status == 200
                return msgspec.json.decode(await response.read(), type=kind)

            added = await answer(wire.AppendAnswer, client.post("/v1/log", json={"data": "a"}))
            assert added.result is msgspec.UNSET  # the replicated log has no result
            page = await answer(wire.ReadAnswer, client.get("/v1/log"))
            assert [e.payload() for e in page.entries] == [b"a"]
            await answer(wire.Status, client.get("/v1/status"))
            nodes = await answer(wire.NodesAnswer, client.get("/v1/nodes"))
            assert nodes.leader == 1 and nodes.nodes[0].client_url == "http://127.0.0.1:1"
            await answer(wire.MembersAnswer, client.get("/v1/members"))
            change = await answer(
                wire.ChangeAnswer, client.post("/v1/members", json={"id": 2, "peer": "h:1"})
            )
            assert [m.role for m in change.members] == ["voter", "learner"]
            await answer(wire.ChangeAnswer, client.delete("/v1/members/2"))
            moved = await answer(
                wire.TransferAnswer, client.post("/v1/leader/transfer", json={"to": 1})
            )
            assert moved == wire.TransferAnswer(1, 0.0)
            trimmed = await answer(wire.TrimAnswer, client.post("/v1/log/trim", json={"before": 1}))
            assert trimmed.first_index == 1
            await answer(
                wire.PartitionAnswer, client.post("/v1/admin/partition", json={"held": []})
            )
            assert await answer(wire.Liveness, client.get("/livez")) == wire.Liveness(True, 1)
            ready = await answer(wire.Readiness, client.get("/readyz"))
            assert ready == wire.Readiness(True, leader=1)

    run(main)


# -- the client goes by the code -----------------------------------------------------------

Answer = tuple[int, Any]


@asynccontextmanager
async def scripted(*answers: Answer) -> AsyncIterator[tuple[str, list[Any]]]:
    """A fake node answering ``POST``s with ``answers`` in turn (the last repeats); its URL
    and the bodies it was sent."""
    queue = list(answers)
    posts: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/v1/nodes":
            return web.json_response({"leader": None, "nodes": []})
        posts.append(await request.json())
        status, doc = queue.pop(0) if len(queue) > 1 else queue[0]
        return web.json_response(doc, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), posts
    finally:
        await server.close()


def _client(url: str, retry_for: float = 10) -> AsyncClient:
    client = AsyncClient([url], timeout=5, retry_for=retry_for)

    async def no_pause(_seconds: float) -> None:
        await asyncio.sleep(0)

    client._sleep = no_pause  # type: ignore[method-assign]
    return client


OK: Answer = (200, {"index": 4, "term": 2, "duplicate": False})


def test_a_409_is_told_by_its_code_not_its_text() -> None:
    async def main() -> None:
        stale = (409, {"error": "refused: some words of another kind", "code": "stale_request"})
        async with scripted(stale) as (url, posts), _client(url) as client:
            with pytest.raises(StaleRequest) as caught:
                await client.append("x")
            assert caught.value.message == "refused: some words of another kind"
            assert len(posts) == 1  # final: not retried

        lost = (409, {"error": "stale request: just words", "code": "not_committed"})
        async with scripted(lost, OK) as (url, posts), _client(url) as client:
            assert (await client.append("x")).index == 4  # retried, not StaleRequest
            assert [p["seq"] for p in posts] == [1, 1]

        refused = (409, {"error": "stale request: words", "code": "refused"})
        async with scripted(refused) as (url, posts), _client(url) as client:
            with pytest.raises(ChangeRefused):
                await client.add_member(2, "h:1")
            assert len(posts) == 1

        passing = (409, {"error": "words", "code": "refused", "retryable": True})
        change = (200, {"index": 5, "term": 2, "members": []})
        async with scripted(passing, change) as (url, posts), _client(url) as client:
            assert (await client.add_member(2, "h:1"))["index"] == 5
            assert len(posts) == 2

    run(main)


def test_codes_decide_retries_and_answers_without_a_code_go_by_status() -> None:
    async def main() -> None:
        unknown = (504, {"error": "words", "code": "outcome_unknown"})
        bad = (400, {"error": "no good", "code": "bad_request"})
        async with scripted(unknown, OK) as (url, posts), _client(url) as client:
            assert (await client.append("x")).index == 4
            assert len(posts) == 2
        async with scripted(bad) as (url, posts), _client(url) as client:
            with pytest.raises(BadRequest) as caught:
                await client.append("x")
            assert caught.value.status == 400 and caught.value.message == "no good"
            assert caught.value.doc == bad[1] and len(posts) == 1

        no_code = (409, {"error": "stale request: client 'c' is at seq 9, not 1"})
        async with scripted(no_code) as (url, posts), _client(url, retry_for=0.3) as client:
            with pytest.raises(NoLeader):  # a 409 of no known code: retried, not stale
                await client.append("x")
            assert len(posts) > 1
        strange = (418, {"error": "a teapot", "code": "some_code_of_the_future"})
        async with scripted(strange) as (url, _posts), _client(url) as client:
            with pytest.raises(BadRequest, match="teapot"):
                await client.append("x")

    run(main)


def test_a_malformed_answer_is_retried() -> None:
    async def main() -> None:
        malformed = (200, {"index": "four", "term": 2})
        async with scripted(malformed, OK) as (url, posts), _client(url) as client:
            assert (await client.append("x")).index == 4
            assert len(posts) == 2 and posts[0]["seq"] == posts[1]["seq"]
        async with scripted(malformed) as (url, _posts), _client(url, retry_for=0.3) as client:
            with pytest.raises(ClientOutcomeUnknown, match="malformed answer"):
                await client.append("x")

    run(main)
