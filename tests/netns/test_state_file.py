"""The netcluster's state file under concurrent control actions (no namespaces needed:
``raftlog chaos --netns`` restarts every node at once, each from a thread, and every start
saves the state)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from raftlog.local.netcluster import NetCluster, NodeProc


def test_concurrent_saves_never_trip_over_each_other(tmp_path: Path) -> None:
    nc = NetCluster(tmp_path)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def saver(k: int) -> None:
        start.wait()
        try:
            for n in range(50):
                with nc._lock:  # as a start does: change the state, then save it
                    nc.state.procs[f"node_{k}"] = NodeProc(pid=n, starts=n)
                nc._save()
        except BaseException as exc:  # the bug: FileNotFoundError renaming state.tmp
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    saved = json.loads((tmp_path / "state.json").read_text())
    assert {p["starts"] for p in saved["procs"].values()} == {49}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
