"""Fuzz targets of the client plane: the JSON request bodies (:mod:`raftlog.wire`), the
append fast path's request reader (:mod:`raftlog.api.fastpath`), the XML-RPC handler and
the whole HTTP API of a running one-node cluster (its real client port, on loopback).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import math
import random
import re
import xmlrpc.client
import zlib
from types import TracebackType
from typing import Any

import msgspec
from fuzzlib import (
    MAX_INT,
    Outcome,
    Violation,
    accepted,
    odd_int,
    odd_text,
    odd_value,
    reason_of,
    rejected,
)

from raftlog import wire
from raftlog.api import http
from raftlog.api.fastpath import ClientServer, FastPathProtocol
from raftlog.core.types import NodeId
from raftlog.server.eventlog import EventLog
from raftlog.server.node import RaftNode, ServerConfig
from raftlog.server.replicated_log import ReplicatedLog
from raftlog.server.timing import Timing
from raftlog.storage.memory import MemoryStorage
from raftlog.transport.memory import MemoryNetwork

# -- request bodies ------------------------------------------------------------------------

KINDS: list[tuple[str, msgspec.json.Decoder[Any]]] = [
    ("append", http._APPEND),
    ("trim", http._TRIM),
    ("add_member", http._ADD_MEMBER),
    ("transfer", http._TRANSFER),
    ("partition", http._PARTITION),
    ("clock", http._CLOCK),
    ("tick", http._TICK),
    ("release", http._RELEASE),
]


def plausible_body(rng: random.Random, kind: str) -> dict[str, Any]:
    if kind == "append":
        doc: dict[str, Any] = {"data": rng.choice(("SET 5", "ADD 1", "", "日本", "x" * 50))}
        if rng.random() < 0.3:
            doc = {"data": base64.b64encode(rng.randbytes(6)).decode(), "encoding": "base64"}
        if rng.random() < 0.4:
            doc |= {"client_id": rng.choice(("c1", "fuzz")), "seq": rng.randrange(1, 50)}
        return doc
    if kind == "trim":
        name = rng.choice(("before", "keep_last", "older_than_s"))
        if name == "older_than_s":
            return {name: rng.choice((rng.random() * 100, 1e300, 1.7e308, 5e-324, 1e15))}
        return {name: rng.randrange(0, 20)}
    if kind == "add_member":
        n = rng.randrange(4, 9)
        return {"id": n, "peer": f"127.0.0.1:{7000 + n}", "client": f"http://127.0.0.1:{8000 + n}"}
    if kind == "transfer":
        return rng.choice(({}, {"to": rng.randrange(1, 5)}))
    if kind == "partition":
        return {"blocked": [rng.randrange(1, 4)], "held": []}
    if kind == "clock":
        return {"mode": rng.choice(("real", "step"))}
    if kind == "tick":
        return {"ticks": rng.randrange(1, 10)}
    return {"id": rng.randrange(1, 9), "action": rng.choice(("deliver", "drop"))}


_ODD_TOKENS = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e300",
    "-0",
    "0.0",
    "1" + "0" * 30,
    "9" * 5000,
    "9223372036854775808",
    "-9223372036854775809",
    '"\\ud800"',
    '"\\u0000"',
    '"\\udfff\\ud800"',
    "null",
    "true",
    "[]",
    "{}",
    '""',
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + "1" + "}" * 3000,
)


def json_text(rng: random.Random, kind: str) -> bytes:
    """A body for ``kind``: plausible, or with odd values, keys, tokens or bytes."""
    doc = plausible_body(rng, kind)
    roll = rng.random()
    if roll < 0.3:
        return msgspec.json.encode(doc)
    if roll < 0.6:
        key = rng.choice(
            [*doc, "data", "seq", "id", "to", "ticks", odd_text(rng)] if doc else ["x"]
        )
        doc[key] = odd_int(rng) if rng.random() < 0.4 else odd_value(rng)
        try:
            return msgspec.json.encode(doc)
        except (OverflowError, UnicodeEncodeError, TypeError, ValueError):
            return msgspec.json.encode(plausible_body(rng, kind))
    if roll < 0.85:  # a token JSON encoders never write, where a value goes
        key = rng.choice([*doc, "seq"] if doc else ["seq"])
        text = msgspec.json.encode({**doc, key: "@@"}).decode()
        return text.replace('"@@"', rng.choice(_ODD_TOKENS)).encode()
    if roll < 0.9:  # a key twice
        text = msgspec.json.encode(doc).decode()
        return (text[:-1] + (", " if doc else "") + text[1:]).encode()
    if roll < 0.95:
        return rng.choice((b"\xef\xbb\xbf", b"", b"  ", b"\xff\xfe")) + msgspec.json.encode(doc)
    depth = rng.randrange(100, 30000)
    return b'{"data": ' + b"[" * depth + b"1" + b"]" * depth + b"}"


def body_problem(kind: str, req: Any) -> str | None:
    """Why a decoded request must not have been accepted (None: it is fine)."""
    if kind == "append":
        if req.encoding not in ("utf-8", "base64") or not isinstance(req.data, str):
            return "encoding"
        if (req.client_id is None) != (req.seq is None):
            return "client_id without seq"
        if req.client_id is not None and not 1 <= len(req.client_id) <= wire.MAX_CLIENT_ID:
            return "client_id length"
        if req.seq is not None and not 1 <= req.seq <= MAX_INT:
            return "seq range"
    elif kind == "trim":
        given = [v for v in (req.before, req.keep_last, req.older_than_s) if v is not None]
        if (
            len(given) != 1
            or given[0] < 0
            or (req.older_than_s is not None and not math.isfinite(req.older_than_s))
        ):
            return "trim bounds"
        if max(req.before or 0, req.keep_last or 0) > MAX_INT:
            return "trim range"
    elif kind == "add_member":
        if not 0 < req.id <= MAX_INT or not req.peer:
            return "member"
    elif kind == "transfer":
        if req.to is not None and not 0 < req.to <= MAX_INT:
            return "transfer target"
    elif kind == "partition":
        if req.blocked is None and req.held is None:
            return "empty partition"
        if any(not 0 < n <= MAX_INT for n in [*(req.blocked or ()), *(req.held or ())]):
            return "partition ids"
    elif kind == "clock":
        if req.mode not in ("real", "step"):
            return "clock mode"
    elif kind == "tick":
        if not 1 <= req.ticks <= 10_000:
            return "ticks"
    elif kind == "release" and (req.id < 1 or req.action not in ("deliver", "drop")):
        return "release"
    return None


class JsonBodies:
    """A request body through the client API's decoders (the first byte picks which):
    decoded into its Struct, which must hold the bounds the API promises and round-trip,
    or refused with msgspec's own error naming the field; never another exception."""

    name = "json_bodies"
    weight = 2.0
    fast = True

    def seeds(self) -> list[bytes]:
        rng = random.Random(4)
        return [
            bytes([i]) + msgspec.json.encode(plausible_body(rng, kind))
            for i, (kind, _) in enumerate(KINDS)
            for _ in range(3)
        ]

    def generate(self, rng: random.Random) -> bytes:
        i = rng.randrange(len(KINDS))
        return bytes([i]) + json_text(rng, KINDS[i][0])

    async def check(self, data: bytes) -> Outcome:
        if not data:
            return rejected("empty input")
        kind, decoder = KINDS[data[0] % len(KINDS)]
        try:
            req = decoder.decode(data[1:])
        except msgspec.ValidationError as exc:
            return rejected(f"{kind}: invalid: {reason_of(str(exc), 50)}")
        except msgspec.DecodeError as exc:
            return rejected(f"{kind}: not JSON: {reason_of(str(exc), 50)}")
        problem = body_problem(kind, req)
        if problem is not None:
            raise Violation(f"{kind}: accepted {req!r} ({problem})")
        if decoder.decode(msgspec.json.encode(req)) != req:
            raise Violation(f"{kind}: {req!r} does not round-trip")
        if kind == "append":
            try:
                req.payload()
            except ValueError as exc:
                return rejected(f"append: data: {reason_of(str(exc), 50)}")
        return accepted(kind)

    async def __aenter__(self) -> JsonBodies:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


