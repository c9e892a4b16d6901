"""The report of ``raftlog chaos``: a run's records turned into files a person can open.

:func:`write_report` writes, into one directory:

- ``report.html``: one self-contained page (no network, no script, no external style): the
  verdict (PASS only if every check passed, and at least one ran), the checks with their
  details, the run's summary, and a timeline as inline SVG: the faults as shaded bands, one
  lane per node with its state over time (the term written on leader spans), and below it
  the client operations per time bucket (ok / fail / info as stacked bars, and the median and
  maximum latency of ok appends and reads on a log scale). Then the faults, some numbers
  about the operations, and links to ``history.jsonl`` and the nodes' event logs.
- ``timeline.png``: the same timeline drawn with matplotlib (the Agg canvas, imported only
  here), when matplotlib can be imported; otherwise the page says why it is missing.

Operations are aggregated per bucket (0.5 s for a run of up to five minutes), so the page
stays small for 100k operations. Every string from the input is escaped (and control
characters are shown as ``\\xNN``): values come from clients and nodes.

:func:`describe_checks` is the plain-text table of the checks for the end of the command's
output.
"""

from __future__ import annotations

import html
import importlib
import json
import math
import os
import shlex
import urllib.parse
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

Record = Mapping[str, Any]

HTML_NAME: Final = "report.html"
PNG_NAME: Final = "timeline.png"
HISTORY_NAME: Final = "history.jsonl"

STATE_COLOURS: Final[Mapping[str, str]] = {
    "Leader": "#1f5fa8",
    "Follower": "#a8c8e8",
    "PreCandidate": "#f6cf7e",
    "Candidate": "#ee8a1c",
    "down": "#454545",
}
OTHER_STATE_COLOUR: Final = "#d4d4d4"
STATUS_COLOURS: Final[Mapping[str, str]] = {"ok": "#3b9a3b", "fail": "#d2383a", "info": "#e6b01e"}
KIND_COLOURS: Final[Mapping[str, str]] = {"append": "#1f5fa8", "read": "#8e44ad"}
FAULT_COLOUR: Final = "#d62728"
PASS_COLOUR: Final = "#2e7d32"
FAIL_COLOUR: Final = "#c62828"

# SVG geometry (pixels).
_W: Final = 1200
_ML: Final = 120
_MR: Final = 24
_PW: Final = _W - _ML - _MR
_FAULT_ROW_H: Final = 16
_LANE_H: Final = 20
_LANE_GAP: Final = 4
_CHART_H: Final = 110
_CHAR_PX: Final = 6.2  # estimated width of one character of 11px text
_MAX_BUCKETS: Final = 600
_LABEL_MAX: Final = 60  # characters of a fault label drawn in the timeline


@dataclass(frozen=True)
class ReportFiles:
    """The files :func:`write_report` wrote."""

    html: Path
    png: Path | None
    png_note: str | None = None  # why there is no PNG, when ``png`` is None


# --------------------------------------------------------------------------- cleaning


def _clean(value: object) -> str:
    """Text safe to print or embed: control characters as ``\\xNN``, no lone surrogates."""
    s = value if isinstance(value, str) else str(value)
    if s.isprintable():
        return s
    out = []
    for ch in s:
        o = ord(ch)
        if ch in "\n\t" or not (o < 0x20 or 0x7F <= o < 0xA0):
            out.append(ch)
        else:
            out.append(f"\\x{o:02x}")
    return "".join(out).encode("utf-8", "backslashreplace").decode("utf-8")


def _e(value: object) -> str:
    """HTML-escaped :func:`_clean` text (quotes too: safe in attributes)."""
    return html.escape(_clean(value), quote=True)


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _node_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _fmt_t(t: float) -> str:
    return f"{t:.1f}" if abs(t) < 1000 else f"{t:.0f}"


def _fmt_lat(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.3g} ms"
    return f"{s:.3g} s"


