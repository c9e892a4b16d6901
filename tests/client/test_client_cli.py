"""`raftlog append/log/status` on the client: past a dead endpoint, and giving up typed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from clientfakes import run

from raftlog.local.cluster import free_ports
from scaffold import running_cluster


def _raftlog(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftlog", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_commands_get_past_a_dead_endpoint_and_follow_the_leader() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            follower = next(i for i in cluster.nodes if i != leader)
            dead = f"127.0.0.1:{free_ports(1)[0]}"
            endpoints_url = cluster.nodes[follower].url
            endpoints = f"{dead},{endpoints_url}"

            appended = await asyncio.to_thread(_raftlog, "append", "SET 7", "--cluster", endpoints)
            assert appended.returncode == 0, appended.stderr
            assert appended.stdout.startswith("committed at index ")

            env = dict(os.environ, RAFTLOG_CLUSTER=endpoints)
            shown = await asyncio.to_thread(_raftlog, "log", env=env)
            assert shown.returncode == 0, shown.stderr
            lines = shown.stdout.splitlines()
            assert lines[0].split(None, 2)[2] == "SET 7"
            assert lines[-1].endswith(f"served by node {leader})")

            as_json = await asyncio.to_thread(_raftlog, "log", "--json", env=env)
            doc = json.loads(as_json.stdout)
            assert doc["node"] == leader and doc["entries"][0]["data"] == "SET 7"
            assert doc["next"] is None  # the whole log

            status = await asyncio.to_thread(_raftlog, "status", "--json", env=env)
            rows = json.loads(status.stdout)
            assert [row["endpoint"] for row in rows] == [f"http://{dead}", f"{endpoints_url}"]
            assert "unreachable" in rows[0]["error"] and rows[1]["id"] == follower
            table = await asyncio.to_thread(_raftlog, "status", env=env)
            assert table.returncode == 1  # the dead endpoint
            assert "unreachable" in table.stdout and "Follower" in table.stdout
            # Why it is unreachable, without --json too.
            assert f"http://{dead}: unreachable (Connection refused)" in table.stdout

            # A client error: the server's message, status and code; never a Python dict.
            bad = await asyncio.to_thread(_raftlog, "log", "--page", "1000000", env=env)
            assert bad.returncode == 1
            assert bad.stderr.startswith("read failed: limit must be"), bad.stderr
            assert bad.stderr.rstrip().endswith("(HTTP 400, bad_request)"), bad.stderr
            assert "{" not in bad.stderr

            # Paging: every entry by default, following `next` page after page.
            for text in ("P1", "P2", "P3", "P4"):
                await asyncio.to_thread(_raftlog, "append", text, env=env)
            paged = await asyncio.to_thread(_raftlog, "log", "--page", "2", env=env)
            assert paged.returncode == 0, paged.stderr
            assert [line.split(None, 2)[2] for line in paged.stdout.splitlines()[:-1]] == [
                "SET 7",
                "P1",
                "P2",
                "P3",
                "P4",
            ]
            assert paged.stdout.splitlines()[-1].startswith("(5 entries; commit ")
            # A limit that cuts the log says so, and where to go on.
            index = {line.split(None, 2)[2]: line.split()[0] for line in paged.stdout.splitlines()}
            cut = await asyncio.to_thread(
                _raftlog, "log", "--limit", "3", "--page", "2", "--from", index["P1"], env=env
            )
            assert cut.returncode == 0, cut.stderr
            lines = cut.stdout.splitlines()
            assert [line.split(None, 2)[2] for line in lines[:-1]] == ["P1", "P2", "P3"]
            assert f"stopped at --limit 3: more from index {index['P4']}" in lines[-1], lines[-1]
            as_json = await asyncio.to_thread(
                _raftlog,
                "log",
                "--json",
                "--limit",
                "3",
                "--page",
                "2",
                "--from",
                index["P1"],
                env=env,
            )
            doc = json.loads(as_json.stdout)
            assert [e["data"] for e in doc["entries"]] == ["P1", "P2", "P3"]
            assert doc["next"] == int(index["P4"])
            # Lease reads: served by the leader, without a round trip.
            leased = await asyncio.to_thread(_raftlog, "log", "--consistency", "lease", env=env)
            assert leased.returncode == 0, leased.stderr
            assert leased.stdout.splitlines()[-1].endswith(f"served by node {leader})")

            # Retention: keep the last two entries; older reads say where the log starts.
            for text in ("A", "B", "C"):
                await asyncio.to_thread(_raftlog, "append", text, env=env)
            trimmed = await asyncio.to_thread(_raftlog, "log", "trim", "--keep-last", "2", env=env)
            assert trimmed.returncode == 0, trimmed.stderr
            first = int(trimmed.stdout.split()[-1])
            kept = await asyncio.to_thread(_raftlog, "log", env=env)
            assert [line.split(None, 2)[2] for line in kept.stdout.splitlines()[:-1]] == ["B", "C"]
            gone = await asyncio.to_thread(_raftlog, "log", "--from", "1", env=env)
            assert gone.returncode == 1
            assert f"entries before {first} were trimmed" in gone.stderr
            no_arg = await asyncio.to_thread(_raftlog, "log", "trim", env=env)
            assert no_arg.returncode == 2 and "one of the arguments" in no_arg.stderr

    run(main(), timeout=120)


def test_append_to_nothing_gives_up_after_retry_for() -> None:
    ports = free_ports(2)
    out = _raftlog(
        "append",
        "LOST",
        "--retry-for",
        "0.5",
        "--cluster",
        ",".join(f"127.0.0.1:{p}" for p in ports),
    )
    assert out.returncode == 1
    assert out.stderr.startswith("no node could answer:")
    assert all(str(p) in out.stderr for p in ports)


def test_members_and_leader_commands() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            env = dict(os.environ, RAFTLOG_CLUSTER=",".join(n.url for n in cluster.nodes.values()))
            listed = await asyncio.to_thread(_raftlog, "members", "list", "--json", env=env)
            assert listed.returncode == 0, listed.stderr
            doc = json.loads(listed.stdout)
            assert [(m["id"], m["role"]) for m in doc["members"]] == [
                (1, "voter"),
                (2, "voter"),
                (3, "voter"),
            ]
            table = await asyncio.to_thread(_raftlog, "members", env=env)
            assert "voter (leader)" in table.stdout and table.returncode == 0
            added = await asyncio.to_thread(
                _raftlog, "members", "add", "9", "--peer", "127.0.0.1:1", env=env
            )
            assert added.returncode == 0 and "node 9 added as a learner" in added.stdout
            refused = await asyncio.to_thread(_raftlog, "members", "promote", "9", env=env)
            assert refused.returncode == 1 and "has not caught up" in refused.stderr
            removed = await asyncio.to_thread(_raftlog, "members", "remove", "9", env=env)
            assert removed.returncode == 0, removed.stderr
            moved = await asyncio.to_thread(_raftlog, "leader", "transfer", "--json", env=env)
            assert moved.returncode == 0, moved.stderr
            new = json.loads(moved.stdout)["leader"]
            assert new != leader and new in cluster.nodes

    run(main(), timeout=120)
