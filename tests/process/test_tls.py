"""Real node processes with TLS on both planes and a write token: the cluster elects,
commits and survives its leader's stop; intruders on the peer port are refused and the
cluster is unaffected; clients without the CA, the certificate or the token are refused
with a clear error (CLI, HTTP and XML-RPC)."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from procsupport import free_base, run

from raftlog.core.messages import Heartbeat
from raftlog.core.types import NodeId
from raftlog.local.certs import CertFiles, make_certs
from raftlog.local.cluster import LocalCluster, wait_for
from raftlog.transport.wire import HEADER, Hello
from scaffold import STEADY_ARGS

TOKEN = "process-test-token"


@pytest.fixture(scope="module")
def certs() -> CertFiles:
    return make_certs(Path(tempfile.mkdtemp(prefix="raftlog-proc-certs-")), 5)


@pytest.fixture(scope="module")
def other_certs() -> CertFiles:
    return make_certs(Path(tempfile.mkdtemp(prefix="raftlog-proc-other-")), 3)


def _frame(obj: Any) -> bytes:
    payload = msgspec.msgpack.encode(obj)
    return HEADER.pack(len(payload)) + payload


async def _intrude(port: int, context: ssl.SSLContext | None) -> str:
    """Dial a peer port as node 2 and send a Hello and a heartbeat; how it ended: 'tls'
    (the handshake failed), 'closed' (no answer), or 'answered' (a handshake answer)."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost" if context else None
        )
    except (ssl.SSLError, ConnectionError):
        return "tls"
    try:
        writer.write(_frame(Hello("raftlog", 2, 2, "127.0.0.1:9")))
        writer.write(_frame(Heartbeat(src=NodeId(2), dst=NodeId(1), term=99, commit=0)))
        data = await asyncio.wait_for(reader.read(65536), 10)
    except (ssl.SSLError, ConnectionError):
        return "tls"
    finally:
        writer.transport.abort()
    return "answered" if data else "closed"