def _truncate(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


# --------------------------------------------------------------------------- checks


def _verdict(checks: Sequence[Record]) -> bool:
    return bool(checks) and all(c.get("ok") is True for c in checks)


def describe_checks(checks: Sequence[Record]) -> str:
    """A plain-text table of the checks (name, OK/FAIL, detail) and the verdict line."""
    rows = [
        (_clean(c.get("name", "?")), "OK" if c.get("ok") is True else "FAIL", c.get("detail"))
        for c in checks
    ]
    width = max([len("check"), *(len(name) for name, _, _ in rows)])
    lines = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  {'-' * 6}"]
    for name, result, detail in rows:
        detail_lines = _clean("" if detail is None else detail).splitlines() or [""]
        lines.append(f"{name:<{width}}  {result:<6}  {detail_lines[0]}".rstrip())
        lines.extend(f"{'':<{width}}  {'':<6}  {more}".rstrip() for more in detail_lines[1:])
    passed = sum(1 for _, result, _ in rows if result == "OK")
    if not rows:
        lines.append("verdict: FAIL (no checks ran)")
    else:
        verdict = "PASS" if passed == len(rows) else "FAIL"
        lines.append(f"verdict: {verdict} ({passed} of {len(rows)} checks passed)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class _Span:
    node: int
    start: float
    end: float
    state: str
    term: int | None
    leader: int | None
    commit: int | None  # at the last sample of the span


@dataclass(frozen=True)
class _Fault:
    start: float
    end: float
    open_ended: bool
    kind: str
    target: str
    detail: str
    row: int

    @property
    def label(self) -> str:
        return f"{self.kind} {self.target}".strip()


@dataclass
class _Timeline:
    t0: float
    t1: float
    nodes: list[int]
    spans: list[_Span]
    faults: list[_Fault]
    fault_rows: int
    bucket_s: float
    counts: list[tuple[int, int, int]]  # ok, fail, info per bucket
    lat_median: dict[str, list[float | None]]
    lat_max: dict[str, list[float | None]]

    def x(self, t: float) -> float:
        return _ML + (t - self.t0) / (self.t1 - self.t0) * _PW


@dataclass
class _OpStats:
    by_kind_status: dict[str, dict[str, int]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    by_node: dict[int, dict[str, int]] = field(default_factory=dict)
    never_returned: int = 0
    max_index: int | None = None
    total: int = 0


def _bucket_width(duration: float) -> float:
    want = max(duration / _MAX_BUCKETS, min(0.5, duration / 100))
    for mag in (0.1, 1.0, 10.0, 100.0, 1000.0):
        for step in (1.0, 2.0, 5.0):
            if step * mag >= want - 1e-9:
                return step * mag
    return math.ceil(want)


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    if n % 2:
        return sorted_values[mid]
    return (sorted_values[mid - 1] + sorted_values[mid]) / 2


def _percentile(sorted_values: list[float], p: float) -> float:
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _assign_fault_rows(
    raw: list[tuple[float, float, bool, str, str, str]], t0: float, t1: float
) -> tuple[list[_Fault], int]:
    px_per_s = _PW / (t1 - t0)
    row_ends: list[float] = []
    faults: list[_Fault] = []
    for start, end, open_ended, kind, target, detail in sorted(raw, key=lambda f: f[0]):
        label = _truncate(_clean(f"{kind} {target}".strip()), _LABEL_MAX)
        x0 = (start - t0) * px_per_s
        x1 = max((end - t0) * px_per_s, x0 + len(label) * _CHAR_PX + 6)
        for row, row_end in enumerate(row_ends):
            if row_end + 4 <= x0:
                row_ends[row] = x1
                break
        else:
            row = len(row_ends)
            row_ends.append(x1)
        faults.append(_Fault(start, end, open_ended, kind, target, detail, row))
    return faults, len(row_ends)


def _build(
    ops: Sequence[Record],
    faults: Sequence[Record],
    statuses: Sequence[Record],
    summary: Mapping[str, Any],
    node_logs: Mapping[Any, Any],
    bucket_s: float | None,
) -> tuple[_Timeline, _OpStats]:
    # Time range: everything recorded, and the run's stated duration.
    times: list[float] = [0.0]
    duration = _num(summary.get("duration_s"))
    if duration is not None:
        times.append(duration)
    for f in faults:
        times.extend(t for t in (_num(f.get("start")), _num(f.get("end"))) if t is not None)
    for s in statuses:
        t = _num(s.get("time"))
        if t is not None:
            times.append(t)
    op_times: list[tuple[float, float | None, Record]] = []
    for op in ops:
        call = _num(op.get("call"))
        if call is None:
            continue
        ret = _num(op.get("ret"))
        op_times.append((call, ret, op))
    if op_times:
        times.append(min(c for c, _, _ in op_times))
        times.append(max(c if r is None else max(c, r) for c, r, _ in op_times))
    t0, t1 = min(times), max(times)
    if t1 - t0 < 1e-6:
        t1 = t0 + 1.0

    # Node lanes: each sample's state holds until the node's next sample (or the end).
    per_node: dict[int, list[tuple[float, Record]]] = {}
    for s in statuses:
        node, t = _node_id(s.get("node")), _num(s.get("time"))
        if node is not None and t is not None:
            per_node.setdefault(node, []).append((t, s))
    nodes = set(per_node)
    nodes.update(n for n in (_node_id(k) for k in node_logs) if n is not None)
    spans: list[_Span] = []
    for node, samples in per_node.items():
        samples.sort(key=lambda ts: ts[0])
        current: _Span | None = None
        for i, (t, s) in enumerate(samples):
            end = samples[i + 1][0] if i + 1 < len(samples) else t1
            state = _clean(s.get("state", "?"))
            term = _node_id(s.get("term"))
            if current is not None and (current.state, current.term) == (state, term):
                leader = current.leader if current.leader is not None else _node_id(s.get("leader"))
                current = _Span(
                    node, current.start, end, state, term, leader, _node_id(s.get("commit"))
                )
                continue
            if current is not None:
                spans.append(current)
            current = _Span(
                node, t, end, state, term, _node_id(s.get("leader")), _node_id(s.get("commit"))
            )
        if current is not None:
            spans.append(current)

    # Faults, in rows so that neither bars nor labels overlap.
    raw_faults: list[tuple[float, float, bool, str, str, str]] = []
    for f in faults:
        start = _num(f.get("start"))
        if start is None:
            continue
        fault_end = _num(f.get("end"))
        raw_faults.append(
            (
                start,
                t1 if fault_end is None else max(fault_end, start),
                fault_end is None,
                _clean(f.get("kind", "?")),
                _clean(f.get("target", "")),
                _clean(f.get("detail", "")),
            )
        )
    fault_list, fault_rows = _assign_fault_rows(raw_faults, t0, t1)

    # Operations: counted per bucket of their completion (invocation if they never returned).
    b = bucket_s if bucket_s is not None and bucket_s > 0 else _bucket_width(t1 - t0)
    n_buckets = max(1, math.ceil((t1 - t0) / b - 1e-9))
    ok = [0] * n_buckets
    fail = [0] * n_buckets
    info = [0] * n_buckets
    lats: dict[str, list[list[float]]] = {k: [[] for _ in range(n_buckets)] for k in KIND_COLOURS}
    stats = _OpStats()
    for call, ret, op in op_times:
        kind = _clean(op.get("kind", "?"))
        status = _clean(op.get("status", "?"))
        stats.total += 1
        ks = stats.by_kind_status.setdefault(kind, {})
        ks[status] = ks.get(status, 0) + 1
        node = _node_id(op.get("node"))
        if node is not None:
            ns = stats.by_node.setdefault(node, {})
            ns[status] = ns.get(status, 0) + 1
        if ret is None:
            stats.never_returned += 1
        at = call if ret is None else ret
        i = min(n_buckets - 1, max(0, int((at - t0) / b)))
        if status == "ok":
            ok[i] += 1
            if ret is not None:
                latency = max(0.0, ret - call)
                stats.latencies.setdefault(kind, []).append(latency)
                if kind in lats:
                    lats[kind][i].append(latency)
            index = _node_id(op.get("index"))
            if kind == "append" and index is not None:
                stats.max_index = index if stats.max_index is None else max(stats.max_index, index)
        elif status == "fail":
            fail[i] += 1
        else:  # "info", and any status this report does not know: outcome unknown
            info[i] += 1
    lat_median: dict[str, list[float | None]] = {}
    lat_max: dict[str, list[float | None]] = {}
    for kind, per_bucket in lats.items():
        med: list[float | None] = []
        mx: list[float | None] = []
        for values in per_bucket:
            if values:
                values.sort()
                med.append(_median(values))
                mx.append(values[-1])
            else:
                med.append(None)
                mx.append(None)
        lat_median[kind], lat_max[kind] = med, mx
    for values in stats.latencies.values():
        values.sort()

    timeline = _Timeline(
        t0=t0,
        t1=t1,
        nodes=sorted(nodes),
        spans=spans,
        faults=fault_list,
        fault_rows=fault_rows,
        bucket_s=b,
        counts=list(zip(ok, fail, info, strict=True)),
        lat_median=lat_median,
        lat_max=lat_max,
    )
    return timeline, stats


# --------------------------------------------------------------------------- SVG


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for step in (1.0, 2.0, 5.0, 10.0):
        if step * mag >= raw:
            return step * mag
    return 10 * mag


def _ticks(lo: float, hi: float, target: int = 10) -> list[float]:
    step = _nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    t = first
    while t <= hi + 1e-9:
        out.append(round(t, 9))
        t += step
    return out


def _tick_label(t: float) -> str:
    return f"{t:g}" if abs(t) < 1e6 else f"{t:.0f}"


def _polyline_segments(xs: list[float], ys: list[float | None]) -> list[list[tuple[float, float]]]:
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append((x, y))
    if current:
        segments.append(current)
    return segments


def _svg(tl: _Timeline) -> str:
    out: list[str] = []
    add = out.append
    y = 8.0
    faults_top = y
    fault_rows = max(1, tl.fault_rows)
    lanes_top = faults_top + fault_rows * _FAULT_ROW_H + 8
    lanes_bottom = lanes_top + max(1, len(tl.nodes)) * (_LANE_H + _LANE_GAP) - _LANE_GAP
    counts_top = lanes_bottom + 40
    counts_bottom = counts_top + _CHART_H
    lat_top = counts_bottom + 40
    lat_bottom = lat_top + _CHART_H
    height = lat_bottom + 40
    x0, x1 = tl.x(tl.t0), tl.x(tl.t1)

    add(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height:.0f}" '
        f'width="{_W}" height="{height:.0f}" role="img" class="timeline" '
        'font-family="system-ui, sans-serif" font-size="11">'
    )
    add("<title>timeline: faults, node states and client operations</title>")
    # Grid and time axes.
    ticks = _ticks(tl.t0, tl.t1)
    add('<g stroke="#e4e4e4" stroke-width="1">')
    for t in ticks:
        x = tl.x(t)
        add(f'<line x1="{x:.1f}" y1="{faults_top:.1f}" x2="{x:.1f}" y2="{lat_bottom:.1f}"/>')
    add("</g>")
    for axis_y in (lanes_bottom, counts_bottom, lat_bottom):
        add('<g fill="#555" text-anchor="middle">')
        for t in ticks:
            add(f'<text x="{tl.x(t):.1f}" y="{axis_y + 13:.1f}">{_tick_label(t)}</text>')
        add("</g>")
    add(
        f'<text x="{(x0 + x1) / 2:.1f}" y="{lat_bottom + 30:.1f}" text-anchor="middle" '
        'fill="#333">time since start (s)</text>'
    )

    # Faults: a bar and its label in the fault rows.
    add(
        f'<text x="{_ML - 8}" y="{faults_top + 12:.1f}" text-anchor="end" fill="#333">faults</text>'
    )
    if not tl.faults:
        add(f'<text x="{x0 + 4:.1f}" y="{faults_top + 12:.1f}" fill="#777">none injected</text>')
    add(
        f'<clipPath id="raftlog-plot-area"><rect x="{x0:.1f}" y="0" width="{x1 - x0:.1f}" '
        f'height="{height:.0f}"/></clipPath>'
    )
    add('<g clip-path="url(#raftlog-plot-area)">')
    for f in tl.faults:
        fx0, fx1 = tl.x(f.start), tl.x(f.end)
        fy = faults_top + f.row * _FAULT_ROW_H
        end_text = "still active at the end" if f.open_ended else f"{_fmt_t(f.end)} s"
        add(
            f"<g><title>{_e(f.label)}: {_fmt_t(f.start)} s – {end_text}"
            f"{(chr(10) + _e(f.detail)) if f.detail else ''}</title>"
        )
        add(
            f'<rect x="{fx0:.1f}" y="{fy + 1:.1f}" width="{max(fx1 - fx0, 1.5):.1f}" '
            f'height="{_FAULT_ROW_H - 2}" fill="{FAULT_COLOUR}" fill-opacity="0.35"/>'
        )
        add(
            f'<text x="{fx0 + 3:.1f}" y="{fy + 12:.1f}" fill="#7a1010">'
            f"{_e(_truncate(f.label, _LABEL_MAX))}</text></g>"
        )
    add("</g>")

    # Node lanes.
    lane_y = {node: lanes_top + i * (_LANE_H + _LANE_GAP) for i, node in enumerate(tl.nodes)}
    for node, ly in lane_y.items():
        add(
            f'<text x="{_ML - 8}" y="{ly + 14:.1f}" text-anchor="end" fill="#333">'
            f"node {node}</text>"
        )
        add(
            f'<rect x="{x0:.1f}" y="{ly:.1f}" width="{x1 - x0:.1f}" height="{_LANE_H}" '
            'fill="#f4f4f4"/>'
        )
    for s in tl.spans:
        ly = lane_y[s.node]
        sx0, sx1 = tl.x(s.start), tl.x(s.end)
        colour = STATE_COLOURS.get(s.state, OTHER_STATE_COLOUR)
        extra = []
        if s.term is not None:
            extra.append(f"term {s.term}")
        if s.leader is not None and s.state != "Leader":
            extra.append(f"leader {s.leader}")
        if s.commit is not None:
            extra.append(f"commit {s.commit}")
        tip = (
            f"node {s.node}: {_e(s.state)} {_fmt_t(s.start)}–{_fmt_t(s.end)} s"
            f"{' (' + ', '.join(extra) + ')' if extra else ''}"
        )
        add(
            f"<g><title>{tip}</title>"
            f'<rect x="{sx0:.1f}" y="{ly:.1f}" width="{max(sx1 - sx0, 0.5):.2f}" '
            f'height="{_LANE_H}" fill="{colour}" stroke="#fff" stroke-width="0.5"/>'
        )
        if s.state == "Leader" and s.term is not None:
            label = f"T{s.term}"
            if sx1 - sx0 >= len(label) * _CHAR_PX + 6:
                add(
                    f'<text x="{(sx0 + sx1) / 2:.1f}" y="{ly + 14:.1f}" text-anchor="middle" '
                    f'fill="#fff" font-weight="bold">{label}</text>'
                )
        add("</g>")
    if not tl.nodes:
        add(f'<text x="{x0 + 4:.1f}" y="{lanes_top + 14:.1f}" fill="#777">no node samples</text>')

    # Operations per bucket: stacked ok / fail / info.
    max_count = max((sum(c) for c in tl.counts), default=0)
    count_step = max(1, math.ceil(_nice_step(max(max_count, 1), 5)))
    top_count = max(1, math.ceil(max_count / count_step)) * count_step
    bw = tl.x(tl.t0 + tl.bucket_s) - x0
    add(
        f'<text x="{x0:.1f}" y="{counts_top - 6:.1f}" fill="#333" font-weight="bold">'
        f"operations per {tl.bucket_s:g} s (by completion): ok, fail, info</text>"
    )
    for v in range(0, top_count + 1, count_step):
        vy = counts_bottom - v / top_count * _CHART_H
        add(
            f'<text x="{x0 - 4:.1f}" y="{vy + 4:.1f}" text-anchor="end" fill="#777">{v}</text>'
            f'<line x1="{x0:.1f}" y1="{vy:.1f}" x2="{x1:.1f}" y2="{vy:.1f}" stroke="#eee"/>'
        )
    for i, (n_ok, n_fail, n_info) in enumerate(tl.counts):
        total = n_ok + n_fail + n_info
        if not total:
            continue
        bx = x0 + i * bw
        start = tl.t0 + i * tl.bucket_s
        add(
            f"<g><title>{_fmt_t(start)}–{_fmt_t(start + tl.bucket_s)} s: "
            f"{n_ok} ok, {n_fail} fail, {n_info} info</title>"
        )
        base = counts_bottom
        for n, status in ((n_ok, "ok"), (n_fail, "fail"), (n_info, "info")):
            if not n:
                continue
            h = n / top_count * _CHART_H
            add(
                f'<rect x="{bx:.1f}" y="{base - h:.1f}" width="{max(bw - 0.3, 0.4):.2f}" '
                f'height="{h:.1f}" fill="{STATUS_COLOURS[status]}"/>'
            )
            base -= h
        add("</g>")
    add(
        f'<rect x="{x0:.1f}" y="{counts_top:.1f}" width="{x1 - x0:.1f}" height="{_CHART_H}" '
        'fill="none" stroke="#bbb"/>'
    )

    # Latency of ok operations: median (solid) and max (dashed) per bucket, log scale.
    add(
        f'<text x="{x0:.1f}" y="{lat_top - 6:.1f}" fill="#333" font-weight="bold">'
        "latency of ok operations: median (solid), max (dashed); append, read</text>"
    )
    all_lat = [v for series in (*tl.lat_median.values(), *tl.lat_max.values()) for v in series if v]
    if all_lat:
        lo = math.floor(math.log10(max(min(all_lat), 1e-4)))
        hi = math.ceil(math.log10(max(all_lat)))
        if hi <= lo:
            hi = lo + 1

        def ly_of(v: float) -> float:
            return lat_bottom - (math.log10(max(v, 10.0**lo)) - lo) / (hi - lo) * _CHART_H

        for d in range(lo, hi + 1):
            vy = ly_of(10.0**d)
            add(
                f'<text x="{x0 - 4:.1f}" y="{vy + 4:.1f}" text-anchor="end" fill="#777">'
                f"{_fmt_lat(10.0**d)}</text>"
                f'<line x1="{x0:.1f}" y1="{vy:.1f}" x2="{x1:.1f}" y2="{vy:.1f}" stroke="#eee"/>'
            )
        centres = [x0 + (i + 0.5) * bw for i in range(len(tl.counts))]
        for kind, colour in KIND_COLOURS.items():
            for series, style in (
                (tl.lat_max[kind], 'stroke-width="1" stroke-dasharray="3 2" stroke-opacity="0.6"'),
                (tl.lat_median[kind], 'stroke-width="1.6"'),
            ):
                ys = [None if v is None else ly_of(v) for v in series]
                for seg in _polyline_segments(centres, ys):
                    if len(seg) == 1:
                        (px, py) = seg[0]
                        add(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="1.5" fill="{colour}"/>')
                        continue
                    pts = " ".join(f"{px:.1f},{py:.1f}" for px, py in seg)
                    add(f'<polyline points="{pts}" fill="none" stroke="{colour}" {style}/>')
    else:
        add(f'<text x="{x0 + 4:.1f}" y="{lat_top + 20:.1f}" fill="#777">no ok operations</text>')
    add(
        f'<rect x="{x0:.1f}" y="{lat_top:.1f}" width="{x1 - x0:.1f}" height="{_CHART_H}" '
        'fill="none" stroke="#bbb"/>'
    )

    # Fault bands over everything (they let the pointer through to the tooltips below).
    add(f'<g fill="{FAULT_COLOUR}" pointer-events="none">')
    for f in tl.faults:
        fx0, fx1 = tl.x(f.start), tl.x(f.end)
        add(
            f'<rect x="{fx0:.1f}" y="{lanes_top - 4:.1f}" width="{max(fx1 - fx0, 1.5):.1f}" '
            f'height="{lat_bottom - lanes_top + 4:.1f}" fill-opacity="0.09"/>'
        )
    add("</g>")
    add("</svg>")
    return "\n".join(out)


# --------------------------------------------------------------------------- PNG


def _write_png(path: Path, tl: _Timeline, passed: bool) -> None:
    """Draw the timeline with matplotlib's Agg canvas (raises ImportError without it)."""
    n_nodes = max(1, len(tl.nodes))
    fault_rows = max(1, tl.fault_rows)
    lane_h = 0.3 * (n_nodes + fault_rows) + 0.4
    with warnings.catch_warnings():
        # Deprecations on import, odd glyphs in labels, layout hints: never worth failing
        # the report for.
        warnings.simplefilter("ignore")
        importlib.import_module("matplotlib")  # first: its absence must raise ImportError
        figure_mod: Any = importlib.import_module("matplotlib.figure")
        agg_mod: Any = importlib.import_module("matplotlib.backends.backend_agg")
        fig = figure_mod.Figure(figsize=(14, lane_h + 5.0), dpi=100, layout="constrained")
        agg_mod.FigureCanvasAgg(fig)
        gs = fig.add_gridspec(3, 1, height_ratios=[lane_h, 2.2, 2.2])
        ax_lanes = fig.add_subplot(gs[0])
        ax_counts = fig.add_subplot(gs[1], sharex=ax_lanes)
        ax_lat = fig.add_subplot(gs[2], sharex=ax_lanes)
        span_s = tl.t1 - tl.t0
        px_per_s = 1150 / span_s

        # Lanes: the first node on top, the fault rows above it.
        lane_pos = {node: n_nodes - 1 - i for i, node in enumerate(tl.nodes)}
        # One artist per node and colour: hundreds of spans stay cheap to draw.
        groups: dict[tuple[int, str], list[tuple[float, float]]] = {}
        for s in tl.spans:
            colour = STATE_COLOURS.get(s.state, OTHER_STATE_COLOUR)
            groups.setdefault((s.node, colour), []).append(
                (s.start, max(s.end - s.start, span_s * 1e-6))
            )
        for (node, colour), ranges in groups.items():
            ax_lanes.broken_barh(
                ranges,
                (lane_pos[node] - 0.4, 0.8),
                facecolors=colour,
                edgecolors="white",
                linewidth=0.4,
            )
        for s in tl.spans:
            yy = lane_pos[s.node]
            if s.state == "Leader" and s.term is not None:
                label = f"T{s.term}"
                if (s.end - s.start) * px_per_s >= len(label) * 6 + 6:
                    ax_lanes.text(
                        (s.start + s.end) / 2,
                        yy,
                        label,
                        ha="center",
                        va="center",
                        color="white",
                        fontsize=7,
                        fontweight="bold",
                        parse_math=False,
                        clip_on=True,
                    )
        for f in tl.faults:
            fy = n_nodes + fault_rows - 1 - f.row + 0.2
            ax_lanes.broken_barh(
                [(f.start, max(f.end - f.start, span_s / 1000))],
                (fy - 0.35, 0.7),
                facecolors=FAULT_COLOUR,
                alpha=0.35,
            )
            ax_lanes.text(
                f.start,
                fy,
                " " + _truncate(f.label, _LABEL_MAX),
                ha="left",
                va="center",
                fontsize=7,
                color="#7a1010",
                parse_math=False,
                clip_on=True,
            )
            for ax in (ax_lanes, ax_counts, ax_lat):
                ax.axvspan(f.start, f.end, color=FAULT_COLOUR, alpha=0.08, linewidth=0)
        ax_lanes.set_ylim(-0.6, n_nodes + fault_rows - 0.2)
        ax_lanes.set_yticks(
            [lane_pos[n] for n in tl.nodes] + [n_nodes + (fault_rows - 1) / 2 + 0.2],
            [f"node {n}" for n in tl.nodes] + ["faults"],
        )
        ax_lanes.tick_params(axis="x", labelbottom=False)
        handles = [_patch(colour, state) for state, colour in STATE_COLOURS.items()] + [
            _patch(FAULT_COLOUR, "fault", alpha=0.35)
        ]
        ax_lanes.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=7,
            frameon=False,
        )

        # Operations per bucket.
        # Stacked as filled steps (one artist per status, not one bar per bucket).
        xs = [tl.t0 + i * tl.bucket_s for i in range(len(tl.counts))]
        edges = [*xs, tl.t0 + len(xs) * tl.bucket_s]
        bottom = [0.0] * len(xs)
        for idx, status in enumerate(("ok", "fail", "info")):
            top = [b + c[idx] for b, c in zip(bottom, tl.counts, strict=True)]
            ax_counts.stairs(
                top,
                edges,
                baseline=bottom,
                fill=True,
                color=STATUS_COLOURS[status],
                label=status,
                linewidth=0,
            )
            bottom = top
        ax_counts.set_ylim(bottom=0)
        ax_counts.set_ylabel(f"ops / {tl.bucket_s:g} s", fontsize=8)
        ax_counts.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        ax_counts.tick_params(axis="x", labelbottom=False)

        # Latency of ok operations.
        centres = [x + tl.bucket_s / 2 for x in xs]
        nan = float("nan")
        any_lat = False
        for kind, colour in KIND_COLOURS.items():
            med = [nan if v is None else v for v in tl.lat_median[kind]]
            mx = [nan if v is None else v for v in tl.lat_max[kind]]
            if any(v is not None for v in tl.lat_median[kind]):
                any_lat = True
                ax_lat.plot(centres, med, color=colour, linewidth=1.2, label=f"{kind} median")
                ax_lat.plot(
                    centres,
                    mx,
                    color=colour,
                    linewidth=0.8,
                    linestyle="--",
                    alpha=0.6,
                    label=f"{kind} max",
                )
        if any_lat:
            ax_lat.set_yscale("log")
            ticker: Any = importlib.import_module("matplotlib.ticker")
            ax_lat.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax_lat.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: _fmt_lat(v)))
            ax_lat.yaxis.set_minor_formatter(ticker.NullFormatter())
            ax_lat.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        else:
            ax_lat.text(0.01, 0.5, "no ok operations", transform=ax_lat.transAxes, fontsize=8)
        ax_lat.set_ylabel("ok latency (s)", fontsize=8)
        ax_lat.set_xlabel("time since start (s)", fontsize=8)
        ax_lat.set_xlim(tl.t0, tl.t1)
        for ax in (ax_lanes, ax_counts, ax_lat):
            ax.tick_params(labelsize=7)
            ax.grid(axis="x", color="#e4e4e4", linewidth=0.6)
            ax.set_axisbelow(True)
        fig.suptitle(
            f"raftlog chaos: {'PASS' if passed else 'FAIL'}",
            color=PASS_COLOUR if passed else FAIL_COLOUR,
            fontsize=11,
            fontweight="bold",
        )
        fig.savefig(path, format="png", dpi=100)


