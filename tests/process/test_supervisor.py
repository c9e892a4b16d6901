"""`raftlog cluster`'s supervisor: the control API the dashboard's controls call, on real
node processes: its token, process and network faults, and step mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from procsupport import free_base

from raftlog.testing.waiting import eventually

TOKEN = "test-token-123"


def _request(url: str, method: str = "GET", doc: Any = None, token: str | None = TOKEN) -> Any:
    """(HTTP status, JSON answer)."""
    data = None if doc is None else json.dumps(doc).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _eventually(check: Any, what: str, timeout: float = 60, **kw: Any) -> Any:
    """:func:`eventually` with this file's deadline, passing over requests that fail."""
    kw.setdefault("interval", 0.05)
    return eventually(check, timeout, what=what, ignore=(OSError, ValueError), **kw)


@pytest.fixture
def supervised(tmp_path: Path) -> Any:
    """`raftlog cluster --fast` with its dashboard URL written to a file: (node URLs,
    control URL, the dashboard URL)."""
    url_file = tmp_path / "url"
    base = free_base()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "raftlog",
            "cluster",
            "--fast",
            "--base-port",
            str(base),
            "--control-port",
            "0",
            "--url-file",
            str(url_file),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1", RAFTLOG_CONTROL_TOKEN=TOKEN),
    )
    try:
        _eventually(lambda: url_file.exists() and url_file.read_text().strip(), "the URL file")
        dashboard = url_file.read_text().strip()
        fragment = urllib.parse.parse_qs(urllib.parse.urlsplit(dashboard).fragment)
        assert fragment["token"] == [TOKEN]
        nodes = {i: f"http://127.0.0.1:{base + i - 1}" for i in (1, 2, 3)}
        assert dashboard.startswith(nodes[1] + "/#control=")
        yield nodes, fragment["control"][0], dashboard
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _status(url: str) -> dict[str, Any] | None:
    try:
        code, doc = _request(url + "/v1/status", token=None)
    except OSError:
        return None
    return doc if code == 200 else None


def _follows(nodes: dict[int, str], i: int) -> tuple[Any, ...]:
    """Node ``i``'s state, the leader it names and its term; that leader's state and
    term. It follows the cluster's leader when it is a Follower naming a node that leads
    in its term (whichever node that is now: an election may have moved leadership since
    the test last looked)."""
    s = _status(nodes[i]) or {}
    named = s.get("leader")
    lead = (_status(nodes[named]) or {}) if named in nodes and named != i else {}
    return s.get("state"), named, s.get("term"), lead.get("state"), lead.get("term")


def _following(seen: tuple[Any, ...]) -> bool:
    state, _named, term, lead_state, lead_term = seen
    return state == "Follower" and lead_state == "Leader" and term is not None and term == lead_term


def _leader(nodes: dict[int, str], among: set[int] | None = None) -> tuple[int, int]:
    """(leader id, term) once exactly one of ``among`` says it leads."""

    def leaders() -> list[tuple[int, int]]:
        found = []
        for i, url in nodes.items():
            if among is not None and i not in among:
                continue
            s = _status(url)
            if s and s["state"] == "Leader":
                found.append((i, s["term"]))
        return found

    found: list[tuple[int, int]] = _eventually(
        leaders, "one leader (nodes that lead, with their terms)", until=lambda ls: len(ls) == 1
    )
    return found[0]


def test_the_supervisor_controls_need_its_token_and_drive_real_nodes(supervised: Any) -> None:
    nodes, control, dashboard = supervised
    # The page itself is served by the nodes.
    with urllib.request.urlopen(nodes[2] + "/", timeout=30) as resp:
        assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
    # No token, a wrong one: refused, and nothing happens.
    for token in (None, "wrong"):
        code, doc = _request(control + "/control/v1/nodes/1/kill", "POST", token=token)
        assert code == 401 and doc["code"] == "unauthorized"
    code, doc = _request(control + "/control/v1/cluster")
    assert code == 200 and doc["kind"] == "local" and doc["clock"] == "real"
    assert [(n["id"], n["running"], n["isolated"]) for n in doc["nodes"]] == [
        (1, True, False),
        (2, True, False),
        (3, True, False),
    ]
    code, doc = _request(control + "/control/v1/nodes/9/stop", "POST")
    assert code == 404 and doc["code"] == "not_found"
    code, doc = _request(control + "/control/v1/nodes/1/explode", "POST")
    assert code == 404
    # Isolate the leader: the other two elect one in a higher term; heal: it follows.
    leader, term = _leader(nodes)
    code, doc = _request(control + f"/control/v1/nodes/{leader}/isolate", "POST")
    assert code == 200, doc
    assert next(n for n in doc["nodes"] if n["id"] == leader)["isolated"] is True
    others = set(nodes) - {leader}
    new, new_term = _leader(nodes, among=others)
    assert new != leader and new_term > term
    code, doc = _request(control + "/control/v1/heal", "POST")
    assert code == 200 and not any(n["isolated"] for n in doc["nodes"])
    _eventually(
        lambda: _follows(nodes, leader),
        f"node {leader} to follow the leader (node {new} or a later one) after the heal "
        "(its state, leader and term; that leader's state and term)",
        until=_following,
    )
    # Stop the leader (SIGTERM: it hands over), start it again: it follows.
    code, doc = _request(control + f"/control/v1/nodes/{new}/stop", "POST")
    assert code == 200 and not next(n for n in doc["nodes"] if n["id"] == new)["running"]
    third, _t = _leader(nodes, among=set(nodes) - {new})
    code, doc = _request(control + f"/control/v1/nodes/{new}/start", "POST")
    assert code == 200, doc
    _eventually(
        lambda: _follows(nodes, new),
        f"node {new} back as a follower (of node {third} or a later leader: its state, "
        "leader and term; that leader's state and term)",
        until=_following,
    )
    assert dashboard  # (the URL the page opens with was checked by the fixture)


