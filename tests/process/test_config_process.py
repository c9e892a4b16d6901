"""Nodes configured without flags: one only by RAFTLOG_* variables, one only by a TOML
file; and a local cluster whose nodes ignore the user's RAFTLOG_* settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from procsupport import run

from raftlog.local.cluster import LocalCluster, free_ports
from raftlog.server.timing import timing_for

FAST_TICK_S = timing_for(fast=True).tick_s


def _environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFTLOG_")}
    return {**env, "PYTHONUNBUFFERED": "1", **settings}


def _status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=2) as resp:
            doc: dict[str, Any] = json.load(resp)
            return doc
    except OSError:
        return None


def _wait_for(
    what: str, check: Any, procs: list[subprocess.Popen[str]], logs: Path, timeout: float
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        for n, proc in enumerate(procs, 1):
            if proc.poll() is not None:
                out = (logs / f"node{n}.out").read_text()
                raise AssertionError(f"node {n} exited ({proc.returncode}) before {what}:\n{out}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s: {what}")


def test_a_node_from_raftlog_variables_and_one_from_a_toml_file_form_a_cluster(
    tmp_path: Path,
) -> None:
    c1, c2, p1, p2 = free_ports(4)
    peers = f"1=127.0.0.1:{p1}:{c1},2=127.0.0.1:{p2}:{c2}"
    config = tmp_path / "node2.toml"
    config.write_text(
        "[node]\n"
        "id = 2\n"
        f'peers = "{peers}"\n'
        f'data_dir = "{tmp_path / "n2"}"\n'
        f"client-port = {c2}\n"
        'host = "127.0.0.1"\n'
        "fast = true\n"
        'event-loop = "asyncio"\n'
        'cluster-id = "configured"\n'
    )
    node = [sys.executable, "-m", "raftlog", "node"]
    by_env = _environment(
        RAFTLOG_ID="1",
        RAFTLOG_PEERS=peers,
        RAFTLOG_DATA_DIR=str(tmp_path / "n1"),
        RAFTLOG_CLIENT_PORT=str(c1),
        RAFTLOG_HOST="127.0.0.1",
        RAFTLOG_FAST="1",
        RAFTLOG_EVENT_LOOP="asyncio",
        RAFTLOG_CLUSTER_ID="configured",
    )
    procs = []
    for n, (argv, env) in enumerate(((node, by_env), ([*node, "--config", str(config)], None))):
        with open(tmp_path / f"node{n + 1}.out", "w") as out:  # the child has its own copy
            procs.append(
                subprocess.Popen(argv, env=env or _environment(), stdout=out, stderr=out, text=True)
            )
    try:
        # A leader needs both: the cluster id (which the handshake checks) and the peer
        # list came from the environment for one node and from the file for the other.
        _wait_for(
            "a leader known to both nodes",
            lambda: all((s := _status(port)) and s["leader"] for port in (c1, c2)),
            procs,
            tmp_path,
            timeout=60,
        )
        append = subprocess.run(
            [sys.executable, "-m", "raftlog", "append", "configured"],
            env=_environment(
                RAFTLOG_CLUSTER=f"127.0.0.1:{c1},127.0.0.1:{c2}", RAFTLOG_TIMEOUT="10"
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert append.returncode == 0 and "committed at index" in append.stdout, append
        for port in (c1, c2):
            status = _status(port)
            assert status is not None
            assert status["event_loop"] == "asyncio"  # uvloop otherwise, when installed
            assert status["tick_s"] == FAST_TICK_S != timing_for(fast=False).tick_s
        assert (tmp_path / "n1" / "raftlog.db").exists() and (
            tmp_path / "n2" / "raftlog.db"
        ).exists()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert [proc.returncode for proc in procs] == [0, 0]


def test_a_local_clusters_nodes_ignore_the_users_raftlog_settings(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Settings meant for a node of the user's own (another peer port, a join, JSON
    logs, a config file) would break every node of the cluster alike if they leaked."""
    monkeypatch.setenv("RAFTLOG_PEER_PORT", "1")
    monkeypatch.setenv("RAFTLOG_JOIN", "http://127.0.0.1:9")
    monkeypatch.setenv("RAFTLOG_LOG_FORMAT", "json")
    monkeypatch.setenv("RAFTLOG_CONFIG", str(tmp_path / "missing.toml"))

    async def main() -> None:
        async with LocalCluster(1, fast=True, data_dir=tmp_path / "data") as cluster:
            await cluster.start()
            leader = await cluster.leader(timeout=30)
            assert leader == 1
            process = cluster.nodes[1].process
            assert process is not None
            environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
            assert not [v for v in environ if v.startswith(b"RAFTLOG_")]
            assert not any(line.lstrip().startswith("{") for line in cluster.lines(1))

    run(main(), timeout=60)
