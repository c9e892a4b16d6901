"""A blocking raftlog client: the asyncio client on a private event loop in a thread.

::

    with Client(["127.0.0.1:1234", "127.0.0.1:1235"]) as client:
        result = client.append("SET 5")
        for record in client.read_all():
            print(record.index, record.text())

Why a background loop rather than ``asyncio.run`` per call: ``asyncio.run`` cannot be used
from a thread that already runs an event loop (a Jupyter cell, a callback of an async
application), and an aiohttp session belongs to one loop, so a loop per call would also mean
a new session (and new connections) per call. The private loop keeps one session, its
keep-alive connections and what the client has learnt (members, leader) for the client's
lifetime; calls work from any thread, several threads may share one Client (their appends
run one at a time, as with the asyncio client; reads run concurrently). The loop's thread is
a daemon: ``close()`` (or ``with``) stops it and closes the connections.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, Self, TypeVar

from raftlog.client.aio import (
    AppendResult,
    Consistency,
    MemberStatus,
    NodeStatus,
    ReadResult,
    Record,
)
from raftlog.client.aio import Client as AsyncClient

T = TypeVar("T")


class Client:
    """The blocking twin of :class:`raftlog.client.aio.Client` (same arguments, except the
    aiohttp session, and same methods; see there)."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        client_id: str | None = None,
        timeout: float = 10.0,
        retry_for: float = 30.0,
        ssl: SSLContext | None = None,
        token: str | None = None,
    ) -> None:
        self._client = AsyncClient(
            endpoints,
            client_id=client_id,
            timeout=timeout,
            retry_for=retry_for,
            ssl=ssl,
            token=token,
        )
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run_loop, name="raftlog-client", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("a blocking raftlog client cannot be called from its own loop")
        with self._lock:
            if self._closed:
                raise RuntimeError("the raftlog client is closed")
            future = asyncio.run_coroutine_threadsafe(make(), self._loop)
        try:
            return future.result()
        except BaseException:  # KeyboardInterrupt in the caller: stop the call too
            future.cancel()
            raise

    # -- what the client has learnt ------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self._client.client_id

    @property
    def seeds(self) -> tuple[str, ...]:
        return self._client.seeds

    @property
    def timeout(self) -> float:
        return self._client.timeout

    @property
    def retry_for(self) -> float:
        return self._client.retry_for

    @property
    def last_seq(self) -> int | None:
        return self._client.last_seq

    @property
    def members(self) -> dict[int, str]:
        return self._client.members

    @property
    def known_leader(self) -> int | None:
        return self._client.known_leader

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the API -------------------------------------------------------------------------

    def append(self, data: str | bytes, *, seq: int | None = None) -> AppendResult:
        return self._run(lambda: self._client.append(data, seq=seq))

    def read(
        self,
        *,
        start: int | None = None,
        limit: int = 1000,
        consistency: Consistency = "linearizable",
    ) -> ReadResult:
        return self._run(
            lambda: self._client.read(start=start, limit=limit, consistency=consistency)
        )

    def trim(
        self,
        *,
        before: int | None = None,
        keep_last: int | None = None,
        older_than_s: float | None = None,
    ) -> int:
        return self._run(
            lambda: self._client.trim(before=before, keep_last=keep_last, older_than_s=older_than_s)
        )

    def read_all(
        self,
        *,
        start: int | None = None,
        consistency: Consistency = "linearizable",
        page: int = 1000,
    ) -> list[Record]:
        return self._run(
            lambda: self._client.read_all(start=start, consistency=consistency, page=page)
        )

    def status(self, endpoint: str | int) -> NodeStatus:
        return self._run(lambda: self._client.status(endpoint))

    def cluster_status(self) -> list[MemberStatus]:
        return self._run(self._client.cluster_status)

    def leader(self) -> int | None:
        return self._run(self._client.leader)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections and stop the loop's thread. Idempotent; calls still in
        flight in other threads fail."""
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("a blocking raftlog client cannot be closed from its own loop")
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        calls = [t for t in asyncio.all_tasks() if t is not current]
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        await self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["Client"]
