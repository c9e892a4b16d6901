"""Reading a node's ``GET /metrics`` in tests: parsed with prometheus_client's own parser,
and checked for what every exposition must hold (:func:`scrape`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

SERVER_METRICS = (
    "raftlog_server_has_leader",
    "raftlog_server_is_leader",
    "raftlog_server_term",
    "raftlog_server_leader_changes_seen_total",
    "raftlog_server_proposals_committed_total",
    "raftlog_server_proposals_applied_total",
    "raftlog_server_proposals_pending",
    "raftlog_server_proposals_failed_total",
    "raftlog_server_commit_index",
    "raftlog_server_applied_index",
    "raftlog_server_proposal_commit_duration_seconds_count",
    "raftlog_disk_wal_fsync_duration_seconds_count",
)
"""Samples every node has (peer-labelled ones come with peers)."""


@dataclass
class Scrape:
    """Samples by name, then by their labels (a sorted tuple of pairs)."""

    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[name][tuple(sorted(labels.items()))]

    def by_peer(self, name: str) -> dict[int, float]:
        return {int(dict(k)["peer"]): v for k, v in self.samples.get(name, {}).items()}


def scrape(text: str) -> Scrape:
    """Parse an exposition; raise AssertionError if it is not a sound one (a sample twice,
    histogram buckets that are not cumulative, or whose +Inf is not the count)."""
    out = Scrape()
    for family in text_string_to_metric_families(text):
        out.types[family.name] = family.type
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            series = out.samples.setdefault(sample.name, {})
            assert key not in series, f"{sample.name}{dict(key)} appears twice"
            series[key] = sample.value
    for name, kind in out.types.items():
        if kind == "histogram":
            _check_histogram(out, name)
    return out


def _check_histogram(out: Scrape, name: str) -> None:
    buckets = out.samples.get(f"{name}_bucket", {})
    groups: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    for key, value in buckets.items():
        labels = dict(key)
        le = float(labels.pop("le"))
        groups.setdefault(tuple(sorted(labels.items())), []).append((le, value))
    for key, points in groups.items():
        points.sort()
        counts = [v for _le, v in points]
        assert counts == sorted(counts), f"{name}{dict(key)}: buckets not cumulative: {points}"
        assert math.isinf(points[-1][0]), f"{name}{dict(key)}: no +Inf bucket"
        total = out.samples[f"{name}_count"][key]
        assert points[-1][1] == total, f"{name}{dict(key)}: +Inf {points[-1][1]} != {total}"
