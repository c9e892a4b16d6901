"""`raftlog netcluster`: the lab's compose topology in network namespaces (root, Linux)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Build the lab's docker-compose topology from Linux network namespaces: a bridge, the
namespaces node_1..node_N and client with their own addresses, /etc/netns/NAME/hosts so
the names resolve as on compose's network (http://node_1:1234), and `raftlog node`
inside each node namespace. Then stop/start/kill/pause/unpause nodes, isolate one, cut a
link, heal, run any program "as the client", and take it all down. Needs root and iproute2.

  raftlog netcluster up --nodes 3 --fast
  raftlog netcluster exec client -- python examples/lab_client.py
  raftlog netcluster stop node_3 ; raftlog netcluster start node_3
  raftlog netcluster down
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "netcluster",
        help="the lab's compose topology in network namespaces (root)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the state, logs and data live (default /run/raftlog-netcluster)",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="create the namespaces and start the nodes")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--fast", action="store_true", help="150-300 ms election timeouts")
    up.add_argument("--subnet", default="10.77.0.0/24")
    up.add_argument("--no-wait", action="store_true", help="do not wait for a leader")
    for name, text in (
        ("stop", "SIGTERM, then SIGKILL after --grace seconds (docker container stop)"),
        ("start", "start a stopped node again on its data (docker container start)"),
        ("kill", "SIGKILL"),
        ("pause", "SIGSTOP (docker pause)"),
        ("unpause", "SIGCONT (docker unpause)"),
        ("isolate", "take the node's link to the bridge down"),
        ("logs", "print the node's event log"),
    ):
        a = actions.add_parser(name, help=text)
        a.add_argument("node", help="N or node_N")
        if name == "stop":
            a.add_argument("--grace", type=float, default=10.0)
    cut = actions.add_parser("cut", help="cut the link between two nodes (both directions)")
    cut.add_argument("a")
    cut.add_argument("b")
    actions.add_parser("heal", help="undo every isolate and cut")
    actions.add_parser("status", help="a line per node")
    ex = actions.add_parser("exec", help="run a command inside a namespace")
    ex.add_argument("namespace", help="client or node_N")
    ex.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    down = actions.add_parser(
        "down", help="remove every namespace, link, hosts file and process, and the data"
    )
    down.add_argument("--keep-data", action="store_true", help="keep the nodes' data and logs")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from raftlog.local.netcluster import (  # noqa: PLC0415
        DEFAULT_STATE_DIR,
        NetCluster,
        NetClusterError,
        parse_node,
        unavailable_reason,
    )

    reason = unavailable_reason()
    if reason:
        print(f"raftlog netcluster: {reason}", file=sys.stderr)
        return 2
    try:
        nc = NetCluster(args.state_dir or DEFAULT_STATE_DIR)
        action = args.action
        if action == "up":
            nc.up(args.nodes, fast=args.fast, subnet=args.subnet)
            for name, ip in nc.state.addresses.items():
                print(f"{name:8} {ip}")
            if not args.no_wait:
                print(f"leader: node_{nc.leader(timeout=60)}")
            print(
                f"state, logs and data in {nc.state_dir}; `raftlog netcluster down` removes it all"
            )
        elif action == "down":
            for item in nc.down(keep_data=args.keep_data):
                print(f"removed {item}")
        elif not nc.exists:
            print(
                f"raftlog netcluster: no netcluster is up (no state in {nc.state_dir})",
                file=sys.stderr,
            )
            return 1
        elif action == "status":
            for i in range(1, nc.state.nodes + 1):
                s = nc.status(i)
                shown = (
                    f"{s['state']:<10} term {s['term']:<4} leader {s['leader']} "
                    f"commit {s['commit']}"
                    if s
                    else ("running, not answering" if nc.running(i) else "stopped")
                )
                print(f"node_{i}  {nc.address(f'node_{i}'):<12} {shown}")
        elif action == "exec":
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            if not command:
                print("raftlog netcluster exec: no command", file=sys.stderr)
                return 2
            return nc.exec(args.namespace, command).returncode
        elif action == "cut":
            nc.cut(parse_node(args.a), parse_node(args.b))
        elif action == "heal":
            nc.heal()
        else:
            node = parse_node(args.node)
            if action == "stop":
                code = nc.stop(node, args.grace)
                print(
                    f"node_{node} stopped" + (f" (exit status {code})" if code is not None else "")
                )
            elif action == "logs":
                proc = nc.state.procs.get(f"node_{node}")
                if proc and proc.log and Path(proc.log).exists():
                    sys.stdout.write(Path(proc.log).read_text())
            else:
                getattr(nc, action)(node)
    except NetClusterError as exc:
        print(f"raftlog netcluster: {exc}", file=sys.stderr)
        return 1
    return 0
