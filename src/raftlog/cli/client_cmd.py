"""`raftlog append`, `raftlog log`, `raftlog status`: talk to a running cluster."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from raftlog.cli.security import add_client_options, client_security

if TYPE_CHECKING:
    from raftlog.client import AsyncClient, ClientError, ReadResult, Unavailable

DEFAULT_CLUSTER = "127.0.0.1:1234,127.0.0.1:1235,127.0.0.1:1236"
ENV = "RAFTLOG_CLUSTER"
DEFAULT_PAGE = 1000
CONSISTENCY = ("linearizable", "lease", "local")
DEFAULT_RETRY_FOR = 20.0
"""Seconds an append or a read is retried by default: a failover with the lab's timings
(election timeout 6-10 s) fits, and a command against a stopped cluster still ends."""


def _endpoints(text: str) -> list[str]:
    from raftlog.client.aio import normalize_endpoint  # noqa: PLC0415

    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.append(normalize_endpoint(item))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
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
    if args.cluster:
        given = list(args.cluster)
    else:
        try:
            given = _endpoints(os.environ.get(ENV, DEFAULT_CLUSTER))
        except argparse.ArgumentTypeError as exc:
            raise SystemExit(f"${ENV}: {exc}") from None
    # With TLS options the endpoints are https:// (a bare host:port became http://).
    if any(getattr(args, name, None) is not None for name in ("cacert", "cert", "key")):
        return [f"https://{e[7:]}" if e.startswith("http://") else e for e in given]
    return given


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
    p.add_argument("text", help="the entry (e.g. 'SET 5')")
    _add_cluster_option(p)
    p.set_defaults(handler=run_append)

    p = sub.add_parser(
        "log",
        help="print the cluster's committed log",
        description=(
            "Print the committed log (index, term, entry), page after page, from --from (or "
            "the first entry kept) to the end, or --limit entries. Linearizable by default: "
            "each page is served by the leader after it confirms its leadership."
        ),
    )
    p.add_argument(
        "--from",
        dest="start",
        type=int,
        default=None,
        metavar="INDEX",
        help="first index (default: the first entry the log keeps)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="print at most N entries, and say where to go on if more remain (default: "
        "every entry)",
    )
    p.add_argument(
        "--page",
        type=int,
        default=DEFAULT_PAGE,
        metavar="N",
        help=f"entries asked for per request, following the server's `next` from page to "
        f"page (default {DEFAULT_PAGE}; a server answers at most 10,000)",
    )
    p.add_argument(
        "--consistency",
        choices=CONSISTENCY,
        default="linearizable",
        help="linearizable: the leader confirms it still leads (a round trip to a majority) "
        "before each page; lease: the leader trusts its lease, no round trip (relies on "
        "bounded clock drift); local: whichever node answers first, from what it has "
        "applied (may be stale)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: the last page's answer with every entry read; "
        "`next` is where to go on (null: the end of the log)",
    )
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
    p.add_argument(
        "--json",
        action="store_true",
        help="print every endpoint's status document (or its error) as JSON",
    )
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
    from raftlog.client import ClientError  # noqa: PLC0415

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
    except ClientError as exc:
        print(f"trim failed: {error_text(exc)}", file=sys.stderr)
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


def error_text(exc: ClientError) -> str:
    """How every client command says why the cluster refused or failed it: the server's
    message, then the HTTP status and the error code programs match on (``exc.doc`` is
    the whole JSON answer, never printed as a Python dict)."""
    from raftlog.client import BadRequest, StaleRequest  # noqa: PLC0415

    if isinstance(exc, (BadRequest, StaleRequest)):
        doc = exc.doc if isinstance(exc.doc, dict) else {}
        code = doc.get("code")
        return f"{exc.message} (HTTP {exc.status}{f', {code}' if code else ''})"
    return str(exc)


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
        print(f"append failed: {error_text(exc)}", file=sys.stderr)
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
    from raftlog.client import ClientError, EntriesTrimmed, Unavailable  # noqa: PLC0415

    for name, least in (("limit", 0), ("page", 1)):
        value = getattr(args, name)
        if value is not None and value < least:
            print(f"raftlog log: --{name} must be at least {least}", file=sys.stderr)
            return 2
    pages: list[ReadResult] = []

    def show(page: ReadResult) -> None:
        pages.append(page)
        if not args.json:
            for entry in page.entries:
                print(f"{entry.index:>6}  t{entry.term:<4} {_render(entry.data)}")

    try:
        more = asyncio.run(_read_pages(args, show))
    except EntriesTrimmed as exc:
        print(
            f"entries before {exc.first_index} were trimmed (retention): use --from "
            f"{exc.first_index}",
            file=sys.stderr,
        )
        return 1
    except Unavailable as exc:
        raise _no_answer(exc) from None
    except ClientError as exc:
        print(f"read failed: {error_text(exc)}", file=sys.stderr)
        return 1
    last = pages[-1]
    count = sum(len(page.entries) for page in pages)
    if args.json:
        doc = dict(last.raw)
        doc["entries"] = [e for page in pages for e in page.raw.get("entries", [])]
        doc["next"] = more
        print(json.dumps(doc, indent=2))
        return 0
    cut = f", stopped at --limit {args.limit}: more from index {more} (--from {more})"
    print(
        f"({count} entries{cut if more is not None else ''}; commit {last.commit}, served by "
        f"node {last.node})"
    )
    return 0


async def _read_pages(args: argparse.Namespace, show: Callable[[ReadResult], None]) -> int | None:
    """Read page after page (following ``next``) until the end of the log or ``--limit``
    entries; hand each page to ``show``. Returns where the log goes on when the limit cut
    it short, else None."""
    from raftlog.client import ClientError  # noqa: PLC0415

    start: int | None = args.start
    shown = 0
    async with _client(args) as client:
        while True:
            want = args.page if args.limit is None else min(args.page, args.limit - shown)
            page = await client.read(start=start, limit=want, consistency=args.consistency)
            show(page)
            shown += len(page.entries)
            if page.next is None:
                return None
            if args.limit is not None and shown >= args.limit:
                return page.next
            if not page.entries or (start is not None and page.next <= start):
                raise ClientError(f"the server's next ({page.next}) does not move on")
            start = page.next


def run_status(args: argparse.Namespace) -> int:
    from raftlog.client import ClientError  # noqa: PLC0415

    async def ask_all() -> list[dict[str, Any]]:
        async with _client(args, retry_for=0.0) as client:

            async def ask(base: str) -> dict[str, Any]:
                try:
                    status = await client.status(base)
                except ClientError as exc:
                    return {"endpoint": base, "error": error_text(exc)}
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
    for r in rows:  # why each unreachable node did not answer
        if "error" in r:
            why = str(r["error"])
            print(why if why.startswith(r["endpoint"]) else f"{r['endpoint']}: {why}")
    return 0 if all("error" not in r for r in rows) else 1
