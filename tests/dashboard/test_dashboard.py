"""The dashboard in headless Chromium against a live 3-node cluster started the way a user
starts one (``raftlog cluster --fast``), driven through the page only.

One cluster and one browser for the module (the tests run in order and build on each
other: election, append, failover, step mode); every wait is a condition with a deadline.
Any console error or uncaught exception of the page fails the test it happened in, except
the browser's own report of a request to a node the test stopped ("Failed to load
resource" while that node is down: the page cannot keep Chromium from logging it).

Screenshots go to each test's tmp_path; the election (after the failover, with its story on
the timeline), failover and step-mode ones are also copied to docs/images/dashboard-*.png
for the README.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftlog.testing.waiting import eventually

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
STATIC = Path(str(importlib.resources.files("raftlog") / "dashboard" / "static"))
VIEWPORT = {"width": 1366, "height": 768}
WAIT_MS = 30_000  # generous: a busy 2-core machine

if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (/usr/bin/chromium; scripts/install-system-deps.sh)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")
expect = sync_api.Expect()  # this module's own, not the shared one other tests use
expect.set_options(timeout=WAIT_MS)


def _free_base_port() -> int:
    """A base port P with P..P+2 (clients) and P+1000..P+1002 (peers) free a moment ago,
    all below the ephemeral range (32768-60999): a port the OS hands to some connection
    in the meantime cannot take one of them (it did, once, in CI)."""
    for _ in range(200):
        base = random.randrange(20000, 30000)
        ports = [base + i for i in range(3)] + [base + 1000 + i for i in range(3)]
        socks = []
        try:
            for port in ports:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free base port")


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``raftlog cluster --fast --nodes 3``: the URL it would open (with the supervisor's
    control URL and token in the fragment)."""
    tmp = tmp_path_factory.mktemp("cluster")
    url_file = tmp / "open-url"
    log = (tmp / "cluster.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "raftlog",
        "cluster",
        "--fast",
        "--nodes",
        "3",
        "--base-port",
        str(_free_base_port()),
        "--control-port",
        "0",
        "--url-file",
        str(url_file),
        "--data-dir",
        str(tmp / "data"),
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:

        def url() -> str:
            if proc.poll() is not None:
                pytest.fail(
                    f"raftlog cluster exited with {proc.returncode}: "
                    + (tmp / "cluster.log").read_text()[-2000:]
                )
            return url_file.read_text().strip() if url_file.exists() else ""

        yield eventually(url, 60, what="raftlog cluster's --url-file", interval=0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


class Console:
    """The page's console errors and warnings and its uncaught exceptions."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.stopped_urls: set[str] = set()

    def on_console(self, msg: object) -> None:
        kind = msg.type  # type: ignore[attr-defined]
        if kind not in ("error", "warning"):
            return
        text = msg.text  # type: ignore[attr-defined]
        url = (msg.location or {}).get("url", "")  # type: ignore[attr-defined]
        if text.startswith("Failed to load resource") and any(
            url.startswith(u) for u in self.stopped_urls
        ):
            return  # the browser reporting a request to a node this test stopped
        self.problems.append(f"console {kind}: {text} ({url})")

    def on_pageerror(self, exc: object) -> None:
        self.problems.append(f"page error: {exc}")


@pytest.fixture(scope="module")
def session(browser: object, cluster_url: str) -> Iterator[tuple[object, Console]]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    console = Console()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_pageerror)
    page.goto(cluster_url)
    yield page, console
    context.close()


@pytest.fixture
def page(session: tuple[object, Console]) -> Iterator[object]:
    page, console = session
    console.problems.clear()
    yield page
    assert not console.problems, "\n".join(console.problems)


def shot(page: object, tmp_path: Path, name: str, publish: bool = False) -> None:
    """A screenshot under the test's folder; with ``publish`` and RAFTLOG_SCREENSHOTS=1
    (`make screenshots`), also the README's copy in docs/images (a plain test run leaves
    the working tree as it was)."""
    path = tmp_path / f"dashboard-{name}.png"
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    if publish and os.environ.get("RAFTLOG_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, IMAGES / f"dashboard-{name}.png")


def roles(page: object) -> dict[int, tuple[str, int]]:
    return {
        int(n): (r, int(t))
        for n, r, t in page.evaluate(  # type: ignore[attr-defined]
            """() => [...document.querySelectorAll('#ring [data-node][data-role]')]
                 .map(e => [e.dataset.node, e.dataset.role, e.dataset.term])"""
        )
    }


def wait_for_leader(page: object, above_term: int = 0, among: int = 3) -> tuple[int, int]:
    """Wait until exactly one node shows leader in a term above ``above_term`` and
    ``among`` nodes are up; return (leader, term)."""
    page.wait_for_function(  # type: ignore[attr-defined]
        """([above, among]) => {
             const g = [...document.querySelectorAll('#ring [data-node][data-role]')];
             const leaders = g.filter(e => e.dataset.role === 'leader' && +e.dataset.term > above);
             const up = g.filter(e => e.dataset.role !== 'down');
             return leaders.length === 1 && up.length >= among
               && g.filter(e => e.dataset.role === 'leader').length === 1;
           }""",
        arg=[above_term, among],
    )
    leader = [(n, t) for n, (r, t) in roles(page).items() if r == "leader"]
    return leader[0]


def wait_for_agreement(page: object) -> None:
    """Wait until the health table and the timeline show each node in the role and term
    the ring shows (the page draws a role or term change on every panel at once)."""
    page.wait_for_function(  # type: ignore[attr-defined]
        """() => [...document.querySelectorAll('#ring [data-node][data-role]')].every(g => {
             const id = g.dataset.node, role = g.dataset.role, term = g.dataset.term;
             const row = document.querySelector(`#health [data-health-node='${id}']`);
             const spans = document.querySelectorAll(`#timeline rect[data-node='${id}']`);
             const last = spans[spans.length - 1];
             return row && row.dataset.healthRole === role && row.dataset.healthTerm === term
               && last && last.dataset.spanRole === role && last.dataset.term === term;
           })"""
    )


def node_url(page: object, node: int) -> str:
    return page.evaluate(  # type: ignore[attr-defined]
        "(id) => window.raftlogDashboard.nodeUrl(id)", node
    )


def test_three_nodes_one_leader(page: object, tmp_path: Path) -> None:
    expect(page.locator("#ring [data-node]")).to_have_count(3)
    leader, term = wait_for_leader(page)
    assert term >= 1
    expect(page.locator("#health-leader")).to_contain_text(f"{leader} (term {term})")
    page.wait_for_function("() => document.querySelectorAll('#grid .cell[data-index]').length >= 3")
    shot(page, tmp_path, "start")


def test_append_commits_on_every_node(page: object, tmp_path: Path) -> None:
    page.fill("#append-data", "hello from the page")
    page.keyboard.press("Enter")
    result = page.locator("#op-result")
    expect(result).to_contain_text("appended at index")
    index = int(result.inner_text().split("appended at index ")[1].split()[0])
    for node in (1, 2, 3):
        cell = page.locator(f'#grid .cell[data-node="{node}"][data-index="{index}"]')
        expect(cell).to_have_attribute("data-committed", "true")
    shot(page, tmp_path, "append")


def test_stop_the_leader_then_start_it(
    session: tuple[object, Console], page: object, tmp_path: Path
) -> None:
    _page, console = session
    old, term = wait_for_leader(page)
    console.stopped_urls.add(node_url(page, old))
    page.click(f'[data-control-node="{old}"] [data-action="stop"]')
    expect(page.locator(f'#ring [data-node="{old}"]')).to_have_attribute("data-role", "down")
    new, new_term = wait_for_leader(page, above_term=term, among=2)
    assert new != old and new_term > term
    wait_for_agreement(page)
    shot(page, tmp_path, "failover", publish=True)

    page.click(f'[data-control-node="{old}"] [data-action="start"]')
    back = page.locator(f'#ring [data-node="{old}"]')
    expect(back).to_have_attribute("data-role", "follower")
    page.wait_for_function(
        "([id, t]) => +document.querySelector(`#ring [data-node='${id}']`).dataset.term >= t",
        arg=[old, new_term],
    )
    console.stopped_urls.discard(node_url(page, old))
    wait_for_leader(page, among=3)
    wait_for_agreement(page)
    # the whole story on one screen: the stop band, the election, the old leader following
    shot(page, tmp_path, "election", publish=True)

    # ... and in the recording the page exports
    rec = page.evaluate("() => window.raftlogDashboard.exportRecording()")
    assert rec["version"] == 1 and rec["source"] == "dashboard" and rec["nodes"] == [1, 2, 3]
    assert any(f["kind"] == "stop" and f["nodes"] == [old] for f in rec["faults"])
    assert any(x["node"] == old and x["role"] == "down" for x in rec["spans"])
    assert any(
        x["node"] == new and x["role"] == "leader" and x["term"] == new_term for x in rec["spans"]
    )
    assert {e["kind"] for e in rec["events"]} >= {"status", "log", "down", "up"}


def test_step_mode_election_by_hand(page: object, tmp_path: Path) -> None:
    _leader, term = wait_for_leader(page)
    page.click("#btn-step")
    expect(page.locator("#step")).to_be_visible()
    page.wait_for_function("() => document.querySelector('#summary').textContent.includes('step')")

    try:
        # Fire the followers' election timers by hand, then let the messages through one at
        # a time (the oldest first), ticking again whenever nothing is held.
        deadline = time.monotonic() + 60
        turn = 0
        while True:
            done = page.evaluate(
                """(t) => [...document.querySelectorAll('#ring [data-node][data-role="leader"]')]
                         .some(e => +e.dataset.term > t)""",
                term,
            )
            if done:
                break
            assert time.monotonic() < deadline, f"no leader elected by hand: {roles(page)}"
            if page.locator("[data-held]").count():
                # "d" delivers the first listed, whichever that is when the key arrives
                # (the page may list an older message it just learned of first; waiting
                # for one seen before the key to go timed out in CI): wait for the page's
                # own word on what it did (cleared first so that the same word counts;
                # a late "ticked" note of the last tick is not it).
                note = "document.querySelector('#op-result').textContent"
                page.evaluate(f"() => {{ {note} = ''; }}")
                page.keyboard.press("d")
                page.wait_for_function(
                    f"() => /^(delivered message|deliver: |no message is held)/.test({note})"
                )
                said = page.evaluate(f"() => {note}")
                assert not said.startswith("deliver: "), said
                continue
            # Nothing held: fire one node's election timer (each in turn, as a person would;
            # firing them all at once splits the vote again and again).
            others = sorted(n for n, (r, _t) in roles(page).items() if r not in ("leader", "down"))
            node = others[turn % len(others)]
            turn += 1
            page.keyboard.press(str(node))  # select it
            page.locator(f'#btn-tick-timeout[data-node="{node}"]').click()
            page.wait_for_function(
                """(t) => document.querySelector('[data-held]') ||
                     [...document.querySelectorAll('#ring [data-node][data-role="leader"]')]
                       .some(e => +e.dataset.term > t)""",
                arg=term,
            )
        wait_for_agreement(page)
        shot(page, tmp_path, "step-mode", publish=True)
    finally:
        page.click("#btn-real")  # whatever happened, time runs again for the next test

    page.wait_for_function("() => document.querySelector('#summary').textContent.includes('real')")
    expect(page.locator("#step")).to_be_hidden()
    wait_for_leader(page, among=3)


def _recording() -> dict[str, object]:
    """A made-up recording: node 1 leads term 2, node 3's log was truncated, a burst of
    100 appends from 1 to 2 (more than the page draws), and counted (Aggregate) traffic."""
    t0 = 1_000_000.0
    events: list[dict[str, object]] = []

    def status(node: int, state: str, commit: int, last: int, peers: list[object]) -> None:
        events.append(
            {
                "t": t0 + 0.1,
                "node": node,
                "kind": "status",
                "data": {
                    "id": node,
                    "state": state,
                    "term": 2,
                    "leader": 1,
                    "vote": 1,
                    "commit": commit,
                    "applied": commit,
                    "last_index": last,
                    "last_term": 2,
                    "first_index": 1,
                    "snapshot_index": 0,
                    "voters": [1, 2, 3],
                    "learners": [],
                    "conf_index": 0,
                    "client_url": None,
                    "peers": peers,
                    "clock": "real",
                    "tick_s": 0.01,
                    "election_elapsed": 0 if state == "Leader" else 5,
                    "election_timeout": 0 if state == "Leader" else 25,
                    "held": [],
                },
            }
        )

    peer = {
        "state": "replicate",
        "recent_active": True,
        "inflight": 0,
        "learner": False,
        "last_contact_s": 0.01,
    }
    status(
        1,
        "Leader",
        3,
        4,
        [{"id": 2, "match": 4, "next": 5, **peer}, {"id": 3, "match": 2, "next": 3, **peer}],
    )
    status(2, "Follower", 3, 4, [])
    status(3, "Follower", 2, 2, [])
    for node, last in ((1, 4), (2, 4), (3, 4)):
        entries = [
            {"index": i, "term": 1 if i < 2 else 2, "kind": "data", "preview": f"e{i}"}
            for i in range(1, last + 1)
        ]
        events.append(
            {
                "t": t0 + 0.2,
                "node": node,
                "kind": "log",
                "data": {
                    "first_index": 1,
                    "last_index": last,
                    "commit": 3 if node != 3 else 2,
                    "snapshot_index": 0,
                    "entries": entries,
                },
            }
        )
    events.append(
        {
            "t": t0 + 0.3,
            "node": 3,
            "kind": "LogTruncated",
            "data": {"kind": "LogTruncated", "from_index": 3, "old_last": 5, "term": 2},
        }
    )
    for k in range(100):
        events.append(
            {
                "t": t0 + 1.0 + k * 0.002,
                "node": 1,
                "kind": "Message",
                "data": {
                    "kind": "Message",
                    "src": 1,
                    "dst": 2,
                    "type": "append",
                    "term": 2,
                    "fields": {"entries": 1, "first": 5 + k, "last": 5 + k, "commit": 3},
                },
            }
        )
    events.append(
        {
            "t": t0 + 1.1,
            "node": 1,
            "kind": "Aggregate",
            "data": {"kind": "Aggregate", "window_s": 0.25, "counts": {"Message:append": 812}},
        }
    )
    return {
        "version": 1,
        "source": "dashboard",
        "t0": t0,
        "duration": 2.0,
        "nodes": [1, 2, 3],
        "spans": [],
        "faults": [],
        "ops": [],
        "marks": [],
        "events": events,
    }


def test_replay_of_a_recording(browser: object, tmp_path: Path) -> None:
    """Opened as a file with no cluster: import a recording, scrub into a burst of
    messages, see at most the page's share of dots, the counted traffic, the truncation."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    console = Console()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_pageerror)
    try:
        page.goto((STATIC / "index.html").as_uri())
        expect(page.locator("#summary")).to_contain_text("no cluster")
        rec = tmp_path / "recording.json"
        rec.write_text(json.dumps(_recording()))
        page.set_input_files("#file-import", str(rec))
        expect(page.locator("#mode")).to_have_text("replay")
        page.evaluate("() => window.raftlogDashboard.seek(1_000_001.15)")
        expect(page.locator('#ring [data-node="1"]')).to_have_attribute("data-role", "leader")
        dots = page.locator("#ring .msg-dot:not(.held-dot)")
        page.wait_for_function(
            "() => { const n = document.querySelectorAll('#ring .msg-dot:not(.held-dot)').length;"
            " return n > 0 && n <= 60; }"
        )
        expect(page.locator('#ring [data-node="1"] .load')).to_contain_text("812 append")
        expect(page.locator('#grid .cell.truncated[data-node="3"]')).not_to_have_count(0)
        cell = page.locator('#grid .cell[data-node="3"][data-index="3"]')
        expect(cell).to_have_attribute("data-committed", "false")
        dots.last.dispatch_event("click")
        expect(page.locator("#details")).to_contain_text("append 1 → 2")
        shot(page, tmp_path, "replay")
        page.keyboard.press("l")  # back to live: no cluster, nothing shown
        expect(page.locator("#mode")).to_have_text("live")
        assert not console.problems, "\n".join(console.problems)
    finally:
        context.close()
