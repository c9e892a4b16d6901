"""The client API of a node, on one port (the lab's 1234 by default).

- XML-RPC at ``/RPC2`` and ``/`` for the lab's client: ``is_leader() -> bool`` and
  ``leader_receive_log(text) -> bool`` (True only once the entry is committed; False, never
  a fault and never None, when this node is not the leader or the commit fails).
- HTTP/JSON: ``POST /v1/log`` appends (a follower forwards to the leader),
  ``GET /v1/log`` reads, ``POST /v1/log/trim`` drops old entries (retention),
  ``GET /v1/status``, ``GET /v1/nodes``, ``GET /livez``, ``GET /readyz``.

With a state machine of the program's own instead of the replicated log, ``POST /v1/log``
carries its commands (opaque bytes in, the state machine's result out) and the log reads
answer 404.

Bad input gets a 4xx with a JSON body ``{"error": ...}`` (413 for oversized bodies), never a
500, and the node serves on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from raftlog.core.errors import ConfChangeRefused, NotLeader, ProposalDropped, RaftError
from raftlog.core.types import NO_NODE, Member, NodeId, split_address
from raftlog.server.eventloop import loop_name
from raftlog.server.node import (
    Committed,
    LeadershipLost,
    NodeStopped,
    OutcomeUnknown,
    RaftNode,
    RequestTimeout,
    StaleSession,
)
from raftlog.server.replicated_log import (
    LogRecord,
    ReplicatedLog,
    Trimmed,
    append_command,
    trim_command,
)

log = logging.getLogger("raftlog.api")

FORWARDED = "X-Raftlog-Forwarded"
MAX_BODY = 1 << 20
MAX_READ_LIMIT = 10_000
MAX_CLIENT_ID = 128
CONSISTENCY = ("linearizable", "lease", "local")
MAX_READ_BYTES = 4 << 20
"""Entry data in one read answer, at most; ``next`` says where to continue."""


@dataclass
class ApiConfig:
    client_urls: Mapping[NodeId, str]
    """Every member's client URL (``http://host:port``), this node's included."""
    commit_timeout_s: float = 10.0
    max_body: int = MAX_BODY
    fault_injection: bool = False
    """Test-only: serve ``POST /v1/admin/partition`` (for ``raftlog chaos`` on loopback)."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda d: json.dumps(d, separators=(",", ":"))
    )


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json({"error": message, **extra}, status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.message, **exc.extra)
    except web.HTTPRequestEntityTooLarge as exc:
        return _error(413, f"request body too large: {exc.text}")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise
    except Exception:
        log.exception("internal error serving %s %s", request.method, request.path)
        return _error(500, "internal error")


