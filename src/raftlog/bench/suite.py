"""The workloads, run against each system in one run, and the results: a table with
ratios, JSON, and a chart.

A ratio is oriented so that above 1 means raftlog did better: throughput is raftlog's
divided by the other's, a latency or a failover time the other's divided by raftlog's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raftlog.bench import library, load
from raftlog.bench.systems import EtcdSystem, RaftlogSystem, System, failover

WORKLOADS = ("throughput", "latency", "failover", "catchup", "library", "dashboard")
DEFAULT_WORKLOADS = ("throughput", "latency", "failover", "library")
PEERS = ("etcd", "pysyncobj", "tls")
"""``tls``: raftlog again with TLS on both planes, beside the plaintext cluster."""


@dataclass
class Figure:
    workload: str
    metric: str
    system: str
    value: float
    unit: str
    better: str
    """"higher" or "lower"."""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Goal:
    workload: str
    metric: str
    text: str
    check: Callable[[dict[str, float]], bool | None]
    """Given the metric's value per system: met, not met, or None (a figure missing)."""


def _ratio_goal(peer: str, factor: float) -> Callable[[dict[str, float]], bool | None]:
    def check(values: dict[str, float]) -> bool | None:
        if "raftlog" not in values or peer not in values:
            return None
        return values["raftlog"] >= factor * values[peer]

    return check


def _at_most(limit: float) -> Callable[[dict[str, float]], bool | None]:
    return lambda values: values["raftlog"] <= limit if "raftlog" in values else None


def _at_least(limit: float) -> Callable[[dict[str, float]], bool | None]:
    return lambda values: values["raftlog"] >= limit if "raftlog" in values else None


def _no_worse(peer: str, slack: float = 1.0) -> Callable[[dict[str, float]], bool | None]:
    def check(values: dict[str, float]) -> bool | None:
        if "raftlog" not in values or peer not in values:
            return None
        return values["raftlog"] <= slack * values[peer]

    return check


GOALS = [
    Goal("throughput", "c=64 appends/s", ">= 1.2x etcd", _ratio_goal("etcd", 1.2)),
    Goal("throughput", "c=256 appends/s", ">= 1.2x etcd", _ratio_goal("etcd", 1.2)),
    Goal("throughput", "c=256 p99 ms", "<= etcd", _no_worse("etcd")),
    Goal("latency", "c=1 p50 ms", "<= 0.6 ms", _at_most(0.6)),
    Goal("latency", "c=1 p99 ms", "<= 2 ms", _at_most(2.0)),
    Goal("failover", "median ms", "within 10% of etcd", _no_worse("etcd", 1.1)),
    Goal("catchup", "entries/s", ">= 100,000/s", _at_least(100_000)),
    Goal("library", "appends/s", ">= 2x pysyncobj", _ratio_goal("pysyncobj", 2.0)),
    Goal("dashboard", "paced drop %", "< 10%", _at_most(10.0)),
    Goal("dashboard", "throughput drop %", "< 10%", _at_most(10.0)),
]


