"""The commands a person types: raftlog cluster (what `make demo` runs), append, log,
status, bench."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from procsupport import free_base

from raftlog.local.cluster import free_ports
from raftlog.testing.waiting import eventually


def _cluster(base: int, data_dir: Path, *extra: str) -> subprocess.Popen[str]:
    """`raftlog cluster --fast` as a person would start it, its output readable."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "raftlog",
            "cluster",
            "--fast",
            *extra,
            "--base-port",
            str(base),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float, seen: list[str]) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"exited before {needle!r}:\\n" + "".join(seen[-30:]))
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"no {needle!r} within {timeout} s:\\n" + "".join(seen[-30:]))


def test_cluster_with_the_lab_client_then_ctrl_c(tmp_path: Path) -> None:
    base = free_base()
    proc = _cluster(base, tmp_path / "data", "--lab-client")
    seen: list[str] = []
    try:
        for node in (1, 2, 3):
            _read_until(proc, f"node {node} committed log: ['SET 5', 'ADD 1']", 60, seen)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "raftlog",
                "status",
                "--cluster",
                ",".join(f"127.0.0.1:{base + i}" for i in range(3)),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.count("Leader") == 1 and out.stdout.count("Follower") == 2
        env = dict(os.environ, RAFTLOG_CLUSTER=f"127.0.0.1:{base + 1}")
        appended = subprocess.run(
            [sys.executable, "-m", "raftlog", "append", "MUL 3"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert appended.returncode == 0 and "committed at index" in appended.stdout
        shown = subprocess.run(
            [sys.executable, "-m", "raftlog", "log"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert [line.split(None, 2)[2] for line in shown.stdout.splitlines()[:3]] == [
            "SET 5",
            "ADD 1",
            "MUL 3",
        ]
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    seen.append(rest)
    assert proc.returncode == 0, "".join(seen[-20:])
    assert "stopping all nodes" in rest and "data kept in" in rest
    assert rest.count("Node stopped") == 3
    # Ctrl-C stops the leader first, and it hands over (the nodes run with
    # --stop-with-parent, which once made their SIGTERM a second signal: stop at once).
    assert "Got SIGTERM, stopping" in rest, rest
    assert "Stopping: handing leadership to node" in rest, rest
    assert "State: Candidate (leadership transfer)" in rest, rest


def test_status_reports_unreachable_endpoints_and_exits_1() -> None:
    port = free_ports(1)[0]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftlog",
            "status",
            "--cluster",
            f"127.0.0.1:{port}",
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 1 and "unreachable" in out.stdout


def test_append_does_not_resend_a_write_that_may_have_happened() -> None:
    """A node that takes the request and never answers: the outcome is unknown, and the
    CLI must not send the entry to the next node (it could be applied twice)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    seen: list[bytes] = []
    finished = threading.Event()

    def swallow() -> None:
        conn, _ = silent.accept()
        data = b""
        conn.settimeout(5)
        while b"ONCE" not in data:  # headers and body may come in separate packets
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        seen.append(data)
        finished.wait(30)  # never answer, until the test is over
        conn.close()

    thread = threading.Thread(target=swallow, daemon=True)
    thread.start()
    other = free_ports(1)[0]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftlog",
            "append",
            "ONCE",
            "--timeout",
            "1",
            "--cluster",
            f"127.0.0.1:{silent.getsockname()[1]},127.0.0.1:{other}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    finished.set()
    silent.close()
    assert out.returncode != 0
    assert "outcome unknown" in out.stderr and str(other) not in out.stderr
    assert len(seen) == 1 and b"ONCE" in seen[0]


def test_cluster_exits_1_when_a_node_cannot_start(tmp_path: Path) -> None:
    base = free_base()
    taken = socket.socket()
    taken.bind(("127.0.0.1", base + 1))  # node 2's client port
    taken.listen()
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "raftlog",
                "cluster",
                "--fast",
                "--base-port",
                str(base),
                "--data-dir",
                str(tmp_path / "d"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        taken.close()
    assert out.returncode == 1, out.stdout[-2000:]
    assert "failed to start" in out.stdout or "a node exited" in out.stdout


def test_nodes_stop_when_raftlog_cluster_is_killed(tmp_path: Path) -> None:
    base = free_base()
    proc = _cluster(base, tmp_path / "d")
    seen: list[str] = []
    _read_until(proc, "Received 2 votes. State: Leader", 60, seen)
    proc.kill()  # no chance to clean up
    proc.wait(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()
    ports = [base + i for i in range(3)]

    def serving() -> list[int]:
        alive = []
        for port in ports:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    alive.append(port)
        return alive

    eventually(
        serving,
        20,
        what="the orphaned nodes to stop (the ports still served)",
        until=lambda alive: not alive,
        interval=0.2,
    )
