"""`raftlog netcluster dashboard`: the supervisor's controls for a netcluster made by `up`,
on the bridge address, with the nodes' admin token from the netcluster's state."""

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

from raftlog.local.netcluster import unavailable_reason
from raftlog.testing.waiting import eventually

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"namespace tests skipped: {REASON}")


def _raftlog(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftlog", "netcluster", "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _call(url: str, token: str | None, method: str = "GET", doc: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, data=None if doc is None else json.dumps(doc).encode(), method=method
    )
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_netcluster_dashboard_drives_the_namespaces_and_the_nodes_clocks(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = _raftlog(state, "up", "--fast")
    assert up.returncode == 0, up.stdout + up.stderr
    url_file = tmp_path / "url"
    served = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "raftlog",
            "netcluster",
            "--state-dir",
            str(state),
            "dashboard",
            "--control-port",
            "0",
            "--url-file",
            str(url_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:

        def url() -> str:
            assert served.poll() is None, served.communicate()[0]  # it failed: say why
            return url_file.read_text().strip() if url_file.exists() else ""

        eventually(url, 60, what="the dashboard URL in the URL file", interval=0.05)
        parts = urllib.parse.urlsplit(url_file.read_text().strip())
        fragment = urllib.parse.parse_qs(parts.fragment)
        control, token = fragment["control"][0], fragment["token"][0]
        nodes = urllib.parse.parse_qs(parts.query)["nodes"][0].split(",")
        assert len(nodes) == 3 and control.startswith("http://10.77.0.1:")
        # The page is node_1's; the token is the nodes' own admin token.
        with urllib.request.urlopen(nodes[0] + "/", timeout=30) as resp:
            assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
        code, doc = _call(nodes[1] + "/v1/admin/clock", token, "POST", {"mode": "real"})
        assert code == 200, doc
        code, doc = _call(nodes[1] + "/v1/admin/clock", None, "POST", {"mode": "step"})
        assert code == 401
        code, doc = _call(control + "/control/v1/cluster", None)
        assert code == 401
        code, doc = _call(control + "/control/v1/cluster", token)
        assert code == 200 and doc["kind"] == "netns"
        assert [n["url"] for n in doc["nodes"]] == nodes
        # Step mode on every node through the supervisor, and back.
        code, doc = _call(control + "/control/v1/clock", token, "POST", {"mode": "step"})
        assert code == 200 and doc["clock"] == "step", doc
        for url in nodes:
            code, status = _call(url + "/v1/status", None)
            assert code == 200 and status["clock"] == "step"
        code, doc = _call(control + "/control/v1/clock", token, "POST", {"mode": "real"})
        assert code == 200 and doc["clock"] == "real"
        # A fault in the network, and the heal.
        code, doc = _call(control + "/control/v1/nodes/2/isolate", token, "POST")
        assert code == 200 and [n["id"] for n in doc["nodes"] if n["isolated"]] == [2]
        code, doc = _call(control + "/control/v1/heal", token, "POST")
        assert code == 200 and not any(n["isolated"] for n in doc["nodes"])
    finally:
        served.send_signal(signal.SIGINT)
        try:
            out = served.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            served.kill()
            out = served.communicate()[0]
        down = _raftlog(state, "down")
        assert down.returncode == 0, down.stdout + down.stderr
    assert served.returncode == 0, out
