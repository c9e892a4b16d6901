"""The load generator: HTTP POSTs of one body over keep-alive connections.

``wrk`` (C, event-driven) when it is installed; otherwise worker processes of this module
(raw sockets, no HTTP library). Either way the result carries the generator's own CPU time,
so a reader can tell whether the generator or the server was the limit.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import re
import resource
import shutil
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    connections: int
    seconds: float
    requests: int
    errors: int
    """Answers other than 2xx, and socket errors."""
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    generator: str
    generator_cpu: float
    """CPU seconds the generator used per second of wall time (1.0 = one core busy)."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# wrk's Lua API: the body and headers once, and a summary as one JSON line at the end.
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RAFTLOG-BENCH {{"requests": %d, "non2xx": %d, "socket_errors": %d, '
    .. '"duration_us": %d, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\\n',
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(url: str, body: str, connections: int, seconds: float, pause_ms: int = 0) -> LoadResult:
    """``wrk`` against ``url``: ``connections`` connections for ``seconds`` (2 threads,
    1 for a single connection). ``pause_ms``: each connection waits that long between an
    answer and its next request (a paced load: at most connections / pause per second)."""
    threads = 1 if connections < 2 else 2
    with tempfile.TemporaryDirectory(prefix="raftlog-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        lua = _WRK_SCRIPT.format(body=_lua_string(body))
        if pause_ms > 0:
            lua += f"delay = function() return {int(pause_ms)} end\n"
        script.write_text(lua)
        before = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
        wall = time.perf_counter() - started
        cpu = _children_cpu() - before
    match = re.search(r"RAFTLOG-BENCH (\{.*\})", done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr or done.stdout}")
    doc = json.loads(match.group(1))
    duration = doc["duration_us"] / 1e6
    return LoadResult(
        connections=connections,
        seconds=duration,
        requests=doc["requests"] - doc["non2xx"],
        errors=doc["non2xx"] + doc["socket_errors"],
        p50_ms=doc["p50"] / 1000,
        p90_ms=doc["p90"] / 1000,
        p99_ms=doc["p99"] / 1000,
        max_ms=doc["max"] / 1000,
        generator="wrk",
        generator_cpu=cpu / wall if wall else 0.0,
    )


# -- the fallback: worker processes with raw sockets ------------------------------------


def _request_bytes(url: str, body: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    payload = body.encode()
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return host, port, head.encode() + payload


async def _connection(
    host: str,
    port: int,
    request: bytes,
    until: float,
    latencies: list[float],
    tls: ssl.SSLContext | None = None,
) -> int:
    """Send ``request`` again and again on one connection (over ``tls`` if given);
    returns the errors seen."""
    errors = 0
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if status_line[9:10] == b"2":
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        errors += 1
    finally:
        writer.close()
    return errors


def _worker(url: str, body: str, connections: int, seconds: float, out: str) -> None:
    host, port, request = _request_bytes(url, body)
    latencies: list[float] = []
    tls = None
    if url.startswith("https://"):  # a load generator checks no certificate (as wrk)
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

    async def main() -> int:
        until = time.perf_counter() + seconds
        counts = await asyncio.gather(
            *(_connection(host, port, request, until, latencies, tls) for _ in range(connections))
        )
        return sum(counts)

    errors = asyncio.run(main())
    Path(out).write_text(json.dumps({"errors": errors, "latencies": latencies}))


def run_python(url: str, body: str, connections: int, seconds: float) -> LoadResult:
    """The fallback generator: min(2, connections) processes sharing the connections."""
    procs = min(2, connections)
    share = [connections // procs + (1 if k < connections % procs else 0) for k in range(procs)]
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="raftlog-load-") as tmp:
        outs = [os.path.join(tmp, f"{k}.json") for k in range(procs)]
        before = _children_cpu()
        started = time.perf_counter()
        workers = [
            ctx.Process(target=_worker, args=(url, body, share[k], seconds, outs[k]))
            for k in range(procs)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(seconds + 60)
        wall = time.perf_counter() - started
        cpu = _children_cpu() - before
        latencies: list[float] = []
        errors = 0
        for out in outs:
            if not os.path.exists(out):
                raise RuntimeError("a load generator process failed")
            doc = json.loads(Path(out).read_text())
            latencies.extend(doc["latencies"])
            errors += doc["errors"]
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return LoadResult(
        connections=connections,
        seconds=seconds,
        requests=len(latencies),
        errors=errors,
        p50_ms=pct(50),
        p90_ms=pct(90),
        p99_ms=pct(99),
        max_ms=latencies[-1] * 1000 if latencies else float("nan"),
        generator="python",
        generator_cpu=cpu / wall if wall else 0.0,
    )


def run_load(
    url: str, body: str, connections: int, seconds: float, pause_ms: int = 0
) -> LoadResult:
    """wrk if installed, else raftlog's own generator (which cannot pace: ``pause_ms``
    needs wrk)."""
    if have_wrk():
        return run_wrk(url, body, connections, seconds, pause_ms)
    if pause_ms:
        raise RuntimeError("a paced load needs wrk (apt-get install wrk)")
    return run_python(url, body, connections, seconds)
