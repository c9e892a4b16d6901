"""`raftlog bench`: the load generators count what the server answered, the report's
ratios and goal verdicts are oriented right, and a small run compares raftlog with etcd
and PySyncObj end to end."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from raftlog.bench import load
from raftlog.bench.suite import BenchReport, Figure

NEEDS_WRK = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (scripts/install-system-deps.sh)"
)
NEEDS_ETCD = pytest.mark.skipif(
    shutil.which("etcd") is None,
    reason="etcd is not installed (scripts/install-system-deps.sh installs etcd-server)",
)


def _serve_and_load(
    status: int, generator: Callable[[str, str, int, float], load.LoadResult]
) -> tuple[load.LoadResult, int]:
    """Run ``generator`` against a server answering ``status``; the result and how many
    requests the server answered."""
    seen = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal seen
        assert await request.json() == {"data": "x"}
        seen += 1
        return web.json_response({"ok": True}, status=status)

    async def go() -> load.LoadResult:
        app = web.Application()
        app.router.add_post("/v1/log", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            return await asyncio.to_thread(
                generator, f"http://127.0.0.1:{port}/v1/log", '{"data": "x"}', 4, 1.0
            )
        finally:
            await runner.cleanup()

    result = asyncio.run(go())
    return result, seen


@pytest.mark.parametrize(
    "generator", [pytest.param(load.run_wrk, marks=NEEDS_WRK), load.run_python], ids=["wrk", "py"]
)
def test_a_generator_counts_the_answers_the_server_gave(
    generator: Callable[[str, str, int, float], load.LoadResult],
) -> None:
    result, seen = _serve_and_load(200, generator)
    assert result.requests > 0 and result.errors == 0
    # The requests still in flight when the time ran out were answered but not counted.
    assert seen - 4 <= result.requests <= seen
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
    assert result.generator_cpu > 0


@pytest.mark.parametrize(
    "generator", [pytest.param(load.run_wrk, marks=NEEDS_WRK), load.run_python], ids=["wrk", "py"]
)
def test_a_generator_counts_refusals_as_errors_not_appends(
    generator: Callable[[str, str, int, float], load.LoadResult],
) -> None:
    result, seen = _serve_and_load(503, generator)
    assert result.requests == 0
    assert result.errors >= seen - 4 > 0


def test_ratios_say_above_one_when_raftlog_did_better_and_goals_follow() -> None:
    report = BenchReport("now", {"cpus": 2, "system": "test", "python": "3"})
    report.add(
        Figure("throughput", "c=64 appends/s", "raftlog", 1200, "appends/s", "higher"),
        Figure("throughput", "c=64 appends/s", "etcd", 1000, "puts/s", "higher"),
        Figure("latency", "c=1 p50 ms", "raftlog", 2.0, "ms", "lower"),
        Figure("latency", "c=1 p50 ms", "etcd", 1.0, "ms", "lower"),
        Figure("library", "appends/s", "raftlog", 100, "appends/s", "higher"),
        Figure("library", "appends/s", "pysyncobj", 60, "appends/s", "higher"),
    )
    lines = {line.split()[1]: line for line in report.table().splitlines()[2:8] if line}
    assert "1.20x" in lines["c=64"] and ">= 1.2x etcd: met" in lines["c=64"]
    assert "0.50x" in lines["c=1"] and "<= 0.6 ms: NOT met" in lines["c=1"]
    assert "1.67x" in lines["appends/s"] and ">= 2x pysyncobj: NOT met" in lines["appends/s"]
    goals = {g["metric"]: g["met"] for g in json.loads(report.to_json())["goals"]}
    assert goals["c=64 appends/s"] is True
    assert goals["c=1 p50 ms"] is False
    assert goals["c=256 appends/s"] is None  # not measured: neither met nor failed


@NEEDS_WRK
@NEEDS_ETCD
def test_a_small_run_measures_raftlog_etcd_and_pysyncobj_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    chart = tmp_path / "chart.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftlog",
            "bench",
            "--seconds",
            "1",
            "--connections",
            "8",
            "--failovers",
            "1",
            "--compare",
            "etcd,pysyncobj",
            "--json",
            str(out),
            "--chart",
            str(chart),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    measured = {(f["workload"], f["metric"], f["system"]) for f in doc["figures"]}
    for system in ("raftlog", "etcd"):
        for metric in ("c=8 appends/s", "c=8 p99 ms"):
            assert ("throughput", metric, system) in measured
        assert ("latency", "c=1 p50 ms", system) in measured
        assert ("failover", "median ms", system) in measured
    assert ("library", "appends/s", "raftlog") in measured
    assert ("library", "appends/s", "pysyncobj") in measured
    assert all(f["value"] > 0 for f in doc["figures"])
    assert "raftlog vs etcd" in done.stdout and "raftlog vs pysyncobj" in done.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@NEEDS_WRK
def test_a_paced_load_keeps_to_its_pause_between_requests() -> None:
    """4 connections pausing 100 ms between answer and request: at most 40/s, whatever
    the server could do."""

    def paced(url: str, body: str, connections: int, seconds: float) -> load.LoadResult:
        return load.run_wrk(url, body, connections, 2.0, pause_ms=100)

    result, seen = _serve_and_load(200, paced)
    assert result.errors == 0 and 0 < result.requests <= seen
    assert result.rate <= 4 * 10 * 1.2


@NEEDS_WRK
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed (install-system-deps)"
)
def test_the_dashboard_workload_measures_with_and_without_the_page(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "raftlog",
            "bench",
            "--workloads",
            "dashboard",
            "--pairs",
            "1",
            "--seconds",
            "1",
            "--connections",
            "8",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = {f["metric"]: f for f in json.loads(out.read_text())["figures"]}
    for metric in (
        "c=8 appends/s, nobody watching",
        "c=8 appends/s, dashboard open",
        "paced appends/s, nobody watching",
        "paced appends/s, dashboard open",
    ):
        assert figures[metric]["value"] > 0, metric
        assert figures[metric]["detail"]["errors"] == 0, metric
    assert "throughput drop %" in figures and "paced drop %" in figures
    # The page drew while the load ran: it was open, and alive.
    assert figures["page timer lag p95 ms"]["detail"]["samples"] > 0
