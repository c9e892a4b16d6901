"""The chaos report in a browser: Playwright driving Debian's chromium (/usr/bin/chromium).

The page is opened from its file: the timeline must be drawn by the inlined renderer
(spans with their data-node/data-role/data-term, faults with data-fault), a click on it
must reach onScrub (the cursor moves, the page says each node's role then), nothing may
be fetched and nothing may log an error.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftlog.chaos.report import write_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_report import BREAKOUT, _scenario

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"chromium is not installed at {CHROMIUM} (scripts/install-system-deps.sh installs it)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture
def page() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.problems = []  # console errors, page errors and requests off the file
            page.on(
                "console",
                lambda m: page.problems.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
            page.on(
                "request",
                lambda r: (
                    None
                    if r.url.startswith(("file:", "data:", "about:"))
                    else page.problems.append(f"request: {r.url}")
                ),
            )
            yield page
        finally:
            browser.close()


def _client_x(page: Any, t: float) -> float:
    return float(
        page.evaluate(
            """(t) => {
                const view = window.raftlogReport.view;
                const box = view.svg.getBoundingClientRect();
                return box.left + view.x(t) * box.width / view.svg.width.baseVal.value;
            }""",
            t,
        )
    )


def test_the_report_draws_and_scrubs(page: Any, tmp_path: Path) -> None:
    data = _scenario(hostile=True)
    data["ops"][7]["value"] = BREAKOUT
    files = write_report(tmp_path / "out", **data)
    page.goto(files.html.as_uri())
    page.wait_for_selector("#timeline-view svg rect[data-role]")

    spans = page.eval_on_selector_all(
        "rect[data-role]",
        "els => els.map(e => [+e.dataset.node, e.dataset.role, e.dataset.term])",
    )
    assert [1, "leader", "2"] in spans
    assert [1, "down", ""] in spans
    assert [2, "precandidate", "2"] in spans
    assert [2, "candidate", "3"] in spans
    assert [2, "leader", "3"] in spans
    assert {node for node, _, _ in spans} == {1, 2, 3}
    assert len(spans) == 9  # node 1: 3, node 2: 4, node 3: 2
    faults = page.eval_on_selector_all("[data-fault]", "els => els.map(e => e.dataset.fault)")
    assert faults == ["kill", "pause", "partition"]
    assert page.locator("[data-mark='BecameLeader']").count() == 2
    assert page.locator("[data-ops='counts'] rect[data-outcome='ok']").count() > 0
    # Strings are text in the drawing, never markup.
    assert "<script>alert(1)</script>" in page.locator("[data-fault='pause'] text").text_content()

    # A click on node 2's lane at 9.25 s: onScrub gets that time, the cursor moves there.
    svg = page.locator("#timeline-view svg")
    svg.scroll_into_view_if_needed()
    lane = page.locator("rect[data-node='2'][data-role='candidate']").bounding_box()
    assert lane is not None
    page.mouse.click(_client_x(page, 9.25), lane["y"] + lane["height"] / 2)
    scrubs = page.evaluate("window.raftlogReport.scrubs")
    assert len(scrubs) == 1
    assert scrubs[0] == pytest.approx(9.25, abs=0.05)
    cursor = float(page.get_attribute("[data-cursor]", "data-cursor"))
    assert cursor == pytest.approx(9.25, abs=0.05)
    readout = page.text_content("#timeline-cursor")
    assert "node 1 down" in readout
    assert "node 2 candidate T3" in readout

    # Dragging scrubs along.
    y = lane["y"] + lane["height"] / 2
    page.mouse.move(_client_x(page, 4.0), y)
    page.mouse.down()
    page.mouse.move(_client_x(page, 16.0), y, steps=6)
    page.mouse.up()
    scrubs = page.evaluate("window.raftlogReport.scrubs")
    assert len(scrubs) >= 4
    assert scrubs[-1] == pytest.approx(16.0, abs=0.05)
    assert scrubs[1:] == sorted(scrubs[1:])

    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 0
    assert page.problems == []


def test_the_renderer_options(page: Any, tmp_path: Path) -> None:
    """window, cursor, width and height, with the recording the report embedded."""
    files = write_report(tmp_path / "out", **_scenario())
    page.goto(files.html.as_uri())
    page.wait_for_selector("#timeline-view svg")
    result = page.evaluate(
        """() => {
            const box = document.createElement('div');
            document.body.appendChild(box);
            const rec = window.raftlogReport.recording;
            const view = RaftTimeline.render(
                box, rec, {window: [8.6, 9.4], cursor: 9, width: 700, height: 160});
            const first = box.querySelectorAll('rect[data-role]').length;
            RaftTimeline.render(box, rec, {width: 700});  // a redraw replaces the drawing
            return {
                roles: Array.from(view.svg.querySelectorAll('rect[data-node="2"]'))
                    .map(e => e.dataset.role),
                cursor: view.svg.querySelector('[data-cursor]').getAttribute('data-cursor'),
                width: view.svg.getAttribute('width'),
                height: view.svg.getAttribute('height'),
                ops: view.svg.querySelectorAll('[data-ops]').length,
                svgs: box.querySelectorAll('svg').length,
                first: first,
                after: box.querySelectorAll('rect[data-role]').length,
            };
        }"""
    )
    assert result["roles"] == ["precandidate", "candidate"]  # only what overlaps the window
    assert result["cursor"] == "9"
    assert (result["width"], result["height"]) == ("700", "160")
    assert result["ops"] == 0  # the ops lane is optional
    assert result["svgs"] == 1
    assert result["first"] == 4  # node 1 down, node 2 two, node 3 follower
    assert result["after"] == 9
    assert page.problems == []
