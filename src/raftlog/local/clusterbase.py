"""What the two cluster supervisors share: talking to their nodes over HTTP.

:class:`ClusterBase` is the common ground of :class:`~raftlog.local.cluster.LocalCluster`
(processes on loopback) and :class:`~raftlog.local.netns_cluster.NetnsCluster` (processes in
network namespaces). Each implements the control actions of
:class:`~raftlog.local.control.ClusterControl` its own way; the base reads the nodes'
answers (status, leader, log) through :meth:`url`, the same for both.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import xmlrpc.client
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
import msgspec

from raftlog import wire
from raftlog.local.control import ClusterState, ControlError

S = TypeVar("S", bound=msgspec.Struct)


class ClusterBase(ABC):
    """A cluster of node processes that this object supervises. Use as
    ``async with cluster:`` (:meth:`close` stops every node)."""

    kind: str

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ClusterBase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the control interface (raftlog.local.control.ClusterControl) ----------------

    @abstractmethod
    def node_ids(self) -> list[int]: ...

    @abstractmethod
    def url(self, i: int) -> str: ...

    @abstractmethod
    def lines(self, i: int) -> list[str]: ...

    @abstractmethod
    async def start(self) -> None:
        """Start every node; returns once each serves HTTP."""

    @abstractmethod
    async def start_node(self, i: int) -> None: ...

    @abstractmethod
    async def stop(self, i: int, grace_s: float = 10.0) -> int | None: ...

    @abstractmethod
    async def kill(self, i: int) -> None: ...

    @abstractmethod
    async def pause(self, i: int) -> None: ...

    @abstractmethod
    async def resume(self, i: int) -> None: ...

    @abstractmethod
    async def isolate(self, i: int) -> None: ...

    @abstractmethod
    async def cut(self, a: int, b: int) -> None: ...

    @abstractmethod
    async def heal(self) -> None: ...

    @abstractmethod
    async def state(self) -> ClusterState: ...

    @abstractmethod
    async def close(self) -> None:
        """Stop every node and remove what the cluster made."""

    def add_node(self) -> int:
        """A new node that joins the running cluster when started (``--join``)."""
        raise ControlError(f"a {self.kind} cluster has a fixed set of nodes")

    def forget(self, i: int) -> None:
        """Stop tracking node ``i`` (after it was removed from the cluster and stopped)."""
        raise ControlError(f"a {self.kind} cluster has a fixed set of nodes")

    @abstractmethod
    def answers(self, i: int) -> bool:
        """Can node ``i`` answer now (it runs and is not paused)?"""

    # -- talking to the nodes --------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            context = self.client_ssl()
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=5),
                connector=aiohttp.TCPConnector(ssl=context) if context is not None else None,
            )
        return self._session

    def client_ssl(self) -> ssl.SSLContext | None:
        """The TLS context for the nodes' client ports (None: plaintext)."""
        return None

    def xmlrpc_url(self, i: int) -> str:
        """Node ``i``'s URL for an XML-RPC client (with credentials, if it needs any)."""
        return self.url(i)

    async def _close_client(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def wait_live(self, i: int, timeout: float = 30.0) -> None:
        """Wait until node ``i`` serves HTTP; ControlError if it exits or takes longer
        than ``timeout``."""

        async def live() -> bool:
            self._check_alive(i)
            return await self.get(i, "/livez", timeout=1.0) is not None

        try:
            await wait_for(live, timeout, "")
        except TimeoutError:
            raise ControlError(f"node {i} did not start serving within {timeout} s") from None

    @abstractmethod
    def _check_alive(self, i: int) -> None:
        """Raise ControlError if node ``i``'s process has exited (while starting)."""

    async def _get_body(self, i: int, path: str, timeout: float) -> bytes | None:
        if i not in self.node_ids() or not self.answers(i):
            return None
        try:
            async with self._client().get(
                self.url(i) + path, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def get(self, i: int, path: str, timeout: float = 2.0) -> Any:
        """GET a JSON document from node ``i``; None if it cannot answer."""
        raw = await self._get_body(i, path, timeout)
        try:
            return None if raw is None else msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return None

    async def get_as(self, i: int, path: str, shape: type[S], timeout: float = 2.0) -> S | None:
        """GET an answer of node ``i`` as its :mod:`raftlog.wire` Struct ``shape``; None
        if it cannot answer or answers something else (an error)."""
        raw = await self._get_body(i, path, timeout)
        try:
            return None if raw is None else msgspec.json.decode(raw, type=shape)
        except msgspec.DecodeError:
            return None

    def _headers(self, path: str) -> dict[str, str]:
        """Extra headers of a request to ``path`` (an admin token, say)."""
        return {}

    async def post(self, i: int, path: str, doc: Any, timeout: float = 10.0) -> tuple[int, Any]:
        async with self._client().post(
            self.url(i) + path,
            json=doc,
            headers=self._headers(path),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def status(self, i: int) -> dict[str, Any] | None:
        """``GET /v1/status`` of node ``i`` as JSON; None unless it answers a status."""
        doc = await self.get(i, "/v1/status")
        try:
            msgspec.convert(doc, wire.Status)
        except msgspec.ValidationError:
            return None
        found: dict[str, Any] = doc
        return found

    async def statuses(self) -> dict[int, dict[str, Any] | None]:
        ids = self.node_ids()
        found = await asyncio.gather(*(self.status(i) for i in ids))
        return dict(zip(ids, found, strict=True))

    async def leader(self, timeout: float = 30.0, *, among: Sequence[int] | None = None) -> int:
        """Wait for a leader that a majority of the answering nodes agree on."""

        async def find() -> int | None:
            ids = self.node_ids()
            found = await asyncio.gather(*(self.get_as(i, "/v1/status", wire.Status) for i in ids))
            statuses = {i: s for i, s in zip(ids, found, strict=True) if s is not None}
            leaders = [
                i
                for i, s in statuses.items()
                if s.state == "Leader" and (among is None or i in among)
            ]
            if len(leaders) != 1:
                return None
            lead = leaders[0]
            term = statuses[lead].term
            agree = sum(1 for s in statuses.values() if s.leader == lead and s.term == term)
            return lead if agree * 2 > len(ids) else None

        result: int = await wait_for(find, timeout, f"no leader within {timeout} s")
        return result

    def xmlrpc(self, i: int) -> xmlrpc.client.ServerProxy:
        """A lab-style client proxy (blocking: call it from a thread)."""
        return xmlrpc.client.ServerProxy(self.xmlrpc_url(i), context=self.client_ssl())

    async def call_xmlrpc(self, i: int, method: str, *args: Any) -> Any:
        def call() -> Any:
            with self.xmlrpc(i) as proxy:
                return getattr(proxy, method)(*args)

        return await asyncio.to_thread(call)

    async def append(self, i: int, text: str, timeout: float = 10.0) -> dict[str, Any]:
        status, doc = await self.post(i, "/v1/log", {"data": text}, timeout)
        if status != 200:
            raise RuntimeError(f"append {text!r} via node {i}: HTTP {status} {doc}")
        assert isinstance(doc, dict)
        return doc

    async def log(self, i: int) -> list[str] | None:
        """The data of node ``i``'s entries as it has them (base64 for binary ones)."""
        page = await self.get_as(
            i, "/v1/log?consistency=local&limit=10000", wire.ReadAnswer, timeout=5.0
        )
        return None if page is None else [e.data for e in page.entries]


async def wait_for(
    probe: Callable[[], Awaitable[Any]], timeout: float, message: str, interval: float = 0.05
) -> Any:
    """Poll ``probe`` until it returns something other than None/False, or raise
    TimeoutError(message) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(message)
        await asyncio.sleep(interval)


__all__ = ["ClusterBase", "wait_for"]
