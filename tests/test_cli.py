"""The `raftlog` command line: help, version, demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from raftlog import __version__
from raftlog.cli.main import main


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "raftlog", "--version"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == f"raftlog {__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "sim" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", ["sim", "check", "demo", "node", "cluster", "append", "log", "status", "bench"]
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: raftlog " + command in capsys.readouterr().out


def test_demo_elects_a_leader_and_commits_the_lab_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "simulated"]) == 0
    out = capsys.readouterr().out
    assert "Received 2 votes. State: Leader" in out
    assert "Leader committed 'SET 5'" in out and "Follower committed 'ADD 1'" in out
    assert out.count("committed log ['SET 5', 'ADD 1']") == 3
    assert "demo: ok" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--id", "1", "--peers", "1=a", "--data-dir", "/tmp/x"], "expected ID=HOST:PEER_PORT"),
        (["--id", "4", "--peers", "1=a:1,2=b:2", "--data-dir", "/tmp/x"], "node 4 is not in"),
        (["--id", "1", "--peers", "1=a:1,1=b:2", "--data-dir", "/tmp/x"], "listed twice"),
        (
            ["--id", "1", "--peers", "1=a:1", "--data-dir", "/tmp/x", "--election-timeout", "3-1"],
            "min <= max",
        ),
    ],
)
def test_node_refuses_bad_arguments_with_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["node", *argv]) == 2
    assert message in capsys.readouterr().err
