"""Bad input gets a clear error, and the node serves on."""

from __future__ import annotations

import asyncio
import io
import socket
import struct
from typing import Any

import aiohttp
from procsupport import run

from raftlog.testing.waiting import eventually_async
from scaffold import running_cluster


async def _raw_peer_send(port: int, payload: bytes) -> bytes:
    """Send raw bytes to a peer port; return what came back before the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    return data


def test_garbage_on_the_peer_port_is_refused_and_the_node_serves_on() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            port = cluster.nodes[leader].peer_port
            await _raw_peer_send(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
            await _raw_peer_send(port, struct.pack(">I", 0xFFFFFFF0) + b"x" * 100)
            await _raw_peer_send(port, struct.pack(">I", 20) + b"\xc1" * 20)
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"\x00\x00")  # a truncated frame, then gone
            doc = await cluster.append(leader, "still serving")
            assert doc["index"] > 0
            assert await cluster.status(leader) is not None

            def said_why() -> bool:  # its output is read a little after it is written
                out = "\n".join(cluster.nodes[leader].lines).lower()
                return "frame" in out or "handshake" in out

            await eventually_async(said_why, 30, what="the leader to log the bad frames")

    run(main())


def test_bad_http_bodies_get_4xx_json_errors_and_the_node_serves_on() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            url = cluster.nodes[leader].url
            async with aiohttp.ClientSession() as http:

                async def post(body: bytes) -> tuple[int, dict[str, Any]]:
                    async with http.post(
                        url + "/v1/log",
                        data=io.BytesIO(body),
                        headers={"Content-Type": "application/json"},
                    ) as r:
                        return r.status, await r.json(content_type=None)

                status, doc = await post(b"x" * (10 << 20))
                assert status == 413 and "too large" in doc["error"]
                assert doc["code"] == "too_large"
                status, doc = await post(b"{not json")
                assert status == 400 and "not valid JSON" in doc["error"]
                assert doc["code"] == "bad_request"
                status, doc = await post(b'{"data": 5}')
                assert status == 400 and "Expected `str`, got `int` - at `$.data`" in doc["error"]
                status, doc = await post(b'["SET 5"]')
                assert status == 400
                status, doc = await post(b'{"data": "x", "extra": 1}')
                assert status == 400 and "unknown field `extra`" in doc["error"]
                status, doc = await post(b'{"data": "!!", "encoding": "base64"}')
                assert status == 400 and "base64" in doc["error"]
                async with http.get(url + "/v1/log?from=abc") as r:
                    assert r.status == 400 and "integer" in (await r.json())["error"]
                async with http.get(url + "/v1/log?consistency=psychic") as r:
                    assert r.status == 400
                async with http.get(url + "/no/such/path") as r:
                    assert r.status == 404 and (await r.json())["code"] == "not_found"
                for bad_xml in (
                    b"<not-xml",
                    b"<methodResponse><fault><value><struct></struct></value></fault>"
                    b"</methodResponse>",
                    b"<methodCall><methodName>is_leader</methodName><params><param><value>"
                    b"<struct><member><name>x</name></member></struct></value></param>"
                    b"</params></methodCall>",
                ):
                    async with http.post(url + "/RPC2", data=bad_xml) as r:
                        assert r.status == 200  # XML-RPC reports faults in a 200
                        assert b"<fault>" in await r.read()
                for bad_json in (
                    b'{"data": "\\ud800"}',  # a lone surrogate
                    b"[" * 100_000,
                    b'{"data": ' + b"9" * 5000 + b"}",
                ):
                    status, doc = await post(bad_json)
                    assert status == 400, (bad_json[:20], status, doc)
                async with http.post(url + "/RPC2", data=io.BytesIO(b"y" * (10 << 20))) as r:
                    assert r.status == 413
            doc = await cluster.append(leader, "still serving")
            assert doc["index"] > 0
            live = await eventually_async(
                lambda: cluster.get(leader, "/livez"), 5, what="an answer to /livez"
            )
            assert live["live"] is True

    run(main())


def test_a_node_refuses_a_data_dir_of_another_node() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            await cluster.leader()
            await cluster.kill(2)
            # Start node 2 on node 3's data directory: it must refuse, loudly, exit code 3.
            cluster.nodes[2].data_dir, saved = cluster.nodes[3].data_dir, cluster.nodes[2].data_dir
            await cluster.kill(3)
            await cluster.start_node(2, wait=False)
            code = await cluster.wait_exit(2)
            assert code == 3
            assert any(
                "Refusing to start" in line and "node" in line for line in cluster.nodes[2].lines
            )
            cluster.nodes[2].data_dir = saved

    run(main())
