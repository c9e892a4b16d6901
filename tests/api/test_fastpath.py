"""The append fast path on a real socket: plain appends on the leader are answered by
raftlog's own protocol (``Server: raftlog``); everything else — other endpoints, bad
bodies, chunked bodies, a follower — is handed to aiohttp with nothing lost, in order."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from raftlog.api import fastpath
from raftlog.api.fastpath import ClientServer, FastPathProtocol
from raftlog.api.http import ApiConfig, ClientApi
from raftlog.core.types import NodeId
from raftlog.local.cluster import free_ports
from raftlog.server.eventlog import EventLog
from raftlog.server.eventloop import loop_factory
from raftlog.server.node import RaftNode, ServerConfig
from raftlog.server.replicated_log import ReplicatedLog
from raftlog.server.timing import Timing
from raftlog.storage.memory import MemoryStorage
from raftlog.transport.memory import MemoryNetwork

TIMING = Timing(0.05, 0.1, 0.01, 0.005)


@asynccontextmanager
async def serving(*, leader: bool = True, max_body: int = 1 << 20) -> AsyncIterator[int]:
    """A node behind ClientServer on a free port; ``leader=False``: a node of a two-voter
    cluster whose other voter does not exist (it never leads)."""
    net = MemoryNetwork()
    voters = frozenset({NodeId(1)}) if leader else frozenset({NodeId(1), NodeId(2)})
    config = ServerConfig(node_id=NodeId(1), voters=voters, timing=TIMING, seed=1)
    node = RaftNode(
        config,
        MemoryStorage(),
        net.factory(NodeId(1)),
        ReplicatedLog(),
        EventLog(NodeId(1), stream=io.StringIO(), level=logging.ERROR),
    )
    task = asyncio.create_task(node.run())
    [port] = free_ports(1)
    api = ClientApi(
        node,
        ApiConfig(client_urls={NodeId(1): f"http://127.0.0.1:{port}"}, max_body=max_body),
    )
    server = ClientServer(api, api.app(), max_body)
    await server.start("127.0.0.1", port)
    try:
        for _ in range(400):
            if node.is_leader or not leader:
                break
            await asyncio.sleep(0.01)
        assert node.is_leader == leader
        yield port
    finally:
        await server.close()
        node.stop()
        await task


LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    """Every test on both event loops (uvloop's transports are not asyncio's classes)."""
    choice: str = request.param
    return choice


def run(test: Callable[[], Awaitable[None]], loop: str) -> None:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(asyncio.wait_for(test(), 30))


def post(body: bytes, *, headers: str = "", path: str = "/v1/log") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, json.loads(body)


def fast(headers: dict[str, str]) -> bool:
    return headers.get("server") == "raftlog"


def test_appends_on_one_connection_are_answered_by_the_fast_path(loop: str) -> None:
    async def main() -> None:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            indexes = []
            for n in range(5):
                writer.write(post(json.dumps({"data": f"SET {n}"}).encode()))
                status, headers, doc = await read_answer(reader)
                assert status == 200 and fast(headers), headers
                assert headers["content-type"].startswith("application/json")
                assert doc["duplicate"] is False and doc["term"] >= 1
                indexes.append(doc["index"])
            assert indexes == list(range(indexes[0], indexes[0] + 5))
            writer.close()

    run(main, loop)


def test_pipelined_requests_are_answered_in_order_across_the_hand_over(loop: str) -> None:
    async def main() -> None:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                post(b'{"data": "a"}')
                + post(b'{"data": "b"}')
                + b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n"
                + post(b'{"data": "c"}')
            )
            answers = [await read_answer(reader) for _ in range(4)]
            assert [s for s, _h, _d in answers] == [200] * 4
            assert [fast(h) for _s, h, _d in answers] == [True, True, False, False]
            a, b, status, c = (d for _s, _h, d in answers)
            assert b["index"] == a["index"] + 1 and c["index"] == b["index"] + 1
            assert status["state"] == "Leader" and status["commit"] >= b["index"]
            writer.close()

    run(main, loop)


def test_a_request_arriving_byte_by_byte_is_served(loop: str) -> None:
    async def main() -> None:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for byte in post(b'{"data": "slowly"}'):
                writer.write(bytes([byte]))
                await writer.drain()
            status, headers, doc = await read_answer(reader)
            assert status == 200 and fast(headers) and doc["index"] >= 1
            writer.close()

    run(main, loop)


def test_what_the_fast_path_does_not_serve_aiohttp_answers_as_before(loop: str) -> None:
    async def main() -> None:
        async with serving(max_body=1000) as port:
            cases: list[tuple[bytes, int, str | None]] = [
                (post(b'{"data": 5}'), 400, "bad_request"),
                (post(b"not json"), 400, "bad_request"),
                (post(b'{"data": "x", "extra": 1}'), 400, "bad_request"),
                (post(b'{"data": "' + b"x" * 2000 + b'"}'), 413, "too_large"),
                (post(b'{"data": "x"}', path="/v1/nope"), 404, "not_found"),
                (post(b'{"data": "x"}', headers="Connection: close\r\n"), 200, None),
            ]
            for request, want, code in cases:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                status, headers, doc = await read_answer(reader)
                assert (status, fast(headers)) == (want, False), (request[:60], status, doc)
                if code is not None:
                    assert doc["code"] == code
                writer.close()
            # A chunked body: aiohttp reassembles it, and the append happens.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = b'{"data": "chunked"}'
            writer.write(
                b"POST /v1/log HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{len(body):x}\r\n".encode()
                + body
                + b"\r\n0\r\n\r\n"
            )
            status, headers, doc = await read_answer(reader)
            assert status == 200 and not fast(headers) and doc["index"] >= 1
            writer.close()

    run(main, loop)


def test_an_append_from_a_web_page_is_handed_over_for_cors(loop: str) -> None:
    """A browser's request carries Origin: aiohttp answers it, with the CORS header for
    the cluster's own pages (here the node's own origin) and without it for others."""

    async def main() -> None:
        async with serving() as port:
            own = f"http://127.0.0.1:{port}"
            for origin, allowed in ((own, True), ("http://evil.example", False)):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(post(b'{"data": "x"}', headers=f"Origin: {origin}\r\n"))
                status, headers, doc = await read_answer(reader)
                assert status == 200 and not fast(headers) and doc["index"] >= 1
                assert headers.get("access-control-allow-origin") == (origin if allowed else None)
                writer.close()

    run(main, loop)


def test_a_follower_hands_appends_to_aiohttp_which_says_there_is_no_leader(loop: str) -> None:
    async def main() -> None:
        async with serving(leader=False) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(post(b'{"data": "x"}'))
            status, headers, doc = await read_answer(reader)
            assert status == 503 and not fast(headers) and doc["code"] == "no_leader"
            writer.close()

    run(main, loop)


def test_a_proposal_error_is_answered_by_the_fast_path_with_its_code(loop: str) -> None:
    async def main() -> None:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(post(b'{"data": "x", "client_id": "c1", "seq": 2}'))
            assert (await read_answer(reader))[0] == 200
            writer.write(post(b'{"data": "x", "client_id": "c1", "seq": 2}'))
            status, headers, doc = await read_answer(reader)
            assert status == 200 and fast(headers) and doc["duplicate"] is True
            writer.write(post(b'{"data": "y", "client_id": "c1", "seq": 1}'))
            status, headers, doc = await read_answer(reader)
            assert status == 409 and fast(headers) and doc["code"] == "stale_request"
            writer.close()

    run(main, loop)


def test_a_client_gone_before_its_answer_leaves_the_node_serving(loop: str) -> None:
    async def main() -> None:
        async with serving() as port:
            for _ in range(20):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(post(b'{"data": "abandoned"}'))
                await writer.drain()
                writer.transport.abort()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(post(b'{"data": "after"}'))
            status, headers, _doc = await read_answer(reader)
            assert status == 200 and fast(headers)
            writer.close()

    run(main, loop)


# -- flow control and failures, with a fake transport and a fake API ------------------


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.reading = True
        self.protocol: Any = None
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        assert self.reading
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading
        self.reading = True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def close(self) -> None:
        self.closed = True


class FakeApi:
    def __init__(self, loop: asyncio.AbstractEventLoop, *, answer_raises: bool = False) -> None:
        self.loop = loop
        self.proposals: list[asyncio.Future[Any]] = []
        self.answer_raises = answer_raises

    def fast_append(self, body: bytes, authorization: bytes | None) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self.proposals.append(future)
        return future

    def fast_answer(self, proposal: asyncio.Future[Any]) -> tuple[int, bytes]:
        if self.answer_raises:
            raise RecursionError("a bug")
        return 200, b'{"n":%d}' % proposal.result()


class Slow(asyncio.Protocol):
    """Stands in for aiohttp's protocol: records what it was handed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.write_paused = False

    def data_received(self, data: bytes) -> None:
        self.data += data

    def pause_writing(self) -> None:
        self.write_paused = True