def _context(cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # an intruder trusts anyone
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def _raftlog(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftlog", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float, seen: list[str]) -> None:
    """Read ``proc``'s output into ``seen`` until a line has ``needle``."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"exited before {needle!r}:\n" + "".join(seen[-30:]))
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"no {needle!r} within {timeout} s:\n" + "".join(seen[-30:]))


def test_a_tls_cluster_elects_commits_and_survives_its_leaders_stop(certs: CertFiles) -> None:
    async def main() -> None:
        async with LocalCluster(3, tls=certs, token=TOKEN) as cluster:
            await cluster.start()
            assert all(n.url.startswith("https://") for n in cluster.nodes.values())
            leader = await cluster.leader()
            first = await cluster.append(leader, "over tls")
            follower = next(i for i in cluster.nodes if i != leader)
            forwarded = await cluster.append(follower, "forwarded over tls")  # to the leader
            assert forwarded["index"] > first["index"]
            assert await cluster.call_xmlrpc(leader, "leader_receive_log", "SET 5") is True
            await cluster.stop(leader)
            new_leader = await cluster.leader(among=[i for i in cluster.nodes if i != leader])
            await cluster.append(new_leader, "after the stop")
            await cluster.start_node(leader)

            async def converged() -> bool:
                logs = [await cluster.log(i) for i in cluster.nodes]
                want = ["over tls", "forwarded over tls", "SET 5", "after the stop"]
                return all(log == want for log in logs)

            await wait_for(converged, 60, "the nodes' logs did not converge")
            for i in cluster.nodes:
                assert any("(mutual TLS)" in line for line in cluster.lines(i))

    run(main())


def test_a_node_joins_a_tls_cluster_with_the_token_and_becomes_a_voter(
    certs: CertFiles,
) -> None:
    """`raftlog node --join https://...` asks to be added (a write: it sends the token)
    over TLS, then asks to be promoted once it has caught up."""

    async def main() -> None:
        async with LocalCluster(3, tls=certs, token=TOKEN) as cluster:
            await cluster.start()
            leader = await cluster.leader()
            await cluster.append(leader, "before the join")
            new = cluster.add_node()  # node 4: a certificate of the same CA
            assert new == 4
            await cluster.start_node(new)

            async def voter() -> bool:
                status = await cluster.status(await cluster.leader())
                return bool(status) and new in status["voters"]  # type: ignore[index]

            await wait_for(voter, 60, "node 4 never became a voter")

            async def caught_up() -> bool:
                return await cluster.log(new) == ["before the join"]

            await wait_for(caught_up, 30, "node 4 did not get the log")

    run(main())


def test_peers_without_a_valid_certificate_are_refused_and_the_cluster_goes_on(
    certs: CertFiles, other_certs: CertFiles
) -> None:
    async def main() -> None:
        async with LocalCluster(3, tls=certs) as cluster:
            # Nine TLS handshakes per node load the machine; the check is that refused
            # peers change nothing, not that the machine stayed quiet.
            await cluster.start(extra=STEADY_ARGS)
            leader = await cluster.leader()
            term = (await cluster.status(leader) or {})["term"]
            for i in cluster.nodes:
                port = cluster.nodes[i].peer_port
                # Plaintext, no certificate, another CA's node 2: no handshake answer
                # (with TLS 1.3 a refused client certificate may look like a plain close).
                other = _context(other_certs.node_cert(2), other_certs.node_key(2))
                for context in (None, _context(None, None), other):
                    assert await _intrude(port, context) in ("closed", "tls")

            async def all_said_why() -> bool:
                return all(
                    any("TLS handshake failed" in line for line in cluster.lines(i))
                    for i in cluster.nodes
                )

            await wait_for(all_said_why, 30, "a node did not log the refused handshakes")
            # Unaffected: the same leader in the same term, and it commits.
            doc = await cluster.append(leader, "still here")
            status = await cluster.status(leader)
            assert status is not None and status["state"] == "Leader"
            assert status["term"] == term and doc["term"] == term

    run(main())


def test_a_node_with_another_cas_certificate_cannot_join_the_cluster(
    certs: CertFiles, other_certs: CertFiles, tmp_path: Path
) -> None:
    """Node 3 started with certificates of another CA: it can reach no one, no one
    reaches it; nodes 1 and 2 elect and commit without it."""

    async def main() -> None:
        cluster = LocalCluster(3, tls=certs, token=TOKEN)
        async with cluster:
            bad = [
                "--peer-cert-file",
                str(other_certs.node_cert(3)),
                "--peer-key-file",
                str(other_certs.node_key(3)),
                "--peer-trusted-ca-file",
                str(other_certs.ca),
            ]
            await cluster.start([1, 2])
            await cluster.start_node(3, bad)  # the later flags win
            leader = await cluster.leader(among=[1, 2])
            await cluster.append(leader, "without node 3")

            async def refused() -> bool:
                three = "\n".join(cluster.lines(3))
                return "certificate verify failed" in three

            await wait_for(refused, 30, "node 3 never said why it cannot reach its peers")
            status = await cluster.status(3)
            assert status is not None and status["state"] != "Leader"
            assert status["commit"] == 0  # it never heard a thing

    run(main())


def test_clients_without_the_ca_the_token_or_a_certificate_are_refused(
    certs: CertFiles,
) -> None:
    async def main() -> None:
        node_args = ["--client-cert-auth", "--trusted-ca-file", str(certs.ca)]
        async with LocalCluster(3, tls=certs, token=TOKEN, node_args=node_args) as cluster:
            await cluster.start()
            await cluster.leader()
            endpoints = ",".join(n.url for n in cluster.nodes.values())
            bare = ",".join(f"127.0.0.1:{n.client_port}" for n in cluster.nodes.values())
            cert = ["--cert", str(certs.client_cert), "--key", str(certs.client_key)]
            short = ["--timeout", "5", "--retry-for", "1"]

            def cli() -> None:
                # No CA: the node's certificate is not trusted.
                out = _raftlog("log", "--cluster", endpoints, *short)
                assert out.returncode != 0
                assert "certificate" in out.stderr and "Traceback" not in out.stderr
                # The CA but no client certificate: the node refuses the TLS connection.
                out = _raftlog("log", "--cluster", endpoints, "--cacert", str(certs.ca), *short)
                assert out.returncode != 0 and "Traceback" not in out.stderr
                # Certificate, no token: reads are open, appends are not.
                ok = ["--cluster", bare, "--cacert", str(certs.ca), *cert, *short]
                out = _raftlog("log", *ok)
                assert out.returncode == 0, out.stderr
                out = _raftlog("append", "no token", *ok)
                assert out.returncode == 1 and "401" in out.stderr and "token" in out.stderr
                out = _raftlog("append", "wrong", *ok, env={"RAFTLOG_TOKEN": "nope"})
                assert out.returncode == 1 and "401" in out.stderr
                # With the token (from the environment, or a file): committed.
                out = _raftlog("append", "with the token", *ok, env={"RAFTLOG_TOKEN": TOKEN})
                assert out.returncode == 0 and "committed at index" in out.stdout, out.stderr
                out = _raftlog("log", *ok, "--json")
                assert out.returncode == 0
                assert [e["data"] for e in msgspec.json.decode(out.stdout)["entries"]] == [
                    "with the token"
                ]

            await asyncio.to_thread(cli)
            # XML-RPC (the lab's client) with the CA and a client certificate, no token.
            leader = await cluster.leader()
            context = cluster.client_ssl()

            def lab_client() -> None:
                with xmlrpc.client.ServerProxy(cluster.url(leader), context=context) as proxy:
                    assert proxy.is_leader() is True
                    with pytest.raises(xmlrpc.client.Fault, match="token"):
                        proxy.leader_receive_log("SET 5")

            await asyncio.to_thread(lab_client)
            # Plain HTTP to a TLS port: refused.
            async with aiohttp.ClientSession() as http:
                with pytest.raises(aiohttp.ClientError):
                    await http.get(cluster.url(leader).replace("https", "http") + "/livez")

    run(main())


def test_raftlog_cluster_tls_with_a_token_runs_the_lab_client_then_ctrl_c(
    tmp_path: Path,
) -> None:
    base = free_base()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "raftlog", "cluster", "--fast", "--tls", "--lab-client"),
            *("--base-port", str(base), "--data-dir", str(data)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1", RAFTLOG_TOKEN=TOKEN),
    )
    seen: list[str] = []
    try:
        for node in (1, 2, 3):  # the lab's client, over TLS with the token
            read_until(proc, f"node {node} committed log: ['SET 5', 'ADD 1']", 90, seen)
        assert any("dashboard: https://" in line for line in seen)
        ca = data / "tls" / "ca.pem"
        assert (data / "tls" / "node-1-key.pem").stat().st_mode & 0o777 == 0o600
        endpoints = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
        out = _raftlog("append", "MUL 3", "--cluster", endpoints, "--cacert", str(ca))
        assert out.returncode == 1 and "401" in out.stderr  # no token
        out = _raftlog(
            "append", "MUL 3", "--cluster", endpoints, "--cacert", str(ca),
            env={"RAFTLOG_TOKEN": TOKEN},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        out = _raftlog("log", "--cluster", endpoints, "--cacert", str(ca))
        assert [line.split(None, 2)[2] for line in out.stdout.splitlines()[:3]] == [
            "SET 5",
            "ADD 1",
            "MUL 3",
        ]
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(seen[-20:]) + rest
    assert rest.count("Node stopped") == 3
