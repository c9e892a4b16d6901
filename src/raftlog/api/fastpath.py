"""The append fast path: ``POST /v1/log`` on the leader, served without aiohttp's
per-request machinery.

Most of a leader's time under load went to the HTTP server's objects per request (a
request, a response, a writer, a task, middleware, routing), not to Raft. This protocol
owns each client connection first. It reads requests itself, and while they are plain
appends on the leader (``POST /v1/log``, a Content-Length body that decodes as an append
request, this node the leader) it proposes them and writes the answer from the proposal's
callback: no task, no request object. Anything else — another path or method, a header it
does not handle (chunked bodies, ``Expect``, ``Connection: close``, a browser's
``Origin``: CORS is aiohttp's), HTTP/1.0, a body that does not decode, a missing or
wrong token (the 401 is aiohttp's), a follower, a leader that lost its leadership before
proposing — and the connection is handed, with the bytes it has not answered yet, to
aiohttp's protocol, which serves it from then on exactly as it serves any other
connection. So every answer that is not a committed append (errors, forwarding, every
other endpoint) comes from one place.

Over TLS nothing changes: the protocol sits above the TLS layer (``ClientServer.start``'s
``ssl``) and hands the same TLS transport over.

Requests on a connection are answered in order, one at a time (HTTP/1.1 pipelining is
allowed, the next request waits in the buffer); reading pauses while a large unread
buffer waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from ssl import SSLContext
from typing import Any, Protocol, cast

from aiohttp import web

log = logging.getLogger("raftlog.api")

MAX_HEAD = 16 << 10
"""A request head larger than this goes to aiohttp (which refuses it properly)."""
PAUSE_ABOVE = 1 << 20
"""Stop reading a connection while this much is buffered and unanswered."""

_PATH = b"/v1/log"
_REQUEST_LINE = b"POST " + _PATH + b" HTTP/1.1"
_START = _REQUEST_LINE + b"\r\n"
"""How every request the fast path serves begins."""
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class _Date:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


_date = _Date()


class FastAppendApi(Protocol):
    """What the fast path needs from the client API (:class:`ClientApi` has it)."""

    def fast_append(self, body: bytes, authorization: bytes | None) -> asyncio.Future[Any] | None:
        """Start the append in ``body`` (``authorization``: the request's Authorization
        header, if any): the proposal's future, or None when the request is not for the
        fast path (aiohttp serves it instead: a missing or wrong token, say)."""

    def fast_answer(self, proposal: asyncio.Future[Any]) -> tuple[int, bytes]:
        """The status and JSON body answering a finished proposal; raises
        :class:`Handoff` when aiohttp must serve the request after all."""


class Handoff(Exception):
    """The request must be served by aiohttp after all (nothing was done with it)."""


def _parse_head(head: bytes) -> tuple[int, bytes | None] | None:
    """The Content-Length and the Authorization header (None: none) of a request head
    the fast path serves; None for anything else (aiohttp decides about those)."""
    lines = head.split(b"\r\n")
    if lines[0] != _REQUEST_LINE:
        return None
    length: int | None = None
    authorization: bytes | None = None
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b" " in name:
            return None  # malformed, or obsolete line folding
        key = name.lower()
        if key == b"content-length":
            value = value.strip()
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif key == b"authorization":
            if authorization is not None:
                return None
            authorization = value.strip()
        elif key in (b"transfer-encoding", b"expect", b"upgrade", b"origin") or (
            key == b"connection" and value.strip().lower() != b"keep-alive"
        ):
            return None
    return None if length is None else (length, authorization)


class FastPathProtocol(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(
        self,
        api: FastAppendApi,
        slow: Callable[[], asyncio.Protocol],
        connections: set[FastPathProtocol],
        max_body: int,
    ) -> None:
        self.api = api
        self.slow = slow
        self.connections = connections
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: asyncio.Future[Any] | None = None
        self.request = b""
        """The raw request being answered (handed over whole if it must go slow)."""
        self.paused = False
        """Reading is paused (a request in flight or answers not drained, and a lot
        buffered behind it)."""
        self.write_paused = False
        """The transport's write buffer is full: no new request until it drains."""
        self.handed_over = False

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if self.waiting is not None and not self.waiting.done():
            self.waiting.cancel()  # withdraws the wait; the proposal goes on
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiting is None and not self.write_paused:
            self._next()
        self._flow()

    def eof_received(self) -> bool | None:
        # The transport closes at once (as aiohttp's does on a half-close): an answer
        # still in flight is lost, its proposal goes on.
        return None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.waiting is None and self.buffer:
            self._next()
        self._flow()

    def _flow(self) -> None:
        """Back-pressure: stop reading while busy (a proposal in flight, or answers the
        client has not read) with more than PAUSE_ABOVE buffered; read whenever idle, as
        an idle connection's buffer holds at most one incomplete request (a head up to
        MAX_HEAD, a body up to max_body: anything larger was handed over)."""
        transport = self.transport
        if transport is None or self.handed_over:
            return
        busy = self.waiting is not None or self.write_paused
        want_pause = busy and len(self.buffer) > PAUSE_ABOVE
        if want_pause and not self.paused:
            transport.pause_reading()
            self.paused = True
        elif self.paused and not want_pause:
            transport.resume_reading()
            self.paused = False

    # -- requests ---------------------------------------------------------------------

    def _next(self) -> None:
        """Serve the next buffered request, if it is all there."""
        buffer = self.buffer
        if not buffer.startswith(_START) and not _START.startswith(buffer):
            self._hand_over(b"")  # not an append (or not CRLF-terminated): aiohttp's
            return
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                self._hand_over(b"")
            return
        head = _parse_head(bytes(buffer[:end]))
        if head is None or head[0] > self.max_body:
            self._hand_over(b"")
            return
        length, authorization = head
        total = end + 4 + length
        if len(buffer) < total:
            return  # the rest of the body is on its way
        request = bytes(buffer[:total])
        del buffer[:total]
        try:
            future = self.api.fast_append(request[end + 4 :], authorization)
        except Exception:  # a bug: let aiohttp serve it (and answer 500 if it fails too)
            log.exception("the append fast path failed; aiohttp serves the request")
            future = None
        if future is None:
            self._hand_over(request)
            return
        self.request = request
        self.waiting = future
        future.add_done_callback(self._answered)

    def _answered(self, future: asyncio.Future[Any]) -> None:
        self.waiting = None
        transport = self.transport
        if transport is None or future.cancelled():
            return
        try:
            status, body = self.api.fast_answer(future)
        except Handoff:
            self._hand_over(self.request)
            return
        except Exception:  # a bug answering: the client still gets an answer
            log.exception("the append fast path failed to answer")
            status, body = 500, b'{"error":"internal error","code":"internal"}'
        reason = _REASONS.get(status, b"Unknown")
        transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: %d\r\nDate: %s\r\nServer: raftlog\r\n\r\n%s"
            % (status, reason, len(body), _date(), body)
        )
        self.request = b""
        if self.buffer and not self.write_paused:
            self._next()
        self._flow()

    def _hand_over(self, unanswered: bytes) -> None:
        """From now on aiohttp serves this connection, starting with ``unanswered`` and
        whatever is buffered after it."""
        transport = self.transport
        if transport is None or self.handed_over:
            return
        self.handed_over = True
        self.connections.discard(self)
        data = unanswered + bytes(self.buffer)
        self.buffer.clear()
        protocol = self.slow()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.write_paused:  # the transport tells only its current protocol
            protocol.pause_writing()
        if self.paused:
            transport.resume_reading()
            self.paused = False
        if data:
            protocol.data_received(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ClientServer:
    """The client port: the fast path in front of aiohttp's server for ``app``."""

    def __init__(self, api: FastAppendApi, app: web.Application, max_body: int) -> None:
        self.api = api
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.max_body = max_body
        self.server: asyncio.Server | None = None
        self.connections: set[FastPathProtocol] = set()

    async def start(self, host: str, port: int, *, ssl: SSLContext | None = None) -> None:
        """Listen; with ``ssl``, for TLS connections only (the fast path serves them too:
        it sits above the TLS layer, like aiohttp)."""
        await self.runner.setup()
        slow = self.runner.server
        assert slow is not None
        factory, self.connections = serve_fast(self.api, slow, self.max_body)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            factory, host, port, reuse_address=True, backlog=1024, ssl=ssl
        )

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.close()
        await self.runner.cleanup()  # and the connections handed to aiohttp


def serve_fast(
    api: FastAppendApi, slow: Callable[[], asyncio.Protocol], max_body: int
) -> tuple[Callable[[], FastPathProtocol], set[FastPathProtocol]]:
    """A protocol factory for ``loop.create_server`` and the set of its open connections
    (to close at shutdown)."""
    connections: set[FastPathProtocol] = set()

    def factory() -> FastPathProtocol:
        return FastPathProtocol(api, slow, connections, max_body)

    return factory, connections


__all__ = ["ClientServer", "FastAppendApi", "FastPathProtocol", "Handoff", "serve_fast"]
