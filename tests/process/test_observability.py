"""Observability of real node processes: ``GET /metrics`` scraped from each node of a
3-process cluster, and ``NO_COLOR`` honoured by ``raftlog node`` and ``raftlog cluster``
on a terminal (a pseudo-terminal here)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from procsupport import free_base, run

from raftlog.local.cluster import LocalCluster, free_ports
from raftlog.testing.metrics import SERVER_METRICS, Scrape, scrape
from scaffold import STEADY_ARGS

DEADLINE_S = 30.0


async def _scrape(session: aiohttp.ClientSession, url: str) -> Scrape:
    async with session.get(url + "/metrics") as answer:
        assert answer.status == 200
        return scrape(await answer.text())


def test_every_node_process_serves_its_metrics() -> None:
    async def main() -> None:
        async with LocalCluster(3) as cluster, aiohttp.ClientSession() as session:
            await cluster.start(extra=STEADY_ARGS)  # the leader should stay the leader
            urls = {i: cluster.url(i) for i in cluster.nodes}
            deadline = time.monotonic() + DEADLINE_S
            while True:  # every node knows a leader, in one term, and one says it is it
                got = {i: await _scrape(session, u) for i, u in urls.items()}
                known = all(s.value("raftlog_server_has_leader") == 1 for s in got.values())
                terms = {s.value("raftlog_server_term") for s in got.values()}
                leaders = [i for i, s in got.items() if s.value("raftlog_server_is_leader")]
                if known and len(terms) == 1 and len(leaders) == 1:
                    break
                assert time.monotonic() < deadline, "the nodes never agreed on a leader"
            (leader,) = leaders
            assert leader == await cluster.leader()
            for s in got.values():
                assert all(name in s.samples for name in SERVER_METRICS)
                assert s.value("process_resident_memory_bytes") > 0
            before = got[leader].value("raftlog_server_proposals_committed_total")
            for k in range(10):
                async with session.post(urls[leader] + "/v1/log", json={"data": f"ADD {k}"}) as a:
                    assert a.status == 200, await a.text()
            after = await _scrape(session, urls[leader])
            assert after.value("raftlog_server_proposals_committed_total") >= before + 10
            assert after.value("raftlog_disk_wal_fsync_duration_seconds_count") > 0
            assert set(after.by_peer("raftlog_server_follower_lag_entries")) == set(urls) - {leader}

    run(main())


def _read_until(fd: int, needle: bytes, timeout: float = DEADLINE_S) -> bytes:
    """What a terminal shows, up to and including ``needle`` (fail after ``timeout``)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} never came; the terminal showed {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed
                chunk = b""
            assert chunk, f"the terminal closed before {needle!r}: {seen[-2000:]!r}"
            seen += chunk
    return seen


def _on_a_terminal(args: list[str], no_color: str | None, until: bytes, tmp: Path) -> bytes:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color is not None:
        env["NO_COLOR"] = no_color
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "raftlog", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=tmp,
        start_new_session=True,
    )
    os.close(slave)
    try:
        return _read_until(master, until)
    finally:  # the whole group (a cluster's nodes too): how it stops is not the point
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)


@pytest.mark.parametrize(("no_color", "coloured"), [(None, True), ("1", False), ("", True)])
def test_a_node_on_a_terminal_is_coloured_unless_no_color(
    tmp_path: Path, no_color: str | None, coloured: bool
) -> None:
    peer, client = free_ports(2)
    shown = _on_a_terminal(
        ["node", "--id", "1", "--peers", f"1=127.0.0.1:{peer}", "--data-dir", "data",
         "--client-port", str(client), "--host", "127.0.0.1", "--fast"],
        no_color,
        b"State: Leader",
        tmp_path,
    )  # fmt: skip
    assert b"Node started!" in shown
    assert (b"\x1b[" in shown) is coloured


@pytest.mark.parametrize(("no_color", "coloured"), [(None, True), ("1", False)])
def test_a_cluster_on_a_terminal_is_coloured_unless_no_color(
    tmp_path: Path, no_color: str | None, coloured: bool
) -> None:
    base = free_base()
    shown = _on_a_terminal(
        ["cluster", "--nodes", "3", "--fast", "--base-port", str(base), "--data-dir", "data"],
        no_color,
        b"Node started!",
        tmp_path,
    )
    assert (b"\x1b[" in shown) is coloured
