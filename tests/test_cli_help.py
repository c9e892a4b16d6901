"""Every flag a person can see in ``raftlog ... --help`` says what it does."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from raftlog.cli.main import build_parser


def _parsers(
    parser: argparse.ArgumentParser, path: str = "raftlog"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``parser`` and every subcommand's parser below it, with its command line."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """The visible options and positionals of one parser that have no help text."""
    missing = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.help == argparse.SUPPRESS:
            continue  # hidden on purpose (test-only flags)
        if not (action.help or "").strip():
            missing.append("/".join(action.option_strings) or action.dest)
    return missing


def test_every_visible_flag_of_every_command_has_help() -> None:
    missing = {
        path: names for path, parser in _parsers(build_parser()) if (names := undocumented(parser))
    }
    assert missing == {}, "flags without a help text: " + "; ".join(
        f"{path}: {', '.join(names)}" for path, names in sorted(missing.items())
    )


def test_the_walk_reaches_the_commands_and_their_subcommands() -> None:
    paths = {path for path, _ in _parsers(build_parser())}
    for command in ("cluster", "bench", "chaos", "netcluster", "demo", "sim", "check", "log"):
        assert f"raftlog {command}" in paths
    assert "raftlog log trim" in paths


def test_the_check_finds_a_flag_without_help() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--said", help="what it does")
    parser.add_argument("--hidden", help=argparse.SUPPRESS)
    parser.add_argument("--silent")
    parser.add_argument("where")
    assert undocumented(parser) == ["--silent", "where"]


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_help_text_is_no_help(blank: str) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blank", help=blank)
    assert undocumented(parser) == ["--blank"]