# -- the fast path's request reader --------------------------------------------------------


class _FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.protocol: Any = None
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written += data

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class _Slow:
    """aiohttp's side, as the fast path sees it: what it is handed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.made = False

    def connection_made(self, transport: Any) -> None:
        self.made = True

    def data_received(self, data: bytes) -> None:
        self.data += data

    def pause_writing(self) -> None:
        pass


class _FakeApi:
    """Appends the fast path may take: bodies the real decoder accepts. Every third is
    answered a loop turn later (a proposal in flight while more arrives)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def fast_append(self, body: bytes, authorization: bytes | None) -> asyncio.Future[Any] | None:
        try:
            http._APPEND.decode(body).payload()
        except (msgspec.DecodeError, ValueError):
            return None
        self.bodies.append(body)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if len(self.bodies) % 3:
            future.set_result(None)
        else:
            loop.call_soon(future.set_result, None)
        return future

    def fast_answer(self, proposal: asyncio.Future[Any]) -> tuple[int, bytes]:
        return 200, b'{"index":1,"term":1}'


def http_request(
    method: str, path: str, body: bytes, headers: list[tuple[str, str]] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: fuzz"]
    for name, value in headers or [("Content-Type", "application/json")]:
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass") + body


_FAST_HEADERS = (
    ("Connection", "keep-alive"),
    ("Connection", "close"),
    ("Transfer-Encoding", "chunked"),
    ("Expect", "100-continue"),
    ("Origin", "http://evil"),
    ("X-Odd", "a\x00b"),
    ("Content-Length", "5"),
    ("Content-Length", "-1"),
    ("Content-Length", "١٢"),
    ("content-length ", "3"),
    (" folded", "x"),
)


class FastPath:
    """Bytes on a client connection, read by the append fast path in odd-sized pieces:
    every byte is either part of an append it answered, or handed to aiohttp (in order,
    once), or still waiting as the start of an unfinished request; it answers exactly the
    appends it took, and nothing raises."""

    name = "fastpath"
    weight = 1.5
    fast = True

    def seeds(self) -> list[bytes]:
        rng = random.Random(5)
        return [
            http_request("POST", "/v1/log", json_text(rng, "append")) * rng.randrange(1, 4)
            for _ in range(20)
        ]

    def generate(self, rng: random.Random) -> bytes:
        parts = []
        for _ in range(rng.randrange(1, 5)):
            headers = [("Content-Type", "application/json")]
            if rng.random() < 0.3:
                headers.append(rng.choice(_FAST_HEADERS))
            body = json_text(rng, "append")
            request = http_request("POST", "/v1/log", body, headers)
            roll = rng.random()
            if roll < 0.1:
                request = request.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
            elif roll < 0.2:
                request = request.replace(b"\r\n", b"\n")
            elif roll < 0.3:
                request = request[: rng.randrange(len(request))]
            elif roll < 0.35:
                request = http_request("GET", "/v1/status", b"")
            parts.append(request)
        return b"".join(parts)

    async def check(self, data: bytes) -> Outcome:
        api = _FakeApi()
        slow = _Slow()
        transport = _FakeTransport()
        protocol = FastPathProtocol(api, lambda: slow, set(), http.MAX_BODY)  # type: ignore[arg-type]
        protocol.connection_made(transport)  # type: ignore[arg-type]
        rng = random.Random(zlib.crc32(data))
        pos = 0
        while pos < len(data):
            size = rng.choice((1, 2, 5, 17, 100, 1 << 16))
            # Once handed over, the transport feeds aiohttp's protocol, not the fast path.
            (transport.protocol or protocol).data_received(data[pos : pos + size])
            pos += size
            if rng.random() < 0.5:
                await asyncio.sleep(0)
        for _ in range(100):  # the appends still in flight are answered
            await asyncio.sleep(0)
            if protocol.waiting is None:
                break
        answered = transport.written.count(b"HTTP/1.1 200 OK\r\n")
        if answered != len(api.bodies):
            raise Violation(f"answered {answered} of {len(api.bodies)} appends taken")
        taken = bytearray()
        rest = data
        for body in api.bodies:  # each taken append is a whole request at the front
            end = rest.find(b"\r\n\r\n")
            request = rest[: end + 4 + len(body)]
            if not request.startswith(b"POST /v1/log HTTP/1.1\r\n") or not request.endswith(body):
                raise Violation(f"took an append from {request[:80]!r}")
            taken += request
            rest = rest[len(request) :]
        if protocol.handed_over:
            if bytes(slow.data) != rest:
                raise Violation("the bytes handed to aiohttp are not the rest of the input")
            return rejected(f"handed to aiohttp after {min(len(api.bodies), 3)} appends")
        if bytes(protocol.buffer) != rest:
            raise Violation("bytes lost or duplicated in the buffer")
        if rest and not (b"POST /v1/log HTTP/1.1\r\n".startswith(rest[:23])):
            raise Violation(f"kept {rest[:40]!r}, which is no append, without handing it over")
        label = "waiting for the rest" if rest else "all answered"
        return accepted(f"{min(len(api.bodies), 3)} appends, {label}")

    async def __aenter__(self) -> FastPath:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


# -- a running node -----------------------------------------------------------------------

TIMING = Timing(0.05, 0.1, 0.01, 0.005)


class OneNode:
    """A one-node cluster (memory storage and network, the replicated log) with its real
    client port (fast path and aiohttp) on loopback."""

    def __init__(self) -> None:
        self.node: RaftNode | None = None
        self.api: http.ClientApi | None = None
        self.server: ClientServer | None = None
        self.task: asyncio.Task[None] | None = None
        self.port = 0

    async def __aenter__(self) -> OneNode:
        net = MemoryNetwork()
        config = ServerConfig(
            node_id=NodeId(1), voters=frozenset({NodeId(1)}), timing=TIMING, seed=1
        )
        node = RaftNode(
            config,
            MemoryStorage(),
            net.factory(NodeId(1)),
            ReplicatedLog(),
            EventLog(NodeId(1), stream=io.StringIO(), level=logging.CRITICAL),
        )
        self.node = node
        self.task = asyncio.create_task(node.run())
        self.api = http.ClientApi(
            node, http.ApiConfig(client_urls={NodeId(1): "http://127.0.0.1:1"}, commit_timeout_s=3)
        )
        self.server = ClientServer(self.api, self.api.app(), http.MAX_BODY)
        await self.server.start("127.0.0.1", 0)
        assert self.server.server is not None
        self.port = self.server.server.sockets[0].getsockname()[1]
        async with asyncio.timeout(30):
            while not node.is_leader:
                await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.server is not None:
            await self.server.close()
        if self.node is not None and self.task is not None:
            self.node.stop()
            await self.task


# -- XML-RPC ------------------------------------------------------------------------------

METHODS = ("is_leader", "leader_receive_log", "request_vote", "heartbeat")


def _xml_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(("SET 5", "", "日本語", "a" * 200, "<b>&amp;</b>"))
    if roll < 0.45:
        return rng.randrange(-(2**31), 2**31)
    if roll < 0.55:
        return rng.choice((True, False))
    if roll < 0.62:
        return rng.choice((1.5, math.nan, math.inf, -0.0))
    if roll < 0.7:
        return rng.randbytes(rng.randrange(8))
    if depth > 3:
        return None
    if roll < 0.85:
        return [_xml_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {str(i): _xml_value(rng, depth + 1) for i in range(rng.randrange(3))}


_XML_ODD = (
    "<int>99999999999999999999999</int>",
    "<i8>9223372036854775808</i8>",
    "<double>nan</double>",
    "<double>1e999</double>",
    "<dateTime.iso8601>bogus</dateTime.iso8601>",
    "<base64>!!!not base64</base64>",
    "<boolean>2</boolean>",
    "<nil/>",
    "<struct><member><value><int>1</int></value></member></struct>",
    "<string>&undefined;</string>",
    "<string>&#0;</string>",
    "<string>&#xD800;</string>",
    "<unknown>1</unknown>",
)


def xml_text(rng: random.Random) -> bytes:
    method = rng.choice((*METHODS, "is_leader", "leader_receive_log", odd_text(rng), ""))
    roll = rng.random()
    if roll < 0.5:
        params: tuple[Any, ...]
        if method == "leader_receive_log" and rng.random() < 0.5:
            params = (rng.choice(("SET 5", "ADD 1", "", "日本語")),)
        else:
            params = tuple(_xml_value(rng) for _ in range(rng.randrange(3)))
        try:
            return xmlrpc.client.dumps(params, method, allow_none=True).encode()
        except (TypeError, OverflowError, ValueError):
            return xmlrpc.client.dumps((), "is_leader").encode()
    if roll < 0.7:
        odd = rng.choice(_XML_ODD)
        return (
            f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName>"
            f"<params><param><value>{odd}</value></param></params></methodCall>"
        ).encode("utf-8", "surrogatepass")
    if roll < 0.8:  # deep nesting
        depth = rng.choice((50, 1000, 2500, 4000))
        inner = "<value><array><data>" * depth + "</data></array></value>" * depth
        return (
            f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName>"
            f"<params><param>{inner}</param></params></methodCall>"
        ).encode("utf-8", "surrogatepass")
    if roll < 0.88:  # entities: a billion laughs, an external one
        entities = '<!ENTITY a "aaaaaaaaaa">' + "".join(
            f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9)
        )
        if rng.random() < 0.5:
            entities = '<!ENTITY j SYSTEM "file:///etc/passwd">'
        return (
            f'<?xml version="1.0"?><!DOCTYPE m [{entities}]><methodCall>'
            "<methodName>leader_receive_log</methodName><params><param><value><string>&j;"
            "</string></value></param></params></methodCall>"
        ).encode()
    if roll < 0.94:
        return xmlrpc.client.dumps(xmlrpc.client.Fault(1, "x"), methodresponse=True).encode()
    return xmlrpc.client.dumps((True,), methodresponse=True).encode()


class _Request:
    """What the XML-RPC handler reads of a request."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.headers: dict[str, str] = {}  # no Authorization: the node has no token

    async def read(self) -> bytes:
        return self.body


class XmlRpc:
    """A request body through the XML-RPC handler of a one-node cluster's leader: the
    answer is a methodResponse holding one boolean, or a Fault with code 1 (malformed),
    2 (bad arguments) or 3 (unknown method: ``request_vote`` and ``heartbeat`` are not
    served, peers talk over their own port); never an exception (a 500)."""

    name = "xmlrpc"
    weight = 0.4
    fast = False

    def __init__(self) -> None:
        self.cluster = OneNode()

    def seeds(self) -> list[bytes]:
        return [
            xmlrpc.client.dumps(("SET 5",), "leader_receive_log").encode(),
            xmlrpc.client.dumps((), "is_leader").encode(),
            xmlrpc.client.dumps((1, 2), "request_vote").encode(),
            xmlrpc.client.dumps((1,), "heartbeat").encode(),
        ]

    def generate(self, rng: random.Random) -> bytes:
        return xml_text(rng)

    async def check(self, data: bytes) -> Outcome:
        api = self.cluster.api
        assert api is not None
        response = await api.xmlrpc(_Request(data))  # type: ignore[arg-type]
        if response.status != 200 or response.content_type != "text/xml":
            raise Violation(f"answered {response.status} {response.content_type}")
        body = response.body  # the handler gives a str: aiohttp holds it as a payload
        raw = body if isinstance(body, bytes) else getattr(body, "_value", b"")
        try:
            result, method = xmlrpc.client.loads(raw)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode not in (1, 2, 3):
                raise Violation(f"fault code {fault.faultCode}") from None
            return rejected(f"fault {fault.faultCode}: {reason_of(fault.faultString, 45)}")
        if method is not None or len(result) != 1 or not isinstance(result[0], bool):
            raise Violation(f"answered {result!r}")
        return accepted(f"answered {result[0]}")

    async def __aenter__(self) -> XmlRpc:
        await self.cluster.__aenter__()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.cluster.__aexit__(et, e, tb)


# -- the whole HTTP API ---------------------------------------------------------------------

ROUTES: list[tuple[str, str, str]] = [
    ("POST", "/v1/log", "append"),
    ("GET", "/v1/log", ""),
    ("POST", "/v1/log/trim", "trim"),
    ("GET", "/v1/status", ""),
    ("GET", "/v1/nodes", ""),
    ("GET", "/v1/members", ""),
    ("POST", "/v1/members", "add_member"),
    ("POST", "/v1/members/2/promote", ""),
    ("DELETE", "/v1/members/7", ""),
    ("POST", "/v1/leader/transfer", "transfer"),
    ("GET", "/livez", ""),
    ("GET", "/readyz", ""),
    ("GET", "/v1/debug/log", ""),
    ("GET", "/dashboard/app.js", ""),
    ("GET", "/", ""),
    ("POST", "/RPC2", "xmlrpc"),
    ("POST", "/", "xmlrpc"),
    ("POST", "/v1/admin/clock", "clock"),
    ("GET", "/no/such/path", ""),
]
_QUERIES = {
    "/v1/log": ("from", "limit", "consistency"),
    "/v1/debug/log": ("start", "limit"),
}
_ODD_QUERY_VALUES = (
    "0",
    "-1",
    "1",
    "10001",
    "99999999999999999999999",
    "9223372036854775807",
    "1e3",
    "",
    "lease",
    "local",
    "linearizable",
    "%00",
    "%ff",
    "١٢",
    "1_0",
    " 5",
    "9" * 5000,
)
_ODD_PATHS = (
    "/v1/members/0/promote",
    "/v1/members/-1",
    "/v1/members/99999999999999999999999",
    "/v1/members/%00",
    "/v1/members/١",
    "/v1/log%2ftrim",
    "/v1//log",
    "/../etc/passwd",
    "/dashboard/..%2f..%2fsetup.py",
    "/v1/log?" + "a=1&" * 2000,
    "/" + "a" * 9000,
    "*",
)
_ODD_HEADERS = (
    ("Content-Type", "text/plain"),
    ("Content-Type", "application/json; charset=latin-1"),
    ("Origin", "http://evil.example"),
    ("Authorization", "Bearer \udcff"),
    ("X-Raftlog-Forwarded", "2"),
    ("Expect", "100-continue"),
    ("Connection", "close"),
    ("Accept-Encoding", "gzip"),
    ("X-Long", "x" * 9000),
)


def request_of(rng: random.Random) -> bytes:
    method, path, kind = rng.choice(ROUTES)
    if rng.random() < 0.15:
        path = rng.choice(_ODD_PATHS)
        method = rng.choice(("GET", "POST", "DELETE"))
    if rng.random() < 0.05:
        method = rng.choice(("PUT", "PATCH", "OPTIONS", "HEAD", "BREW", "get"))
    if path in _QUERIES and rng.random() < 0.7:
        names = rng.sample(_QUERIES[path], rng.randrange(1, len(_QUERIES[path]) + 1))
        path += "?" + "&".join(f"{n}={rng.choice(_ODD_QUERY_VALUES)}" for n in names)
    if kind == "xmlrpc":
        body = xml_text(rng)
    elif kind:
        body = json_text(rng, kind)
    elif rng.random() < 0.2:
        body = json_text(rng, "append")
    else:
        body = b""
    headers = [("Content-Type", "application/json")]
    if rng.random() < 0.2:
        headers.append(rng.choice(_ODD_HEADERS))
    return http_request(method, path, body, headers)


_JSON_TYPES = ("application/json",)


class HttpApi:
    """Requests to the real client port of a one-node cluster: generated ones (every
    route, odd paths, queries, headers and bodies) must get an answer, and raw mutated
    bytes may get one. An answer is never a 500: an error is JSON with a code whose status
    is the code's; a success is JSON (or the dashboard's file, or XML for XML-RPC). Only
    bytes that are not HTTP at all may get aiohttp's own plain-text 400. Streaming
    ``/v1/events`` is left out (it answers forever); admin endpoints are not served (no
    token), so they answer 404."""

    name = "http_api"
    weight = 0.15
    fast = False

    def __init__(self) -> None:
        self.cluster = OneNode()

    def seeds(self) -> list[bytes]:
        rng = random.Random(6)
        return [request_of(rng) for _ in range(30)]

    def generate(self, rng: random.Random) -> bytes:
        return request_of(rng)

    async def check(self, data: bytes) -> Outcome:
        whole = is_whole_request(data)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.cluster.port)
        try:
            writer.write(data)
            await writer.drain()
            try:
                async with asyncio.timeout(5 if whole else 0.25):
                    status, headers, body = await _read_response(
                        reader, head_only=data.startswith(b"HEAD ")
                    )
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                if whole:
                    raise Violation("no answer to a whole request") from None
                return rejected("no answer (not a whole request)")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        well_formed = whole
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if data.startswith(b"HEAD "):  # no body to check
            if status >= 500:
                raise Violation(f"answered HEAD with {status}")
            return (status < 400, f"HEAD {status}")
        if status >= 500 and content_type not in _JSON_TYPES:
            raise Violation(f"answered {status} {content_type}: {body[:200]!r}")
        if status >= 400:
            if content_type not in _JSON_TYPES:
                if status == 400 and not well_formed:
                    return rejected("aiohttp's plain-text 400 (not HTTP)")
                if status in (400, 413, 417, 431) and content_type == "text/plain":
                    return rejected(f"aiohttp's plain-text {status}")
                if status == 404 and content_type == "text/plain" and _target_is_not_a_path(data):
                    # `OPTIONS * HTTP/1.1` (asterisk form): aiohttp answers before any
                    # route (the catch-all route matches paths, which start with "/").
                    return rejected("aiohttp's plain-text 404 (request target not a path)")
                raise Violation(f"answered {status} {content_type}: {body[:200]!r}")
            try:
                error = msgspec.json.decode(body, type=wire.Error)
            except msgspec.DecodeError:
                raise Violation(f"{status} with a body that is no error: {body[:200]!r}") from None
            if error.code == wire.INTERNAL or wire.HTTP_STATUS.get(error.code) != status:
                raise Violation(f"{status} with code {error.code!r}: {error.error}")
            return rejected(f"{status} {error.code}")
        if content_type in _JSON_TYPES and not data.startswith(b"HEAD "):
            try:
                msgspec.json.decode(body)
            except msgspec.DecodeError:
                raise Violation(f"{status} with a body that is not JSON: {body[:200]!r}") from None
        return accepted(f"{status} {content_type}")

    async def __aenter__(self) -> HttpApi:
        await self.cluster.__aenter__()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.cluster.__aexit__(et, e, tb)


_REQUEST_LINE = re.compile(rb"[A-Za-z]+ [!-~]+ HTTP/1\.1")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([ -~]*?)[ \t]*")


def is_whole_request(data: bytes) -> bool:
    """Whether ``data`` is one complete, plainly formed HTTP/1.1 request (which must get
    an answer): a request line, header lines, one Content-Length giving the exact body."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    lines = head.split(b"\r\n")
    if not _REQUEST_LINE.fullmatch(lines[0]) or lines[0].startswith(b"/v1/events"):
        return False
    length = None
    for line in lines[1:]:
        match = _HEADER.fullmatch(line)
        if match is None:
            return False
        name = match.group(1).lower()
        if name == b"content-length":
            if length is not None or not match.group(2).isdigit():
                return False
            length = int(match.group(2))
        elif name in (b"transfer-encoding", b"expect", b"upgrade"):
            return False
    return length == len(body) and b" /v1/events" not in lines[0]


async def _read_response(
    reader: asyncio.StreamReader, *, head_only: bool = False
) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    if head_only:
        return status, headers, b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if not size:
                break
            body += chunk[:-2]
        return status, headers, bytes(body)
    length = headers.get("content-length")
    if length is not None:
        return status, headers, await reader.readexactly(int(length))
    return status, headers, await reader.read()


def _target_is_not_a_path(data: bytes) -> bool:
    """The request line's target is not origin-form (``/...``): ``*`` or garbage."""
    line = data.split(b"\r\n", 1)[0].split(b" ")
    return len(line) < 2 or not line[1].startswith((b"/", b"http://", b"https://"))
