"""TcpTransport with mutual TLS: who is refused (plaintext, no certificate, another CA, a
certificate of another node or of no node) and that the others carry on. The conformance
suite runs the "tls" kind through every ordinary behaviour."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import ssl
from typing import Any

import pytest
from transport_testlib import (
    RawPeer,
    bound_socket,
    cert_files,
    fast_config,
    frame,
    hello,
    make_cluster,
    run,
    tls_of,
    wait_for,
    wait_until,
)

from raftlog.core.messages import Heartbeat
from raftlog.core.types import NodeId
from raftlog.tls import TlsConfigError, certified_node, client_context, peer_tls
from raftlog.transport import TcpTransport
from raftlog.transport.wire import Hello


def heartbeat(src: int, dst: int, n: int = 0) -> Heartbeat:
    return Heartbeat(src=NodeId(src), dst=NodeId(dst), term=n, commit=n)


async def _tls_connect(port: int, context: ssl.SSLContext) -> RawPeer:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    return RawPeer(reader, writer)


def _dialer_context(cert: Any = None, key: Any = None, ca: Any = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    context.check_hostname = False
    if ca is None:
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


async def _refused(peer: RawPeer) -> bool:
    """The connection ends without a handshake answer (EOF, reset or a TLS alert)."""
    try:
        data = await wait_for(peer.reader.read(65536), "the transport to refuse", 3.0)
    except (ConnectionError, ssl.SSLError):
        return True
    return data == b""


def test_certified_node_reads_the_common_name_or_a_dns_name() -> None:
    def cert(cn: str | None, *dns: str) -> dict[str, Any]:
        subject = ((("commonName", cn),),) if cn else ()
        return {"subject": subject, "subjectAltName": tuple(("DNS", d) for d in dns)}

    assert certified_node(cert("raftlog-node-3")) == 3
    assert certified_node(cert("someone", "raftlog-node-12", "localhost")) == 12
    assert certified_node(cert("raftlog-client")) is None
    assert certified_node(cert("raftlog-node-0")) is None
    assert certified_node(cert("xraftlog-node-2")) is None
    assert certified_node(cert("raftlog-node-2", "raftlog-node-3")) is None  # ambiguous
    assert certified_node(None) is None


def test_bad_files_are_refused_naming_the_file(tmp_path: Any) -> None:
    files = cert_files()
    with pytest.raises(TlsConfigError, match="no such CA file"):
        peer_tls(files.node_cert(1), files.node_key(1), tmp_path / "none.pem")
    with pytest.raises(TlsConfigError, match=re.escape(str(files.node_key(2)))):
        peer_tls(files.node_cert(1), files.node_key(2), files.ca)  # not its key
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(TlsConfigError, match=r"junk\.pem"):
        client_context(tmp_path / "junk.pem")


def test_a_plaintext_dialer_is_refused_before_any_frame() -> None:
    async def main() -> None:
        cluster = make_cluster("tls", [1, 2])
        await cluster.start()
        try:
            await cluster.ready()
            node1 = cluster.transports[1]
            assert isinstance(node1, TcpTransport)
            port = node1.address[1]
            raw = await RawPeer.connect(port)
            raw.write(frame(hello(2)))  # a perfect handshake, in plaintext
            raw.write(frame(heartbeat(2, 1, 7)))
            assert await _refused(raw)
            raw.close()
            await wait_until(lambda: node1.errors().get("tls", 0) >= 1, "a tls error counted")
            assert not any(getattr(m, "term", 0) == 7 for m in cluster.inbox[1])
            # The real peers carry on.
            assert cluster.transports[2].send(heartbeat(2, 1, 8))
            await wait_until(
                lambda: any(getattr(m, "term", 0) == 8 for m in cluster.inbox[1]),
                "the real peer's message",
            )
        finally:
            await cluster.close()

    run(main())


@pytest.mark.parametrize("who", ["no_certificate", "another_ca", "another_node", "a_client"])
def test_a_tls_dialer_without_the_right_certificate_is_refused(who: str) -> None:
    """Node 2's place is taken by a dialer with the wrong credentials: no certificate, a
    node-2 certificate from another CA, node 3's certificate, a client's certificate."""

    async def main() -> None:
        cluster = make_cluster("tls", [1, 2])
        await cluster.start()
        try:
            await cluster.ready()
            node1 = cluster.transports[1]
            assert isinstance(node1, TcpTransport)
            port = node1.address[1]
            ours, theirs = cert_files(), cert_files("other")
            ca = ours.ca  # the dialer trusts node 1: only node 1 can refuse
            if who == "no_certificate":
                context = _dialer_context(ca=ca)
            elif who == "another_ca":
                context = _dialer_context(theirs.node_cert(2), theirs.node_key(2), ca)
            elif who == "another_node":
                context = _dialer_context(ours.node_cert(3), ours.node_key(3), ca)
            else:
                context = _dialer_context(ours.client_cert, ours.client_key, ca)
            before = dict(node1.errors())
            peer = await _tls_connect(port, context)
            peer.write(frame(hello(2)))
            peer.write(frame(heartbeat(2, 1, 7)))
            if who in ("another_node", "a_client"):
                # A valid certificate: refused by the Hello, with the reason.
                answer = await peer.read_handshake()
                assert not isinstance(answer, Hello)
                assert "certificate" in answer.reason
                kind = "wrong_identity"
            else:
                kind = "tls"
            assert await _refused(peer)
            peer.close()
            await wait_until(
                lambda: node1.errors().get(kind, 0) > before.get(kind, 0), f"a {kind} error"
            )
            assert not any(getattr(m, "term", 0) == 7 for m in cluster.inbox[1])
            assert cluster.transports[2].send(heartbeat(2, 1, 8))
            await wait_until(
                lambda: any(getattr(m, "term", 0) == 8 for m in cluster.inbox[1]),
                "the real node 2's message",
            )
        finally:
            await cluster.close()

    run(main())


@pytest.mark.parametrize("who", ["plaintext", "another_ca", "another_node"])
def test_a_node_dialing_the_wrong_peer_refuses_it(who: str) -> None:
    """Node 1 dials "node 2", which is plaintext, has another CA's certificate, or has
    node 3's certificate: node 1 counts the refusal and sends it nothing."""

    async def main() -> None:
        sock1, sock2 = bound_socket(), bound_socket()
        sock1.listen()
        sock2.listen()
        port1, port2 = sock1.getsockname()[1], sock2.getsockname()[1]
        inbox: list[Any] = []
        one = TcpTransport(fast_config(1, {2: port2}, tls=tls_of(1)), lambda m: None, sock=sock1)
        tls: dict[str, Any] = {
            "plaintext": {},
            "another_ca": {"tls": tls_of(2, "other")},
            "another_node": {"tls": tls_of(3)},
        }[who]
        two = TcpTransport(fast_config(2, {1: port1}, **tls), inbox.append, sock=sock2)
        await one.start()
        await two.start()
        try:
            one.send(heartbeat(1, 2, 5))
            kind = "wrong_identity" if who == "another_node" else "tls"
            await wait_until(lambda: one.errors().get(kind, 0) >= 1, f"node 1 counts {kind}")
            assert not one.peers()[NodeId(2)].connected
            if who == "another_ca":
                assert "certificate verify failed" in (one.peers()[NodeId(2)].last_error or "")
            # (A plaintext node answers a ClientHello by closing the connection; node 1
            # counted "tls" when that node dialed it in plaintext.)
            assert inbox == []
        finally:
            await one.close()
            await two.close()

    run(main())