def _protocol(
    api: FakeApi, slow: list[Slow], max_body: int = 1 << 20
) -> tuple[FastPathProtocol, FakeTransport]:
    def make() -> Slow:
        slow.append(Slow())
        return slow[-1]

    protocol = FastPathProtocol(api, make, set(), max_body)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def _hand_back(proposal: asyncio.Future[Any]) -> tuple[int, bytes]:
    raise fastpath.Handoff


def _settle(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_reading_pauses_while_busy_and_resumes_for_an_incomplete_big_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastpath, "PAUSE_ABOVE", 1000)
    loop = asyncio.new_event_loop()
    try:
        api = FakeApi(loop)
        protocol, transport = _protocol(api, [])
        big = post(b'{"data": "' + b"x" * 3000 + b'"}')
        protocol.data_received(post(b'{"data": "a"}') + big[:1500])  # #2 incomplete
        assert len(api.proposals) == 1 and not transport.reading  # busy, 1500 buffered
        api.proposals[0].set_result(1)
        _settle(loop)
        # #1 answered; #2 is not all there: the connection must read on (it once hung).
        assert transport.written.startswith(b"HTTP/1.1 200 OK") and transport.reading
        protocol.data_received(big[1500:])
        assert len(api.proposals) == 2
    finally:
        loop.close()