def test_step_mode_through_the_supervisor_stops_every_clock(supervised: Any) -> None:
    nodes, control, _dashboard = supervised
    leader, term = _leader(nodes)
    code, doc = _request(control + "/control/v1/clock", "POST", {"mode": "step"})
    assert code == 200 and doc["clock"] == "step", doc
    for url in nodes.values():
        assert (_status(url) or {}).get("clock") == "step"
    # Stop the leader: with the clocks stopped, nobody notices until ticked.
    code, doc = _request(control + f"/control/v1/nodes/{leader}/kill", "POST")
    assert code == 200, doc
    follower = min(set(nodes) - {leader})
    s = _status(nodes[follower])
    assert s is not None and s["term"] == term and s["clock"] == "step"
    other = (set(nodes) - {leader, follower}).pop()
    for i in (follower, other):  # what the dead leader sent before it died: never mind
        for held in (_status(nodes[i]) or {}).get("held", []):
            if held["src"] == leader:
                _request(control + "/control/v1/drop", "POST", {"node": i, "id": held["id"]})
    # The other live node must not turn the candidate down for having heard from the
    # leader lately (leader stickiness: it counts from the *minimum* election timeout,
    # which its own randomized deadline may equal): tick it to its deadline too, so that
    # it stands itself (a pre-vote, which forgets the leader and changes no term).
    o = _status(nodes[other])
    assert o is not None
    code, doc = _request(
        control + "/control/v1/tick",
        "POST",
        {"node": other, "ticks": max(1, o["election_timeout"] - o["election_elapsed"])},
    )
    assert code == 200, doc
    ticks = s["election_timeout"] - s["election_elapsed"]
    code, doc = _request(
        control + "/control/v1/tick", "POST", {"node": follower, "ticks": max(1, ticks)}
    )
    assert code == 200 and doc["clock"] == "step", doc
    # The requests wait, held: deliver them by hand, and the answers, until the ticked
    # node leads. The other node's pre-vote request to it is dropped, so that only one of
    # the two wins its pre-vote (two would split the real vote, and nothing ticks again).

    def deliver_all() -> bool:
        for i in (follower, other):
            s = _status(nodes[i]) or {}
            for held in s.get("held", []):
                # The dead leader's last heartbeats, delivered, would reset the clocks just
                # ticked (and the other node would turn the candidate down): drop them.
                drop = held["src"] == leader or (i == follower and held["type"] == "prevote")
                action = "drop" if drop else "deliver"
                code, doc = _request(
                    control + f"/control/v1/{action}", "POST", {"node": i, "id": held["id"]}
                )
                assert code in (200, 404), doc  # 404: already delivered meanwhile
        s = _status(nodes[follower]) or {}
        return s.get("state") == "Leader"

    _eventually(deliver_all, f"node {follower} elected by delivering messages by hand")
    s = _status(nodes[follower])
    assert s is not None and s["term"] > term
    # A node started while the cluster steps is put in step mode too.
    code, doc = _request(control + f"/control/v1/nodes/{leader}/start", "POST")
    assert code == 200, doc
    assert (_status(nodes[leader]) or {}).get("clock") == "step"
    code, doc = _request(control + "/control/v1/clock", "POST", {"mode": "real"})
    assert code == 200 and doc["clock"] == "real"
    _eventually(
        lambda: [(_status(u) or {}).get("clock") for u in nodes.values()],
        "every clock to run again (the nodes' clocks)",
        until=lambda clocks: all(clock == "real" for clock in clocks),
    )
