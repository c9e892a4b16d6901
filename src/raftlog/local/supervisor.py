"""The supervisor's control API: what the dashboard's fault and step-mode controls call.

``raftlog cluster`` (and ``raftlog netcluster dashboard``) serve it next to the nodes they
started: ``/control/v1/...`` over HTTP/JSON, every request with ``Authorization: Bearer
TOKEN`` (the token the supervisor printed, which the page got from its URL's fragment).
Process and network faults go through the cluster's :class:`ClusterControl`; step mode
goes to the nodes' own admin endpoints (``/v1/admin/clock``, ``tick``, ``release``), with
the same token, which the supervisor gave its nodes. See docs/dashboard.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import aiohttp
import msgspec
from aiohttp import web

from raftlog import wire
from raftlog.local.control import ClusterControl, ControlError

log = logging.getLogger("raftlog.supervisor")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NodeIdField = Annotated[int, msgspec.Meta(ge=1)]
ACTIONS = ("stop", "kill", "start", "pause", "resume", "isolate")


class CutRequest(msgspec.Struct, forbid_unknown_fields=True):
    a: NodeIdField
    b: NodeIdField


class ClockRequest(msgspec.Struct, forbid_unknown_fields=True):
    mode: Literal["real", "step"]


class TickRequest(msgspec.Struct, forbid_unknown_fields=True):
    node: NodeIdField
    ticks: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1


class ReleaseRequest(msgspec.Struct, forbid_unknown_fields=True):
    node: NodeIdField
    id: Annotated[int, msgspec.Meta(ge=1)]


class ControlNode(msgspec.Struct):
    id: int
    url: str
    running: bool
    paused: bool
    isolated: bool


class ClusterAnswer(msgspec.Struct):
    kind: str
    clock: str
    nodes: list[ControlNode]
    cuts: list[tuple[int, int]]


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Max-Age": "600",
}


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(doc), status=status, content_type="application/json"
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return _json(wire.Error(message, code), status)


class Supervisor:
    """Serves ``/control/v1/...`` for ``cluster`` on ``host:port`` (port 0: any free one)."""

    def __init__(
        self,
        cluster: ClusterControl,
        token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.cluster = cluster
        self.token = token
        self.host = host
        self.port = port
        self.clock = "real"
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        """Step-mode changes one at a time (a node started meanwhile gets the mode)."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        app = web.Application(client_max_size=1 << 16, middlewares=[self._preflight])
        app.on_response_prepare.append(self._cors)
        r = app.router
        r.add_get("/control/v1/cluster", self._guard(self.describe))
        r.add_post("/control/v1/nodes/{id}/{action}", self._guard(self.node_action))
        r.add_post("/control/v1/cut", self._guard(self.cut))
        r.add_post("/control/v1/heal", self._guard(self.heal))
        r.add_post("/control/v1/clock", self._guard(self.set_clock))
        r.add_post("/control/v1/tick", self._guard(self.tick))
        r.add_post("/control/v1/deliver", self._guard(functools.partial(self.release, True)))
        r.add_post("/control/v1/drop", self._guard(functools.partial(self.release, False)))
        routes = list(r.resources())

        async def unrouted(request: web.Request) -> web.Response:
            allowed: set[str] = set()
            for resource in routes:
                _match, methods = await resource.resolve(request)
                allowed |= methods
            if allowed:
                return _error(405, wire.METHOD_NOT_ALLOWED, f"{request.method} is not allowed")
            return _error(404, wire.NOT_FOUND, f"no such path: {request.path}")

        r.add_route("*", "/{tail:.*}", unrouted)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- plumbing ----------------------------------------------------------------------

    @staticmethod
    async def _cors(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(_CORS)

    @staticmethod
    @web.middleware
    async def _preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        """A browser's CORS preflight (before a request with the Authorization header)."""
        if request.method == "OPTIONS":
            return web.Response(status=204)
        return await handler(request)

    def _guard(self, handler: Handler) -> Handler:
        expected = f"Bearer {self.token}".encode()

        async def guarded(request: web.Request) -> web.StreamResponse:
            # aiohttp keeps undecodable header bytes as surrogates: encode them back.
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, expected):
                return _error(401, wire.UNAUTHORIZED, "the supervisor's token is needed")
            try:
                return await handler(request)
            except _Refused as exc:
                return _error(exc.status, exc.code, str(exc))
            except ControlError as exc:
                return _error(409, wire.REFUSED, str(exc))
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                return _error(400, wire.BAD_REQUEST, f"bad request body: {exc}")
            except (RuntimeError, TimeoutError, OSError, aiohttp.ClientError) as exc:
                log.warning("control %s failed: %r", request.path, exc)
                return _error(503, wire.UNAVAILABLE, f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a bug: still a JSON answer
                log.exception("control %s failed", request.path)
                return _error(500, wire.INTERNAL, f"{type(exc).__name__}: {exc}")

        return guarded

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # The nodes' TLS, if they have it (a cluster of ClusterBase's says).
            client_ssl = getattr(self.cluster, "client_ssl", None)
            context = client_ssl() if client_ssl is not None else None
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=5),
                connector=aiohttp.TCPConnector(ssl=context) if context is not None else None,
            )
        return self._session

    async def _node_admin(self, i: int, path: str, doc: Any) -> Any:
        """POST to node ``i``'s admin endpoint; its answer, or _Refused with its error."""
        async with self._client().post(
            self.cluster.url(i) + path, data=json.dumps(doc).encode()
        ) as resp:
            body = await resp.read()
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if resp.status != 200:
            message = answer.get("error") if isinstance(answer, dict) else None
            code = answer.get("code") if isinstance(answer, dict) else None
            raise _Refused(
                resp.status,
                code if isinstance(code, str) else wire.UNAVAILABLE,
                f"node {i}: {message or f'HTTP {resp.status}'}",
            )
        return answer

    def _node(self, raw: str) -> int:
        try:
            i = int(raw)
        except ValueError:
            raise _Refused(400, wire.BAD_REQUEST, f"not a node id: {raw!r}") from None
        if i not in self.cluster.node_ids():
            raise _Refused(404, wire.NOT_FOUND, f"no node {i} in this cluster")
        return i

    # -- the API -----------------------------------------------------------------------

    async def describe(self, _request: web.Request) -> web.Response:
        state = await self.cluster.state()
        return _json(
            ClusterAnswer(
                kind=state.kind,
                clock=self.clock,
                nodes=[
                    ControlNode(n.id, n.url, n.running, n.paused, n.isolated) for n in state.nodes
                ],
                cuts=list(state.cuts),
            )
        )

    async def node_action(self, request: web.Request) -> web.Response:
        i = self._node(request.match_info["id"])
        action = request.match_info["action"]
        if action not in ACTIONS:
            raise _Refused(404, wire.NOT_FOUND, f"no action {action!r} (one of {ACTIONS})")
        cluster = self.cluster
        if action == "stop":
            await cluster.stop(i)
        elif action == "kill":
            await cluster.kill(i)
        elif action == "start":
            await cluster.start_node(i)
            await self._clock_to(i)
        elif action == "pause":
            await cluster.pause(i)
        elif action == "resume":
            await cluster.resume(i)
            await self._clock_to(i)
        else:
            await cluster.isolate(i)
        return await self.describe(request)

    async def _clock_to(self, i: int) -> None:
        """A node that starts (always in real time) or wakes from a pause (it missed any
        switch of the clock meanwhile) is put on the cluster's clock."""
        async with self._lock:
            await self._node_admin(i, "/v1/admin/clock", {"mode": self.clock})

    async def cut(self, request: web.Request) -> web.Response:
        req = msgspec.json.decode(await request.read(), type=CutRequest)
        a, b = self._node(str(req.a)), self._node(str(req.b))
        if a == b:
            raise _Refused(400, wire.BAD_REQUEST, "a link joins two different nodes")
        await self.cluster.cut(a, b)
        return await self.describe(request)

    async def heal(self, request: web.Request) -> web.Response:
        await self.cluster.heal()
        return await self.describe(request)

    async def set_clock(self, request: web.Request) -> web.Response:
        req = msgspec.json.decode(await request.read(), type=ClockRequest)
        async with self._lock:
            state = await self.cluster.state()
            live = [n.id for n in state.nodes if n.running and not n.paused]
            results = await asyncio.gather(
                *(self._node_admin(i, "/v1/admin/clock", {"mode": req.mode}) for i in live),
                return_exceptions=True,
            )
            failed = [
                f"node {i}: {r}"
                for i, r in zip(live, results, strict=True)
                if isinstance(r, Exception)
            ]
            self.clock = req.mode
        if failed:
            raise _Refused(503, wire.UNAVAILABLE, "; ".join(failed))
        return await self.describe(request)

    async def tick(self, request: web.Request) -> web.Response:
        req = msgspec.json.decode(await request.read(), type=TickRequest)
        i = self._node(str(req.node))
        return _json(await self._node_admin(i, "/v1/admin/tick", {"ticks": req.ticks}))

    async def release(self, deliver: bool, request: web.Request) -> web.Response:
        req = msgspec.json.decode(await request.read(), type=ReleaseRequest)
        i = self._node(str(req.node))
        action = "deliver" if deliver else "drop"
        return _json(
            await self._node_admin(i, "/v1/admin/release", {"id": req.id, "action": action})
        )


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (a URL with a token)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def new_token() -> str:
    """A random token for a supervisor and its nodes."""
    import secrets  # noqa: PLC0415

    return secrets.token_urlsafe(18)


async def close_quietly(supervisor: Supervisor | None) -> None:
    if supervisor is not None:
        with contextlib.suppress(Exception):
            await supervisor.close()
