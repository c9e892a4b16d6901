"""``raftlog check``: is a recorded history linearizable?

Usage::

    raftlog check [--model register|kv-register] [--format jepsen] [--timeout SECONDS] FILE...

For each file, in order, prints ``FILE: linearizable``, ``FILE: not linearizable`` or
``FILE: unknown`` (the time limit was hit). After a ``not linearizable`` line come indented
lines explaining it: the deepest point the search reached and the window of operations it
could not order there (each with its process, call and return times, and operation).

Exit status: 0 if every file is linearizable; 1 if any is not; 3 if any is unknown and none
is not linearizable; 2 on a usage error or a file that cannot be read or parsed (the message
goes to stderr; the other files are still checked).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from raftlog.check.history import Operation
from raftlog.check.jepsen import load_jepsen
from raftlog.check.models import KVRegisterModel, Model, RegisterModel
from raftlog.check.wgl import check

__all__ = ["EXIT_ERROR", "EXIT_NOT_LINEARIZABLE", "EXIT_OK", "EXIT_UNKNOWN", "add_parser", "run"]

EXIT_OK = 0
EXIT_NOT_LINEARIZABLE = 1
EXIT_ERROR = 2
EXIT_UNKNOWN = 3

MODELS: dict[str, Callable[[], Model[Any]]] = {
    "register": RegisterModel,
    "kv-register": KVRegisterModel,
}
FORMATS: dict[str, Callable[[str], list[Operation]]] = {
    "jepsen": load_jepsen,
}


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``check`` subcommand to ``subparsers``; it sets ``handler=run``."""
    parser = subparsers.add_parser(
        "check",
        help="check recorded histories for linearizability",
        description=(
            "Check each history FILE for linearizability (Wing & Gong search with Lowe's "
            "memoization). Prints 'FILE: linearizable', 'FILE: not linearizable' (followed "
            "by an indented explanation) or 'FILE: unknown' (time limit hit). Exit status: "
            "0 all linearizable, 1 some not linearizable, 3 some unknown, 2 usage or parse "
            "error."
        ),
    )
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="register",
        help="the sequential specification (default: register)",
    )
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="jepsen",
        help="the history file format (default: jepsen)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="give up on a file after this long, verdict unknown (default: 60)",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="history files")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check every file of ``args.files``; print the verdicts; return the exit status.

    ``args`` carries ``model``, ``format``, ``timeout`` and ``files`` as set by the parser
    from :func:`add_parser`.
    """
    model_factory = MODELS.get(args.model)
    load = FORMATS.get(args.format)
    if model_factory is None or load is None:
        print(
            f"raftlog check: unknown model or format: {args.model}, {args.format}", file=sys.stderr
        )
        return EXIT_ERROR
    model = model_factory()
    errors = unknown = violations = 0
    for path in args.files:
        try:
            ops = load(path)
            result = check(model, ops, timeout_s=args.timeout)
        except OSError as exc:
            print(f"raftlog check: {path}: {exc.strerror or exc}", file=sys.stderr)
            errors += 1
            continue
        except ValueError as exc:
            message = str(exc)
            if not message.startswith(f"{path}:"):
                message = f"{path}: {message}"
            print(f"raftlog check: {message}", file=sys.stderr)
            errors += 1
            continue
        print(f"{path}: {result.verdict}")
        if result.verdict == "not linearizable":
            violations += 1
            assert result.explanation is not None
            for line in result.explanation.lines:
                print(f"  {line}")
        elif result.verdict == "unknown":
            unknown += 1
        sys.stdout.flush()
    if errors:
        return EXIT_ERROR
    if violations:
        return EXIT_NOT_LINEARIZABLE
    if unknown:
        return EXIT_UNKNOWN
    return EXIT_OK
