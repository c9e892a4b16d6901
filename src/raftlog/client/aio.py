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

Retries: connection errors, timeouts, 503, 504, 409 "not committed" and other 5xx are
retried, round after round over the candidates, with exponential backoff and jitter between
rounds, until ``retry_for`` seconds have passed since the call began (no attempt starts after
that; an attempt in flight has its full ``timeout``: a call lasts at most about
``retry_for + timeout``). A 4xx is final.

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
import base64
import binascii
import json
import os
import random
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar
from urllib.parse import urlencode

import aiohttp
import yarl

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
MAX_CLIENT_ID: Final = 128


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


def normalize_endpoint(endpoint: str) -> str:
    """``"host:port"`` or ``"http://host:port"`` → ``"http://host:port"`` (no trailing /)."""
    text = endpoint.strip().rstrip("/")
    if not text:
        raise ValueError("empty endpoint")
    if "://" not in text:
        text = "http://" + text
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


def _hint(doc: Any) -> int | None:
    leader = doc.get("leader") if isinstance(doc, dict) else None
    return leader if isinstance(leader, int) and not isinstance(leader, bool) else None


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key!r} is not an integer: {value!r}")
    return value


def _opt_int(doc: dict[str, Any], key: str) -> int | None:
    return None if doc.get(key) is None else _int(doc, key)


