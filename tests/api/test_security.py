"""The client API's security on a real socket: TLS (the append fast path included, on
both event loops), client certificates, and the write token over HTTP/JSON and XML-RPC."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import logging
import ssl
import tempfile
import xmlrpc.client
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from raftlog.api.fastpath import ClientServer
from raftlog.api.http import ApiConfig, ClientApi, accepts, presented_secret
from raftlog.core.types import NodeId
from raftlog.local.certs import CertFiles, make_certs
from raftlog.local.cluster import free_ports
from raftlog.server.eventlog import EventLog
from raftlog.server.eventloop import loop_factory
from raftlog.server.node import RaftNode, ServerConfig
from raftlog.server.replicated_log import ReplicatedLog
from raftlog.server.timing import Timing
from raftlog.storage.memory import MemoryStorage
from raftlog.tls import client_context, server_context
from raftlog.transport.memory import MemoryNetwork

TIMING = Timing(0.05, 0.1, 0.01, 0.005)
TOKEN = "s3cret-token"
LOOPS = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])


@pytest.fixture(scope="module")
def certs() -> CertFiles:
    return make_certs(Path(tempfile.mkdtemp(prefix="raftlog-api-certs-")), 1)


@pytest.fixture(scope="module")
def other_certs() -> CertFiles:
    return make_certs(Path(tempfile.mkdtemp(prefix="raftlog-api-other-")), 1)


@asynccontextmanager
async def serving(
    *,
    tls: ssl.SSLContext | None = None,
    token: str | None = None,
    admin_token: str | None = None,
) -> AsyncIterator[str]:
    """A one-node cluster's client API on a free port; yields its base URL."""
    net = MemoryNetwork()
    config = ServerConfig(node_id=NodeId(1), voters=frozenset({NodeId(1)}), timing=TIMING, seed=1)
    node = RaftNode(
        config,
        MemoryStorage(),
        net.factory(NodeId(1)),
        ReplicatedLog(),
        EventLog(NodeId(1), stream=io.StringIO(), level=logging.ERROR),
    )
    task = asyncio.create_task(node.run())
    [port] = free_ports(1)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    api = ClientApi(
        node,
        ApiConfig(client_urls={NodeId(1): url}, token=token, admin_token=admin_token),
    )
    server = ClientServer(api, api.app(), 1 << 20)
    await server.start("127.0.0.1", port, ssl=tls)
    try:
        for _ in range(400):
            if node.is_leader:
                break
            await asyncio.sleep(0.01)
        assert node.is_leader
        yield url
    finally:
        await server.close()
        node.stop()
        await task


def run(test: Callable[[], Awaitable[None]], loop: str = "asyncio") -> None:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(asyncio.wait_for(test(), 30))


def session(context: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context) if context is not None else None,
        timeout=aiohttp.ClientTimeout(total=10),
    )


# -- the token's parsing and comparison ---------------------------------------------------


def test_the_secret_is_taken_from_bearer_or_basic_and_nothing_else() -> None:
    basic = b"Basic " + base64.b64encode(b"raftlog:" + TOKEN.encode())
    assert presented_secret(f"Bearer {TOKEN}".encode()) == TOKEN.encode()
    assert presented_secret(f"bearer  {TOKEN} ".encode()) == TOKEN.encode()
    assert presented_secret(basic) == TOKEN.encode()
    assert presented_secret(TOKEN.encode()) is None  # no scheme
    assert presented_secret(b"Bearer ") is None
    assert presented_secret(b"Basic !!notbase64") is None
    assert presented_secret(b"Basic " + base64.b64encode(b"no-colon")) is None
    assert presented_secret(b"Digest x") is None
    assert presented_secret(None) is None
    assert accepts(b"a", (b"b", b"a"))
    assert not accepts(b"a", (b"b",))
    assert not accepts(None, (b"a",))
    assert not accepts(b"", ())


# -- TLS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_over_tls_appends_take_the_fast_path_and_the_rest_is_served(
    certs: CertFiles, loop: str
) -> None:
    tls = server_context(certs.node_cert(1), certs.node_key(1))

    async def main() -> None:
        async with serving(tls=tls) as url, session(client_context(certs.ca)) as http:
            for n in range(3):  # appends on one connection: the fast path answers
                async with http.post(url + "/v1/log", json={"data": f"x{n}"}) as r:
                    assert r.status == 200, await r.text()
                    assert r.headers.get("Server") == "raftlog"
            # Another request: the connection is handed to aiohttp, over TLS.
            async with http.get(url + "/v1/status") as r:
                assert r.status == 200
                assert (await r.json())["commit"] >= 3
            async with http.post(url + "/v1/log", json={"data": "x3"}) as r:
                assert r.status == 200
            async with http.get(url + "/v1/log?consistency=linearizable") as r:
                assert [e["data"] for e in (await r.json())["entries"]] == [
                    "x0",
                    "x1",
                    "x2",
                    "x3",
                ]
            async with http.get(url + "/") as r:  # the dashboard
                assert r.status == 200 and "text/html" in r.headers["Content-Type"]

    run(main, loop)


def test_a_client_without_the_ca_or_in_plaintext_fails_cleanly(
    certs: CertFiles, other_certs: CertFiles
) -> None:
    tls = server_context(certs.node_cert(1), certs.node_key(1))

    async def main() -> None:
        async with serving(tls=tls) as url:
            async with session() as http:  # the system's CAs only
                with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
                    await http.get(url + "/v1/status")
                assert "certificate verify failed" in str(caught.value)
            async with session(client_context(other_certs.ca)) as http:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await http.get(url + "/v1/status")
            async with session() as http:  # plaintext to a TLS port
                with pytest.raises(aiohttp.ClientError):
                    await http.get(url.replace("https", "http") + "/v1/status")
            async with (  # and it serves on
                session(client_context(certs.ca)) as http,
                http.get(url + "/livez") as r,
            ):
                assert r.status == 200

    run(main)


