"""`raftlog netcluster`: the lab's compose topology in network namespaces (root, Linux)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

DESCRIPTION = """\
Build the lab's docker-compose topology from Linux network namespaces: a bridge, the
namespaces node_1..node_N and client with their own addresses, /etc/netns/NAME/hosts so
the names resolve as on compose's network (http://node_1:1234), and `raftlog node`
inside each node namespace (or, with --node-cmd, any program: the lab's node.py, with
host name node_N and every output line stamped with its time). Then stop/start/kill/
pause/unpause nodes, isolate one, cut a link, heal, run any program "as the client", and
take it all down. Needs root and iproute2.

  raftlog netcluster up --nodes 3 --fast
  raftlog netcluster up --node-cmd 'python3 node.py {id}' --node-dir lab/ --copy
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
    up.add_argument("--nodes", type=int, default=3, help="nodes node_1..node_N (default 3)")
    up.add_argument("--fast", action="store_true", help="150-300 ms election timeouts")
    up.add_argument(
        "--subnet",
        default="10.77.0.0/24",
        help="the bridge's network: the host is its first address, node_N the (10+N)th "
        "(default 10.77.0.0/24)",
    )
    up.add_argument("--no-wait", action="store_true", help="do not wait for a leader")
    up.add_argument(
        "--node-cmd",
        metavar="CMD",
        help="run CMD in each node namespace instead of raftlog's node; {id}, {name}, {data} "
        "and {python} are replaced (the node's number, node_N, a directory of its own, this "
        "Python)",
    )
    up.add_argument(
        "--node-dir",
        type=Path,
        metavar="DIR",
        help="the directory --node-cmd runs in (default: the current one)",
    )
    up.add_argument(
        "--copy",
        action="store_true",
        help="run each node in its own copy of --node-dir (as each container has its own files)",
    )
    up.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set in --node-cmd's environment (repeatable), e.g. LAB_TIME_SCALE=0.1",
    )
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
            a.add_argument(
                "--grace",
                type=float,
                default=10.0,
                help="seconds between SIGTERM and SIGKILL (default 10)",
            )
    cut = actions.add_parser("cut", help="cut the link between two nodes (both directions)")
    cut.add_argument("a", help="one node: N or node_N")
    cut.add_argument("b", help="the other node")
    actions.add_parser("heal", help="undo every isolate and cut")
    actions.add_parser("status", help="a line per node")
    ex = actions.add_parser("exec", help="run a command inside a namespace")
    ex.add_argument("namespace", help="client or node_N")
    ex.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    dash = actions.add_parser(
        "dashboard",
        help="serve the dashboard's controls for the running netcluster (until Ctrl-C)",
        description=(
            "Serve the supervisor's control API for the netcluster that `up` made, on the "
            "host's bridge address, and print the dashboard's URL (node_1's client port, "
            "with the control URL and the nodes' admin token in its fragment). The page's "
            "stop/kill/pause/isolate/cut and step-mode buttons then act on the namespaces "
            "and the nodes. Runs until Ctrl-C; the cluster stays up."
        ),
    )
    dash.add_argument(
        "--control-port",
        type=int,
        default=2234,
        metavar="PORT",
        help="the control API's port on the bridge address (default 2234; 0: any free one)",
    )
    dash.add_argument("--url-file", type=Path, metavar="FILE", help="write the URL to FILE")
    dash.add_argument(
        "--open",
        action="store_true",
        help="open it in a web browser (the URL, token included, is on the browser's "
        "command line, which others on this machine can see)",
    )
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
            env = {}
            for item in args.env:
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise NetClusterError(f"--env takes KEY=VALUE, not {item!r}")
                env[key] = value
            nc.up(
                args.nodes,
                fast=args.fast,
                subnet=args.subnet,
                node_cmd=args.node_cmd or "",
                node_dir=args.node_dir,
                node_copy=args.copy,
                node_env=env,
            )
            for name, ip in nc.state.addresses.items():
                print(f"{name:8} {ip}")
            if not args.no_wait:
                lead = nc.lab_leader(timeout=60) if args.node_cmd else nc.leader(timeout=60)
                print(f"leader: node_{lead}")
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
        elif action == "status" and nc.state.node_cmd:
            for i in range(1, nc.state.nodes + 1):
                answer = nc.is_leader(i) if nc.running(i) else None
                shown = (
                    "stopped"
                    if not nc.running(i)
                    else {True: "leader", False: "not leader", None: "running, not answering"}[
                        answer
                    ]
                )
                print(f"node_{i}  {nc.address(f'node_{i}'):<12} {shown}")
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
        elif action == "dashboard":
            return asyncio.run(_dashboard(nc.state_dir, args))
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


async def _dashboard(state_dir: Path, args: argparse.Namespace) -> int:
    """The supervisor's control API over the running netcluster, until Ctrl-C."""
    import ipaddress  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from raftlog.local.control import ControlError  # noqa: PLC0415
    from raftlog.local.netns_cluster import NetnsCluster  # noqa: PLC0415
    from raftlog.local.supervisor import Supervisor, new_token, write_private  # noqa: PLC0415

    try:
        cluster = NetnsCluster.attach(state_dir)
    except ControlError as exc:
        print(f"raftlog netcluster dashboard: {exc}", file=sys.stderr)
        return 1
    token = cluster.admin_token
    if token is None:
        print(
            "raftlog netcluster dashboard: these nodes have no admin token (started by an "
            "older raftlog): step mode will be refused; `down` and `up` again to have it",
            file=sys.stderr,
        )
        token = new_token()
    # On the bridge: a page served by node_1 (a private address) may call it, where
    # chromium refuses calls from such a page to loopback.
    bridge = str(next(ipaddress.ip_network(cluster.nc.state.subnet).hosts()))
    supervisor = Supervisor(cluster, token, host=bridge, port=args.control_port)
    try:
        await supervisor.start()
    except OSError as exc:
        print(f"raftlog netcluster dashboard: cannot listen on {bridge}: {exc}", file=sys.stderr)
        return 1
    # The nodes' own client URLs name them by hostname (node_2), which only the
    # namespaces resolve: the page gets their addresses.
    nodes = ",".join(cluster.url(i) for i in cluster.node_ids())
    url = f"{cluster.url(1)}/?nodes={nodes}#control={supervisor.url}&token={token}"
    print(f"dashboard: {url}", flush=True)
    print("(Ctrl-C stops serving the controls; the cluster stays up)", flush=True)
    if args.url_file:
        write_private(args.url_file, url + "\n")  # it holds the token
    if args.open:
        import webbrowser  # noqa: PLC0415

        webbrowser.open(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await supervisor.close()
        await cluster.close()
    return 0
