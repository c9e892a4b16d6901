"""Fake raftlog nodes (aiohttp test servers answering from a script) for the client's
unit tests: retry, backoff and leader-hint logic without real nodes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

import scaffold
from raftlog import wire
from raftlog.client.aio import Client

HANG = "hang"
"""An answer that never comes (until the fake cluster closes)."""

Answer = tuple[int, Any] | str | Callable[[web.Request], Awaitable[tuple[int, Any]]]


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    return scaffold.run(coro, timeout)


@dataclass
class Seen:
    method: str
    path: str
    body: Any


@dataclass
class FakeNode:
    id: int
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    """Route ("POST /v1/log", "GET /v1/log", ...) → answers in turn; the last repeats."""
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None
    nodes_doc: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def script(self, route: str, *answers: Answer) -> None:
        self.answers[route] = list(answers)

    def posts(self) -> list[Any]:
        return [s.body for s in self.seen if s.method == "POST"]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.seen.append(Seen(request.method, request.path_qs, json.loads(raw) if raw else None))
        route = f"{request.method} {request.path}"
        queue = self.answers.get(route)
        if not queue:
            if route == "GET /v1/nodes" and self.nodes_doc is not None:
                return web.json_response(self.nodes_doc)
            return web.json_response(
                {"error": f"no script for {route}", "code": wire.NOT_FOUND}, status=404
            )
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer == HANG:
            await self.release.wait()
            return web.json_response({"error": "released", "code": wire.UNAVAILABLE}, status=503)
        if callable(answer):
            status, doc = await answer(request)
        else:
            assert isinstance(answer, tuple)
            status, doc = answer
        return web.json_response(doc, status=status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@asynccontextmanager
async def fake_cluster(n: int, *, leader: int | None = None) -> AsyncIterator[list[FakeNode]]:
    """``n`` fake nodes, ids 1..n, whose ``/v1/nodes`` list each other (leader ``leader``)."""
    nodes = [FakeNode(i) for i in range(1, n + 1)]
    try:
        for node in nodes:
            node.server = TestServer(node.app(), host="127.0.0.1")
            await node.server.start_server()
        doc = {"leader": leader, "nodes": [{"id": f.id, "client_url": f.url} for f in nodes]}
        for node in nodes:
            node.nodes_doc = doc
        yield nodes
    finally:
        for node in nodes:
            node.release.set()
        for node in nodes:
            if node.server is not None:
                await node.server.close()


class RecordingClient(Client):
    """A client that records the pauses it takes between retry rounds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pauses: list[float] = []

    async def _sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await super()._sleep(seconds)


def ok(index: int, term: int = 1, duplicate: bool = False) -> tuple[int, Any]:
    return 200, {"index": index, "term": term, "duplicate": duplicate}


DEFAULT_CODE = {
    400: wire.BAD_REQUEST,
    404: wire.NOT_FOUND,
    413: wire.TOO_LARGE,
    503: wire.NO_LEADER,
    504: wire.OUTCOME_UNKNOWN,
}
"""The code an error of a status has unless told (a 409 is always told: it has several)."""


def err(
    status: int, message: str, leader: int | None = None, *, code: str | None = None
) -> tuple[int, Any]:
    """An error answer as a node gives it: ``{"error": ..., "code": ...}`` (and the
    leader's hint)."""
    doc: dict[str, Any] = {"error": message, "code": code or DEFAULT_CODE[status]}
    if status == 503 or leader is not None:
        doc["leader"] = leader
    return status, doc