def test_with_client_cert_auth_a_client_needs_a_certificate_of_the_ca(
    certs: CertFiles, other_certs: CertFiles
) -> None:
    tls = server_context(certs.node_cert(1), certs.node_key(1), client_ca=certs.ca)

    async def main() -> None:
        async with serving(tls=tls) as url:
            for context in (
                client_context(certs.ca),  # no certificate
                client_context(certs.ca, other_certs.client_cert, other_certs.client_key),
            ):
                async with session(context) as http:
                    with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
                        async with http.post(url + "/v1/log", json={"data": "no"}) as r:
                            await r.read()
            good = client_context(certs.ca, certs.client_cert, certs.client_key)
            async with session(good) as http:
                async with http.post(url + "/v1/log", json={"data": "yes"}) as r:
                    assert r.status == 200
                async with http.get(url + "/v1/log") as r:
                    assert [e["data"] for e in (await r.json())["entries"]] == ["yes"]

    run(main)


# -- the token -----------------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_a_write_without_the_token_or_with_a_wrong_one_is_refused(loop: str) -> None:
    async def main() -> None:
        async with serving(token=TOKEN) as url, session() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                async with (
                    session() as fresh,  # each on a new connection: the fast path's first
                    fresh.post(url + "/v1/log", json={"data": "x"}, headers=headers) as r,
                ):
                    assert r.status == 401
                    doc = await r.json()
                    assert doc["code"] == "unauthorized"
                    assert "Authorization: Bearer TOKEN" in doc["error"]
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
            good = {"Authorization": f"Bearer {TOKEN}"}
            async with (
                session() as fresh,  # a new connection: the refused ones went to aiohttp
                fresh.post(url + "/v1/log", json={"data": "ok"}, headers=good) as r,
            ):
                assert r.status == 200
                assert r.headers.get("Server") == "raftlog"  # the fast path checked it
            # Reads stay open, and saw only the authorized write.
            async with http.get(url + "/v1/log") as r:
                assert [e["data"] for e in (await r.json())["entries"]] == ["ok"]
            for method, path, body in (
                ("POST", "/v1/log/trim", {"before": 1}),
                ("POST", "/v1/leader/transfer", {"to": 1}),
                ("POST", "/v1/members", {"id": 2, "peer": "127.0.0.1:9", "client": ""}),
                ("POST", "/v1/members/2/promote", None),
                ("DELETE", "/v1/members/2", None),
            ):
                async with http.request(method, url + path, json=body) as r:
                    assert r.status == 401, path
            async with http.post(url + "/v1/leader/transfer", json={"to": 1}, headers=good) as r:
                assert r.status == 200
            for path in ("/v1/status", "/v1/nodes", "/v1/members", "/readyz", "/"):
                async with http.get(url + path) as r:
                    assert r.status == 200, path

    run(main, loop)


def test_xmlrpc_writes_need_the_token_in_the_url_and_is_leader_stays_open() -> None:
    async def main() -> None:
        async with serving(token=TOKEN) as url:
            host = url.removeprefix("http://")

            def lab_client() -> None:
                with xmlrpc.client.ServerProxy(url) as proxy:
                    assert proxy.is_leader() is True
                    with pytest.raises(xmlrpc.client.Fault) as caught:
                        proxy.leader_receive_log("SET 5")
                    assert caught.value.faultCode == 4
                    assert "token" in caught.value.faultString
                with (
                    xmlrpc.client.ServerProxy(f"http://raftlog:wrong@{host}") as proxy,
                    pytest.raises(xmlrpc.client.Fault),
                ):
                    proxy.leader_receive_log("SET 6")
                with xmlrpc.client.ServerProxy(f"http://raftlog:{TOKEN}@{host}") as proxy:
                    assert proxy.leader_receive_log("SET 7") is True
                bearer = [("Authorization", f"Bearer {TOKEN}")]
                with xmlrpc.client.ServerProxy(url, headers=bearer) as proxy:
                    assert proxy.leader_receive_log("SET 8") is True

            await asyncio.to_thread(lab_client)
            async with session() as http, http.get(url + "/v1/log") as r:
                assert [e["data"] for e in (await r.json())["entries"]] == ["SET 7", "SET 8"]

    run(main)


def test_the_admin_token_writes_too_and_guards_the_admin_endpoints() -> None:
    async def main() -> None:
        async with serving(token=TOKEN, admin_token="admin") as url, session() as http:
            admin = {"Authorization": "Bearer admin"}
            user = {"Authorization": f"Bearer {TOKEN}"}
            async with http.post(url + "/v1/log", json={"data": "a"}, headers=admin) as r:
                assert r.status == 200
            body = {"blocked": []}
            async with http.post(url + "/v1/admin/partition", json=body, headers=user) as r:
                assert r.status == 401  # the write token is not the admin's
            async with http.post(url + "/v1/admin/partition", json=body, headers=admin) as r:
                assert r.status == 200
        # An admin token alone (a supervisor's) leaves writes open, as before.
        async with (
            serving(admin_token="admin") as url,
            session() as http,
            http.post(url + "/v1/log", json={"data": "b"}) as r,
        ):
            assert r.status == 200

    run(main)
