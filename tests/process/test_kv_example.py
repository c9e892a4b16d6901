"""The embedding example (examples/kv_store.py): a key-value store with a state machine
of its own runs on three processes, survives SIGKILL of its leader, and a restarted node
catches up (with snapshots every 50 entries, so by snapshot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from procsupport import free_base

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kv_store.py"


def test_the_embedded_key_value_store_survives_its_leader_being_killed(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "demo",
            "--data-dir",
            str(tmp_path),
            "--base-port",
            str(free_base((1, 2, 3, 11, 12, 13))),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "killing the leader" in out
    assert "demo: ok, all 3 stores hold the same 300 keys" in out
    # Snapshots were taken (every 50 entries) and the logs compacted.
    snapshots = list(tmp_path.glob("node-*/snapshots/snap-*.snap"))
    assert snapshots, sorted(str(p) for p in tmp_path.rglob("*"))
