"""``raftlog bench --workloads dashboard``: what an open dashboard costs the nodes.

The same load against the same cluster, in pairs: once with nobody watching, once with
the dashboard open in a headless chromium (its event streams, log polls and drawing on the
same 2 cores as the nodes). The order alternates from pair to pair. Two loads: saturating
(``connections`` connections as fast as answers come: the most the nodes can do) and paced
(PACED_CONNECTIONS connections, each pausing PACED_PAUSE_MS between an answer and its next
request: about 2,400 appends/s here, which the nodes have room for, as a steady
production load would). Reported: the appends/s of each, the drop, and how the page kept
up (how late a 100 ms timer fired on its main thread while the load ran: what a click
or a key would wait).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raftlog.bench import load

PACED_CONNECTIONS = 48
PACED_PAUSE_MS = 12
"""48 connections, 12 ms between answer and request: at most 4,000 appends/s offered,
about 2,400 at the 8 ms an answer takes under that load here."""

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# How late a 100 ms timer fires on the page's main thread: what a click or a key would
# wait. (An animation-frame loop would measure the same but keep the page drawing at
# 60 Hz, which costs what it measures.)
_LAG_SAMPLER = """
() => {
  window.__lags = [];
  let due = performance.now() + 100;
  window.__lagTimer = setInterval(() => {
    const now = performance.now();
    window.__lags.push(Math.max(0, now - due));
    due = now + 100;
  }, 100);
}
"""
_LAG_RESULT = """
() => { clearInterval(window.__lagTimer); return window.__lags; }
"""


def chromium() -> str | None:
    """Debian's chromium (Playwright cannot download its own here)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable() -> str | None:
    """Why the workload cannot run here (None: it can)."""
    if chromium() is None:
        return "no chromium (apt-get install chromium)"
    try:
        import playwright  # noqa: F401, PLC0415
    except ImportError:
        return "no playwright (pip install playwright)"
    return None


@dataclass
class DashboardResult:
    without: list[load.LoadResult] = field(default_factory=list)
    with_page: list[load.LoadResult] = field(default_factory=list)
    paced_without: list[load.LoadResult] = field(default_factory=list)
    paced_with_page: list[load.LoadResult] = field(default_factory=list)
    lag_p50_ms: float = 0.0
    lag_p95_ms: float = 0.0
    lag_max_ms: float = 0.0
    lag_samples: int = 0

    @property
    def rate_without(self) -> float:
        return statistics.median(r.rate for r in self.without)

    @property
    def rate_with(self) -> float:
        return statistics.median(r.rate for r in self.with_page)

    @property
    def drop_percent(self) -> float:
        return 100.0 * (1.0 - self.rate_with / self.rate_without)

    @property
    def paced_drop_percent(self) -> float:
        without = statistics.median(r.rate for r in self.paced_without)
        watched = statistics.median(r.rate for r in self.paced_with_page)
        return 100.0 * (1.0 - watched / without)


async def run_dashboard(
    page_url: str,
    write_url: str,
    body: str,
    *,
    connections: int,
    seconds: float,
    pairs: int,
    say: Callable[[str], None] = print,
) -> DashboardResult:
    """``pairs`` pairs of load runs without and with the page at ``page_url`` open."""
    from playwright.async_api import async_playwright  # noqa: PLC0415

    path = chromium()
    if path is None:
        raise RuntimeError("no chromium to open the dashboard in")
    result = DashboardResult()
    lags: list[float] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            runs = [(k, paced) for k in range(pairs) for paced in (False, True)]
            for k, paced in runs:
                conns, pause = (PACED_CONNECTIONS, PACED_PAUSE_MS) if paced else (connections, 0)
                for watched in (False, True) if k % 2 == 0 else (True, False):
                    label = "with the dashboard open" if watched else "nobody watching"
                    kind = "paced" if paced else f"c={connections}"
                    say(f"bench: dashboard pair {k + 1}/{pairs}, {kind}: {label}, {seconds:g} s")
                    if not watched:
                        r = await asyncio.to_thread(
                            load.run_load, write_url, body, conns, seconds, pause
                        )
                        (result.paced_without if paced else result.without).append(r)
                        continue
                    page = await browser.new_page(viewport={"width": 1366, "height": 768})
                    try:
                        await page.goto(page_url)
                        await page.wait_for_function(
                            "document.querySelectorAll('[data-node][data-role=leader]').length"
                            " === 1",
                            timeout=30_000,
                        )
                        await page.evaluate(_LAG_SAMPLER)
                        r = await asyncio.to_thread(
                            load.run_load, write_url, body, conns, seconds, pause
                        )
                        sampled: Any = await page.evaluate(_LAG_RESULT)
                        lags += [float(x) for x in sampled]
                        (result.paced_with_page if paced else result.with_page).append(r)
                    finally:
                        await page.close()
        finally:
            await browser.close()
    if lags:
        lags.sort()
        result.lag_samples = len(lags)
        result.lag_p50_ms = lags[len(lags) // 2]
        result.lag_p95_ms = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
        result.lag_max_ms = lags[-1]
    return result
