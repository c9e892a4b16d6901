"""An asyncio client for a raftlog cluster (HTTP/JSON over aiohttp).

::

    async with Client(["127.0.0.1:1234", "127.0.0.1:1235"]) as client:
        result = await client.append("SET 5")        # AppendResult(index, term, duplicate)
        page = await client.read(start=1)             # ReadResult(entries=[Record...], ...)

Finding the leader: give any nodes as seeds. The first request goes to the first seed (any
node serves it: followers forward appends and linearizable reads to the leader); after it,
and before each retry round, the client asks ``GET /v1/nodes`` for the members and the leader
and from then on sends requests to the leader first. A 503 or 409 naming a leader sends the
request there at once. Endpoints that failed to connect or to answer go to the back of the
queue until they answer again. The seeds always stay candidates (the members' advertised URLs
may not be reachable from where the client runs, e.g. outside Docker's network). Local
reads go to the seeds in their order instead (the point of them is to spare the leader).

Retries: connection errors, timeouts and the error answers whose ``code`` (see
:mod:`raftlog.wire`) says the request was not carried out or not seen through (no_leader,
dropped, stopping, unavailable, not_committed, disk_full; timeout, outcome_unknown, internal) are
retried, round after round over the candidates, with exponential backoff and jitter between
rounds, until ``retry_for`` seconds have passed since the call began (no attempt starts after
that; an attempt in flight has its full ``timeout``: a call lasts at most about
``retry_for + timeout``). The other codes are final (a refused membership change is retried
if the answer says ``"retryable": true``). An answer without a code this client knows (a
proxy's error page, a newer server) goes by its HTTP status: 409, 503, 408, 429 and other
5xx are retried, any other 4xx is final. The bodies sent and read are the Structs of
:mod:`raftlog.wire`.

Exactly-once appends: each append carries ``(client_id, seq)``; ``seq`` is new for each new
append and the same for every retry of it, and the server's state machine applies a given
``(client_id, seq)`` once (a retry of an applied append answers the original index and term
with ``duplicate=True``). This is why one Client runs one append at a time (a lock): the
server remembers only each client's latest seq, so with two appends in flight the older one
could be refused as stale although it was never applied. Use several Clients (each has its
own client_id) for concurrent appends. Reads and status queries may run concurrently.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar
from urllib.parse import urlencode

import aiohttp
import msgspec
import yarl

from raftlog import wire
from raftlog.client.errors import (
    BadRequest,
    ChangeRefused,
    ClientError,
    EntriesTrimmed,
    NoLeader,
    OutcomeUnknown,
    StaleRequest,
    Unavailable,
)

Consistency = Literal["linearizable", "lease", "local"]
T = TypeVar("T")

BACKOFF_BASE: Final = 0.05
"""Seconds: the first pause between retry rounds (before jitter)."""
BACKOFF_MAX: Final = 2.0
"""Seconds: the pause between retry rounds grows (doubling) up to this."""
DISCOVERY_TIMEOUT: Final = 2.0
"""Seconds, at most, for one ``GET /v1/nodes`` (it is served without the consensus)."""
MAX_CLIENT_ID: Final = wire.MAX_CLIENT_ID


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppendResult:
    """A committed append: where it is in the log. ``duplicate``: this ``(client_id, seq)``
    had been applied before (by an earlier attempt); index and term are that entry's."""

    index: int
    term: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Record:
    """One entry of the log."""

    index: int
    term: int
    data: bytes

    def text(self, errors: str = "strict") -> str:
        """The data as UTF-8 text."""
        return self.data.decode("utf-8", errors)


@dataclass(frozen=True, slots=True)
class Staleness:
    """How stale a ``local`` read may be (as the serving node saw it)."""

    leader: int | None
    applied: int
    commit: int
    last_leader_contact_s: float | None


@dataclass(frozen=True, slots=True)
class ReadResult:
    """One page of the log. ``next``: the index to continue from (None: nothing more)."""

    entries: list[Record]
    commit: int
    applied: int
    node: int
    next: int | None
    staleness: Staleness | None = None
    consistency: str = "linearizable"
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The server's JSON answer, as is."""


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """``GET /v1/status`` of one node (``raw`` has everything, per-peer progress included)."""

    endpoint: str
    id: int
    state: str
    term: int
    leader: int | None
    commit: int
    applied: int
    last_index: int
    last_term: int
    voters: list[int]
    client_url: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """One member in ``cluster_status()``: its status, or why it could not be had."""

    id: int | None
    endpoint: str
    status: NodeStatus | None
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.status is not None


