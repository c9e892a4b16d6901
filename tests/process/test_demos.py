"""The lab's four runs, on real processes, with fast timings."""

from __future__ import annotations

import pytest
from procsupport import run

from raftlog.local.demos import DemoOptions, run_demo


@pytest.mark.parametrize(
    ("scenario", "graceful", "pause"),
    [
        ("typical", False, False),
        ("split-vote", False, False),
        ("dead-leader", False, False),
        ("dead-leader", True, False),
        ("dead-leader", False, True),
        ("dead-follower", False, False),
    ],
)
def test_lab_run(scenario: str, graceful: bool, pause: bool) -> None:
    lines: list[str] = []
    verdict = run(
        run_demo(
            DemoOptions(scenario, fast=True, graceful=graceful, pause=pause, echo=lines.append)
        )
    )
    assert verdict.startswith(f"{scenario}: ok"), verdict
    text = "\n".join(lines)
    assert "Received 2 votes. State: Leader" in text
    assert "Leader committed 'SET 5'" in text
    if scenario == "dead-leader":
        assert ", failover " in verdict and " ms" in verdict, verdict
        assert (" by hand-over" in verdict) == graceful, verdict
    if graceful:
        assert "demo: hand-over: node " in text
