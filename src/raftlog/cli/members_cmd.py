"""`raftlog members list|add|promote|remove` and `raftlog leader transfer`: change a
running cluster's membership and move its leader (any node takes the request: followers
forward it to the leader)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from raftlog.cli.client_cmd import _add_cluster_option, _client, _no_answer, error_text


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "members",
        help="list or change the cluster's members",
        description=(
            "List the cluster's members (voters and learners, with their addresses and, "
            "from the leader, how far each trails), or change them one at a time: add a "
            "node as a learner (it gets the log but does not vote), promote a learner that "
            "has caught up to voter, remove a voter or a learner (the leader too: it hands "
            "over once the change commits). The leader refuses a change while another is "
            "in progress, before it has committed an entry of its term, for a learner that "
            "has not caught up, or one that would leave too few live voters; the reason is "
            "printed. A fresh node usually asks for itself with `raftlog node --join`."
        ),
    )
    members = p.add_subparsers(dest="members_command", metavar="{list,add,promote,remove}")
    listing = members.add_parser("list", help="a table of the members")
    listing.add_argument("--json", action="store_true", help="print the JSON, not a table")
    _add_cluster_option(listing)
    listing.set_defaults(handler=run_list)
    add = members.add_parser("add", help="add a node as a learner")
    add.add_argument("id", type=int, help="the new member's node id")
    add.add_argument("--peer", required=True, metavar="HOST:PORT", help="its peer address")
    add.add_argument("--client", default="", metavar="URL", help="its client URL")
    add.add_argument("--json", action="store_true", help="print the new membership as JSON")
    _add_cluster_option(add)
    add.set_defaults(handler=run_add)
    for name, help_text in (("promote", "make a learner a voter"), ("remove", "remove a member")):
        c = members.add_parser(name, help=help_text)
        c.add_argument("id", type=int, help="the member's node id")
        c.add_argument("--json", action="store_true", help="print the new membership as JSON")
        _add_cluster_option(c)
        c.set_defaults(handler=run_promote if name == "promote" else run_remove)
    p.set_defaults(handler=run_list, json=False, cluster=None, timeout=40.0, retry_for=None)

    p = sub.add_parser(
        "leader",
        help="move the leadership",
        description=(
            "`raftlog leader transfer [--to N]`: the leader brings node N (default: the "
            "most up-to-date voter) up to date and tells it to campaign at once; prints the "
            "new leader and how long the handover took."
        ),
    )
    leader = p.add_subparsers(dest="leader_command", metavar="{transfer}")
    t = leader.add_parser("transfer", help="hand leadership to another voter")
    t.add_argument(
        "--to",
        type=int,
        default=None,
        metavar="N",
        help="the voter to hand over to (default: the most up-to-date one)",
    )
    t.add_argument("--json", action="store_true", help="print the JSON answer")
    _add_cluster_option(t)
    t.set_defaults(handler=run_transfer)
    p.set_defaults(handler=_leader_usage)


def _leader_usage(_args: argparse.Namespace) -> int:
    print("usage: raftlog leader transfer [--to N]", file=sys.stderr)
    return 2


def _run(
    args: argparse.Namespace, call: Callable[[Any], Awaitable[dict[str, Any]]]
) -> dict[str, Any] | int:
    """Run one client call; print a refusal or a failure and return an exit code instead
    of the answer."""
    from raftlog.client import BadRequest, ChangeRefused, ClientError, Unavailable  # noqa: PLC0415

    async def go() -> dict[str, Any]:
        async with _client(args) as client:
            return await call(client)

    try:
        return asyncio.run(go())
    except ChangeRefused as exc:
        print(exc.message, file=sys.stderr)
        return 1
    except BadRequest as exc:
        print(f"failed: {error_text(exc)}", file=sys.stderr)
        return 1
    except Unavailable as exc:
        raise _no_answer(exc) from None
    except ClientError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1


def _print_members(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    rows = [["ID", "ROLE", "PEER", "CLIENT", "BEHIND"]]
    leader = doc.get("leader")
    for m in doc.get("members", []):
        role = m["role"] + (" (leader)" if m["id"] == leader else "")
        behind = "-" if m.get("caught_up") is None else str(m["caught_up"])
        rows.append([str(m["id"]), role, m.get("peer") or "-", m.get("client") or "-", behind])
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if doc.get("pending"):
        print(f"(a change is in progress: index {doc.get('conf_index')} is not committed)")


def run_list(args: argparse.Namespace) -> int:
    result = _run(args, lambda c: c.membership())
    if isinstance(result, int):
        return result
    _print_members(result, args.json)
    return 0


def _changed(args: argparse.Namespace, result: dict[str, Any] | int, what: str) -> int:
    if isinstance(result, int):
        return result
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{what} (committed at index {result['index']})")
        _print_members({"members": result["members"]}, False)
    return 0


def run_add(args: argparse.Namespace) -> int:
    result = _run(args, lambda c: c.add_member(args.id, args.peer, args.client))
    return _changed(args, result, f"node {args.id} added as a learner")


def run_promote(args: argparse.Namespace) -> int:
    result = _run(args, lambda c: c.promote_member(args.id))
    return _changed(args, result, f"node {args.id} is a voter")


def run_remove(args: argparse.Namespace) -> int:
    result = _run(args, lambda c: c.remove_member(args.id))
    return _changed(args, result, f"node {args.id} removed")


def run_transfer(args: argparse.Namespace) -> int:
    result = _run(args, lambda c: c.transfer_leader(args.to))
    if isinstance(result, int):
        return result
    if args.json:
        print(json.dumps(result))
    else:
        print(f"node {result['leader']} leads now ({result['took_ms']:.1f} ms)")
    return 0