class ClientApi:
    def __init__(self, node: RaftNode, config: ApiConfig) -> None:
        self.node = node
        sm = node.state_machine
        self.log = sm if isinstance(sm, ReplicatedLog) else None
        """The replicated log, if that is the node's state machine."""
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body, middlewares=[_errors_as_json])
        app.router.add_post("/RPC2", self.xmlrpc)
        app.router.add_post("/", self.xmlrpc)
        app.router.add_post("/v1/log", self.append)
        app.router.add_get("/v1/log", self.read)
        app.router.add_post("/v1/log/trim", self.trim)
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/nodes", self.nodes)
        app.router.add_get("/v1/members", self.members)
        app.router.add_post("/v1/members", self.add_member)
        app.router.add_post("/v1/members/{id}/promote", self.promote_member)
        app.router.add_delete("/v1/members/{id}", self.remove_member)
        app.router.add_post("/v1/leader/transfer", self.transfer_leader)
        app.router.add_get("/livez", self.livez)
        app.router.add_get("/readyz", self.readyz)
        if self.config.fault_injection:
            app.router.add_post("/v1/admin/partition", self.partition)
        app.on_cleanup.append(self._close_session)
        return app

    async def _close_session(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.commit_timeout_s + 5)
            )
        return self._session

    # -- XML-RPC (the lab's client) --------------------------------------------------

    async def xmlrpc(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            params, method = xmlrpc.client.loads(body, use_builtin_types=True)
        except Exception as exc:  # expat, a fault document, a bad struct: the caller's mistake
            return self._fault(1, f"malformed XML-RPC request: {type(exc).__name__}: {exc}")
        if method is None:
            return self._fault(1, "malformed XML-RPC request: not a methodCall")
        if method == "is_leader" and not params:
            return self._xml_result(self.node.is_leader)
        if method == "leader_receive_log" and len(params) == 1 and isinstance(params[0], str):
            return self._xml_result(await self._receive_log(params[0]))
        if method in ("is_leader", "leader_receive_log"):
            return self._fault(2, f"bad arguments for {method}: {params!r}")
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
        body = await request.read()
        doc = _json_body(body)
        data, client, seq = _entry_data(doc)
        if not self.node.is_leader:
            return await self._forward(request, body)
        try:
            done = await self._propose(self._command(data), client, seq)
        except NotLeader:
            return await self._forward(request, body)
        answer: dict[str, Any] = {
            "index": done.index,
            "term": done.term,
            "duplicate": done.duplicate,
        }
        if self.log is None:
            answer["result"] = _render_result(done.result)
        return _json(answer)

    async def _propose(self, command: bytes, client: str | None, seq: int | None) -> Committed:
        """Propose on this node (the leader); errors become API answers (NotLeader is
        left to the caller, which forwards)."""
        try:
            return await self.node.propose(
                command, timeout=self.config.commit_timeout_s, client=client, seq=seq
            )
        except ProposalDropped as exc:
            raise ApiError(503, str(exc), leader=self._leader_hint()) from None
        except LeadershipLost as exc:
            raise ApiError(409, f"not committed: {exc}", leader=self._leader_hint()) from None
        except StaleSession as exc:
            raise ApiError(409, str(exc)) from None
        except (RequestTimeout, OutcomeUnknown) as exc:
            raise ApiError(504, f"outcome unknown: {exc}") from None
        except NodeStopped as exc:
            raise ApiError(503, str(exc)) from None

    def _need_log(self) -> ReplicatedLog:
        if self.log is None:
            raise ApiError(
                404,
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
            raise ApiError(504, f"could not confirm leadership: {exc}") from None
        except NodeStopped as exc:
            raise ApiError(503, str(exc)) from None
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
                400, f"consistency must be one of {', '.join(CONSISTENCY)}, not {consistency!r}"
            )
        forwarded = await self._barrier(request, consistency)
        if forwarded is not None:
            return forwarded
        first = records_log.first_index
        if asked and start < first:
            raise ApiError(
                410,
                f"entries before {first} were trimmed (retention); read from {first}",
                first_index=first,
            )
        page = await records_log.read(max(start, first), limit)
        entries: list[LogRecord] = []
        size = 0
        for r in page.records:  # cap the answer: one huge read must not stall the node
            if entries and size + len(r.data) > MAX_READ_BYTES:
                break
            entries.append(r)
            size += len(r.data)
        following = (
            page.next_index
            if len(entries) == len(page.records)
            else page.records[len(entries)].index
        )
        doc: dict[str, Any] = {
            "node": int(self.node.id),
            "consistency": consistency,
            "commit": self.node.commit,
            "applied": self.node.applied,
            "first_index": page.first_index,
            "entries": [
                {"index": r.index, "term": r.term, **_render_data(r.data)} for r in entries
            ],
            "next": following,
        }
        if consistency == "local":
            # How stale this answer may be: what this node has applied, and how long ago
            # it last heard from the leader it follows (None: no leader known).
            leader = self.node.leader
            doc["staleness"] = {
                "leader": int(leader) or None,
                "applied": self.node.applied,
                "commit": self.node.commit,
                "last_leader_contact_s": (
                    0.0 if leader == self.node.id else self.node.last_contact(leader)
                )
                if leader
                else None,
            }
        return _json(doc)

    async def trim(self, request: web.Request) -> web.Response:
        """Retention: ``{"before": N}``, ``{"keep_last": K}`` or ``{"older_than_s": S}``.
        The leader turns the last two into an index of its log, then replicates a trim
        to it; reads before it answer 410 from then on."""
        records_log = self._need_log()
        body = await request.read()
        doc = _json_body(body)
        kinds = ("before", "keep_last", "older_than_s")
        if not isinstance(doc, dict) or len(doc) != 1 or next(iter(doc)) not in kinds:
            raise ApiError(
                400, f'expected one of {kinds} as the only field, e.g. {{"keep_last": 1000}}'
            )
        kind, value = next(iter(doc.items()))
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ApiError(400, f'"{kind}" must be a number >= 0')
        if kind != "older_than_s" and not isinstance(value, int):
            raise ApiError(400, f'"{kind}" must be an integer')
        if not self.node.is_leader:
            return await self._forward(request, body)
        if kind == "before":
            before = int(value)
        elif kind == "keep_last":
            before = records_log.index_keeping_last(int(value))
        else:
            before = records_log.index_newer_than(int((time.time() - float(value)) * 1000))
        try:
            done = await self._propose(trim_command(before), None, None)
        except NotLeader:
            return await self._forward(request, body)
        first = done.result.first_index if isinstance(done.result, Trimmed) else before
        return _json({"first_index": first, "index": done.index, "term": done.term})

    async def status(self, _request: web.Request) -> web.Response:
        try:
            s = await self.node.status()
        except (RaftError, TimeoutError) as exc:
            raise ApiError(503, f"status unavailable: {exc}") from None
        return _json(
            {
                "id": int(s.id),
                "state": s.role.value,
                "term": s.term,
                "leader": int(s.leader) or None,
                "vote": int(s.vote) or None,
                "commit": s.commit,
                "applied": self.node.applied,
                "last_index": s.last_index,
                "last_term": s.last_term,
                "first_index": s.first_index,
                "snapshot_index": s.snapshot_index,
                "voters": [int(v) for v in s.voters],
                "learners": [int(v) for v in s.learners],
                "conf_index": s.conf_index,
                "client_url": self.config.client_urls.get(self.node.id),
                "event_loop": loop_name(),
                "peers": [
                    {
                        "id": int(p.id),
                        "match": p.match,
                        "next": p.next,
                        "state": p.state,
                        "recent_active": p.recent_active,
                        "inflight": p.inflight,
                        "learner": p.learner,
                        "last_contact_s": self.node.last_contact(p.id),
                    }
                    for p in s.peers
                    if p.id != s.id
                ],
            }
        )

    async def nodes(self, _request: web.Request) -> web.Response:
        return _json(
            {
                "leader": int(self.node.leader) or None,
                "nodes": [
                    {"id": int(member.id), "client_url": self._client_url(member.id)}
                    for member, _role in self.node.member_list()
                ],
            }
        )

    # -- membership ------------------------------------------------------------------

    def _client_url(self, node: NodeId) -> str | None:
        member = self.node.members.get(node)
        if member is not None and member.client:
            return member.client
        return self.config.client_urls.get(node)

    def _member_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "id": int(member.id),
                "role": role,
                "peer": member.peer or None,
                "client": self._client_url(member.id),
            }
            for member, role in self.node.member_list()
        ]

    async def members(self, _request: web.Request) -> web.Response:
        """The configuration in force (this node's view; the leader adds each member's
        progress). ``pending``: a change is appended but not committed yet."""
        try:
            s = await self.node.status()
        except (RaftError, TimeoutError) as exc:
            raise ApiError(503, f"status unavailable: {exc}") from None
        progress = {p.id: p for p in s.peers}
        rows = self._member_rows()
        for row in rows:
            p = progress.get(NodeId(row["id"]))
            if p is not None and p.id != s.id:
                row.update(match=p.match, caught_up=s.commit - p.match, active=p.recent_active)
        return _json(
            {
                "node": int(self.node.id),
                "leader": int(s.leader) or None,
                "term": s.term,
                "conf_index": s.conf_index,
                "pending": s.conf_index > s.commit,
                "members": rows,
            }
        )

    async def _change(self, request: web.Request, body: bytes, change: Any) -> web.Response:
        """Run a membership change on the leader (forwarding from a follower); answer
        with the new configuration once it has committed."""
        if not self.node.is_leader:
            return await self._forward(request, body)
        try:
            done = await change()
        except NotLeader:
            return await self._forward(request, body)
        except ConfChangeRefused as exc:
            raise ApiError(409, f"refused: {exc.reason}", retryable=exc.transient) from None
        except ProposalDropped as exc:
            raise ApiError(
                409, f"refused: {exc}", leader=self._leader_hint(), retryable=True
            ) from None
        except LeadershipLost as exc:
            raise ApiError(409, f"not committed: {exc}", leader=self._leader_hint()) from None
        except (RequestTimeout, OutcomeUnknown) as exc:
            raise ApiError(504, f"outcome unknown: {exc}") from None
        except NodeStopped as exc:
            raise ApiError(503, str(exc)) from None
        return _json({"index": done.index, "term": done.term, "members": self._member_rows()})

    async def add_member(self, request: web.Request) -> web.Response:
        """``{"id": N, "peer": "host:port", "client": "http://host:port"}``: add a node as
        a learner (``raftlog node --join`` sends this)."""
        body = await request.read()
        doc = _json_body(body)
        usage = 'expected {"id": N, "peer": "HOST:PORT", "client": "http://HOST:PORT"}'
        if not isinstance(doc, dict) or set(doc) - {"id", "peer", "client"}:
            raise ApiError(400, usage)
        node, peer, client = doc.get("id"), doc.get("peer"), doc.get("client", "")
        if type(node) is not int or node <= 0:
            raise ApiError(400, f'"id" must be a positive integer; {usage}')
        if not isinstance(peer, str) or not isinstance(client, str):
            raise ApiError(400, usage)
        try:
            split_address(peer)
        except ValueError as exc:
            raise ApiError(400, f'"peer": {exc}') from None
        member = Member(NodeId(node), peer, client)
        timeout = self.config.commit_timeout_s
        return await self._change(
            request, body, lambda: self.node.add_learner(member, timeout=timeout)
        )

    def _member_id(self, request: web.Request) -> NodeId:
        try:
            node = int(request.match_info["id"])
        except ValueError:
            raise ApiError(400, "a member id is a positive integer") from None
        if node <= 0:
            raise ApiError(400, "a member id is a positive integer")
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
        """``{"to": N}`` (or ``{}``: the most up-to-date voter): hand leadership over;
        answers once the new leader is known, with the time it took."""
        body = await request.read()
        doc = _json_body(body) if body.strip() else {}
        if not isinstance(doc, dict) or set(doc) - {"to"}:
            raise ApiError(400, 'expected {"to": N} or {}')
        to = doc.get("to")
        if to is not None and (type(to) is not int or to <= 0):
            raise ApiError(400, '"to" must be a positive integer')
        if not self.node.is_leader:
            return await self._forward(request, body)
        started = time.monotonic()
        try:
            s = await self.node.status()
            voters = [v for v in s.voters if v != s.id]
            if to is None:
                ranked = sorted(
                    (p for p in s.peers if p.id in voters), key=lambda p: (-p.match, p.id)
                )
                if not ranked:
                    raise ApiError(409, "refused: there is no other voter to take over")
                target = ranked[0].id
            else:
                target = NodeId(to)
                if target == s.id:
                    return _json({"leader": int(s.id), "took_ms": 0.0})
                if target not in voters:
                    raise ApiError(409, f"refused: node {target} is not a voter")
            await self.node.transfer_leadership(target, timeout=self.config.commit_timeout_s)
        except NotLeader:
            return await self._forward(request, body)
        except (RaftError, TimeoutError) as exc:
            raise ApiError(503, f"transfer failed: {exc}") from None
        deadline = started + self.config.commit_timeout_s
        while time.monotonic() < deadline:
            if not self.node.is_leader and self.node.leader not in (NO_NODE, self.node.id):
                return _json(
                    {
                        "leader": int(self.node.leader),
                        "took_ms": round((time.monotonic() - started) * 1000, 1),
                    }
                )
            await asyncio.sleep(0.001)
        raise ApiError(504, f"node {target} did not take over within the time limit")

    async def partition(self, request: web.Request) -> web.Response:
        """Test-only: ``{"blocked": [ids], "held": [ids]}``. Traffic with a blocked peer is
        dropped both ways; messages from a held peer are kept and delivered, in order, once
        it is no longer held. A key left out leaves that setting as it is."""
        usage = 'expected {"blocked": [node ids], "held": [node ids]} (either key optional)'
        try:
            doc = json.loads(await request.read())
            if not isinstance(doc, dict) or not doc or set(doc) - {"blocked", "held"}:
                raise ValueError
            sets = {key: {NodeId(n) for n in doc[key]} for key in doc}
            if any(type(n) is not int or n <= 0 for ids in sets.values() for n in ids):
                raise ValueError
        except (ValueError, KeyError, TypeError, RecursionError):
            raise ApiError(400, usage) from None
        if "blocked" in sets:
            self.node.block_peers(sets["blocked"])
        if "held" in sets:
            self.node.hold_peers(sets["held"])
        return _json(
            {
                "blocked": sorted(int(n) for n in self.node.blocked),
                "held": sorted(int(n) for n in self.node.held),
            }
        )

    async def livez(self, _request: web.Request) -> web.Response:
        return _json({"live": True, "node": int(self.node.id)})

    async def readyz(self, _request: web.Request) -> web.Response:
        if self.node.leader == NO_NODE:
            return _json({"ready": False, "reason": "no known leader"}, 503)
        return _json({"ready": True, "leader": int(self.node.leader)})

    # -- forwarding ------------------------------------------------------------------

    def _leader_hint(self) -> int | None:
        return int(self.node.leader) or None

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        leader = self.node.leader
        url = self._client_url(leader) if leader != NO_NODE else None
        if request.headers.get(FORWARDED) or url is None or leader == self.node.id:
            raise ApiError(503, "no leader", leader=self._leader_hint())
        target = url.rstrip("/") + request.path_qs
        try:
            async with self._client().request(
                request.method,
                target,
                data=body if request.method == "POST" else None,
                headers={FORWARDED: str(self.node.id), "Content-Type": "application/json"},
            ) as resp:
                payload = await resp.read()
                return web.Response(
                    body=payload, status=resp.status, content_type="application/json"
                )
        except aiohttp.ClientConnectorError as exc:  # nothing was sent: safe to retry
            raise ApiError(503, f"leader {leader} unreachable: {exc}", leader=int(leader)) from None
        except (aiohttp.ClientError, TimeoutError) as exc:  # sent: it may have happened
            raise ApiError(
                504, f"outcome unknown: forwarding to leader {leader} failed: {exc}"
            ) from None


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
        raise ApiError(400, f"body is not valid JSON: {type(exc).__name__}: {exc}") from None


