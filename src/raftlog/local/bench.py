"""``raftlog bench``: first figures of a local cluster of real processes.

1. throughput and latency: C concurrent HTTP clients append for T seconds to the leader;
2. failover: the leader is killed (SIGKILL) and the clock runs until an append succeeds
   again through a surviving node.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from raftlog.local.cluster import LocalCluster, wait_for


@dataclass
class BenchResult:
    nodes: int
    clients: int
    seconds: float
    appends: int
    errors: int
    latencies_ms: list[float]
    failover_ms: list[float]

    @property
    def rate(self) -> float:
        return self.appends / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def table(self) -> str:
        rows = [
            ("nodes", f"{self.nodes}"),
            ("concurrent HTTP clients", f"{self.clients}"),
            ("appends committed", f"{self.appends} in {self.seconds:.1f} s ({self.errors} errors)"),
            ("throughput", f"{self.rate:,.0f} appends/s"),
            ("latency p50", f"{self.percentile(50):.1f} ms"),
            ("latency p99", f"{self.percentile(99):.1f} ms"),
            ("latency max", f"{max(self.latencies_ms, default=float('nan')):.1f} ms"),
        ]
        for n, ms in enumerate(self.failover_ms, 1):
            rows.append((f"failover {n} (kill -9 leader -> next commit)", f"{ms:.0f} ms"))
        if len(self.failover_ms) > 1:
            rows.append(("failover median", f"{statistics.median(self.failover_ms):.0f} ms"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


async def run_bench(
    *,
    nodes: int = 3,
    clients: int = 16,
    seconds: float = 10.0,
    failovers: int = 3,
    fast: bool = True,
    say: Callable[[str], None] = print,
) -> BenchResult:
    async with LocalCluster(nodes, fast=fast, log_level="warning") as cluster:
        await cluster.start()
        leader = await cluster.leader()
        url = cluster.nodes[leader].url + "/v1/log"
        latencies: list[float] = []
        errors = 0
        count = 0
        say(f"bench: {nodes} nodes, leader {leader}; {clients} clients for {seconds:g} s ...")
        deadline = time.perf_counter() + seconds
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:

            async def client(k: int) -> None:
                nonlocal errors, count
                n = 0
                while time.perf_counter() < deadline:
                    n += 1
                    started = time.perf_counter()
                    try:
                        async with http.post(url, json={"data": f"c{k}-{n}"}) as resp:
                            await resp.read()
                            ok = resp.status == 200
                    except aiohttp.ClientError:
                        ok = False
                    if ok:
                        count += 1
                        latencies.append((time.perf_counter() - started) * 1000)
                    else:
                        errors += 1

            began = time.perf_counter()
            await asyncio.gather(*(client(k) for k in range(clients)))
            elapsed = time.perf_counter() - began

        failover_ms: list[float] = []
        for round_ in range(failovers):
            leader = await cluster.leader()
            survivors = [i for i in cluster.nodes if i != leader]
            killed_at = time.perf_counter()
            await cluster.kill(leader)
            while True:
                done = False
                for i in survivors:
                    try:
                        status, _doc = await cluster.post(
                            i, "/v1/log", {"data": f"failover-{round_}"}, timeout=2
                        )
                        done = status == 200
                    except (aiohttp.ClientError, TimeoutError, OSError):
                        done = False
                    if done:
                        break
                if done:
                    break
                if time.perf_counter() - killed_at > 30:
                    raise TimeoutError("no commit within 30 s of killing the leader")
                await asyncio.sleep(0.005)
            failover_ms.append((time.perf_counter() - killed_at) * 1000)
            say(f"bench: failover {round_ + 1}: {failover_ms[-1]:.0f} ms")
            await cluster.start_node(leader)
            # Only measure the next failover once the restarted node follows again.
            current = await cluster.leader()

            async def following(node: int = leader, lead: int = current) -> bool:
                status = await cluster.status(node)
                return bool(status and status["leader"] == lead)

            await wait_for(following, 30, f"node {leader} did not rejoin")
    return BenchResult(nodes, clients, elapsed, count, errors, latencies, failover_ms)
