"""A replicated key-value store: a program that embeds raftlog with a state machine of its
own (snapshots included) and serves a small HTTP API.

Run three of them (or ``python kv_store.py demo``, which does that on this machine, kills
the leader with SIGKILL and shows the store carrying on):

    python kv_store.py serve --id 1 --members 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 \\
        --data-dir /tmp/kv-1 --http 127.0.0.1:8101
    ... the same with --id 2 / --http :8102 and --id 3 / --http :8103

    curl -X PUT --data-binary 42 http://127.0.0.1:8101/kv/answer     # on the leader
    curl http://127.0.0.1:8102/kv/answer                              # linearizable read

A write sent to a follower answers 421 with the leader's URL in ``Location`` (and in the
body); a read too, unless it asks for ``?consistency=local``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web

import raftlog


class KVStore:
    """The state machine: a dict. Commands are JSON: ``{"op": "put", "key": k, "value": v}``,
    ``{"op": "delete", "key": k}``, ``{"op": "cas", "key": k, "old": o, "new": n}``.
    Deterministic: the result depends only on the state and the command."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def apply(self, index: int, term: int, data: bytes) -> dict[str, Any]:
        try:
            command = json.loads(data)
            op, key = command["op"], command["key"]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "not a command"}  # never raise: every node agrees
        if op == "put":
            self.data[key] = str(command.get("value", ""))
            return {"ok": True}
        if op == "delete":
            return {"ok": self.data.pop(key, None) is not None}
        if op == "cas":
            if self.data.get(key) != command.get("old"):
                return {"ok": False, "value": self.data.get(key)}
            self.data[key] = str(command.get("new", ""))
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def snapshot(self) -> _KVSnapshot:
        return _KVSnapshot(dict(self.data))  # a copy now; written out in a worker thread

    def restore(self, source: BinaryIO) -> None:
        data: dict[str, str] = {}
        for line in source:
            key, value = json.loads(line)
            data[key] = value
        self.data = data


class _KVSnapshot:
    def __init__(self, data: dict[str, str]) -> None:
        self._data = data

    def write(self, sink: BinaryIO) -> None:
        for item in self._data.items():
            sink.write(json.dumps(item).encode() + b"\n")

    def release(self) -> None:
        self._data = {}


# -- the program around it ------------------------------------------------------------------


def parse_members(text: str) -> dict[int, str]:
    members = {}
    for item in text.split(","):
        ident, _, address = item.partition("=")
        members[int(ident)] = address
    return members