def _object(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ValueError(f"not a JSON object: {doc!r:.200}")
    return doc


def _parse_append(doc: Any) -> AppendResult:
    d = _object(doc)
    return AppendResult(_int(d, "index"), _int(d, "term"), bool(d.get("duplicate", False)))


def _decode_entry(entry: Any) -> Record:
    e = _object(entry)
    data = e["data"]
    if not isinstance(data, str):
        raise ValueError(f"entry data is not a string: {data!r:.100}")
    if e.get("encoding") == "base64":
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("entry data is not valid base64") from None
    else:
        raw = data.encode("utf-8", "surrogatepass")
    return Record(_int(e, "index"), _int(e, "term"), raw)


def _parse_read(doc: Any) -> ReadResult:
    d = _object(doc)
    entries = d["entries"]
    if not isinstance(entries, list):
        raise ValueError("entries is not a list")
    staleness = None
    s = d.get("staleness")
    if isinstance(s, dict):
        contact = s.get("last_leader_contact_s")
        staleness = Staleness(
            leader=_opt_int(s, "leader"),
            applied=_int(s, "applied"),
            commit=_int(s, "commit"),
            last_leader_contact_s=float(contact) if contact is not None else None,
        )
    return ReadResult(
        entries=[_decode_entry(e) for e in entries],
        commit=_int(d, "commit"),
        applied=_int(d, "applied"),
        node=_int(d, "node"),
        next=_opt_int(d, "next"),
        staleness=staleness,
        consistency=str(d.get("consistency", "")),
        raw=d,
    )


def _parse_trim(doc: Any) -> int:
    return _int(_object(doc), "first_index")


def _parse_status(endpoint: str, doc: Any) -> NodeStatus:
    d = _object(doc)
    voters = d.get("voters", [])
    url = d.get("client_url")
    return NodeStatus(
        endpoint=endpoint,
        id=_int(d, "id"),
        state=str(d["state"]),
        term=_int(d, "term"),
        leader=_opt_int(d, "leader"),
        commit=_int(d, "commit"),
        applied=_int(d, "applied"),
        last_index=_int(d, "last_index"),
        last_term=_int(d, "last_term"),
        voters=[int(v) for v in voters] if isinstance(voters, list) else [],
        client_url=url if isinstance(url, str) else None,
        raw=d,
    )


def _encode_data(data: str | bytes) -> dict[str, Any]:
    if isinstance(data, str):
        return {"data": data}
    if isinstance(data, bytes | bytearray | memoryview):
        return {"data": base64.b64encode(bytes(data)).decode("ascii"), "encoding": "base64"}
    raise TypeError(f"data must be str or bytes, not {type(data).__name__}")


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


# -- the client ----------------------------------------------------------------------------


class Client:
    """An asyncio client of a raftlog cluster. See the module's docstring.

    ``endpoints``: seeds, ``"host:port"`` or ``"http://host:port"``. ``client_id``: the
    identity of this client's appends (default: a random UUID; give your own only if no
    other Client uses it at the same time, and know that seq restarts at 1: appends of a
    reused id are refused as stale until seq passes the old one, see ``append(seq=)``).
    ``timeout``: seconds per HTTP request. ``retry_for``: seconds to keep retrying a call.
    ``session``: an aiohttp session to use (not closed by ``close()``); by default the
    client makes its own.

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
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [p for p in endpoints.split(",") if p.strip()]
        seeds = list(dict.fromkeys(normalize_endpoint(e) for e in endpoints))
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
        body = _encode_data(data)
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 1):
            raise ValueError(f"seq must be an integer >= 1, not {seq!r}")
        async with self._append_lock:
            if seq is None:
                seq = self._next_seq
            self._next_seq = max(self._next_seq, seq + 1)
            self._last_seq = seq
            body["client_id"] = self.client_id
            body["seq"] = seq
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
        given = {
            k: v
            for k, v in (
                ("before", before),
                ("keep_last", keep_last),
                ("older_than_s", older_than_s),
            )
            if v is not None
        }
        if len(given) != 1:
            raise ValueError("give exactly one of before, keep_last, older_than_s")
        return await self._call("POST", "/v1/log/trim", given, _parse_trim, write=True)

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
        result: dict[str, Any] = await self._call("GET", "/v1/members", None, _object, write=False)
        return result

    async def add_member(self, node: int, peer: str, client: str = "") -> dict[str, Any]:
        """Add node ``node`` (peer address ``host:port``) as a learner; returns once the
        change has committed, with the new configuration. Raises ChangeRefused."""
        body = {"id": node, "peer": peer, "client": client}
        result: dict[str, Any] = await self._call("POST", "/v1/members", body, _object, write=True)
        return result

    async def promote_member(self, node: int) -> dict[str, Any]:
        """Make a caught-up learner a voter. Raises ChangeRefused (e.g. not caught up)."""
        result: dict[str, Any] = await self._call(
            "POST", f"/v1/members/{node}/promote", {}, _object, write=True
        )
        return result

    async def remove_member(self, node: int) -> dict[str, Any]:
        """Remove a voter or a learner (the leader too). Raises ChangeRefused."""
        result: dict[str, Any] = await self._call(
            "DELETE", f"/v1/members/{node}", None, _object, write=True
        )
        return result

    async def transfer_leader(self, to: int | None = None) -> dict[str, Any]:
        """Hand leadership to ``to`` (None: the most up-to-date voter); returns
        ``{"leader": id, "took_ms": ...}`` once the new leader is known."""
        body = {} if to is None else {"to": to}
        result: dict[str, Any] = await self._call(
            "POST", "/v1/leader/transfer", body, _object, write=True
        )
        return result

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
            url = normalize_endpoint(endpoint)
        try:
            status, doc = await self._http("GET", url + "/v1/status", None, self.timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = self._reason(exc, self.timeout)
            raise Unavailable(f"{url}: {reason}", [f"{url}: {reason}"]) from None
        if status == 200:
            try:
                return _parse_status(url, doc)
            except (ValueError, KeyError, TypeError) as exc:
                raise Unavailable(f"{url}: malformed status: {exc}") from None
        if status >= 500 or status in (408, 429):
            raise Unavailable(f"{url}: HTTP {status}: {_message(doc)}")
        raise BadRequest(status, _message(doc), doc)

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
            self._session = aiohttp.ClientSession()
        return self._session

    async def _http(
        self, method: str, url: str, body: dict[str, Any] | None, timeout: float
    ) -> tuple[int, Any]:
        session = self._get_session()
        async with session.request(
            method,
            url,
            json=body,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            raw = await resp.read()
            status = resp.status
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:  # not JSON (a proxy's error page?): keep the text for messages
            doc = raw.decode("utf-8", "replace")[:500]
        return status, doc

    @staticmethod
    def _reason(exc: BaseException, timeout: float) -> str:
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
                status, doc = await self._http("GET", url + "/v1/nodes", None, timeout)
            except (aiohttp.ClientError, TimeoutError):
                self._mark_failed(url)
                continue
            if status != 200 or not isinstance(doc, dict):
                continue
            members: dict[int, str] = {}
            for node in doc.get("nodes") or ():
                try:
                    members[int(node["id"])] = normalize_endpoint(str(node["client_url"]))
                except (KeyError, TypeError, ValueError):
                    continue
            self._failed_at.pop(url, None)
            if members:
                self._members = members
            self._leader = _hint(doc)
            return True
        return False

    async def _attempt(
        self,
        method: str,
        url: str,
        path: str,
        body: dict[str, Any] | None,
        parse: Callable[[Any], T],
    ) -> T:
        """One request: its parsed answer, or _Failed (retry), or a final ClientError."""
        try:
            status, doc = await self._http(method, url + path, body, self.timeout)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            self._mark_failed(url)  # nothing was sent
            raise _Failed(self._reason(exc, self.timeout), maybe_done=False) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._mark_failed(url)  # sent, and no answer: it may have happened
            raise _Failed(self._reason(exc, self.timeout), maybe_done=True) from None
        self._failed_at.pop(url, None)
        message = _message(doc)
        if status == 200:
            try:
                return parse(doc)
            except (ValueError, KeyError, TypeError) as exc:
                raise _Failed(f"malformed answer: {exc}", maybe_done=True) from None
        if status == 409 and message.startswith("stale request"):
            raise StaleRequest(message, status=status, doc=doc)
        if status == 409 and message.startswith("refused:"):
            refusal = ChangeRefused(status, message, doc)
            if isinstance(doc, dict) and doc.get("retryable") is True:
                # Nothing was changed, and the same request may succeed soon.
                raise _Failed(message, maybe_done=False, hint=_hint(doc), refusal=refusal)
            raise refusal
        if status == 410 and isinstance(doc, dict) and isinstance(doc.get("first_index"), int):
            raise EntriesTrimmed(status, message, doc, doc["first_index"])
        if status in (503, 409, 408, 429):  # not done: no leader, leadership lost, busy
            raise _Failed(f"HTTP {status}: {message}", maybe_done=False, hint=_hint(doc))
        if status >= 500:  # 504 outcome unknown, or a failure we cannot tell
            raise _Failed(f"HTTP {status}: {message}", maybe_done=True, hint=_hint(doc))
        if 400 <= status < 500:
            raise BadRequest(status, message, doc)
        raise _Failed(f"unexpected HTTP {status}: {message}", maybe_done=True)

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        parse: Callable[[Any], T],
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