def test_the_peer_plane_trusts_the_clusters_ca_only() -> None:
    files = cert_files()
    tls = peer_tls(files.node_cert(1), files.node_key(1), files.ca)
    for context in (tls.server, tls.client):
        trusted = context.get_ca_certs()
        assert len(trusted) == 1, "the system's CAs must not be trusted between peers"
        assert dict(x[0] for x in trusted[0]["subject"])["commonName"].startswith(
            "raftlog throwaway CA"
        )
        assert context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_on_uvloop_peers_connect_and_a_dialer_without_a_certificate_is_refused() -> None:
    """uvloop starts reading a connection as soon as it is accepted: the handshake must
    still see every byte (a node runs on uvloop when it is installed)."""
    import uvloop  # noqa: PLC0415

    async def main() -> None:
        cluster = make_cluster("tls", [1, 2, 3])
        await cluster.start()
        try:
            await cluster.ready()
            node1 = cluster.transports[1]
            assert isinstance(node1, TcpTransport)
            peer = await _tls_connect(node1.address[1], _dialer_context(ca=cert_files().ca))
            peer.write(frame(hello(2)))
            assert await _refused(peer)
            peer.close()
            await wait_until(lambda: node1.errors().get("tls", 0) >= 1, "a tls error counted")
        finally:
            await cluster.close()

    uvloop.run(asyncio.wait_for(main(), 15))
