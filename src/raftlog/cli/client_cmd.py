"""`raftlog append`, `raftlog log`, `raftlog status`: talk to a running cluster."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from raftlog.cli.security import add_client_options, client_security

if TYPE_CHECKING:
    from raftlog.client import AsyncClient, Unavailable

DEFAULT_CLUSTER = "127.0.0.1:1234,127.0.0.1:1235,127.0.0.1:1236"
ENV = "RAFTLOG_CLUSTER"
DEFAULT_RETRY_FOR = 20.0
"""Seconds an append or a read is retried by default: a failover with the lab's timings
(election timeout 6-10 s) fits, and a command against a stopped cluster still ends."""


def _endpoints(text: str) -> list[str]:
    from raftlog.client.aio import normalize_endpoint  # noqa: PLC0415

    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        try:
            normalize_endpoint(item)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        out.append(item)  # _cluster gives a bare host:port its scheme (https with TLS)
    if not out:
        raise argparse.ArgumentTypeError("--cluster lists no endpoint")
    return out


def _add_cluster_option(p: argparse.ArgumentParser, *, retries: bool = True) -> None:
    p.add_argument(
        "--cluster",
        type=_endpoints,
        default=None,
        help=f"client endpoints host:port,... (default ${ENV}, else {DEFAULT_CLUSTER})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=40.0,
        help="seconds per request (default 40: longer than a commit may take with the lab's "
        "timings)",
    )
    if retries:
        p.add_argument(
            "--retry-for",
            type=float,
            default=None,
            metavar="SECONDS",
            help="keep retrying (other nodes, a new leader) for this long; an append is "
            f"retried with the same client id and seq, so it is applied once (default: "
            f"--timeout, at most {DEFAULT_RETRY_FOR:g})",
        )
    add_client_options(p)


def _cluster(args: argparse.Namespace) -> list[str]:
    from raftlog.client.aio import normalize_endpoint  # noqa: PLC0415

    if args.cluster:
        given = list(args.cluster)
    else:
        try:
            given = _endpoints(os.environ.get(ENV, DEFAULT_CLUSTER))
        except argparse.ArgumentTypeError as exc:
            raise SystemExit(f"${ENV}: {exc}") from None
    tls = any(getattr(args, name, None) is not None for name in ("cacert", "cert", "key"))
    return [normalize_endpoint(e, "https" if tls else "http") for e in given]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "append",
        help="append an entry to the cluster's log",
        description=(
            "Append TEXT to the replicated log; prints its index and term once committed. Any "
            "node accepts it (followers forward to the leader). Retried on other nodes and "
            "after a failover with the same client id and seq, so it is applied once; if "
            'the last attempts may or may not have happened, it says "outcome unknown".'
        ),
    )
    p.add_argument("text")
    _add_cluster_option(p)
    p.set_defaults(handler=run_append)

    p = sub.add_parser(
        "log",
        help="print the cluster's committed log",
        description=(
            "Print the committed log (index, term, entry). Linearizable by default: served by "
            "the leader after confirming leadership."
        ),
    )
    p.add_argument("--from", dest="start", type=int, default=None, help="first index")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--consistency", choices=("linearizable", "local"), default="linearizable")
    p.add_argument("--json", action="store_true", help="print the JSON document")
    _add_cluster_option(p)
    p.set_defaults(handler=run_log)
    log_sub = p.add_subparsers(dest="log_command", metavar="{trim}")
    t = log_sub.add_parser(
        "trim",
        help="retention: drop old entries",
        description=(
            "Drop entries from the head of the replicated log (retention), on every node: "
            "before an index, all but the last N, or those older than a duration. The "
            "leader turns the last two into an index of its log when it takes the request. "
            "Reads before the first index kept then answer 410 (gone), naming it."
        ),
    )
    which = t.add_mutually_exclusive_group(required=True)
    which.add_argument("--before", type=int, metavar="INDEX", help="drop entries before INDEX")
    which.add_argument("--keep-last", type=int, metavar="N", help="keep only the last N entries")
    which.add_argument(
        "--older-than",
        type=_duration,
        metavar="DURATION",
        help="drop entries appended longer ago than DURATION (e.g. 90s, 30m, 12h, 7d)",
    )
    _add_cluster_option(t)
    t.set_defaults(handler=run_trim)

    p = sub.add_parser(
        "status",
        help="a table of every node's state",
        description=("Ask every endpoint for its status and print one row per node."),
    )
    p.add_argument("--json", action="store_true")
    _add_cluster_option(p, retries=False)
    p.set_defaults(handler=run_status)


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 90s, 30m, 12h, 7d: {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError("a duration is not negative")
    return value


def run_trim(args: argparse.Namespace) -> int:
    from raftlog.client import BadRequest, ClientError  # noqa: PLC0415

    for name in ("before", "keep_last"):
        value = getattr(args, name)
        if value is not None and value < 0:
            print(f"raftlog log trim: --{name.replace('_', '-')} must be >= 0", file=sys.stderr)
            return 2

    async def trim() -> int:
        async with _client(args) as client:
            return await client.trim(
                before=args.before, keep_last=args.keep_last, older_than_s=args.older_than
            )

    try:
        first = asyncio.run(trim())
    except BadRequest as exc:
        print(f"trim failed: HTTP {exc.status}: {exc.message}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"trim failed: {exc}", file=sys.stderr)
        return 1
    print(f"the log now starts at index {first}")
    return 0


def _client(args: argparse.Namespace, *, retry_for: float | None = None) -> AsyncClient:
    from raftlog.client import AsyncClient  # noqa: PLC0415 (keep `raftlog --help` quick)

    if retry_for is None:
        retry_for = args.retry_for
        if retry_for is None:
            retry_for = min(args.timeout, DEFAULT_RETRY_FOR)
    try:
        context, token = client_security(args)
    except ValueError as exc:
        raise SystemExit(f"raftlog: {exc}") from None
    return AsyncClient(
        _cluster(args), timeout=args.timeout, retry_for=retry_for, ssl=context, token=token
    )


def _no_answer(exc: Unavailable) -> SystemExit:
    return SystemExit("no node could answer:\n  " + "\n  ".join(exc.errors or [exc.message]))


def run_append(args: argparse.Namespace) -> int:
    """Append through the client: every attempt carries the same (client_id, seq), so the
    client may retry after a timeout or a failover (on any node) and the entry is still
    applied once; if it gives up after an attempt that may have happened, it says so."""
    from raftlog.client import (  # noqa: PLC0415
        AppendResult,
        BadRequest,
        NoLeader,
        OutcomeUnknown,
        StaleRequest,
    )

    async def append() -> AppendResult:
        async with _client(args) as client:
            return await client.append(args.text)

    try:
        result = asyncio.run(append())
    except OutcomeUnknown as exc:
        print(
            f"outcome unknown: {exc.reason}; the entry may or may not have been appended",
            file=sys.stderr,
        )
        return 1
    except NoLeader as exc:
        raise _no_answer(exc) from None
    except (BadRequest, StaleRequest) as exc:
        print(f"append failed: HTTP {exc.status}: {exc.doc}", file=sys.stderr)
        return 1
    print(f"committed at index {result.index}, term {result.term}")
    return 0


def _render(data: bytes) -> str:
    """An entry's data as the server renders it: text, or base64 if it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode()


