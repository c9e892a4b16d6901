"""The node's event loop: uvloop when installed (``auto``), the standard loop on request,
a clear error for a loop that is not there."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from raftlog.cli.main import main
from raftlog.server.eventloop import loop_factory, loop_name
from scaffold import running_cluster

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_asyncio_means_the_standard_loop() -> None:
    assert loop_factory("asyncio") is None
    with asyncio.Runner(loop_factory=loop_factory("asyncio")) as runner:
        assert runner.run(_name()) == "asyncio"


@pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed (the 'fast' extra)")
def test_auto_and_uvloop_run_on_uvloop_when_it_is_installed() -> None:
    for choice in ("auto", "uvloop"):
        with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
            assert runner.run(_name()) == "uvloop"


async def _name() -> str:
    return loop_name()


def test_an_unknown_choice_is_an_error_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="auto, asyncio, uvloop"):
        loop_factory("tokio")
    monkeypatch.setenv("RAFTLOG_EVENT_LOOP", "tokio")
    argv = ["node", "--id", "1", "--peers", "1=127.0.0.1:1", "--data-dir", "/nonexistent"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "RAFTLOG_EVENT_LOOP: invalid choice 'tokio' (choose from auto, asyncio, uvloop)" in err


def test_uvloop_when_it_is_missing_names_the_extra(tmp_path: Path) -> None:
    # A Python that cannot import uvloop (a module of that name that fails to import).
    (tmp_path / "uvloop.py").write_text("raise ImportError('not here')\n")
    code = "from raftlog.server.eventloop import loop_factory as f; print(f('auto')); f('uvloop')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path)},
        check=False,
    )
    assert done.stdout.strip() == "None"  # auto falls back to the standard loop
    assert "pip install 'raftlog[fast]'" in done.stderr


def test_a_node_reports_its_event_loop_in_its_status() -> None:
    async def go() -> dict[int, str]:
        async with running_cluster(1, node_args=["--event-loop", "asyncio"]) as cluster:
            status = await cluster.status(1)
            assert status is not None
            return {1: status["event_loop"]}

    assert asyncio.run(go()) == {1: "asyncio"}