def _patch(colour: str, label: str, alpha: float = 1.0) -> Any:
    patches: Any = importlib.import_module("matplotlib.patches")
    return patches.Patch(facecolor=colour, alpha=alpha, label=label)


# --------------------------------------------------------------------------- HTML

_CSS: Final = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1240px;
       color: #222; padding: 0 1em; }
h1 { margin: 0; font-size: 2.2em; letter-spacing: 0.05em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.verdict { padding: 0.8em 1.2em; border-radius: 6px; color: #fff; }
.verdict p { margin: 0.3em 0 0; }
.pass { background: #2e7d32; }
.fail { background: #c62828; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.detail, td.value { white-space: pre-wrap; font-family: ui-monospace, monospace;
                      font-size: 0.9em; max-width: 60em; overflow-wrap: anywhere; }
tr.bad td { background: #fdecea; }
.badge { font-weight: bold; }
.badge.ok { color: #2e7d32; }
.badge.bad { color: #c62828; }
.legend span { display: inline-block; margin-right: 1.2em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: -0.1em;
          margin-right: 0.3em; border: 1px solid #999; }
.line { display: inline-block; width: 1.6em; height: 0; vertical-align: 0.3em;
        margin-right: 0.3em; border-top: 2px solid; }
.dashed { border-top-style: dashed; }
.scroll { overflow-x: auto; }
svg.timeline { max-width: 100%; height: auto; }
.note { color: #555; }
"""


def _table(headers: Sequence[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    thead = f"<thead><tr>{head}</tr></thead>\n" if headers else ""
    return f"<table>\n{thead}<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _summary_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return shlex.join(value)
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _href(target: str | os.PathLike[str], out_dir: Path) -> str:
    p = Path(target)
    if p.is_absolute() and p.is_relative_to(out_dir.resolve()):
        p = p.relative_to(out_dir.resolve())
    # Quoting ":" too: a name can never become a javascript: (or any other scheme) link.
    return _e(urllib.parse.quote(p.as_posix(), safe="/._-~"))


def _legend() -> str:
    items = [
        f'<span><i class="swatch" style="background:{c}"></i>{_e(s)}</span>'
        for s, c in STATE_COLOURS.items()
    ]
    items.append(
        f'<span><i class="swatch" style="background:{FAULT_COLOUR};opacity:.35"></i>fault</span>'
    )
    items += [
        f'<span><i class="swatch" style="background:{c}"></i>{s}</span>'
        for s, c in STATUS_COLOURS.items()
    ]
    for kind, c in KIND_COLOURS.items():
        items.append(f'<span><i class="line" style="border-color:{c}"></i>{kind} median</span>')
        items.append(f'<span><i class="line dashed" style="border-color:{c}"></i>{kind} max</span>')
    return '<p class="legend">' + "".join(items) + "</p>"


def _ops_section(stats: _OpStats) -> str:
    parts: list[str] = []
    statuses = ("ok", "fail", "info")
    rows = []
    for kind in sorted(stats.by_kind_status):
        counts = stats.by_kind_status[kind]
        others = sum(v for k, v in counts.items() if k not in statuses)
        cells = "".join(f'<td class="num">{counts.get(s, 0)}</td>' for s in statuses)
        rows.append(
            f'<tr><td>{_e(kind)}</td>{cells}<td class="num">{others}</td>'
            f'<td class="num">{sum(counts.values())}</td></tr>'
        )
    parts.append(_table(["kind", "ok", "fail", "info", "other", "total"], rows))
    notes = [f"{stats.total} operations; {stats.never_returned} never returned."]
    if stats.max_index is not None:
        notes.append(f"Highest log index of an acknowledged append: {stats.max_index}.")
    parts.append(f'<p class="note">{_e(" ".join(notes))}</p>')
    lat_rows = []
    for kind in sorted(stats.latencies):
        values = stats.latencies[kind]
        if not values:
            continue
        cells = "".join(
            f'<td class="num">{_fmt_lat(_percentile(values, p))}</td>' for p in (50, 95, 99)
        )
        lat_rows.append(
            f'<tr><td>{_e(kind)}</td><td class="num">{len(values)}</td>{cells}'
            f'<td class="num">{_fmt_lat(values[-1])}</td></tr>'
        )
    if lat_rows:
        parts.append("<h3>Latency of ok operations</h3>")
        parts.append(_table(["kind", "count", "p50", "p95", "p99", "max"], lat_rows))
    if stats.by_node:
        node_rows = []
        for node in sorted(stats.by_node):
            counts = stats.by_node[node]
            cells = "".join(f'<td class="num">{counts.get(s, 0)}</td>' for s in statuses)
            node_rows.append(f"<tr><td>node {node}</td>{cells}</tr>")
        parts.append("<h3>By the node the client sent to</h3>")
        parts.append(_table(["node", "ok", "fail", "info"], node_rows))
    return "\n".join(parts)


def _html(
    tl: _Timeline,
    stats: _OpStats,
    checks: Sequence[Record],
    summary: Mapping[str, Any],
    node_logs: Mapping[Any, Any],
    out_dir: Path,
    history_name: str,
    png_name: str | None,
    png_note: str | None,
) -> str:
    passed = _verdict(checks)
    verdict = "PASS" if passed else "FAIL"
    n_ok = sum(1 for c in checks if c.get("ok") is True)
    if checks:
        headline = f"{n_ok} of {len(checks)} checks passed"
    else:
        headline = "no checks ran"
    headline += (
        f" · {len(tl.nodes)} nodes · {stats.total} operations · {len(tl.faults)} faults · "
        f"{tl.t1 - tl.t0:.1f} s"
    )
    p: list[str] = []
    add = p.append
    add("<!DOCTYPE html>")
    add('<html lang="en">')
    add("<head>")
    add('<meta charset="utf-8">')
    add('<meta name="viewport" content="width=device-width, initial-scale=1">')
    add(f"<title>raftlog chaos: {verdict}</title>")
    add(f"<style>{_CSS}</style>")
    add("</head>")
    add("<body>")
    add(f'<header class="verdict {"pass" if passed else "fail"}">')
    add(f'<h1 id="verdict">{verdict}</h1>')
    add(f"<p>{_e(headline)}</p>")
    add("</header>")

    add('<section id="checks">')
    add("<h2>Checks</h2>")
    check_rows = []
    for c in checks:
        ok = c.get("ok") is True
        badge = '<span class="badge ok">OK</span>' if ok else '<span class="badge bad">FAIL</span>'
        row_class = "" if ok else ' class="bad"'
        check_rows.append(
            f"<tr{row_class}><td>{_e(c.get('name', '?'))}</td>"
            f'<td>{badge}</td><td class="detail">{_e(c.get("detail") or "")}</td></tr>'
        )
    if check_rows:
        add(_table(["check", "result", "detail"], check_rows))
    else:
        add('<p class="note">No checks ran: nothing was verified.</p>')
    add("</section>")

    add('<section id="summary">')
    add("<h2>Run</h2>")
    add(
        _table(
            [],
            (
                f'<tr><th>{_e(k)}</th><td class="value">{_e(_summary_value(v))}</td></tr>'
                for k, v in summary.items()
            ),
        )
    )
    add("</section>")

    add('<section id="timeline">')
    add("<h2>Timeline</h2>")
    add(_legend())
    add(f'<div class="scroll">{_svg(tl)}</div>')
    add(
        f'<p class="note">Node lanes: the state of each sample holds until the node\'s next '
        f"sample; leader spans show their term (T<i>n</i>). Operations are counted per "
        f"{tl.bucket_s:g} s bucket of their completion (of their invocation if they never "
        f"returned); latency is of ok operations, per bucket, on a log scale. Hover for "
        f"details.</p>"
    )
    add("</section>")

    add('<section id="faults">')
    add("<h2>Faults</h2>")
    if tl.faults:
        fault_rows = []
        for f in tl.faults:
            end = "—" if f.open_ended else _fmt_t(f.end)
            dur = "" if f.open_ended else _fmt_t(f.end - f.start)
            fault_rows.append(
                f"<tr><td>{_e(f.kind)}</td><td>{_e(f.target)}</td>"
                f'<td class="num">{_fmt_t(f.start)}</td><td class="num">{end}</td>'
                f'<td class="num">{dur}</td><td class="detail">{_e(f.detail)}</td></tr>'
            )
        add(_table(["kind", "target", "start (s)", "end (s)", "lasted (s)", "detail"], fault_rows))
    else:
        add('<p class="note">No faults were injected.</p>')
    add("</section>")

    add('<section id="operations">')
    add("<h2>Operations</h2>")
    add(_ops_section(stats))
    add("</section>")

    add('<section id="files">')
    add("<h2>Files</h2>")
    add("<ul>")
    add(
        f'<li><a href="{_href(history_name, out_dir)}">{_e(history_name)}</a>: '
        "the recorded history (JSON lines)</li>"
    )
    for node in sorted(node_logs, key=lambda k: (_node_id(k) is None, _node_id(k) or 0, str(k))):
        target = node_logs[node]
        add(
            f'<li><a href="{_href(target, out_dir)}">node {_e(node)}</a>: '
            f"{_e(os.fspath(target))}</li>"
        )
    if png_name is not None:
        add(
            f'<li><a href="{_href(png_name, out_dir)}">{_e(png_name)}</a>: the timeline as PNG</li>'
        )
    else:
        add(f"<li>{_e(PNG_NAME)} was not written: {_e(png_note or 'unknown reason')}</li>")
    add("</ul>")
    add("</section>")
    add("</body>")
    add("</html>")
    return "\n".join(p) + "\n"


# --------------------------------------------------------------------------- entry point


def write_report(
    out_dir: Path,
    *,
    ops: Sequence[Record],
    faults: Sequence[Record],
    statuses: Sequence[Record],
    checks: Sequence[Record],
    summary: Mapping[str, Any],
    node_logs: Mapping[Any, str | os.PathLike[str]],
    history_name: str = HISTORY_NAME,
    bucket_s: float | None = None,
    png: bool = True,
) -> ReportFiles:
    """Write ``report.html`` and (with matplotlib) ``timeline.png`` into ``out_dir``.

    ``history_name`` is the history file linked from the page (relative to ``out_dir``);
    ``bucket_s`` overrides the width of the operation buckets; ``png=False`` skips the PNG.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timeline, stats = _build(ops, faults, statuses, summary, node_logs, bucket_s)
    passed = _verdict(checks)

    png_path: Path | None = None
    png_note: str | None = None
    if not png:
        png_note = "not requested"
    else:
        candidate = out_dir / PNG_NAME
        try:
            _write_png(candidate, timeline, passed)
        except ImportError as exc:
            png_note = f"matplotlib is not installed ({exc}); pip install matplotlib"
        except Exception as exc:  # a drawing failure must not cost the run its report
            png_note = f"matplotlib failed: {type(exc).__name__}: {exc}"
        else:
            png_path = candidate
        if png_path is None:
            candidate.unlink(missing_ok=True)

    html_path = out_dir / HTML_NAME
    text = _html(
        timeline,
        stats,
        checks,
        summary,
        node_logs,
        out_dir,
        history_name,
        PNG_NAME if png_path is not None else None,
        png_note,
    )
    html_path.write_text(text, encoding="utf-8", errors="replace")
    return ReportFiles(html=html_path, png=png_path, png_note=png_note)