@dataclass
class BenchReport:
    started: str
    machine: dict[str, Any]
    systems: dict[str, str] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def values(self, workload: str, metric: str) -> dict[str, float]:
        return {
            f.system: f.value for f in self.figures if f.workload == workload and f.metric == metric
        }

    def rows(self) -> list[tuple[str, str, str]]:
        seen: list[tuple[str, str, str]] = []
        for f in self.figures:
            key = (f.workload, f.metric, f.better)
            if key not in seen:
                seen.append(key)
        return seen

    def goals(self) -> list[tuple[Goal, bool | None]]:
        return [(g, g.check(self.values(g.workload, g.metric))) for g in GOALS]

    def table(self) -> str:
        systems = list(dict.fromkeys(f.system for f in self.figures))
        peers = [s for s in systems if s != "raftlog"]
        head = ["workload", "metric", *systems, *(f"raftlog vs {p}" for p in peers), "goal"]
        lines = [head]
        goals = {(g.workload, g.metric): (g, met) for g, met in self.goals()}
        for workload, metric, better in self.rows():
            values = self.values(workload, metric)
            row = [workload, metric]
            row += [_fmt(values[s]) if s in values else "-" for s in systems]
            for p in peers:
                if "raftlog" in values and p in values and values["raftlog"] and values[p]:
                    r = (
                        values["raftlog"] / values[p]
                        if better == "higher"
                        else values[p] / values["raftlog"]
                    )
                    row.append(f"{r:.2f}x")
                else:
                    row.append("-")
            goal = goals.get((workload, metric))
            if goal is None:
                row.append("")
            else:
                verdict = {True: "met", False: "NOT met", None: "?"}[goal[1]]
                row.append(f"{goal[0].text}: {verdict}")
            lines.append(row)
        widths = [max(len(r[k]) for r in lines) for k in range(len(head))]
        out = [
            "  ".join(
                cell.ljust(w) if k < 2 or k == len(head) - 1 else cell.rjust(w)
                for k, (cell, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
            for r in lines
        ]
        out.insert(1, "-" * len(out[0]))
        footer = [
            "ratios: above 1 means raftlog did better (throughput: raftlog / other; "
            "latency, failover: other / raftlog)",
            *(f"{name}: {version}" for name, version in self.systems.items()),
            f"machine: {self.machine['cpus']} CPUs, {self.machine['system']}, "
            f"Python {self.machine['python']}",
            *self.notes,
        ]
        return "\n".join([*out, "", *footer])

    def to_json(self) -> str:
        doc = {
            "started": self.started,
            "machine": self.machine,
            "systems": self.systems,
            "figures": [asdict(f) for f in self.figures],
            "goals": [
                {"workload": g.workload, "metric": g.metric, "goal": g.text, "met": met}
                for g, met in self.goals()
            ],
            "notes": self.notes,
        }
        return json.dumps(doc, indent=2)

    def chart(self, path: Path) -> None:
        """A PNG: one panel per workload, a bar per system (needs matplotlib)."""
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415

        rows = self.rows()
        cols = 3
        n = len(rows)
        fig, axes = plt.subplots(
            (n + cols - 1) // cols, cols, figsize=(4 * cols, 3 * ((n + cols - 1) // cols))
        )
        flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
        colours = {"raftlog": "#2b7bba", "etcd": "#7a9e3f", "pysyncobj": "#c9822b"}
        for ax, (workload, metric, better) in zip(flat, rows, strict=False):
            values = self.values(workload, metric)
            names = list(values)
            ax.bar(names, [values[s] for s in names], color=[colours.get(s, "#888") for s in names])
            ax.set_title(f"{workload}: {metric}\n({better} is better)", fontsize=9)
            ax.tick_params(labelsize=8)
        for ax in flat[n:]:
            ax.axis("off")
        fig.suptitle(f"raftlog bench {self.started} ({self.machine['cpus']} CPUs)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": sys.version.split()[0],
        "load_average": os.getloadavg(),
    }


@dataclass
class Options:
    workloads: Sequence[str] = DEFAULT_WORKLOADS
    compare: Sequence[str] = ()
    seconds: float = 10.0
    connections: Sequence[int] = (64, 256)
    failovers: int = 10
    catchup_entries: int = 100_000
    library_seconds: float = 10.0
    event_loop: str | None = None
    dashboard_pairs: int = 3


async def _http_workloads(
    systems: list[System], options: Options, report: BenchReport, say: Callable[[str], None]
) -> None:
    """Every system up at once, and each workload run on one system right after the
    other: the machine's mood (a noisy neighbour, a busy disk) changes by the minute, so
    the figures compared are taken as close together as they can be."""
    async with contextlib.AsyncExitStack() as stack:
        for system in systems:
            await stack.enter_async_context(system)
            report.systems[system.name] = system.version()
        targets = {}
        for system in systems:
            leader = await system.leader()
            targets[system.name] = (system.write_url(leader), system.write_body())
        runs: list[tuple[str, str, int]] = []
        if "throughput" in options.workloads:
            runs += [("throughput", f"c={c}", c) for c in options.connections]
        if "latency" in options.workloads:
            runs.append(("latency", "c=1", 1))
        for k, (workload, label, connections) in enumerate(runs):
            # Who goes first alternates: background work left by one run (a snapshot, a
            # checkpoint, writeback) lands on the next one's figures.
            for system in systems if k % 2 == 0 else systems[::-1]:
                url, body = targets[system.name]
                say(
                    f"bench: {system.name}: {workload}, {connections} connection(s) for "
                    f"{options.seconds:g} s ..."
                )
                r = await asyncio.to_thread(load.run_load, url, body, connections, options.seconds)
                _add_load(report, workload, label, system.name, r)
        if "dashboard" in options.workloads:
            await _dashboard(systems[0], options, report, say)
        if "failover" in options.workloads and options.failovers > 0:
            for system in systems:
                say(f"bench: {system.name}: {options.failovers} failovers (kill -9 the leader) ...")
                times = await failover(system, options.failovers)
                report.add(
                    Figure(
                        "failover",
                        "median ms",
                        system.name,
                        statistics.median(times),
                        "ms",
                        "lower",
                        {"samples_ms": [round(t, 1) for t in times]},
                    )
                )


async def _dashboard(
    system: System, options: Options, report: BenchReport, say: Callable[[str], None]
) -> None:
    """raftlog's appends/s with and without the dashboard open (see bench.dashboard)."""
    from raftlog.bench import dashboard  # noqa: PLC0415

    why = dashboard.unavailable()
    if why is not None:
        report.notes.append(f"dashboard workload skipped: {why}")
        return
    leader = await system.leader()
    connections = options.connections[0]
    r = await dashboard.run_dashboard(
        system.write_url(leader).removesuffix("/v1/log") + "/",
        system.write_url(leader),
        system.write_body(),
        connections=connections,
        seconds=options.seconds,
        pairs=options.dashboard_pairs,
        say=say,
    )
    label = f"c={connections}"
    for name, runs, rate in (
        ("nobody watching", r.without, r.rate_without),
        ("dashboard open", r.with_page, r.rate_with),
    ):
        report.add(
            Figure(
                "dashboard",
                f"{label} appends/s, {name}",
                "raftlog",
                rate,
                "appends/s",
                "higher",
                {"runs": [round(x.rate) for x in runs], "errors": sum(x.errors for x in runs)},
            )
        )
    for name, runs in (
        ("nobody watching", r.paced_without),
        ("dashboard open", r.paced_with_page),
    ):
        report.add(
            Figure(
                "dashboard",
                f"paced appends/s, {name}",
                "raftlog",
                statistics.median(x.rate for x in runs),
                "appends/s",
                "higher",
                {
                    "runs": [round(x.rate) for x in runs],
                    "p99_ms": [round(x.p99_ms, 1) for x in runs],
                    "errors": sum(x.errors for x in runs),
                },
            )
        )
    report.add(
        Figure("dashboard", "paced drop %", "raftlog", r.paced_drop_percent, "%", "lower"),
        Figure("dashboard", "throughput drop %", "raftlog", r.drop_percent, "%", "lower"),
        Figure(
            "dashboard",
            "page timer lag p95 ms",
            "raftlog",
            r.lag_p95_ms,
            "ms",
            "lower",
            {"samples": r.lag_samples, "p50_ms": round(r.lag_p50_ms, 1), "max_ms": r.lag_max_ms},
        ),
    )


def _add_load(report: BenchReport, workload: str, label: str, system: str, r: Any) -> None:
    detail = {
        "requests": r.requests,
        "errors": r.errors,
        "seconds": round(r.seconds, 2),
        "p90_ms": round(r.p90_ms, 3),
        "max_ms": round(r.max_ms, 3),
        "generator": r.generator,
        "generator_cpu": round(r.generator_cpu, 2),
    }
    unit = "appends/s" if system == "raftlog" else "puts/s"
    report.add(
        Figure(workload, f"{label} appends/s", system, r.rate, unit, "higher", detail),
        Figure(workload, f"{label} p50 ms", system, r.p50_ms, "ms", "lower"),
        Figure(workload, f"{label} p99 ms", system, r.p99_ms, "ms", "lower"),
    )
    if r.errors:
        report.notes.append(f"{system} {workload} {label}: {r.errors} errors")
    if r.generator_cpu > 0.8:
        report.notes.append(
            f"{workload} {label} against {system}: the load generator ({r.generator}) used "
            f"{r.generator_cpu:.2f} cores of the machine's {os.cpu_count()}"
        )


async def run(options: Options, say: Callable[[str], None] = print) -> BenchReport:
    unknown = set(options.workloads) - set(WORKLOADS)
    if unknown:
        raise ValueError(f"unknown workload(s): {', '.join(sorted(unknown))}")
    bad = set(options.compare) - set(PEERS)
    if bad:
        raise ValueError(f"can compare with {', '.join(PEERS)}, not {', '.join(sorted(bad))}")
    report = BenchReport(time.strftime("%Y-%m-%dT%H:%M:%S%z"), machine())
    if not load.have_wrk():
        report.notes.append("wrk not found: the load came from raftlog's own generator")
    http = {"throughput", "latency", "failover", "dashboard"} & set(options.workloads)
    if http:
        systems: list[System] = [RaftlogSystem(options.event_loop)]
        if "tls" in options.compare:
            systems.append(RaftlogSystem(options.event_loop, tls=True))
        if "etcd" in options.compare:
            systems.append(EtcdSystem())
        await _http_workloads(systems, options, report, say)
    if "catchup" in options.workloads:
        from raftlog.local import bench_growth  # noqa: PLC0415

        rows = await bench_growth.run_catchup(options.catchup_entries, say=say)
        for row, metric in zip(rows, ("entries/s", "log replay entries/s"), strict=True):
            # The first configuration takes snapshots (the follower gets one if the log
            # it needs was compacted), the second replays the whole log.
            detail = {
                "entries": row.entries,
                "seconds": round(row.seconds, 3),
                "snapshot_installed": row.installed_snapshot,
            }
            report.add(
                Figure("catchup", metric, "raftlog", row.rate, "entries/s", "higher", detail)
            )
    if "library" in options.workloads:
        say(f"bench: raftlog in-process appends for {options.library_seconds:g} s ...")
        mine = await library.run_raftlog(options.library_seconds)
        report.add(_library_figure(mine))
        report.systems.setdefault("raftlog", "raftlog")
        if "pysyncobj" in options.compare:
            say(f"bench: pysyncobj in-process appends for {options.library_seconds:g} s ...")
            theirs = await library.run_pysyncobj(options.library_seconds)
            report.add(_library_figure(theirs))
            report.systems["pysyncobj"] = (
                f"PySyncObj {library.PYSYNCOBJ_VERSION} (in memory, {theirs.window:,} in flight)"
            )
    return report


def _library_figure(r: library.LibraryResult) -> Figure:
    return Figure(
        "library",
        "appends/s",
        "pysyncobj" if r.system.startswith("pysyncobj") else r.system,
        r.rate,
        "appends/s",
        "higher",
        {
            "appends": r.appends,
            "seconds": round(r.seconds, 2),
            "window": r.window,
            "durable": r.durable,
        },
    )
