"""The client API of a node, on one port (the lab's 1234 by default).

- XML-RPC at ``/RPC2`` and ``/`` for the lab's client: ``is_leader() -> bool`` and
  ``leader_receive_log(text) -> bool`` (True only once the entry is committed; False, never
  a fault and never None, when this node is not the leader or the commit fails).
- HTTP/JSON: ``POST /v1/log`` appends (a follower forwards to the leader),
  ``GET /v1/log`` reads, ``POST /v1/log/trim`` drops old entries (retention),
  ``GET /v1/status``, ``GET /v1/nodes``, ``GET /livez``, ``GET /readyz``, ``GET /metrics``
  (Prometheus).

With a state machine of the program's own instead of the replicated log, ``POST /v1/log``
carries its commands (opaque bytes in, the state machine's result out) and the log reads
answer 404.

The bodies are the Structs of :mod:`raftlog.wire` (requests decoded and checked by them,
answers encoded from them). Bad input gets a 4xx with a JSON body ``{"error": ..., "code":
...}`` (413 for oversized bodies), never a 500, and the node serves on; every error answer
carries one of the codes :mod:`raftlog.wire` lists.

Security: served over TLS when the node has a server certificate (``ClientServer.start``'s
``ssl``; with ``--client-cert-auth`` the TLS layer refuses clients without a certificate
of the client CA). With a token (:attr:`ApiConfig.token`), every write (append, trim,
membership change, leader transfer, and XML-RPC ``leader_receive_log``) needs it as
``Authorization: Bearer TOKEN``, or as the password of HTTP Basic (what ``xmlrpc.client``
sends for ``http://USER:TOKEN@host:port``): 401 otherwise (an XML-RPC fault for the
lab's call). Reads, status and the dashboard stay open: the token guards the log's
integrity; who may read it is TLS's business (client certificates). The admin endpoints
take the admin token (a supervisor's), else the token.

No middleware: a handler turns its own errors into answers (the append, the hot path,
inline; the others through ``_guarded``), and a catch-all route answers 404 and 405, so a
request that succeeds costs no extra layer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import functools
import hmac
import logging
import reprlib
import ssl
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from raftlog import wire
from raftlog.api.fastpath import Handoff
from raftlog.core import events as ev
from raftlog.core.errors import ConfChangeRefused, NotLeader, ProposalDropped, RaftError, UsageError
from raftlog.core.raft import PeerStatus
from raftlog.core.types import NO_NODE, EntryKind, Member, NodeId, split_address
from raftlog.dashboard import static_files
from raftlog.server import feed
from raftlog.server import metrics as node_metrics
from raftlog.server.eventloop import loop_name
from raftlog.server.node import (
    Committed,
    DiskFull,
    EventStream,
    LeadershipLost,
    NodeStopped,
    OutcomeUnknown,
    RaftNode,
    RequestTimeout,
    StaleSession,
)
from raftlog.server.replicated_log import (
    ReplicatedLog,
    Trimmed,
    append_command,
    trim_command,
)
from raftlog.server.sessions import command_payload

log = logging.getLogger("raftlog.api")

FORWARDED = "X-Raftlog-Forwarded"
MAX_BODY = 1 << 20
XMLRPC_MAX_BODY = 64 << 10
"""Bytes of an XML-RPC request, at most (the lab's are a few hundred)."""
MAX_READ_LIMIT = 10_000
MAX_CLIENT_ID = wire.MAX_CLIENT_ID
CONSISTENCY = ("linearizable", "lease", "local")
MAX_READ_BYTES = 4 << 20
"""Entry data in one read answer, at most; ``next`` says where to continue."""

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_encode = msgspec.json.Encoder().encode
_APPEND = msgspec.json.Decoder(wire.AppendRequest)
_TRIM = msgspec.json.Decoder(wire.TrimRequest)
_ADD_MEMBER = msgspec.json.Decoder(wire.AddMemberRequest)
_TRANSFER = msgspec.json.Decoder(wire.TransferRequest)
_PARTITION = msgspec.json.Decoder(wire.PartitionRequest)
_CLOCK = msgspec.json.Decoder(wire.ClockRequest)
_TICK = msgspec.json.Decoder(wire.TickRequest)
_RELEASE = msgspec.json.Decoder(wire.ReleaseRequest)

APPEND_USAGE = (
    'expected {"data": "..."}, with "encoding": "base64" for binary data and "client_id" '
    'with "seq" for an append applied at most once'
)
TRIM_USAGE = 'expected one of {"before": N}, {"keep_last": N}, {"older_than_s": S}'
ADD_MEMBER_USAGE = 'expected {"id": N, "peer": "HOST:PORT", "client": "http://HOST:PORT"}'
TRANSFER_USAGE = 'expected {"to": N} or {}'
PARTITION_USAGE = 'expected {"blocked": [node ids], "held": [node ids]} (either key optional)'
CLOCK_USAGE = 'expected {"mode": "step"} or {"mode": "real"}'
TICK_USAGE = 'expected {"ticks": N} (1 by default)'
RELEASE_USAGE = 'expected {"id": N, "action": "deliver"} or {"id": N, "action": "drop"}'
MAX_DEBUG_LOG = 1000
"""Entries one ``GET /v1/debug/log`` answers with, at most."""

_CODE_OF_STATUS: Mapping[int, wire.ErrorCode] = {
    404: wire.NOT_FOUND,
    405: wire.METHOD_NOT_ALLOWED,
    413: wire.TOO_LARGE,
}


@dataclass
class ApiConfig:
    client_urls: Mapping[NodeId, str]
    """Every member's client URL (``http://host:port``), this node's included."""
    commit_timeout_s: float = 10.0
    max_body: int = MAX_BODY
    fault_injection: bool = False
    """Test-only: serve the ``/v1/admin/*`` endpoints without a token (for ``raftlog
    chaos`` and the tests on loopback)."""
    admin_token: str | None = None
    """Serve the ``/v1/admin/*`` endpoints (partitions, step mode) to requests that carry
    ``Authorization: Bearer <token>`` (what a supervisor gives its nodes). Where a write
    token is set, this one is accepted for writes too."""
    token: str | None = None
    """Writes need ``Authorization: Bearer <token>`` (see the module docstring); None:
    anyone may write. Also the admin endpoints' token when there is no admin token."""
    forward_ssl: ssl.SSLContext | None = None
    """TLS for forwarding to the other nodes' ``https://`` client URLs (with this node's
    client certificate where they want one); None: the system's CAs, no certificate."""
    cors_origins: tuple[str, ...] = ()
    """Pages from these origins (``http://host:port``; ``*``: any) may read the answers,
    besides those of the cluster's own nodes (``RAFTLOG_CORS_ORIGINS``)."""


class ApiError(Exception):
    """An error answer: its ``code`` (:mod:`raftlog.wire`) gives the HTTP status."""

    def __init__(
        self,
        code: wire.ErrorCode,
        message: str,
        *,
        leader: int | UnsetType | None = UNSET,
        retryable: bool | UnsetType = UNSET,
        first_index: int | UnsetType = UNSET,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = wire.HTTP_STATUS[code] if status is None else status
        self.body = wire.Error(message, code, leader, retryable, first_index)
        self.headers = headers

    def response(self) -> web.Response:
        return web.Response(
            body=_encode(self.body),
            status=self.status,
            content_type="application/json",
            headers=self.headers,
        )


def _answer(doc: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=_encode(doc), status=status, content_type="application/json")


def _error_of(exc: Exception) -> ApiError:
    """The error answer for an exception a handler raised (an HTTPException below 400,
    a redirect, is raised again: aiohttp answers it). An unexpected one is an internal
    error, logged by the caller."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DiskFull):
        return ApiError(wire.DISK_FULL, str(exc))
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return ApiError(wire.TOO_LARGE, f"request body too large: {exc.text}")
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        code = _CODE_OF_STATUS.get(
            exc.status, wire.BAD_REQUEST if exc.status < 500 else wire.INTERNAL
        )
        return ApiError(code, exc.reason, status=exc.status)
    return ApiError(wire.INTERNAL, "internal error")


def _failure(request: web.Request, exc: Exception) -> web.Response:
    """The error answer for an exception a handler raised, as a response."""
    error = _error_of(exc)
    if error.code == wire.INTERNAL and error is not exc:
        log.exception("internal error serving %s %s", request.method, request.path, exc_info=exc)
    return error.response()


def _guarded(handler: Handler) -> Handler:
    """``handler``, its errors answered as JSON."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Exception as exc:
            return _failure(request, exc)

    return guarded


_METRICS_HEADERS = {"Content-Type": node_metrics.CONTENT_TYPE}
ORIGINS_REFRESH_S = 5.0
"""How often, at most, a node resolves its members' hosts again for CORS."""
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def presented_secret(authorization: bytes | None) -> bytes | None:
    """The secret an Authorization header carries: a bearer token, or the password of
    HTTP Basic (``xmlrpc.client`` sends a URL's ``user:password`` that way); None if
    there is none."""
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(b" ")
    scheme = scheme.lower()
    if scheme == b"bearer":
        return rest.strip() or None
    if scheme == b"basic":
        try:
            decoded = base64.b64decode(rest.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        _user, colon, password = decoded.partition(b":")
        return password if colon else None
    return None


def accepts(given: bytes | None, tokens: tuple[bytes, ...]) -> bool:
    """Is ``given`` one of ``tokens``? Compared in constant time, against each."""
    if given is None:
        return False
    found = False
    for token in tokens:
        found = hmac.compare_digest(given, token) or found
    return found


def _header_bytes(request: web.Request) -> bytes | None:
    value = request.headers.get("Authorization")
    # aiohttp keeps undecodable header bytes as surrogates: encode them back.
    return None if value is None else value.encode("utf-8", "surrogateescape")


def _decode(decoder: msgspec.json.Decoder[T], body: bytes, usage: str) -> T:
    """A request body as its Struct; a 400 naming the field if it is not one."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(wire.BAD_REQUEST, f"{exc}; {usage}") from None
    except msgspec.DecodeError as exc:  # bad JSON, bad UTF-8, a lone surrogate
        raise ApiError(wire.BAD_REQUEST, f"body is not valid JSON: {exc}; {usage}") from None


class ClientApi:
    def __init__(self, node: RaftNode, config: ApiConfig) -> None:
        self.node = node
        sm = node.state_machine
        self.log = sm if isinstance(sm, ReplicatedLog) else None
        """The replicated log, if that is the node's state machine."""
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._origins: frozenset[str] = frozenset()
        """Origins of the cluster's own nodes (see _cors), resolved now and then."""
        self._origins_at = 0.0
        self._readers = 0
        """``/v1/events`` readers now."""
        self._refreshing: set[asyncio.Future[None]] = set()
        admin = config.admin_token.encode() if config.admin_token else None
        token = config.token.encode() if config.token else None
        self._write_tokens: tuple[bytes, ...] = (
            tuple(t for t in (token, admin) if t is not None) if token is not None else ()
        )
        """Any of them lets a request write; none: anyone may."""
        self._admin_tokens: tuple[bytes, ...] = (
            (admin,) if admin is not None else (token,) if token is not None else ()
        )

    # -- who may write -----------------------------------------------------------------

    def write_allowed(self, authorization: bytes | None) -> bool:
        """May a request with this Authorization header write?"""
        return not self._write_tokens or accepts(
            presented_secret(authorization), self._write_tokens
        )

    def _refusal(self, authorization: bytes | None, what: str) -> ApiError:
        given = presented_secret(authorization)
        why = "no token was given" if given is None else "the token given is not this cluster's"
        return ApiError(
            wire.UNAUTHORIZED,
            f"{why}: {what} needs the cluster's token, as Authorization: Bearer TOKEN",
            headers={"WWW-Authenticate": 'Bearer realm="raftlog"'},
        )

    def _write(self, handler: Handler, what: str) -> Handler:
        """``handler``, served only to requests that may write."""
        if not self._write_tokens:
            return handler

        @functools.wraps(handler)
        async def write(request: web.Request) -> web.StreamResponse:
            authorization = _header_bytes(request)
            if not self.write_allowed(authorization):
                raise self._refusal(authorization, what)
            return await handler(request)

        return write

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body)
        app.on_response_prepare.append(self._cors)
        app.on_startup.append(self._refresh_origins)
        router = app.router
        self._static = static_files()
        router.add_get("/", _guarded(self.dashboard))
        router.add_get("/dashboard/{name}", _guarded(self.dashboard))
        router.add_get("/v1/debug/log", _guarded(self.debug_log))
        router.add_post("/RPC2", _guarded(self.xmlrpc))
        router.add_post("/", _guarded(self.xmlrpc))
        router.add_post("/v1/log", self.append)  # the hot path answers its own errors
        router.add_get("/v1/log", _guarded(self.read))
        router.add_post("/v1/log/trim", _guarded(self._write(self.trim, "trimming the log")))
        router.add_get("/v1/status", _guarded(self.status))
        router.add_get("/v1/events", _guarded(self.events))
        router.add_get("/v1/nodes", _guarded(self.nodes))
        router.add_get("/v1/members", _guarded(self.members))
        change = "a membership change"
        router.add_post("/v1/members", _guarded(self._write(self.add_member, change)))
        router.add_post(
            "/v1/members/{id}/promote", _guarded(self._write(self.promote_member, change))
        )
        router.add_delete("/v1/members/{id}", _guarded(self._write(self.remove_member, change)))
        router.add_post(
            "/v1/leader/transfer",
            _guarded(self._write(self.transfer_leader, "a leadership transfer")),
        )
        router.add_get("/livez", _guarded(self.livez))
        router.add_get("/readyz", _guarded(self.readyz))
        router.add_get("/metrics", _guarded(self.metrics))
        if self.config.fault_injection or self.config.admin_token:  # served with a token
            router.add_post("/v1/admin/partition", _guarded(self._admin(self.partition)))
            router.add_post("/v1/admin/clock", _guarded(self._admin(self.clock)))
            router.add_post("/v1/admin/tick", _guarded(self._admin(self.tick)))
            router.add_post("/v1/admin/release", _guarded(self._admin(self.release)))
        routes = list(router.resources())

        async def unrouted(request: web.Request) -> web.Response:
            """Anything no route takes (the catch-all, last): 405 if the path exists with
            other methods, else 404."""
            allowed: set[str] = set()
            for resource in routes:
                _match, methods = await resource.resolve(request)
                allowed |= methods
            if allowed:
                allow = ", ".join(sorted(allowed))
                return ApiError(
                    wire.METHOD_NOT_ALLOWED,
                    f"{request.method} is not allowed on {request.path} (only {allow})",
                    headers={"Allow": allow},
                ).response()
            return ApiError(wire.NOT_FOUND, f"no such path: {request.path}").response()

        router.add_route("*", "/{tail:.*}", unrouted)
        app.on_cleanup.append(self._close_session)
        return app

    async def _close_session(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            forward_ssl = self.config.forward_ssl
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.commit_timeout_s + 5),
                connector=aiohttp.TCPConnector(ssl=forward_ssl) if forward_ssl else None,
            )
        return self._session

    # -- XML-RPC (the lab's client) --------------------------------------------------

    async def xmlrpc(self, request: web.Request) -> web.Response:
        body = await request.read()
        # Parsing runs on the node's event loop: a document far larger than any of the
        # lab's, or one with a DTD (entity expansion), would stall the node.
        if len(body) > XMLRPC_MAX_BODY:
            return self._fault(
                1, f"request of {len(body)} bytes; XML-RPC requests take {XMLRPC_MAX_BODY}"
            )
        if b"<!DOCTYPE" in body:
            return self._fault(1, "malformed XML-RPC request: a DTD is not allowed")
        try:
            params, method = xmlrpc.client.loads(body, use_builtin_types=True)
        except Exception as exc:  # expat, a fault document, a bad struct: the caller's mistake
            return self._fault(1, f"malformed XML-RPC request: {type(exc).__name__}: {exc}")
        if method is None:
            return self._fault(1, "malformed XML-RPC request: not a methodCall")
        if method == "is_leader" and not params:
            return self._xml_result(self.node.is_leader)
        if method == "leader_receive_log" and len(params) == 1 and isinstance(params[0], str):
            authorization = _header_bytes(request)
            if not self.write_allowed(authorization):
                refusal = self._refusal(authorization, "leader_receive_log")
                return self._fault(
                    4,
                    f"unauthorized: {refusal.message} (xmlrpc.client: put it in the URL, "
                    "http://raftlog:TOKEN@host:port)",
                )
            return self._xml_result(await self._receive_log(params[0]))
        if method in ("is_leader", "leader_receive_log"):
            # reprlib: params may nest thousands deep (repr would hit the recursion limit)
            return self._fault(2, f"bad arguments for {method}: {reprlib.repr(params)}")
        return self._fault(
            3, f"unknown method {method!r}; this node serves is_leader, leader_receive_log"
        )

    async def _receive_log(self, text: str) -> bool:
        if not self.node.is_leader:
            return False
        try:
            await self.node.propose(
                self._command(text.encode("utf-8")), timeout=self.config.commit_timeout_s
            )
        except (RaftError, UnicodeEncodeError):
            return False
        return True

    def _command(self, data: bytes) -> bytes:
        """What goes in the log for a client's data: an append for the replicated log,
        the bytes themselves for any other state machine."""
        return append_command(data) if self.log is not None else data

    @staticmethod
    def _xml_result(value: bool) -> web.Response:
        return web.Response(
            body=xmlrpc.client.dumps((value,), methodresponse=True, allow_none=False),
            content_type="text/xml",
        )

    @staticmethod
    def _fault(code: int, message: str) -> web.Response:
        """An XML-RPC fault (HTTP 200, as the protocol wants: clients raise ``Fault``)."""
        return web.Response(
            body=xmlrpc.client.dumps(xmlrpc.client.Fault(code, message)),
            content_type="text/xml",
        )

    # -- JSON ------------------------------------------------------------------------

    async def append(self, request: web.Request) -> web.Response:
        try:
            if self._write_tokens:
                authorization = _header_bytes(request)
                if not self.write_allowed(authorization):
                    raise self._refusal(authorization, "an append")
            body = await request.read()
            req = _decode(_APPEND, body, APPEND_USAGE)
            try:
                data = req.payload()
            except ValueError as exc:
                raise ApiError(wire.BAD_REQUEST, str(exc)) from None
            if not self.node.is_leader:
                return await self._forward(request, body)
            try:
                done = await self._propose(self._command(data), req.client_id, req.seq)
            except NotLeader:
                return await self._forward(request, body)
            if self.log is None:
                answer = wire.AppendAnswer(
                    done.index, done.term, done.duplicate, _render_result(done.result)
                )
            else:
                answer = wire.AppendAnswer(done.index, done.term, done.duplicate)
            return web.Response(body=_encode(answer), content_type="application/json")
        except Exception as exc:
            return _failure(request, exc)

    async def _propose(self, command: bytes, client: str | None, seq: int | None) -> Committed:
        """Propose on this node (the leader); errors become API answers (NotLeader is
        left to the caller, which forwards)."""
        try:
            return await self.node.propose(
                command, timeout=self.config.commit_timeout_s, client=client, seq=seq
            )
        except (
            ProposalDropped,
            LeadershipLost,
            StaleSession,
            RequestTimeout,
            OutcomeUnknown,
            NodeStopped,
            DiskFull,
        ) as exc:
            raise self._proposal_error(exc) from None

    def _proposal_error(self, exc: BaseException) -> ApiError:
        """The answer to a proposal that failed (not NotLeader: that one is forwarded)."""
        if isinstance(exc, ProposalDropped):
            return ApiError(wire.DROPPED, str(exc), leader=self._leader_hint())
        if isinstance(exc, LeadershipLost):
            return ApiError(wire.NOT_COMMITTED, f"not committed: {exc}", leader=self._leader_hint())
        if isinstance(exc, StaleSession):
            return ApiError(wire.STALE_REQUEST, str(exc))
        if isinstance(exc, RequestTimeout | OutcomeUnknown):
            return ApiError(wire.OUTCOME_UNKNOWN, f"outcome unknown: {exc}")
        if isinstance(exc, NodeStopped):
            return ApiError(wire.STOPPING, str(exc))
        if isinstance(exc, DiskFull):
            return ApiError(wire.DISK_FULL, str(exc))
        log.error("internal error answering an append", exc_info=exc)
        return ApiError(wire.INTERNAL, "internal error")

    # -- the append fast path (see raftlog.api.fastpath) -----------------------------

    def fast_append(
        self, body: bytes, authorization: bytes | None
    ) -> asyncio.Future[Committed] | None:
        """Start the append in ``body`` on this node, the leader; None when the request is
        not for the fast path (a follower, a body that does not decode, a stopping node,
        a missing or wrong token): the aiohttp handler serves it, errors and forwarding
        included."""
        if not self.node.is_leader:
            return None
        if self._write_tokens and not self.write_allowed(authorization):
            return None
        try:
            req = _APPEND.decode(body)
            data = req.payload()
            return self.node.propose_nowait(
                self._command(data),
                self.config.commit_timeout_s,
                client=req.client_id,
                seq=req.seq,
            )
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError, RaftError):
            return None

    def fast_answer(self, proposal: asyncio.Future[Committed]) -> tuple[int, bytes]:
        """The status and body answering a finished fast-path proposal; raises Handoff
        when the node turned out not to lead (nothing was appended: forward it)."""
        exc = proposal.exception()
        if exc is None:
            done = proposal.result()
            if self.log is None:
                answer = wire.AppendAnswer(
                    done.index, done.term, done.duplicate, _render_result(done.result)
                )
            else:
                answer = wire.AppendAnswer(done.index, done.term, done.duplicate)
            return 200, _encode(answer)
        if isinstance(exc, NotLeader):
            raise Handoff from None
        error = self._proposal_error(exc)
        return error.status, _encode(error.body)

    def _need_log(self) -> ReplicatedLog:
        if self.log is None:
            raise ApiError(
                wire.NOT_FOUND,
                "this node's state machine is not the replicated log: read its state "
                "through the program that runs it",
            )
        return self.log

    async def _barrier(self, request: web.Request, consistency: str) -> web.Response | None:
        """Confirm a read may be served here; a response if it must go elsewhere."""
        if consistency == "local":
            return None
        if not self.node.is_leader:
            return await self._forward(request, b"")
        try:
            await self.node.read_barrier(
                timeout=self.config.commit_timeout_s, lease=consistency == "lease"
            )
        except NotLeader:
            return await self._forward(request, b"")
        except RequestTimeout as exc:
            raise ApiError(wire.TIMEOUT, f"could not confirm leadership: {exc}") from None
        except NodeStopped as exc:
            raise ApiError(wire.STOPPING, str(exc)) from None
        except DiskFull as exc:
            raise ApiError(wire.DISK_FULL, str(exc)) from None
        return None

    async def read(self, request: web.Request) -> web.Response:
        records_log = self._need_log()
        query = request.query
        asked = "from" in query
        start = _int_param(query, "from", 1, minimum=1)
        limit = _int_param(query, "limit", 100, minimum=0, maximum=MAX_READ_LIMIT)
        consistency = query.get("consistency", "linearizable")
        if consistency not in CONSISTENCY:
            raise ApiError(
                wire.BAD_REQUEST,
                f"consistency must be one of {', '.join(CONSISTENCY)}, not {consistency!r}",
            )
        forwarded = await self._barrier(request, consistency)
        if forwarded is not None:
            return forwarded
        first = records_log.first_index
        if asked and start < first:
            raise ApiError(
                wire.TRIMMED,
                f"entries before {first} were trimmed (retention); read from {first}",
                first_index=first,
            )
        # The answer holds every record through this index from ``start`` (up to the
        # limit), and none after it: a page read from disk may also hold records applied
        # while it was being read, which are left for the next page.
        applied = self.node.applied
        page = await records_log.read(max(start, first), limit)
        entries: list[wire.Entry] = []
        size = 0
        following = page.next_index
        for r in page.records:  # cap the answer: one huge read must not stall the node
            if r.index > applied or (entries and size + len(r.data) > MAX_READ_BYTES):
                following = r.index
                break
            entries.append(wire.Entry.of(r.index, r.term, r.data))
            size += len(r.data)
        staleness = None
        if consistency == "local":
            # How stale this answer may be: what this node has applied, and how long ago
            # it last heard from the leader it follows (None: no leader known).
            leader = self.node.leader
            staleness = wire.Staleness(
                leader=int(leader) or None,
                applied=applied,
                commit=self.node.commit,
                last_leader_contact_s=(
                    0.0 if leader == self.node.id else self.node.last_contact(leader)
                )
                if leader
                else None,
            )
        return _answer(
            wire.ReadAnswer(
                node=int(self.node.id),
                consistency=consistency,
                commit=self.node.commit,
                applied=applied,
                first_index=page.first_index,
                entries=entries,
                next=following,
                staleness=staleness,
            )
        )

    async def trim(self, request: web.Request) -> web.Response:
        """Retention: ``{"before": N}``, ``{"keep_last": K}`` or ``{"older_than_s": S}``.
        The leader turns the last two into an index of its log, then replicates a trim
        to it; reads before it answer 410 from then on."""
        records_log = self._need_log()
        body = await request.read()
        req = _decode(_TRIM, body, TRIM_USAGE)
        if not self.node.is_leader:
            return await self._forward(request, body)
        if req.before is not None:
            before = req.before
        elif req.keep_last is not None:
            before = records_log.index_keeping_last(req.keep_last)
        else:
            age = req.older_than_s or 0.0
            # An age before 1970 keeps every record (and must not overflow: ages up to
            # 1.7e308 s decode, and in milliseconds they are infinite).
            cutoff_s = time.time() - age
            cutoff_ms = int(cutoff_s * 1000) if cutoff_s > 0 else 0
            before = records_log.index_newer_than(cutoff_ms)
        try:
            done = await self._propose(trim_command(before), None, None)
        except NotLeader:
            return await self._forward(request, body)
        first = done.result.first_index if isinstance(done.result, Trimmed) else before
        return _answer(wire.TrimAnswer(first_index=first, index=done.index, term=done.term))

    async def metrics(self, _request: web.Request) -> web.Response:
        """Prometheus's text format (see raftlog.server.metrics)."""
        return web.Response(body=node_metrics.exposition(self.node), headers=_METRICS_HEADERS)

    async def status(self, _request: web.Request) -> web.Response:
        return _answer(await self._status())

    async def _status(self) -> wire.Status:
        try:
            s = await self.node.status()
        except (RaftError, TimeoutError) as exc:
            raise ApiError(wire.UNAVAILABLE, f"status unavailable: {exc}") from None
        return wire.Status(
            id=int(s.id),
            state=s.role.value,
            term=s.term,
            leader=int(s.leader) or None,
            vote=int(s.vote) or None,
            commit=s.commit,
            applied=self.node.applied,
            last_index=s.last_index,
            last_term=s.last_term,
            first_index=s.first_index,
            snapshot_index=s.snapshot_index,
            voters=[int(v) for v in s.voters],
            learners=[int(v) for v in s.learners],
            conf_index=s.conf_index,
            client_url=self.config.client_urls.get(self.node.id),
            event_loop=loop_name(),
            clock="step" if self.node.stepping else "real",
            tick_s=self.node.config.timing.tick_s,
            election_elapsed=s.election_elapsed,
            election_timeout=s.election_timeout,
            held=self._held_messages(),
            lease_reads=self.node.lease_reads,
            peers=[
                wire.PeerStatus(
                    id=int(p.id),
                    match=p.match,
                    next=p.next,
                    state=p.state,
                    recent_active=p.recent_active,
                    inflight=p.inflight,
                    learner=p.learner,
                    last_contact_s=self.node.last_contact(p.id),
                )
                for p in s.peers
                if p.id != s.id
            ],
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``status`` (this node's status) at once and again when it
        changed (at most every STATUS_EVERY_S), then each of the node's events as it
        happens (``event:`` its kind, ``data:`` its fields, ``t`` and ``text``, the line
        the event log prints), and the peer messages it sends (``Message``). Per-entry
        and per-message events beyond EVENTS_PER_WINDOW a window are counted in one
        ``Aggregate``. ``?entries=0``: no per-entry events at all (they cost the node
        a little per entry); ``?messages=0``: no ``Message`` events. The node never
        waits for a slow reader: one that falls behind by EVENTS_BUFFER events loses
        the oldest."""
        entries = _flag(request.query, "entries", True)
        messages = _flag(request.query, "messages", True)
        if self._readers >= MAX_EVENT_READERS:
            raise ApiError(
                wire.UNAVAILABLE, f"this node already feeds {MAX_EVENT_READERS} event readers"
            )
        # Subscribed before the first status: nothing is missed in between.
        stream = self.node.subscribe(EVENTS_BUFFER, entries=entries, messages=messages)
        self._readers += 1
        try:
            status = _encode(await self._status())
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await response.prepare(request)
            out = _EventFeed(response)
            try:
                await out.write("status", status)
            except (ConnectionError, aiohttp.ClientConnectionResetError):
                return response  # the reader went away at once
            # The events and the ticker side by side: whichever ends first (the node
            # stopped; a write found the reader gone) ends the other.
            tasks = {
                asyncio.create_task(_pump(stream, out)),
                asyncio.create_task(self._status_ticker(out, status)),
            }
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                # A reader gone shows as ConnectionError in one of them: that is the end.
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._readers -= 1
            stream.close()
        return response

    async def _status_ticker(self, out: _EventFeed, last: bytes) -> None:
        """The status again when it changed, the window's counts when it ended, and a
        comment line when nothing was written for a while (a reader gone while nothing
        happens, in step mode say, is noticed, and its subscription ends)."""
        quiet = 0.0
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            quiet += STATUS_EVERY_S
            with contextlib.suppress(ApiError):
                status = _encode(await self._status())
                if status != last:
                    last = status
                    await out.write("status", status)
                    quiet = 0.0
            await out.flush_if_due()
            if quiet >= KEEPALIVE_S:
                await out.write_raw(b": keep-alive\n\n")
                quiet = 0.0

    async def nodes(self, _request: web.Request) -> web.Response:
        return _answer(
            wire.NodesAnswer(
                leader=int(self.node.leader) or None,
                nodes=[
                    wire.NodeInfo(id=int(member.id), client_url=self._client_url(member.id))
                    for member, _role in self.node.member_list()
                ],
            )
        )

    # -- membership ------------------------------------------------------------------

    # -- CORS: the dashboard served by one node reads the others -----------------------

    async def _cors(self, request: web.Request, response: web.StreamResponse) -> None:
        """A page may read this node's answers if it came from one of the cluster's own
        nodes (the dashboard, served by any of them, reads them all) or from an origin
        the operator allowed; any other page may not (a web site the user visits must
        not read the log of a node on their machine)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return
        response.headers["Vary"] = "Origin"
        if self._origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin

    def _origin_allowed(self, origin: str) -> bool:
        extra = self.config.cors_origins
        if "*" in extra or origin in extra or origin in self._origins:
            return True
        now = time.monotonic()
        if now - self._origins_at > ORIGINS_REFRESH_S:  # membership or addresses changed?
            self._origins_at = now
            task = asyncio.ensure_future(self._refresh_origins())
            self._refreshing.add(task)
            task.add_done_callback(self._refreshing.discard)
        return False

    async def _refresh_origins(self, _app: web.Application | None = None) -> None:
        """The origins of every member's client URL, by name and by address (a page opened
        at an address, e.g. in the namespace topology, reads nodes known by name)."""
        loop = asyncio.get_running_loop()
        urls = set(self.config.client_urls.values())
        urls |= {u for m, _role in self.node.member_list() if (u := self._client_url(m.id))}
        origins: set[str] = set()
        for url in urls:
            parts = urlsplit(url)
            if not parts.hostname or parts.port is None:
                continue
            origins.add(f"{parts.scheme}://{parts.netloc}")
            try:
                found = await loop.getaddrinfo(parts.hostname, parts.port)
            except OSError:
                found = []
            addresses = {str(info[4][0]) for info in found}
            for address in addresses:
                host = f"[{address}]" if ":" in address else address
                origins.add(f"{parts.scheme}://{host}:{parts.port}")
            if parts.hostname in ("localhost", "::1") or any(
                a.startswith("127.") or a == "::1" for a in addresses
            ):
                origins |= {f"{parts.scheme}://{h}:{parts.port}" for h in _LOOPBACK_NAMES}
        self._origins = frozenset(origins)

    def _client_url(self, node: NodeId) -> str | None:
        member = self.node.members.get(node)
        if member is not None and member.client:
            return member.client
        return self.config.client_urls.get(node)

    def _member_rows(
        self, progress: Mapping[NodeId, PeerStatus] | None = None, commit: int = 0
    ) -> list[wire.MemberRow]:
        """The members; with the leader's ``progress``, how far each other one trails."""
        rows = []
        for member, role in self.node.member_list():
            row = wire.MemberRow(
                id=int(member.id),
                role=role,
                peer=member.peer or None,
                client=self._client_url(member.id),
            )
            p = progress.get(member.id) if progress is not None else None
            if p is not None:
                row.match, row.caught_up, row.active = p.match, commit - p.match, p.recent_active
            rows.append(row)
        return rows

    async def members(self, _request: web.Request) -> web.Response:
        """The configuration in force (this node's view; the leader adds each member's
        progress). ``pending``: a change is appended but not committed yet."""
        try:
            s = await self.node.status()
        except (RaftError, TimeoutError) as exc:
            raise ApiError(wire.UNAVAILABLE, f"status unavailable: {exc}") from None
        progress = {p.id: p for p in s.peers if p.id != s.id}
        return _answer(
            wire.MembersAnswer(
                node=int(self.node.id),
                leader=int(s.leader) or None,
                term=s.term,
                conf_index=s.conf_index,
                pending=s.conf_index > s.commit,
                members=self._member_rows(progress, s.commit),
            )
        )

    async def _change(
        self, request: web.Request, body: bytes, change: Callable[[], Awaitable[Committed]]
    ) -> web.Response:
        """Run a membership change on the leader (forwarding from a follower); answer
        with the new configuration once it has committed."""
        if not self.node.is_leader:
            return await self._forward(request, body)
        try:
            done = await change()
        except NotLeader:
            return await self._forward(request, body)
        except ConfChangeRefused as exc:
            raise ApiError(
                wire.REFUSED, f"refused: {exc.reason}", retryable=exc.transient
            ) from None
        except ProposalDropped as exc:
            raise ApiError(
                wire.REFUSED, f"refused: {exc}", leader=self._leader_hint(), retryable=True
            ) from None
        except LeadershipLost as exc:
            raise ApiError(
                wire.NOT_COMMITTED, f"not committed: {exc}", leader=self._leader_hint()
            ) from None
        except (RequestTimeout, OutcomeUnknown) as exc:
            raise ApiError(wire.OUTCOME_UNKNOWN, f"outcome unknown: {exc}") from None
        except NodeStopped as exc:
            raise ApiError(wire.STOPPING, str(exc)) from None
        return _answer(
            wire.ChangeAnswer(index=done.index, term=done.term, members=self._member_rows())
        )

    async def add_member(self, request: web.Request) -> web.Response:
        """``{"id": N, "peer": "host:port", "client": "http://host:port"}``: add a node as
        a learner (``raftlog node --join`` sends this)."""
        body = await request.read()
        req = _decode(_ADD_MEMBER, body, ADD_MEMBER_USAGE)
        try:
            split_address(req.peer)
        except ValueError as exc:
            raise ApiError(wire.BAD_REQUEST, f'"peer": {exc}') from None
        member = Member(NodeId(req.id), req.peer, req.client)
        timeout = self.config.commit_timeout_s
        return await self._change(
            request, body, lambda: self.node.add_learner(member, timeout=timeout)
        )

    def _member_id(self, request: web.Request) -> NodeId:
        try:
            node = int(request.match_info["id"])
        except ValueError:
            raise ApiError(wire.BAD_REQUEST, "a member id is a positive integer") from None
        if not 0 < node <= wire.MAX_INT:
            raise ApiError(wire.BAD_REQUEST, "a member id is a positive integer")
        return NodeId(node)

    async def promote_member(self, request: web.Request) -> web.Response:
        node = self._member_id(request)
        timeout = self.config.commit_timeout_s
        return await self._change(request, b"", lambda: self.node.promote(node, timeout=timeout))

    async def remove_member(self, request: web.Request) -> web.Response:
        node = self._member_id(request)
        timeout = self.config.commit_timeout_s
        return await self._change(
            request, b"", lambda: self.node.remove_member(node, timeout=timeout)
        )

    async def transfer_leader(self, request: web.Request) -> web.Response:
        """``{"to": N}`` (or ``{}``, or no body: the most up-to-date voter): hand
        leadership over; answers once the new leader is known, with the time it took."""
        body = await request.read()
        req = _decode(_TRANSFER, body, TRANSFER_USAGE) if body.strip() else wire.TransferRequest()
        if not self.node.is_leader:
            return await self._forward(request, body)
        started = time.monotonic()
        try:
            s = await self.node.status()
            voters = [v for v in s.voters if v != s.id]
            if req.to is None:
                ranked = sorted(
                    (p for p in s.peers if p.id in voters), key=lambda p: (-p.match, p.id)
                )
                if not ranked:
                    raise ApiError(wire.REFUSED, "refused: there is no other voter to take over")
                target = ranked[0].id
            else:
                target = NodeId(req.to)
                if target == s.id:
                    return _answer(wire.TransferAnswer(leader=int(s.id), took_ms=0.0))
                if target not in voters:
                    raise ApiError(wire.REFUSED, f"refused: node {target} is not a voter")
            await self.node.transfer_leadership(target, timeout=self.config.commit_timeout_s)
        except NotLeader:
            return await self._forward(request, body)
        except (RaftError, TimeoutError) as exc:
            raise ApiError(wire.UNAVAILABLE, f"transfer failed: {exc}") from None
        deadline = started + self.config.commit_timeout_s
        while time.monotonic() < deadline:
            if not self.node.is_leader and self.node.leader not in (NO_NODE, self.node.id):
                return _answer(
                    wire.TransferAnswer(
                        leader=int(self.node.leader),
                        took_ms=round((time.monotonic() - started) * 1000, 1),
                    )
                )
            await asyncio.sleep(0.001)
        raise ApiError(wire.TIMEOUT, f"node {target} did not take over within the time limit")

    async def partition(self, request: web.Request) -> web.Response:
        """Admin (a supervisor's partitions; tests): ``{"blocked": [ids], "held": [ids]}``.
        Traffic with a blocked peer is
        dropped both ways; messages from a held peer are kept and delivered, in order, once
        it is no longer held. A key left out leaves that setting as it is."""
        req = _decode(_PARTITION, await request.read(), PARTITION_USAGE)
        if req.blocked is not None:
            self.node.block_peers({NodeId(n) for n in req.blocked})
        if req.held is not None:
            self.node.hold_peers({NodeId(n) for n in req.held})
        return _answer(
            wire.PartitionAnswer(
                blocked=sorted(int(n) for n in self.node.blocked),
                held=sorted(int(n) for n in self.node.held),
            )
        )

    def _admin(self, handler: Handler) -> Handler:
        """``handler``, served only to requests with the node's admin token, else its
        token (a node with fault injection and neither serves anyone: tests only)."""
        tokens = self._admin_tokens

        @functools.wraps(handler)
        async def admin(request: web.Request) -> web.StreamResponse:
            if tokens and not accepts(presented_secret(_header_bytes(request)), tokens):
                raise ApiError(
                    wire.UNAUTHORIZED,
                    "this admin endpoint needs the node's admin token: Authorization: Bearer TOKEN",
                    headers={"WWW-Authenticate": 'Bearer realm="raftlog"'},
                )
            return await handler(request)

        return admin

    def _step_answer(self) -> web.Response:
        return _answer(
            wire.StepAnswer(
                clock="step" if self.node.stepping else "real", held=self._held_messages()
            )
        )

    def _held_messages(self) -> list[wire.HeldMessage]:
        return [wire.HeldMessage(**view) for view in self.node.held_list()]

    async def clock(self, request: web.Request) -> web.Response:
        """Step mode on or off: ``{"mode": "step"|"real"}``."""
        req = _decode(_CLOCK, await request.read(), CLOCK_USAGE)
        self.node.set_stepping(req.mode == "step")
        return self._step_answer()

    async def tick(self, request: web.Request) -> web.Response:
        """Step mode: ``{"ticks": N}`` advances the node's clock N ticks."""
        req = _decode(_TICK, await request.read() or b"{}", TICK_USAGE)
        try:
            self.node.step_ticks(req.ticks)
        except UsageError as exc:
            raise ApiError(wire.BAD_REQUEST, f"{exc}: POST /v1/admin/clock first") from None
        return self._step_answer()

    async def release(self, request: web.Request) -> web.Response:
        """Deliver or drop one held message: ``{"id": N, "action": "deliver"|"drop"}``."""
        req = _decode(_RELEASE, await request.read(), RELEASE_USAGE)
        try:
            self.node.release(req.id, deliver=req.action == "deliver")
        except KeyError:
            raise ApiError(wire.NOT_FOUND, f"no held message {req.id}") from None
        return self._step_answer()

    async def dashboard(self, request: web.Request) -> web.Response:
        """The dashboard's files (``/`` is its page)."""
        name = request.match_info.get("name", "index.html")
        found = self._static.get(name)
        if found is None:
            raise ApiError(wire.NOT_FOUND, f"no such dashboard file: {name}")
        body, content_type = found
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def debug_log(self, request: web.Request) -> web.Response:
        """This node's own log, committed or not: ``?start=N&limit=M`` (M at most
        MAX_DEBUG_LOG; no start: the last M entries)."""
        query = request.query
        limit = _int_param(query, "limit", 100, minimum=1, maximum=MAX_DEBUG_LOG)
        start = (
            _int_param(query, "start", 1, minimum=1, maximum=wire.MAX_INT)
            if "start" in query
            else None
        )
        try:
            view = await self.node.log_view(start, limit)
        except (RaftError, TimeoutError) as exc:
            raise ApiError(wire.UNAVAILABLE, f"log unavailable: {exc}") from None
        return _answer(
            wire.DebugLogAnswer(
                first_index=view.first_index,
                last_index=view.last_index,
                commit=view.commit,
                snapshot_index=view.snapshot_index,
                entries=[
                    wire.LogCell(
                        index=e.index,
                        term=e.term,
                        kind=e.kind.name.lower(),
                        preview=_preview(self.node.display(command_payload(e.data)))
                        if e.kind is EntryKind.NORMAL
                        else "",
                    )
                    for e in view.entries
                ],
            )
        )

    async def livez(self, _request: web.Request) -> web.Response:
        return _answer(wire.Liveness(live=True, node=int(self.node.id)))

    async def readyz(self, _request: web.Request) -> web.Response:
        if self.node.disk_full is not None:
            reason = f"disk full: {self.node.disk_full}"
            return _answer(wire.Readiness(ready=False, reason=reason), 503)
        if self.node.leader == NO_NODE:
            return _answer(wire.Readiness(ready=False, reason="no known leader"), 503)
        return _answer(wire.Readiness(ready=True, leader=int(self.node.leader)))

    # -- forwarding ------------------------------------------------------------------

    def _leader_hint(self) -> int | None:
        return int(self.node.leader) or None

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        leader = self.node.leader
        url = self._client_url(leader) if leader != NO_NODE else None
        if request.headers.get(FORWARDED) or url is None or leader == self.node.id:
            raise ApiError(wire.NO_LEADER, "no leader", leader=self._leader_hint())
        target = url.rstrip("/") + request.path_qs
        headers = {FORWARDED: str(self.node.id), "Content-Type": "application/json"}
        if "Authorization" in request.headers:  # the leader checks the token too
            headers["Authorization"] = request.headers["Authorization"]
        try:
            async with self._client().request(
                request.method,
                target,
                data=body if request.method == "POST" else None,
                headers=headers,
            ) as resp:
                payload = await resp.read()
                return web.Response(
                    body=payload, status=resp.status, content_type="application/json"
                )
        except aiohttp.ClientConnectorError as exc:  # nothing was sent: safe to retry
            raise ApiError(
                wire.NO_LEADER, f"leader {leader} unreachable: {exc}", leader=int(leader)
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:  # sent: it may have happened
            raise ApiError(
                wire.OUTCOME_UNKNOWN,
                f"outcome unknown: forwarding to leader {leader} failed: {exc}",
            ) from None


EVENTS_BUFFER = 1000
"""Events kept for one ``/v1/events`` reader that has not caught up."""
MAX_EVENT_READERS = 64
"""``/v1/events`` readers one node feeds at once (each costs it a little)."""
KEEPALIVE_S = 10.0
"""A ``/v1/events`` reader hears at least this often (a comment line if nothing else)."""
STATUS_EVERY_S = 0.1
EVENTS_PER_WRITE = 200
"""Events waiting for a ``/v1/events`` reader that go out in one write, at most."""
"""A ``/v1/events`` reader gets the node's status again at most this often."""
EVENTS_WINDOW_S = 0.25
EVENTS_PER_WINDOW = 40
"""Per-entry and per-message events sent one by one in a window of EVENTS_WINDOW_S; the
rest of the window is counted in one ``Aggregate`` event."""
_BULK = (
    feed.MessageSent,
    ev.HeartbeatSent,
    ev.HeartbeatReceived,
    ev.EntriesAppended,
    ev.EntryCommitted,
    ev.ProposalReceived,
)


async def _pump(stream: EventStream, out: _EventFeed) -> None:
    """The events to the reader: what waits in the queue goes in one write (a busy node's
    reader gets a few writes a second, not one per event)."""
    queue = stream.queue
    async for event in stream:
        batch = [event]
        while not queue.empty() and len(batch) < EVENTS_PER_WRITE:
            batch.append(queue.get_nowait())
        await out.events(batch)


class _EventFeed:
    """One ``/v1/events`` reader's stream: writes one at a time (the events and the
    status ticker share it), and the bulk events of a busy window counted, not sent."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response
        self.lock = asyncio.Lock()
        self.window_end = 0.0
        self.sent = 0
        self.counts: dict[str, int] = {}

    async def write(self, kind: str, data: bytes) -> None:
        await self.write_raw(_sse(kind, data))

    async def write_raw(self, data: bytes) -> None:
        async with self.lock:
            await self.response.write(data)

    async def events(self, batch: list[ev.Event]) -> None:
        now = time.time()
        chunks = [chunk for event in batch if (chunk := self._render(event, now))]
        if chunks:
            await self.write_raw(b"".join(chunks))

    def _render(self, event: ev.Event, now: float) -> bytes:
        """The event's SSE lines; b"" when it is only counted (and the window's
        Aggregate first, when a window ended)."""
        head = b""
        if isinstance(event, _BULK):
            if now >= self.window_end:
                head = self._aggregate(now)
                self.window_end = now + EVENTS_WINDOW_S
                self.sent = 0
            if self.sent >= EVENTS_PER_WINDOW:
                key = (
                    f"Message:{event.msg_type}"
                    if isinstance(event, feed.MessageSent)
                    else type(event).__name__
                )
                self.counts[key] = self.counts.get(key, 0) + 1
                return head
            self.sent += 1
        shown = feed.feed_dict(event)
        if shown is not None:
            shown["t"] = now
            return head + _sse(shown["kind"], _encode(shown))
        return head + _sse(type(event).__name__, _event_json(event, now))

    def _aggregate(self, now: float) -> bytes:
        if not self.counts:
            return b""
        counts, self.counts = self.counts, {}
        doc = {"kind": "Aggregate", "t": now, "window_s": EVENTS_WINDOW_S, "counts": counts}
        return _sse("Aggregate", _encode(doc))

    async def flush(self, now: float) -> None:
        chunk = self._aggregate(now)
        if chunk:
            await self.write_raw(chunk)

    async def flush_if_due(self) -> None:
        now = time.time()
        if self.counts and now >= self.window_end:
            await self.flush(now)


def _flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ApiError(wire.BAD_REQUEST, f"{name} must be 1 or 0 (true or false), not {raw!r}")


def _sse(kind: str, data: bytes) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def _event_json(event: Any, now: float) -> bytes:
    """An event's fields as JSON (bytes as text where they are UTF-8, else base64; the
    role by name), with ``kind``, ``t`` (when it was sent, unix seconds) and ``text``,
    the event log's line."""
    fields: dict[str, Any] = {"kind": type(event).__name__, "t": now, "text": event.describe()}
    for name, value in msgspec.structs.asdict(event).items():
        fields[name] = _plain(value)
    return _encode(fields)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _render_result(result: Any) -> Any:
    """A state machine's result, as JSON: bytes as UTF-8 text (or base64 in an object),
    anything JSON can encode as it is (already encoded), anything else as its repr."""
    if isinstance(result, bytes):
        try:
            return result.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(result).decode()}
    try:
        return msgspec.Raw(_encode(result))
    except (TypeError, ValueError):
        return repr(result)


PREVIEW_CHARS = 40
"""Characters of an entry's data ``/v1/debug/log`` shows."""


def _preview(data: bytes) -> str:
    text = data[: 4 * PREVIEW_CHARS].decode("utf-8", errors="replace")
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _int_param(
    query: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(wire.BAD_REQUEST, f"{name} must be an integer, not {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise ApiError(wire.BAD_REQUEST, f"{name} must be at least {minimum}{bound}")
    return value