def run_log(args: argparse.Namespace) -> int:
    from raftlog.client import BadRequest, EntriesTrimmed, ReadResult, Unavailable  # noqa: PLC0415

    async def read() -> ReadResult:
        async with _client(args) as client:
            if args.start is None:  # from the first entry the log keeps
                return await client.read(limit=args.limit, consistency=args.consistency)
            return await client.read(
                start=args.start, limit=args.limit, consistency=args.consistency
            )

    try:
        result = asyncio.run(read())
    except EntriesTrimmed as exc:
        print(
            f"entries before {exc.first_index} were trimmed (retention): use --from "
            f"{exc.first_index}",
            file=sys.stderr,
        )
        return 1
    except BadRequest as exc:
        print(f"read failed: HTTP {exc.status}: {exc.doc}", file=sys.stderr)
        return 1
    except Unavailable as exc:
        raise _no_answer(exc) from None
    if args.json:
        print(json.dumps(result.raw, indent=2))
        return 0
    for entry in result.entries:
        print(f"{entry.index:>6}  t{entry.term:<4} {_render(entry.data)}")
    print(f"({len(result.entries)} entries; commit {result.commit}, served by node {result.node})")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from raftlog.client import BadRequest, ClientError  # noqa: PLC0415

    async def ask_all() -> list[dict[str, Any]]:
        async with _client(args, retry_for=0.0) as client:

            async def ask(base: str) -> dict[str, Any]:
                try:
                    status = await client.status(base)
                except BadRequest as exc:
                    return {"endpoint": base, "error": exc.doc}
                except ClientError as exc:
                    return {"endpoint": base, "error": str(exc)}
                return {"endpoint": base, **status.raw}

            return list(await asyncio.gather(*(ask(base) for base in _cluster(args))))

    rows = asyncio.run(ask_all())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ["ENDPOINT", "ID", "STATE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAST INDEX"]
    table = [headers]
    for r in rows:
        if "error" in r:
            table.append([r["endpoint"], "-", "unreachable", "-", "-", "-", "-", "-"])
        else:
            table.append(
                [
                    r["endpoint"],
                    str(r["id"]),
                    r["state"],
                    str(r["term"]),
                    str(r["leader"] or "-"),
                    str(r["commit"]),
                    str(r["applied"]),
                    str(r["last_index"]),
                ]
            )
    widths = [max(len(row[c]) for row in table) for c in range(len(headers))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(line)
    for n, row in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print(line)
    print(line)
    return 0 if all("error" not in r for r in rows) else 1