def _render_result(result: Any) -> Any:
    """A state machine's result, as JSON: bytes as UTF-8 text (or base64 in an object),
    anything JSON can encode as it is, anything else as its repr."""
    if isinstance(result, bytes):
        try:
            return result.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(result).decode()}
    try:
        return json.loads(msgspec.json.encode(result))
    except (TypeError, ValueError):
        return repr(result)


def _entry_data(doc: Any) -> tuple[bytes, str | None, int | None]:
    """(data, client id, seq) of an append request."""
    if not isinstance(doc, dict):
        raise ApiError(400, 'body must be a JSON object like {"data": "SET 5"}')
    unknown = set(doc) - {"data", "encoding", "client_id", "seq"}
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    data = doc.get("data")
    if not isinstance(data, str):
        raise ApiError(400, '"data" must be a string')
    client, seq = doc.get("client_id"), doc.get("seq")
    if (client is None) != (seq is None):
        raise ApiError(400, '"client_id" and "seq" go together')
    if client is not None and (not isinstance(client, str) or not 0 < len(client) <= MAX_CLIENT_ID):
        raise ApiError(400, f'"client_id" must be a string of 1 to {MAX_CLIENT_ID} characters')
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 1):
        raise ApiError(400, '"seq" must be an integer >= 1')
    return _decode_data(data, doc.get("encoding", "utf-8")), client, seq


def _decode_data(data: str, encoding: object) -> bytes:
    if encoding == "utf-8":
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, '"data" is not valid Unicode (a lone surrogate?)') from None
    if encoding == "base64":
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, '"data" is not valid base64') from None
    raise ApiError(400, '"encoding" must be "utf-8" or "base64"')


def _render_data(data: bytes) -> dict[str, str]:
    try:
        return {"data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"data": base64.b64encode(data).decode(), "encoding": "base64"}


def _int_param(
    query: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, not {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise ApiError(400, f"{name} must be at least {minimum}{bound}")
    return value
