"""raftlog: a Raft replicated log. Run `raftlog COMMAND --help` for each command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import cast

from raftlog import __version__
from raftlog.check import cli as check_cli
from raftlog.cli import (
    bench_cmd,
    chaos_cmd,
    client_cmd,
    config,
    demo_cmd,
    grade_cmd,
    members_cmd,
    netcluster_cmd,
    node_cmd,
    sim_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = config.ConfigArgumentParser(prog="raftlog", description=__doc__)
    parser.add_argument("--version", action="version", version=f"raftlog {__version__}")
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND"),
    )
    node_cmd.add_parsers(sub)
    client_cmd.add_parsers(sub)
    members_cmd.add_parsers(sub)
    demo_cmd.add_parser(sub)
    sim_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    netcluster_cmd.add_parser(sub)
    chaos_cmd.add_parser(sub)
    check_cli.add_parser(sub)
    grade_cmd.add_parser(sub)
    config.add_parser(sub)
    config.install(parser)  # last: every command's flags are defined by now
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        result: int = handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result
