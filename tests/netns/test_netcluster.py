"""The lab's topology in network namespaces: real hosts by name, real links going down.

Needs root and iproute2 (CI runs as root); skipped with the reason otherwise. The tests
share one set of namespace names (node_1..node_3, client), so they run one at a time
(conftest.py holds a lock around each).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from raftlog.local.netcluster import NetCluster, NetClusterError, unavailable_reason
from raftlog.testing.waiting import eventually
from scaffold import STEADY_ARGS

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"namespace tests skipped: {REASON}")
LAB_CLIENT = Path(__file__).resolve().parents[2] / "examples" / "lab_client.py"


def _running(tmp_path: Path, extra_args: Sequence[str]) -> Iterator[NetCluster]:
    cluster = NetCluster(tmp_path / "netcluster")
    cluster.up(3, fast=True, extra_args=extra_args)
    try:
        yield cluster
    finally:
        cluster.down()
        _assert_nothing_left()


@pytest.fixture
def nc(tmp_path: Path) -> Iterator[NetCluster]:
    yield from _running(tmp_path, [])


@pytest.fixture
def steady_nc(tmp_path: Path) -> Iterator[NetCluster]:
    yield from _running(tmp_path, STEADY_ARGS)


def _ours_left() -> list[str]:
    left = []
    names = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    left += [n for n in names.split() if n in ("node_1", "node_2", "node_3", "client")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    left += [word.rstrip(":@") for word in links.split() if word.startswith(("rlv-", "rlbr0"))]
    procs = subprocess.run(
        ["pgrep", "-af", "raftlog node --id"], capture_output=True, text=True, check=False
    )
    left += [line for line in procs.stdout.splitlines() if "netcluster" in line]
    return left


def _assert_nothing_left() -> None:
    left = _ours_left()
    assert not left, f"left behind: {left}"


def _logs_equal(nc: NetCluster, expected: list[str], timeout: float = 20) -> None:
    eventually(
        lambda: [nc.log_entries(i) for i in (1, 2, 3)],
        timeout,
        what=f"every node's log to be {expected}",
        until=lambda logs: all(log == expected for log in logs),
        interval=0.05,
    )


def _lab_client(nc: NetCluster) -> subprocess.CompletedProcess[str]:
    return nc.exec(
        "client",
        [sys.executable, str(LAB_CLIENT)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_lab_client_by_hostname_from_the_client_namespace(nc: NetCluster) -> None:
    nc.leader()
    proc = _lab_client(nc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Committed 'SET 5'" in proc.stdout and "Committed 'ADD 1'" in proc.stdout
    assert "Leader is http://node_" in proc.stdout
    _logs_equal(nc, ["SET 5", "ADD 1"])
    # The names resolve inside the namespaces exactly as on compose's network.
    hosts = nc.exec("client", ["getent", "hosts", "node_2"], capture_output=True, text=True)
    assert hosts.stdout.split()[0] == nc.address("node_2")


def test_dead_leader_by_stop_and_start(nc: NetCluster) -> None:
    old = nc.leader()
    assert _lab_client(nc).returncode == 0
    nc.stop(old, grace_s=10)
    new = nc.leader(among=[i for i in (1, 2, 3) if i != old])
    assert new != old
    nc.exec(
        "client", [sys.executable, "-c", _APPEND.format(url=nc.url(new), text="MUL 3")], check=True
    )
    nc.start(old)
    _logs_equal(nc, ["SET 5", "ADD 1", "MUL 3"])
    status = nc.status(old)
    assert status is not None and status["state"] == "Follower"


def test_dead_follower_by_stop_and_start(steady_nc: NetCluster) -> None:
    nc = steady_nc  # the leader and its term must stay: nothing but the load may move them
    leader = nc.leader()
    term = nc.status(leader)["term"]  # type: ignore[index]
    follower = next(i for i in (1, 2, 3) if i != leader)
    nc.stop(follower, grace_s=10)
    assert _lab_client(nc).returncode == 0
    nc.start(follower)
    _logs_equal(nc, ["SET 5", "ADD 1"])
    after = nc.status(leader)
    assert after is not None and after["state"] == "Leader" and after["term"] == term


def test_an_isolated_leader_is_replaced_then_steps_down_and_catches_up(nc: NetCluster) -> None:
    old = nc.leader()
    nc.isolate(old)
    others = [i for i in (1, 2, 3) if i != old]
    new = nc.leader(among=others)
    assert new != old
    assert _lab_client(nc).returncode == 0  # the client finds the new leader by itself
    nc.heal()
    _logs_equal(nc, ["SET 5", "ADD 1"])
    eventually(
        lambda: nc.status(old),
        10,
        what=f"node {old} to step down (its status)",
        until=lambda s: s is not None and s["state"] == "Follower",
        interval=0.05,
    )


def test_a_one_link_partial_partition_causes_no_repeated_elections(tmp_path: Path) -> None:
    nc = NetCluster(tmp_path / "netcluster")
    nc.up(3, fast=True, extra_args=STEADY_ARGS)
    try:
        leader = nc.leader()
        start = nc.status(leader)
        assert start is not None
        follower = next(i for i in (1, 2, 3) if i != leader)
        nc.cut(leader, follower)
        seen: set[tuple[int, int]] = set()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for i in (1, 2, 3):
                s = nc.status(i, timeout=1.0)
                if s and s["state"] == "Leader":
                    seen.add((s["term"], s["id"]))
            time.sleep(0.2)
        # Every election, won or not, raises a term; PreVote rounds that fail do not. The
        # cut-off follower cannot win a pre-vote while the third node hears the leader, so
        # the term stays put (one election at most, if a lease ran out once).
        terms = [s["term"] for i in (1, 2, 3) if (s := nc.status(i, timeout=2.0)) is not None]
        assert terms and max(terms) <= start["term"] + 1, (
            f"terms went from {start['term']} to {terms}; leaders seen (term, node): {sorted(seen)}"
        )
        nc.heal()
    finally:
        nc.down()
        _assert_nothing_left()


def test_down_after_a_crashed_harness_removes_everything(tmp_path: Path) -> None:
    state_dir = tmp_path / "crashed"
    # A harness process builds the cluster and dies without cleaning up.
    crash = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from raftlog.local.netcluster import NetCluster\n"
        f"NetCluster(Path({str(state_dir)!r})).up(3, fast=True)\n"
        "os._exit(9)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", crash], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 9, proc.stderr
    assert {"node_1", "client"} <= set(_ours_left())
    survivor = NetCluster(state_dir)
    assert survivor.exists
    removed = survivor.down()
    assert "namespace node_1" in removed and "bridge rlbr0" in removed
    assert sum(r.startswith("process") for r in removed) >= 3
    _assert_nothing_left()
    assert not (state_dir / "state.json").exists()


def test_the_cli_reports_and_refuses_clearly(tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path / "cli")]
    run = [sys.executable, "-m", "raftlog", "netcluster", *state]
    up = subprocess.run(
        [*run, "up", "--fast"], capture_output=True, text=True, timeout=120, check=False
    )
    try:
        assert up.returncode == 0, up.stderr
        assert "node_1" in up.stdout and "leader: node_" in up.stdout
        again = subprocess.run(
            [*run, "up"], capture_output=True, text=True, timeout=60, check=False
        )
        assert again.returncode == 1 and "already up" in again.stderr
        bad = subprocess.run(
            [*run, "stop", "node_9"], capture_output=True, text=True, timeout=60, check=False
        )
        assert bad.returncode == 1 and "no node 9" in bad.stderr
        status = subprocess.run(
            [*run, "status"], capture_output=True, text=True, timeout=60, check=False
        )
        assert status.stdout.count("Leader") == 1
    finally:
        down = subprocess.run(
            [*run, "down"], capture_output=True, text=True, timeout=60, check=False
        )
    assert down.returncode == 0 and "removed namespace client" in down.stdout
    _assert_nothing_left()


_APPEND = """
import json, urllib.request
req = urllib.request.Request("{url}/v1/log", data=json.dumps({{"data": "{text}"}}).encode(),
                             headers={{"Content-Type": "application/json"}})
print(urllib.request.urlopen(req, timeout=30).read().decode())
"""


def test_up_refuses_to_take_over_a_namespace_it_did_not_make(tmp_path: Path) -> None:
    subprocess.run(["ip", "netns", "add", "client"], check=True)
    try:
        nc = NetCluster(tmp_path / "clash")
        with pytest.raises(NetClusterError, match="namespace client"):
            nc.up(3, fast=True)
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
        assert "client" in names.stdout.split()  # still there: not ours to delete
        assert not nc.exists
    finally:
        subprocess.run(["ip", "netns", "del", "client"], check=False)
    _assert_nothing_left()