async def serve(args: argparse.Namespace) -> None:
    members = parse_members(args.members)
    http_urls = (
        dict((int(i), u) for i, u in (item.split("=", 1) for item in args.peer_http.split(",")))
        if args.peer_http
        else {}
    )
    store = KVStore()
    config = raftlog.NodeConfig(
        id=args.id,
        members=members,
        data_dir=args.data_dir,
        state_machine=store,
        snapshot_entries=args.snapshot_entries,
        keep_entries=args.keep_entries,
    )
    if args.verbose:  # this program's logging: the node's events, as raftlog node prints them
        raftlog.print_events(sys.stdout, node=args.id)
    node = raftlog.Node(config)
    await node.start()

    def not_leader() -> web.Response:
        leader = node.leader
        url = http_urls.get(leader, "") if leader else ""
        headers = {"Location": url} if url else {}
        return web.json_response(
            {"error": "not the leader", "leader": leader, "url": url}, status=421, headers=headers
        )

    async def put(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        command = {"op": "put", "key": key, "value": (await request.read()).decode()}
        try:
            result = await node.apply(json.dumps(command).encode(), timeout=5)
        except raftlog.NotLeader:
            return not_leader()
        except (raftlog.OutcomeUnknown, raftlog.RequestTimeout) as exc:
            return web.json_response({"error": f"outcome unknown: {exc}"}, status=504)
        return web.json_response(result)

    async def get(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        consistency = request.query.get("consistency", "linearizable")
        try:
            value = await node.read(lambda sm: sm.data.get(key), consistency=consistency, timeout=5)
        except raftlog.NotLeader:
            return not_leader()
        except raftlog.RequestTimeout as exc:
            return web.json_response({"error": str(exc)}, status=504)
        if value is None:
            return web.json_response({"error": "no such key"}, status=404)
        return web.json_response({"key": key, "value": value})

    async def status(_request: web.Request) -> web.Response:
        doc = await node.status()
        doc["keys"] = len(store.data)
        return web.json_response(doc)

    async def dump(_request: web.Request) -> web.Response:
        """This node's whole store, as it is (no consistency check: for tests)."""
        return web.json_response(store.data)

    app = web.Application()
    app.router.add_put("/kv/{key}", put)
    app.router.add_get("/kv/{key}", get)
    app.router.add_get("/status", status)
    app.router.add_get("/dump", dump)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = args.http.rpartition(":")
    await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
    print(f"kv node {args.id}: serving on http://{args.http}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    waiter = asyncio.ensure_future(node.wait())
    await asyncio.wait(
        [waiter, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    await runner.cleanup()
    await node.stop()


# -- a local demo: three processes, a crash, and the store carries on ----------------------------


def _call(method: str, url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except OSError:
        return 0, None


def _leader(urls: dict[int, str], deadline_s: float = 30) -> int:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for i, url in urls.items():
            code, doc = _call("GET", f"{url}/status")
            if code == 200 and doc["state"] == "Leader":
                return i
        time.sleep(0.1)
    raise SystemExit("no leader")


def _put(urls: dict[int, str], key: str, value: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        leader = _leader(urls)
        code, _doc = _call("PUT", f"{urls[leader]}/kv/{key}", value.encode())
        if code == 200:
            return
        time.sleep(0.1)
    raise SystemExit(f"could not put {key}")


def demo(args: argparse.Namespace) -> int:
    base = Path(args.data_dir or tempfile.mkdtemp(prefix="kv-demo-"))
    ports = {i: (args.base_port + i, args.base_port + 10 + i) for i in (1, 2, 3)}
    members = ",".join(f"{i}=127.0.0.1:{p}" for i, (p, _h) in ports.items())
    peer_http = ",".join(f"{i}=http://127.0.0.1:{h}" for i, (_p, h) in ports.items())
    urls = {i: f"http://127.0.0.1:{h}" for i, (_p, h) in ports.items()}

    def start(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                __file__,
                "serve",
                "--id",
                str(i),
                "--members",
                members,
                "--data-dir",
                str(base / f"node-{i}"),
                "--http",
                f"127.0.0.1:{ports[i][1]}",
                "--peer-http",
                peer_http,
                "--snapshot-entries",
                "50",
                "--keep-entries",
                "10",
            ],
            stdout=subprocess.DEVNULL,
        )

    procs = {i: start(i) for i in ports}
    try:
        leader = _leader(urls)
        print(f"leader: node {leader}")
        for k in range(200):
            _put(urls, f"key{k}", f"value{k}")
        print(f"200 keys written; killing the leader (node {leader}) with SIGKILL")
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait()
        others = {i: u for i, u in urls.items() if i != leader}
        print(f"new leader: node {_leader(others)}")
        for k in range(200, 300):
            _put(others, f"key{k}", f"value{k}")
        print(f"100 more keys; node {leader} restarts on its data")
        procs[leader] = start(leader)
        expected = {f"key{k}": f"value{k}" for k in range(300)}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            dumps = [_call("GET", f"{u}/dump")[1] for u in urls.values()]
            if all(d == expected for d in dumps):
                break
            time.sleep(0.2)
        else:
            print("demo: FAILED: the stores differ")
            return 1
        print("demo: ok, all 3 stores hold the same 300 keys")
        return 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run one node of the store")
    s.add_argument("--id", type=int, required=True)
    s.add_argument("--members", required=True, help="ID=HOST:PORT,... (raftlog's peer ports)")
    s.add_argument("--data-dir", required=True)
    s.add_argument("--http", required=True, help="HOST:PORT for the store's HTTP API")
    s.add_argument("--peer-http", default="", help="ID=URL,... of every node's HTTP API")
    s.add_argument("--snapshot-entries", type=int, default=10_000)
    s.add_argument("--keep-entries", type=int, default=1_000)
    s.add_argument("--verbose", action="store_true", help="print raftlog's event log")
    d = sub.add_parser("demo", help="three nodes on this machine, a crash, and recovery")
    d.add_argument("--data-dir")
    d.add_argument(
        "--base-port",
        type=int,
        default=7100,
        help="raftlog's peer ports are BASE+1..3, the store's HTTP ports BASE+11..13",
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        asyncio.run(serve(args))
        return 0
    return demo(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
