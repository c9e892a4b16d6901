"""`raftlog append`, `raftlog log`, `raftlog status`: talk to a running cluster."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from typing import Any

DEFAULT_CLUSTER = "127.0.0.1:1234,127.0.0.1:1235,127.0.0.1:1236"
ENV = "RAFTLOG_CLUSTER"


def _endpoints(text: str) -> list[str]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        out.append(item.rstrip("/") if item.startswith("http") else f"http://{item}")
    if not out:
        raise argparse.ArgumentTypeError("--cluster lists no endpoint")
    return out


def _add_cluster_option(p: argparse.ArgumentParser) -> None:
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


def _cluster(args: argparse.Namespace) -> list[str]:
    if args.cluster:
        return list(args.cluster)
    return _endpoints(os.environ.get(ENV, DEFAULT_CLUSTER))


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "append",
        help="append an entry to the cluster's log",
        description=(
            "Append TEXT to the replicated log; prints its index and term once committed. Any "
            "node accepts it (followers forward to the leader)."
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
    p.add_argument("--from", dest="start", type=int, default=1, help="first index")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--consistency", choices=("linearizable", "local"), default="linearizable")
    p.add_argument("--json", action="store_true", help="print the JSON document")
    _add_cluster_option(p)
    p.set_defaults(handler=run_log)

    p = sub.add_parser(
        "status",
        help="a table of every node's state",
        description=("Ask every endpoint for its status and print one row per node."),
    )
    p.add_argument("--json", action="store_true")
    _add_cluster_option(p)
    p.set_defaults(handler=run_status)


def _request(url: str, timeout: float, data: dict[str, Any] | None = None) -> tuple[int, Any]:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, {"error": exc.reason}


def _refused(exc: BaseException) -> bool:
    """Did the request fail before anything was sent (so that retrying is safe)?"""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, ConnectionRefusedError | socket.gaierror)


def _first_answer(
    args: argparse.Namespace, path: str, data: dict[str, Any] | None = None
) -> tuple[str, int, Any]:
    """Ask the endpoints in turn. A read moves on after any failure; a write moves on only
    when nothing was sent (refused) or the node answered 503 (it took nothing): after a
    timeout the write may have happened, and sending it again could apply it twice."""
    errors = []
    for base in _cluster(args):
        try:
            status, doc = _request(base + path, args.timeout, data)
        except (OSError, ValueError) as exc:
            errors.append(f"{base}: {exc}")
            if data is not None and not _refused(exc):
                raise SystemExit(
                    f"outcome unknown: {base} did not answer ({exc}); the entry may or may not "
                    "have been appended"
                ) from None
            continue
        if status == 503:
            errors.append(f"{base}: {doc.get('error') if isinstance(doc, dict) else doc}")
            continue
        return base, status, doc
    raise SystemExit("no node could answer:\n  " + "\n  ".join(errors))


def run_append(args: argparse.Namespace) -> int:
    _base, status, doc = _first_answer(args, "/v1/log", {"data": args.text})
    if status == 504:
        print(
            f"outcome unknown: {doc.get('error') if isinstance(doc, dict) else doc}",
            file=sys.stderr,
        )
        return 1
    if status != 200:
        print(f"append failed: HTTP {status}: {doc}", file=sys.stderr)
        return 1
    print(f"committed at index {doc['index']}, term {doc['term']}")
    return 0


def run_log(args: argparse.Namespace) -> int:
    path = f"/v1/log?from={args.start}&limit={args.limit}&consistency={args.consistency}"
    _base, status, doc = _first_answer(args, path)
    if status != 200:
        print(f"read failed: HTTP {status}: {doc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    for entry in doc["entries"]:
        print(f"{entry['index']:>6}  t{entry['term']:<4} {entry['data']}")
    print(f"({len(doc['entries'])} entries; commit {doc['commit']}, served by node {doc['node']})")
    return 0


def run_status(args: argparse.Namespace) -> int:
    rows = []
    for base in _cluster(args):
        try:
            status, doc = _request(base + "/v1/status", args.timeout)
        except (OSError, ValueError) as exc:
            rows.append({"endpoint": base, "error": str(exc)})
            continue
        rows.append(
            {"endpoint": base, **doc} if status == 200 else {"endpoint": base, "error": doc}
        )
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