# -- helpers -------------------------------------------------------------------------------


def normalize_endpoint(endpoint: str, scheme: str = "http") -> str:
    """``"host:port"`` or ``"http://host:port"`` → ``"http://host:port"`` (no trailing /);
    ``scheme`` is the one a bare ``host:port`` gets."""
    text = endpoint.strip().rstrip("/")
    if not text:
        raise ValueError("empty endpoint")
    if "://" not in text:
        text = f"{scheme}://{text}"
    try:
        url = yarl.URL(text)
    except ValueError as exc:
        raise ValueError(f"not an endpoint: {endpoint!r} ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/"):
        raise ValueError(f"not an endpoint (want host:port or http://host:port): {endpoint!r}")
    if url.query_string or url.fragment:
        raise ValueError(f"not an endpoint (a query or fragment): {endpoint!r}")
    return text


def backoff_delay(
    attempt: int, rng: random.Random, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX
) -> float:
    """The pause before retry round ``attempt + 1``: the ceiling doubles per round (``base``,
    ``2·base``, ... up to ``cap``); the pause is uniform in [ceiling/2, ceiling] ("equal
    jitter": never zero, and clients that failed together spread out)."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 32))
    return ceiling / 2 + rng.random() * ceiling / 2


def _message(doc: Any) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    return str(doc)


_encode = msgspec.json.Encoder().encode
_any_json = msgspec.json.Decoder()
_append_answer = msgspec.json.Decoder(wire.AppendAnswer)
_trim_answer = msgspec.json.Decoder(wire.TrimAnswer)
_nodes_answer = msgspec.json.Decoder(wire.NodesAnswer)
_JSON_BODY: Final = {"Content-Type": "application/json"}
_MALFORMED = (ValueError, KeyError, TypeError, msgspec.MsgspecError)
"""What parsing an answer that is not what the wire format says raises."""


def _request_body(body: msgspec.Struct) -> bytes:
    try:
        return _encode(body)
    except UnicodeEncodeError:
        # Text with a lone surrogate (not UTF-8): JSON can still carry it, escaped, and
        # the node answers what it makes of it (a 400), as to any other client.
        return json.dumps(msgspec.to_builtins(body)).encode("ascii")


def _parse_append(raw: bytes) -> AppendResult:
    answer = _append_answer.decode(raw)
    return AppendResult(answer.index, answer.term, answer.duplicate)


def _parse_read(raw: bytes) -> ReadResult:
    doc = _any_json.decode(raw)
    answer = msgspec.convert(doc, wire.ReadAnswer)
    s = answer.staleness
    return ReadResult(
        entries=[Record(e.index, e.term, e.payload()) for e in answer.entries],
        commit=answer.commit,
        applied=answer.applied,
        node=answer.node,
        next=answer.next,
        staleness=None
        if s is None
        else Staleness(s.leader, s.applied, s.commit, s.last_leader_contact_s),
        consistency=answer.consistency,
        raw=doc,
    )


def _parse_trim(raw: bytes) -> int:
    return _trim_answer.decode(raw).first_index


def _parse_status(endpoint: str, raw: bytes) -> NodeStatus:
    doc = _any_json.decode(raw)
    s = msgspec.convert(doc, wire.Status)
    return NodeStatus(
        endpoint=endpoint,
        id=s.id,
        state=s.state,
        term=s.term,
        leader=s.leader,
        commit=s.commit,
        applied=s.applied,
        last_index=s.last_index,
        last_term=s.last_term,
        voters=s.voters,
        client_url=s.client_url,
        raw=doc,
    )


def _checked_as(shape: type[msgspec.Struct]) -> Callable[[bytes], dict[str, Any]]:
    """A parser of answers given to the caller as JSON objects: checked against the
    Struct ``shape`` first."""

    def parse(raw: bytes) -> dict[str, Any]:
        doc: dict[str, Any] = _any_json.decode(raw)
        msgspec.convert(doc, shape)  # raises if it is not that shape
        return doc

    return parse


def _error_answer(raw: bytes) -> tuple[Any, wire.Error | None]:
    """An error answer: as JSON (or its text, if it is not JSON: a proxy's error page?),
    and as a :class:`wire.Error` if it is one."""
    try:
        doc = _any_json.decode(raw) if raw else None
    except msgspec.DecodeError:
        return raw.decode("utf-8", "replace")[:500], None
    try:
        return doc, msgspec.convert(doc, wire.Error)
    except msgspec.ValidationError:
        return doc, None


class _Failed(Exception):
    """One attempt failed in a way worth retrying elsewhere or later."""

    def __init__(
        self,
        reason: str,
        *,
        maybe_done: bool,
        hint: int | None = None,
        refusal: ChangeRefused | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_done = maybe_done
        """The request may have been carried out (timeout, 504, dropped connection)."""
        self.hint = hint
        self.refusal = refusal
        """A membership change refused for a passing reason: raised if retries run out."""


def _by_status(status: int, message: str, doc: Any) -> Exception:
    """What an error answer without a code this client knows means, by its status alone:
    _Failed (retry) or a final BadRequest."""
    if status in (503, 409, 408, 429):  # not done: unavailable, conflict, busy
        return _Failed(f"HTTP {status}: {message}", maybe_done=False)
    if status >= 500:  # a failure we cannot tell: it may have happened
        return _Failed(f"HTTP {status}: {message}", maybe_done=True)
    if 400 <= status < 500:
        return BadRequest(status, message, doc)
    return _Failed(f"unexpected HTTP {status}: {message}", maybe_done=True)


# -- the client ----------------------------------------------------------------------------


class Client:
    """An asyncio client of a raftlog cluster. See the module's docstring.

    ``endpoints``: seeds, ``"host:port"`` or ``"http://host:port"``. ``client_id``: the
    identity of this client's appends (default: a random UUID; give your own only if no
    other Client uses it at the same time, and know that seq restarts at 1: appends of a
    reused id are refused as stale until seq passes the old one, see ``append(seq=)``).
    ``timeout``: seconds per HTTP request. ``retry_for``: seconds to keep retrying a call.
    ``session``: an aiohttp session to use (not closed by ``close()``); by default the
    client makes its own. ``ssl``: the TLS context for ``https://`` endpoints
    (:func:`raftlog.tls.client_context`: the cluster's CA, and a client certificate for
    nodes with ``--client-cert-auth``); given, bare ``host:port`` seeds are ``https://``.
    ``token``: sent as ``Authorization: Bearer`` with every request (a node with a token
    refuses writes without it: :class:`BadRequest` 401).

    A timeout shorter than the server's commit timeout (``max(5, 2 × the election
    timeout)``: 5 s with fast timings, 20 s with the lab's) is safe, since a retry carries
    the same seq, but may make the leader log a redundant copy (applied once). A Client
    belongs to the event loop it is first used in (its session does).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        client_id: str | None = None,
        timeout: float = 10.0,
        retry_for: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        ssl: ssl.SSLContext | None = None,
        token: str | None = None,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [p for p in endpoints.split(",") if p.strip()]
        scheme = "https" if ssl is not None else "http"
        seeds = list(dict.fromkeys(normalize_endpoint(e, scheme) for e in endpoints))
        if not seeds:
            raise ValueError("no endpoints")
        if client_id is None:
            client_id = uuid.uuid4().hex
        if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID:
            raise ValueError(f"client_id must be a string of 1 to {MAX_CLIENT_ID} characters")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, not {timeout}")
        if not retry_for >= 0:
            raise ValueError(f"retry_for must be >= 0, not {retry_for}")
        self.seeds: tuple[str, ...] = tuple(seeds)
        self.client_id: str = client_id
        self.timeout = float(timeout)
        self.retry_for = float(retry_for)
        self._session = session
        self._own_session = session is None
        self._ssl = ssl
        self._auth: dict[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
        self._closed = False
        self._members: dict[int, str] = {}
        self._leader: int | None = None
        self._discovered = False
        self._failed_at: dict[str, float] = {}
        self._next_seq = 1
        self._last_seq: int | None = None
        self._append_lock = asyncio.Lock()
        self._rng = random.Random()

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client (and its own HTTP session). Idempotent."""
        self._closed = True
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- what the client has learnt ------------------------------------------------------

    @property
    def members(self) -> dict[int, str]:
        """Node id → client URL, as last learnt from ``/v1/nodes`` (empty until then)."""
        return dict(self._members)

    @property
    def known_leader(self) -> int | None:
        """The leader the client currently believes in (no request made)."""
        return self._leader

    @property
    def last_seq(self) -> int | None:
        """The seq of the latest append started (None before the first)."""
        return self._last_seq

    # -- the API -------------------------------------------------------------------------

    async def append(self, data: str | bytes, *, seq: int | None = None) -> AppendResult:
        """Append ``data`` (text is stored as UTF-8) and return once it is committed.

        Retried (with the same seq) until ``retry_for`` runs out; raises NoLeader if no
        attempt could have happened, OutcomeUnknown if one may have, StaleRequest or
        BadRequest if the server refused it. ``seq``: re-send an earlier append of this
        client (the *same data*, e.g. after OutcomeUnknown: ``seq=exc.seq``) instead of
        making a new one; the server applies it at most once. A seq beyond the counter moves
        the counter past it. Appends of one Client run one at a time.
        """
        body = wire.AppendRequest.of(data)
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 1):
            raise ValueError(f"seq must be an integer >= 1, not {seq!r}")
        async with self._append_lock:
            if seq is None:
                seq = self._next_seq
            self._next_seq = max(self._next_seq, seq + 1)
            self._last_seq = seq
            body.client_id, body.seq = self.client_id, seq
            return await self._call("POST", "/v1/log", body, _parse_append, write=True, seq=seq)

    async def read(
        self,
        *,
        start: int | None = None,
        limit: int = 1000,
        consistency: Consistency = "linearizable",
    ) -> ReadResult:
        """Read up to ``limit`` entries from index ``start`` (default: the first entry the
        log keeps; an index before it raises EntriesTrimmed). ``linearizable``: the leader
        confirms its leadership first (reflects every append committed before the call);
        ``lease``: the leader trusts its lease (no round trip; relies on bounded clock
        drift); ``local``: the first seed that answers (not the leader first: local reads
        are there to spare it), from its own applied log (may be stale; ``staleness`` says
        how much)."""
        params: dict[str, Any] = {"limit": limit, "consistency": consistency}
        if start is not None:
            params["from"] = start
        query = urlencode(params)
        result = await self._call(
            "GET",
            f"/v1/log?{query}",
            None,
            _parse_read,
            write=False,
            leader_first=consistency != "local",
        )
        if consistency != "local":
            self._leader = result.node  # linearizable and lease reads are served by it
        return result

    async def trim(
        self,
        *,
        before: int | None = None,
        keep_last: int | None = None,
        older_than_s: float | None = None,
    ) -> int:
        """Retention: drop the entries before index ``before``, or all but the last
        ``keep_last``, or those appended more than ``older_than_s`` seconds ago (exactly
        one). Returns the first index the log keeps. Safe to retry (trimming twice to the
        same point is trimming once)."""
        body = wire.TrimRequest(before, keep_last, older_than_s)  # ValueError unless one
        return await self._call("POST", "/v1/log/trim", body, _parse_trim, write=True)

    async def read_all(
        self,
        *,
        start: int | None = None,
        consistency: Consistency = "linearizable",
        page: int = 1000,
    ) -> list[Record]:
        """Every entry from ``start`` (default: the first kept) on, page after page
        (following ``next``)."""
        out: list[Record] = []
        while True:
            result = await self.read(start=start, limit=page, consistency=consistency)
            out.extend(result.entries)
            if result.next is None:
                return out
            if start is not None and result.next <= start:
                raise ClientError(f"the server's next ({result.next}) does not move on")
            start = result.next

    # -- membership ------------------------------------------------------------------

    async def membership(self) -> dict[str, Any]:
        """``GET /v1/members`` from the leader (``members``: id, role, peer, client, and
        on the leader how far each trails; ``pending``: a change is not committed yet)."""
        return await self._call(
            "GET", "/v1/members", None, _checked_as(wire.MembersAnswer), write=False
        )

    async def add_member(self, node: int, peer: str, client: str = "") -> dict[str, Any]:
        """Add node ``node`` (peer address ``host:port``) as a learner; returns once the
        change has committed, with the new configuration. Raises ChangeRefused."""
        body = wire.AddMemberRequest(node, peer, client)
        return await self._call(
            "POST", "/v1/members", body, _checked_as(wire.ChangeAnswer), write=True
        )

    async def promote_member(self, node: int) -> dict[str, Any]:
        """Make a caught-up learner a voter. Raises ChangeRefused (e.g. not caught up)."""
        return await self._call(
            "POST", f"/v1/members/{node}/promote", None, _checked_as(wire.ChangeAnswer), write=True
        )

    async def remove_member(self, node: int) -> dict[str, Any]:
        """Remove a voter or a learner (the leader too). Raises ChangeRefused."""
        return await self._call(
            "DELETE", f"/v1/members/{node}", None, _checked_as(wire.ChangeAnswer), write=True
        )

    async def transfer_leader(self, to: int | None = None) -> dict[str, Any]:
        """Hand leadership to ``to`` (None: the most up-to-date voter); returns
        ``{"leader": id, "took_ms": ...}`` once the new leader is known."""
        body = wire.TransferRequest(to)
        return await self._call(
            "POST", "/v1/leader/transfer", body, _checked_as(wire.TransferAnswer), write=True
        )

    async def status(self, endpoint: str | int) -> NodeStatus:
        """``GET /v1/status`` of one node (an endpoint, or a member's id): no retries.
        Raises Unavailable if it does not answer."""
        if isinstance(endpoint, int):
            if endpoint not in self._members:
                await self._discover()
            if endpoint not in self._members:
                raise ClientError(f"no member {endpoint} known (members: {self._members})")
            url = self._members[endpoint]
        else:
            url = normalize_endpoint(endpoint, "https" if self._ssl is not None else "http")
        try:
            status, raw = await self._http("GET", url + "/v1/status", None, self.timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = self._reason(exc, self.timeout)
            raise Unavailable(f"{url}: {reason}", [f"{url}: {reason}"]) from None
        if status == 200:
            try:
                return _parse_status(url, raw)
            except _MALFORMED as exc:
                raise Unavailable(f"{url}: malformed status: {exc}") from None
        doc, error = _error_answer(raw)
        message = error.error if error is not None else _message(doc)
        passing = error is not None and error.code in wire.NOT_DONE | wire.UNFINISHED
        if passing or status >= 500 or status in (408, 429):
            raise Unavailable(f"{url}: HTTP {status}: {message}")
        raise BadRequest(status, message, doc)

    async def cluster_status(self) -> list[MemberStatus]:
        """The status of every member (learnt from ``/v1/nodes``; the seeds if no node
        tells), asked concurrently; unreachable ones have ``status=None`` and ``error``."""
        await self._discover()
        targets: list[tuple[int | None, str]]
        if self._members:
            targets = sorted(self._members.items())
        else:
            targets = [(None, url) for url in self.seeds]

        async def one(node: int | None, url: str) -> MemberStatus:
            try:
                s = await self.status(url)
            except ClientError as exc:
                return MemberStatus(node, url, None, str(exc))
            return MemberStatus(s.id if node is None else node, url, s)

        return list(await asyncio.gather(*(one(i, u) for i, u in targets)))

    async def leader(self) -> int | None:
        """The leader as a reachable node (the known leader first) reports it; None if no
        node answered or the answering one knows no leader. One round, no retries."""
        await self._discover()
        return self._leader

    # -- machinery -----------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the raftlog client is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def _http(
        self, method: str, url: str, body: msgspec.Struct | None, timeout: float
    ) -> tuple[int, bytes]:
        """One HTTP request: the status and the body of the answer."""
        session = self._get_session()
        async with session.request(
            method,
            url,
            data=None if body is None else _request_body(body),
            headers=self._auth if body is None else {**_JSON_BODY, **self._auth},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            return resp.status, await resp.read()

    @staticmethod
    def _reason(exc: BaseException, timeout: float) -> str:
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            cause = exc.certificate_error
            detail = getattr(cause, "verify_message", None) or str(cause)
            return f"TLS: the node's certificate is not trusted ({detail}): give its CA"
        if isinstance(exc, aiohttp.ClientSSLError):
            return f"TLS: {exc}"
        if isinstance(exc, aiohttp.ClientConnectorError):
            err = exc.os_error
            if err.errno and err.errno > 0:  # "Connection refused", not asyncio's wording
                detail = os.strerror(err.errno)
            elif err.strerror:  # a DNS failure ("Name or service not known")
                detail = err.strerror
            else:
                detail = str(err) or type(err).__name__
            return f"unreachable ({detail})"
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return f"could not connect within {timeout:g} s"
        if isinstance(exc, TimeoutError):
            return f"did not answer within {timeout:g} s"
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def _candidates(self, *, leader_first: bool = True) -> list[str]:
        """Where to send a request, best first: the leader, the members, the seeds (or, for
        a local read, the seeds in their order, then the members); those that failed lately
        at the end (the least recently failed first)."""
        order: list[str] = []
        if leader_first:
            if self._leader is not None and self._leader in self._members:
                order.append(self._members[self._leader])
            order.extend(self._members[i] for i in sorted(self._members))
            order.extend(self.seeds)
        else:
            order.extend(self.seeds)
            order.extend(self._members[i] for i in sorted(self._members))
        order = list(dict.fromkeys(order))
        good = [u for u in order if u not in self._failed_at]
        bad = sorted((u for u in order if u in self._failed_at), key=self._failed_at.__getitem__)
        return good + bad

    def _mark_failed(self, url: str) -> None:
        self._failed_at[url] = asyncio.get_running_loop().time()
        if self._leader is not None and self._members.get(self._leader) == url:
            self._leader = None

    async def _discover(self, deadline: float | None = None) -> bool:
        """Learn the members and the leader from the first node that answers
        ``GET /v1/nodes``; False if none did (before ``deadline``, a loop time)."""
        self._discovered = True
        loop = asyncio.get_running_loop()
        timeout = min(self.timeout, DISCOVERY_TIMEOUT)
        for url in self._candidates():
            if deadline is not None and loop.time() >= deadline:
                return False
            try:
                status, raw = await self._http("GET", url + "/v1/nodes", None, timeout)
            except (aiohttp.ClientError, TimeoutError):
                self._mark_failed(url)
                continue
            if status != 200:
                continue
            try:
                answer = _nodes_answer.decode(raw)
            except _MALFORMED:
                continue
            members: dict[int, str] = {}
            for node in answer.nodes:
                if node.client_url is None:
                    continue
                try:
                    members[node.id] = normalize_endpoint(node.client_url)
                except ValueError:
                    continue
            self._failed_at.pop(url, None)
            if members:
                self._members = members
            self._leader = answer.leader
            return True
        return False

    async def _attempt(
        self,
        method: str,
        url: str,
        path: str,
        body: msgspec.Struct | None,
        parse: Callable[[bytes], T],
    ) -> T:
        """One request: its parsed answer, or _Failed (retry), or a final ClientError."""
        try:
            status, raw = await self._http(method, url + path, body, self.timeout)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            self._mark_failed(url)  # nothing was sent
            raise _Failed(self._reason(exc, self.timeout), maybe_done=False) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._mark_failed(url)  # sent, and no answer: it may have happened
            raise _Failed(self._reason(exc, self.timeout), maybe_done=True) from None
        self._failed_at.pop(url, None)
        if status == 200:
            try:
                return parse(raw)
            except _MALFORMED as exc:
                raise _Failed(f"malformed answer: {exc}", maybe_done=True) from None
        doc, error = _error_answer(raw)
        if error is None:  # not one of ours (a proxy?): the status is all there is
            raise _by_status(status, _message(doc), doc)
        message = error.error
        hint = error.leader if isinstance(error.leader, int) else None
        code = error.code
        if code == wire.STALE_REQUEST:
            raise StaleRequest(message, status=status, doc=doc)
        if code == wire.REFUSED:
            refusal = ChangeRefused(status, message, doc)
            if error.retryable is True:
                # Nothing was changed, and the same request may succeed soon.
                raise _Failed(message, maybe_done=False, hint=hint, refusal=refusal)
            raise refusal
        if code == wire.TRIMMED and isinstance(error.first_index, int):
            raise EntriesTrimmed(status, message, doc, error.first_index)
        if code in wire.NOT_DONE:  # no leader, leadership lost, dropped, stopping
            raise _Failed(f"HTTP {status}: {message}", maybe_done=False, hint=hint)
        if code in wire.UNFINISHED:  # outcome unknown, timed out, a bug
            raise _Failed(f"HTTP {status}: {message}", maybe_done=True, hint=hint)
        if code in wire.FINAL:
            raise BadRequest(status, message, doc)
        raise _by_status(status, message, doc)  # a code this client does not know

    async def _call(
        self,
        method: str,
        path: str,
        body: msgspec.Struct | None,
        parse: Callable[[bytes], T],
        *,
        write: bool,
        seq: int = 0,
        leader_first: bool = True,
    ) -> T:
        """Send the request to the candidates in turn, round after round with backoff in
        between, until one answers or ``retry_for`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        errors: dict[str, str] = {}
        unknown: str | None = None  # the last attempt that may have happened
        refusal: ChangeRefused | None = None  # the last passing refusal of a change
        all_refused = True  # no attempt that may have been carried out
        attempts = 0
        round_no = 0
        while True:
            queue = deque(self._candidates(leader_first=leader_first))
            tried: set[str] = set()
            while queue:
                url = queue.popleft()
                if url in tried:
                    continue
                if attempts and loop.time() >= deadline:
                    raise self._give_up(errors, unknown, all_refused, write, seq, refusal)
                tried.add(url)
                attempts += 1
                try:
                    result = await self._attempt(method, url, path, body, parse)
                except ChangeRefused as final:
                    if unknown is not None:  # e.g. "already a learner": maybe ours
                        raise OutcomeUnknown(
                            f"{unknown}; a later attempt was refused: {final.message}",
                            client_id=self.client_id,
                            seq=seq,
                            errors=[f"{u}: {r}" for u, r in errors.items()],
                        ) from None
                    raise
                except _Failed as failed:
                    errors[url] = failed.reason
                    refusal = failed.refusal or refusal
                    if failed.maybe_done:
                        all_refused = False
                        unknown = f"{url}: {failed.reason}"
                    if failed.hint is not None:
                        await self._follow(failed.hint, queue, tried, deadline)
                    continue
                if not self._discovered:
                    await self._discover()
                return result
            now = loop.time()
            if now >= deadline:
                raise self._give_up(errors, unknown, all_refused, write, seq, refusal)
            await self._sleep(min(backoff_delay(round_no, self._rng), deadline - now))
            round_no += 1
            await self._discover(deadline)

    async def _follow(self, hint: int, queue: deque[str], tried: set[str], deadline: float) -> None:
        """A node named ``hint`` as the leader: try it next (if not tried this round)."""
        if hint not in self._members:
            await self._discover(deadline)
            if hint not in self._members:
                return
        self._leader = hint
        url = self._members[hint]
        if url not in tried:
            queue.appendleft(url)

    def _give_up(
        self,
        errors: dict[str, str],
        unknown: str | None,
        all_refused: bool,
        write: bool,
        seq: int,
        refusal: ChangeRefused | None = None,
    ) -> ClientError:
        lines = [f"{url}: {reason}" for url, reason in errors.items()]
        if write and unknown is not None:
            return OutcomeUnknown(unknown, client_id=self.client_id, seq=seq, errors=lines)
        if refusal is not None:
            return refusal  # the cluster answered, and kept refusing for a passing reason
        summary = "; ".join(lines)
        if all_refused:
            return NoLeader(
                f"no node could serve the request within {self.retry_for:g} s: {summary}", lines
            )
        return Unavailable(
            f"the cluster did not serve the request within {self.retry_for:g} s: {summary}",
            lines,
        )

    async def _sleep(self, seconds: float) -> None:
        """The pause between retry rounds (a hook for tests)."""
        await asyncio.sleep(seconds)


__all__ = [
    "AppendResult",
    "Client",
    "Consistency",
    "MemberStatus",
    "NodeStatus",
    "ReadResult",
    "Record",
    "Staleness",
    "backoff_delay",
    "normalize_endpoint",
]