def test_no_new_request_is_served_while_the_client_does_not_read_its_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastpath, "PAUSE_ABOVE", 1000)
    loop = asyncio.new_event_loop()
    try:
        api = FakeApi(loop)
        protocol, transport = _protocol(api, [])
        protocol.pause_writing()  # the client's answers are piling up
        protocol.data_received(post(b'{"data": "a"}') * 20)
        assert api.proposals == [] and not transport.reading  # nothing new; reading stops
        protocol.resume_writing()
        assert len(api.proposals) == 1 and not transport.reading  # busy with #1, 19 left
        for n in range(20):
            api.proposals[n].set_result(n)
            _settle(loop)
        assert transport.written.count(b"HTTP/1.1 200 OK") == 20 and transport.reading
        assert transport.written.endswith(b'{"n":19}')
    finally:
        loop.close()


def test_a_failure_while_answering_still_answers_500() -> None:
    loop = asyncio.new_event_loop()
    try:
        api = FakeApi(loop, answer_raises=True)
        protocol, transport = _protocol(api, [])
        protocol.data_received(post(b'{"data": "a"}') + post(b'{"data": "b"}'))
        api.proposals[0].set_result(1)
        _settle(loop)
        assert transport.written.startswith(b"HTTP/1.1 500 Internal Server Error")
        assert b'"code":"internal"' in transport.written
        assert len(api.proposals) == 2  # and the connection goes on to the next request
    finally:
        loop.close()


def test_a_request_that_is_not_an_append_is_handed_over_at_once() -> None:
    loop = asyncio.new_event_loop()
    try:
        api = FakeApi(loop)
        slow: list[Slow] = []
        protocol, transport = _protocol(api, slow)
        protocol.data_received(b"GET /livez HTTP/1.1\nHost: x\n\n")  # bare LF: not ours
        assert api.proposals == [] and transport.protocol is slow[0]
        assert bytes(slow[0].data) == b"GET /livez HTTP/1.1\nHost: x\n\n"
        # A hand-over (the node lost its leadership before proposing) while the client
        # is not reading its answers tells the new protocol so.
        api2 = FakeApi(loop, answer_raises=True)
        api2.fast_answer = _hand_back  # type: ignore[method-assign]
        slow2: list[Slow] = []
        protocol2, transport2 = _protocol(api2, slow2)
        protocol2.data_received(post(b'{"data": "a"}'))
        protocol2.pause_writing()
        api2.proposals[0].set_result(1)
        _settle(loop)
        assert transport2.protocol is slow2[0] and slow2[0].write_paused
        assert bytes(slow2[0].data) == post(b'{"data": "a"}')
    finally:
        loop.close()
