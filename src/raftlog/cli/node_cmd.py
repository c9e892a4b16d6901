"""`raftlog node` (one node) and `raftlog cluster` (a local cluster of child processes)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from raftlog.cli.security import (
    TOKEN_ENV,
    add_certs_parser,
    add_node_options,
    node_security,
    read_token,
)
from raftlog.core.config import KNOWN_BUGS
from raftlog.server.eventlog import LEVELS, want_color
from raftlog.server.eventloop import CHOICES, loop_factory
from raftlog.server.node import KEEP_ENTRIES, SERVER_BUGS, SNAPSHOT_BYTES, SNAPSHOT_ENTRIES
from raftlog.server.timing import timing_for

ALL_BUGS = KNOWN_BUGS | SERVER_BUGS

NODE_HELP = """\
Run one raftlog node. The founding members each run one, with the same --peers list:

  raftlog node --id 1 --peers 1=node_1:4321,2=node_2:4321,3=node_3:4321 --data-dir /data

A node added later joins a running cluster (as a learner, promoted to voter once it has
caught up, unless --learner):

  raftlog node --id 4 --join http://node_1:1234 --advertise node_4 --data-dir /data

Clients talk to --client-port (1234, the lab's): XML-RPC (is_leader, leader_receive_log)
and HTTP/JSON (/v1/log, /v1/status, /livez, /readyz). Timings default to the lab's
(election timeout 6-10 s, heartbeat 2 s); --fast is the production preset (150-300 ms,
50 ms). The event log goes to standard output. SIGTERM or Ctrl-C stops the node; a leader
hands leadership over first. Exit status: 0 stopped, 1 crashed, 2 bad arguments, 3 data
directory refused, storage failed or join refused, 4 a port could not be bound, 5 removed
from the cluster, 130 interrupted."""


def _timing_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fast",
        action="store_true",
        help="150-300 ms election timeout, 50 ms heartbeat",
    )
    p.add_argument(
        "--election-timeout", metavar="MIN-MAX", help="election timeout in seconds, e.g. 0.15-0.3"
    )
    p.add_argument("--heartbeat", type=float, metavar="SECONDS", help="heartbeat interval")
    p.add_argument(
        "--event-loop",
        choices=CHOICES,
        default=None,
        help="asyncio event loop: uvloop is faster (pip install 'raftlog[fast]'); auto takes "
        "it when installed (default auto)",
    )
    p.add_argument(
        "--cors-origins",
        action="append",
        metavar="ORIGIN[,ORIGIN...]",
        help="web pages from these origins may read the nodes' answers (CORS), besides the "
        "cluster's own nodes' pages; * for any",
    )


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "node",
        help="run one node",
        description=NODE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ident = p.add_mutually_exclusive_group(required=True)
    ident.add_argument("--id", type=int, help="this node's id (a positive integer)")
    ident.add_argument(
        "--id-from-ordinal",
        action="store_true",
        help="take the id from the hostname's trailing ordinal plus one (a StatefulSet's "
        "pod raftlog-0 is node 1)",
    )
    p.add_argument(
        "--peers",
        help="every member as ID=HOST:PEER_PORT[:CLIENT_PORT], this node included (for the "
        "first nodes of a cluster; a node added later uses --join)",
    )
    p.add_argument(
        "--join",
        metavar="URL[,URL...]",
        help="join a running cluster: ask it (any member's client URL) to add this node as "
        "a learner, then serve; it is promoted to voter once it has caught up, unless "
        "--learner. On a data directory that already joined, it just starts. `--join "
        "peers` with --peers: a node listed there starts as a founding member, any other "
        "joins the cluster they form (one command line for every replica of a "
        "StatefulSet).",
    )
    p.add_argument("--learner", action="store_true", help="with --join: stay a learner")
    p.add_argument(
        "--advertise",
        metavar="HOST",
        help="with --join: the host name or address the others reach this node at "
        "(default: this machine's host name)",
    )
    p.add_argument("--data-dir", type=Path, required=True, help="where this node keeps its state")
    p.add_argument("--client-port", type=int, default=1234, help="client port (default 1234)")
    p.add_argument("--peer-port", type=int, help="peer port to listen on (default: from --peers)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--cluster-id", default="raftlog", help="peers and data must match it")
    _timing_args(p)
    p.add_argument(
        "--snapshot-entries",
        type=int,
        default=SNAPSHOT_ENTRIES,
        metavar="N",
        help=f"take a snapshot and compact the log every N entries (default {SNAPSHOT_ENTRIES})",
    )
    p.add_argument(
        "--snapshot-bytes",
        type=int,
        default=SNAPSHOT_BYTES,
        metavar="B",
        help=f"... or every B bytes of entries (default {SNAPSHOT_BYTES})",
    )
    p.add_argument(
        "--keep-entries",
        type=int,
        default=KEEP_ENTRIES,
        metavar="N",
        help="entries kept in the log after a snapshot, for followers a little behind "
        f"(default {KEEP_ENTRIES})",
    )
    p.add_argument(
        "--log-level",
        choices=sorted(LEVELS),
        default="info",
        help="info hides heartbeats; debug shows them",
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="the event log: lines for people (default) or one JSON object per line",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the node's lines (auto: on a terminal, unless NO_COLOR is set)",
    )
    p.add_argument(
        "--first-election-at",
        type=float,
        metavar="UNIX_TIME",
        help="campaign at this wall-clock time if no leader was heard by then "
        "(pins the first election timeout, to stage a split vote)",
    )
    p.add_argument(
        "--inject-bug",
        action="append",
        default=[],
        choices=sorted(ALL_BUGS),
        help=argparse.SUPPRESS,
    )
    add_node_options(p)
    p.add_argument("--stop-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
    p.add_argument("--enable-fault-injection", action="store_true", help=argparse.SUPPRESS)
    # Test-only, with --enable-fault-injection: hold messages from these peers from the
    # start until POST /v1/admin/partition releases them (the split-vote demo's staging).
    p.add_argument("--hold-from", default="", metavar="IDS", help=argparse.SUPPRESS)
    p.set_defaults(handler=run_node_command)

    p = sub.add_parser(
        "cluster",
        help="run a local cluster (child processes) with interleaved event logs",
        description=(
            "Start N nodes on this machine as child processes, with their event logs "
            "interleaved and coloured by node. Client ports are BASE, BASE+1, ...; peer "
            "ports BASE+1000, ... Ctrl-C stops them all (leaders hand over first); a node "
            "that exits meanwhile is reported and the others go on. Data "
            "goes to a temporary directory removed at exit unless --keep-data; a --data-dir "
            "you name is always kept. The live dashboard is on every node's client port "
            "(http://127.0.0.1:BASE/); the URL printed at start (and written by --url-file) "
            "also carries this supervisor's control URL and token, which enable the page's "
            "stop/kill/pause/isolate/cut and step-mode controls. Set RAFTLOG_CONTROL_TOKEN to "
            "choose the token."
        ),
    )
    p.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    p.add_argument(
        "--base-port",
        type=int,
        default=1234,
        metavar="BASE",
        help="client ports BASE, BASE+1, ...; peer ports BASE+1000, ... (default 1234)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="keep the nodes' data here, in node-N subdirectories (kept at exit; default: "
        "a temporary directory)",
    )
    p.add_argument(
        "--keep-data",
        action="store_true",
        help="do not remove the temporary data directory at exit",
    )
    _timing_args(p)
    p.add_argument(
        "--log-level",
        choices=sorted(LEVELS),
        default="info",
        help="the nodes' event logs: info hides heartbeats; debug shows them",
    )
    p.add_argument(
        "--lab-client",
        action="store_true",
        help="once a leader is up, append SET 5 and ADD 1 as the lab's client does, "
        "and show every node's log",
    )
    p.add_argument(
        "--control-port",
        type=int,
        metavar="PORT",
        help="the supervisor's control API (the dashboard's controls) listens here on "
        "127.0.0.1 (default: BASE+2000; 0: any free port)",
    )
    p.add_argument(
        "--open",
        action="store_true",
        help="open the dashboard in a web browser once the nodes are up (the URL, token "
        "included, is on the browser's command line, which others on this machine can see)",
    )
    p.add_argument(
        "--url-file",
        type=Path,
        metavar="FILE",
        help="write the dashboard's URL (with the control token) to FILE once the nodes are up",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="TLS on both planes: make a throwaway CA and node certificates (raftlog certs) "
        "in DATA_DIR/tls; clients then need --cacert DATA_DIR/tls/ca.pem",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help=f"writes need this token (default ${TOKEN_ENV}; none: anyone may write)",
    )
    p.set_defaults(handler=run_cluster_command)
    add_certs_parser(sub)


def id_from_ordinal(hostname: str) -> int:
    """``raftlog-2`` -> 3: a StatefulSet pod's ordinal, plus one."""
    match = re.search(r"-(\d+)$", hostname.split(".", maxsplit=1)[0])
    if match is None:
        raise ValueError(f"hostname {hostname!r} does not end in -ORDINAL")
    return int(match.group(1)) + 1


def run_node_command(args: argparse.Namespace) -> int:
    from raftlog.cli.serve import Printing, run_node  # noqa: PLC0415
    from raftlog.node import NodeConfig, parse_peers  # noqa: PLC0415

    if args.join == "peers":
        if not args.peers:
            print("raftlog node: --join peers needs --peers", file=sys.stderr)
            return 2
        try:
            founding = parse_peers(args.peers, args.client_port)
        except ValueError as exc:
            print(f"raftlog node: {exc}", file=sys.stderr)
            return 2
        if args.id_from_ordinal:
            args.id = id_from_ordinal(socket.gethostname())
            args.id_from_ordinal = False
        if args.id in founding:
            args.join = None
        else:
            scheme = "https" if args.cert_file is not None else "http"
            args.join = ",".join(f"{scheme}://{a.host}:{a.client_port}" for a in founding.values())
            args.peers = None
    if bool(args.peers) == bool(args.join):
        print(
            "raftlog node: give --peers (a new cluster) or --join (an existing one)",
            file=sys.stderr,
        )
        return 2
    try:
        if args.id_from_ordinal:
            args.id = id_from_ordinal(socket.gethostname())
        timing = timing_for(
            fast=args.fast, election=args.election_timeout, heartbeat=args.heartbeat
        )
        hold_from = frozenset(int(n) for n in args.hold_from.split(",") if n.strip())
        security = node_security(args)
    except ValueError as exc:
        print(f"raftlog node: {exc}", file=sys.stderr)
        return 2
    if hold_from and not args.enable_fault_injection:
        print("raftlog node: --hold-from needs --enable-fault-injection", file=sys.stderr)
        return 2
    for name in ("snapshot_entries", "snapshot_bytes"):
        if getattr(args, name) < 1:
            print(f"raftlog node: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    if args.keep_entries < 0:
        print("raftlog node: --keep-entries must be at least 0", file=sys.stderr)
        return 2
    if args.id is None or args.id <= 0:
        print("raftlog node: --id must be a positive integer", file=sys.stderr)
        return 2
    try:
        joined_at = 0
        if args.join:
            addresses, urls, joined_at = _join(args, security)
        else:
            peers = parse_peers(args.peers, args.client_port)
            if args.id not in peers:
                print(f"raftlog node: node {args.id} is not in --peers", file=sys.stderr)
                return 2
            ports = [args.client_port, args.peer_port or 1, *(a.peer_port for a in peers.values())]
            bad = [port for port in ports if not 1 <= port <= 65535]
            if bad:
                print(f"raftlog node: ports must be 1-65535, not {bad[0]}", file=sys.stderr)
                return 2
            addresses = {n: f"{a.host}:{a.peer_port}" for n, a in peers.items()}
            scheme = "https" if args.cert_file is not None else "http"
            urls = {n: f"{scheme}://{a.host}:{a.client_port}" for n, a in peers.items()}
    except ValueError as exc:
        print(f"raftlog node: {exc}", file=sys.stderr)
        return 2
    except JoinRefused as exc:
        print(f"raftlog node: cannot join: {exc}", file=sys.stderr)
        return 3
    config = NodeConfig(
        id=args.id,
        join=bool(args.join),
        joined_at=joined_at,
        members=addresses,
        data_dir=args.data_dir,
        election_timeout_s=(timing.election_min_s, timing.election_max_s),
        heartbeat_s=timing.heartbeat_s,
        tick_s=timing.tick_s,
        cluster_id=args.cluster_id,
        listen_host=args.host,
        peer_port=args.peer_port,
        client_port=args.client_port,
        client_urls=urls,
        snapshot_entries=args.snapshot_entries,
        snapshot_bytes=args.snapshot_bytes,
        keep_entries=args.keep_entries,
        first_campaign_at=args.first_election_at,
        fault_injection=args.enable_fault_injection,
        admin_token=os.environ.get("RAFTLOG_ADMIN_TOKEN") or None,
        cors_origins=_origins(args.cors_origins),
        hold_from=hold_from,
        bugs=frozenset(args.inject_bug),
        **security,  # type: ignore[arg-type]
    )
    promote = None
    if args.join and not args.learner:
        promote = [u.strip() for u in args.join.split(",") if u.strip()]
    try:
        event_loop = args.event_loop or "auto"
        loop_factory(event_loop)
    except ValueError as exc:
        print(f"raftlog node: {exc}", file=sys.stderr)
        return 2
    return run_node(
        config,
        stop_with_parent=args.stop_with_parent,
        promote_via=promote,
        event_loop=event_loop,
        printing=Printing(LEVELS[args.log_level], args.log_format, args.color),
    )


def _origins(values: list[str] | None) -> tuple[str, ...]:
    return tuple(o.strip() for v in values or () for o in v.split(",") if o.strip())


class JoinRefused(Exception):
    pass


JOINED_AT = "joined-at"
"""In a joined node's data directory: the index of the configuration that added it."""


def _join(
    args: argparse.Namespace, security: dict[str, Any]
) -> tuple[dict[int, str], dict[int, str], int]:
    """Ask the cluster to add this node as a learner, on a fresh data directory only: a
    node that has data joined before, and starts on what it holds (or refuses to, if it
    was removed since). Returns every member's peer address and client URL, as far as the
    cluster answers, this node's included, and the index of the configuration that added
    it (kept in the data directory)."""
    from raftlog.client import (  # noqa: PLC0415
        AsyncClient,
        ChangeRefused,
        ClientError,
        OutcomeUnknown,
    )

    advertise = args.advertise or socket.gethostname()
    peer_port = args.peer_port or 4321
    me_peer = f"{advertise}:{peer_port}"
    scheme = "https" if args.cert_file is not None else "http"
    me_client = f"{scheme}://{advertise}:{args.client_port}"
    fresh = not (args.data_dir / "raftlog.db").exists()
    seeds = [u.strip() for u in args.join.split(",") if u.strip()]
    marker = args.data_dir / JOINED_AT

    def me_in(doc: dict[str, Any]) -> dict[str, Any] | None:
        return next((m for m in doc.get("members", []) if m["id"] == args.id), None)

    async def ask() -> dict[str, Any]:
        async with AsyncClient(
            seeds,
            timeout=10,
            retry_for=60 if fresh else 10,
            ssl=security.get("forward_tls"),
            token=security.get("token"),
        ) as client:
            doc = await client.membership()
            if not fresh:  # never ask again: a removed node must not be added back unseen
                return doc
            member = me_in(doc)
            if member is not None:
                if member["role"] == "learner" and member.get("peer") == me_peer:
                    # Our own earlier attempt (its answer was lost, or we stopped before
                    # starting): a learner holds no vote, so starting it empty is safe.
                    doc.setdefault("index", doc.get("conf_index", 0))
                    return doc
                raise JoinRefused(
                    f"node {args.id} is already a member ({member['role']}, at "
                    f"{member.get('peer')}), but its data directory {args.data_dir} is empty "
                    f"(a voter must never lose its state): remove it first (raftlog members "
                    f"remove {args.id}), then join"
                )
            try:  # passing refusals (a change in progress...) are retried for retry_for
                return await client.add_member(args.id, me_peer, me_client)
            except ChangeRefused as exc:
                raise JoinRefused(exc.message) from None
            except OutcomeUnknown:  # did our add happen? The membership says.
                doc = await client.membership()
                member = me_in(doc)
                if member is None or member.get("peer") != me_peer:
                    raise
                doc.setdefault("index", doc.get("conf_index", 0))
                return doc

    try:
        doc = asyncio.run(ask())
    except ClientError as exc:
        if fresh:
            raise JoinRefused(str(exc)) from None
        doc = {"members": []}  # the addresses kept in its own configuration will do
    joined_at = 0
    if fresh:
        joined_at = int(doc.get("index") or 0)
        args.data_dir.mkdir(parents=True, exist_ok=True)
        _write_durably(marker, f"{joined_at}\n")
    elif marker.exists():
        try:
            joined_at = int(marker.read_text().strip() or 0)
        except ValueError:
            raise JoinRefused(f"{marker} is corrupt: {marker.read_text()[:40]!r}") from None
    addresses: dict[int, str] = {}
    urls: dict[int, str] = {}
    for m in doc["members"]:
        if m.get("peer"):
            addresses[int(m["id"])] = m["peer"]
        if m.get("client"):
            urls[int(m["id"])] = m["client"]
    addresses[args.id] = me_peer
    urls[args.id] = me_client
    return addresses, urls, joined_at


def _write_durably(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_cluster_command(args: argparse.Namespace) -> int:
    if args.nodes < 1:
        print("raftlog cluster: --nodes must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(_cluster(args))


async def _cluster(args: argparse.Namespace) -> int:
    from raftlog.local.cluster import LocalCluster  # noqa: PLC0415
    from raftlog.local.supervisor import (  # noqa: PLC0415
        Supervisor,
        close_quietly,
        new_token,
        write_private,
    )

    extra: list[str] = []
    if args.election_timeout:
        extra += ["--election-timeout", args.election_timeout]
    if args.heartbeat:
        extra += ["--heartbeat", str(args.heartbeat)]
    if args.event_loop:
        extra += ["--event-loop", args.event_loop]
    for origin in _origins(args.cors_origins):
        extra += ["--cors-origins", origin]
    color = want_color(sys.stdout)
    token = os.environ.get("RAFTLOG_CONTROL_TOKEN") or new_token()
    try:
        write_token = read_token(args.token_file)
    except ValueError as exc:
        print(f"raftlog cluster: {exc}", file=sys.stderr)
        return 2
    cluster = LocalCluster(
        args.nodes,
        fast=args.fast,
        base_port=args.base_port,
        data_dir=args.data_dir,
        keep_data=args.keep_data,
        node_args=extra,
        echo=lambda line: print(line, flush=True),
        log_level=args.log_level,
        color=color,
        admin_token=token,
        token=write_token,
    )
    if args.tls:
        from raftlog.local.certs import CertFiles, CertsError, make_certs  # noqa: PLC0415

        tls_dir = cluster.data_dir / "tls"
        try:
            if (tls_dir / "ca.pem").exists():  # a kept data directory, started again
                certs = CertFiles(tls_dir)
                missing = [n for n in cluster.nodes if not certs.node_cert(n).exists()]
                if missing:
                    raise CertsError(f"{tls_dir} has no certificate for nodes {missing}")
            else:
                certs = make_certs(tls_dir, args.nodes)
        except CertsError as exc:
            print(f"raftlog cluster: {exc}", file=sys.stderr)
            await cluster.close()
            return 2
        cluster.use_tls(certs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    endpoints = ",".join(f"127.0.0.1:{n.client_port}" for n in cluster.nodes.values())
    print(f"raftlog cluster: {args.nodes} nodes, data in {cluster.data_dir}", flush=True)
    print(f"  clients: {endpoints}   (export RAFTLOG_CLUSTER={endpoints})", flush=True)
    if cluster.tls is not None:
        ca = cluster.tls.ca
        print(f"  TLS on both planes: clients need --cacert {ca} (https://)", flush=True)
        print(f"  try: raftlog append --cacert {ca} 'SET 5'   (Ctrl-C stops)", flush=True)
    else:
        print(
            "  try: raftlog append 'SET 5'; raftlog log; raftlog status   (Ctrl-C stops)",
            flush=True,
        )
    if write_token:
        print("  writes need the token (RAFTLOG_TOKEN or --token-file)", flush=True)
    code = 0
    supervisor: Supervisor | None = None
    try:
        try:
            await cluster.start()
        except (RuntimeError, TimeoutError) as exc:
            print(f"raftlog cluster: a node failed to start: {exc}", flush=True)
            return 1
        control_port = args.control_port
        if control_port is None:
            control_port = args.base_port + 2000 if args.base_port else 0
        supervisor = Supervisor(cluster, token, port=control_port)
        try:
            await supervisor.start()
        except OSError as exc:
            print(f"raftlog cluster: the control API cannot listen: {exc}", flush=True)
            return 1
        dashboard = f"{cluster.url(1)}/#control={supervisor.url}&token={token}"
        print(f"  dashboard: {dashboard}", flush=True)
        if args.url_file:
            write_private(args.url_file, dashboard + "\n")  # it holds the token
        if args.open:
            import webbrowser  # noqa: PLC0415

            if not webbrowser.open(dashboard):
                print("raftlog cluster: no web browser to open; use the URL above", flush=True)
        if args.lab_client:
            await _lab_client(cluster, stop)
        watcher = asyncio.create_task(_say_exits(cluster))
        try:
            await stop.wait()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    finally:
        await close_quietly(supervisor)
        print("raftlog cluster: stopping all nodes", flush=True)
        await cluster.close()
        if args.keep_data or args.data_dir:
            print(f"raftlog cluster: data kept in {cluster.data_dir}", flush=True)
    return code


async def _say_exits(cluster: object, every_s: float = 0.5) -> None:
    """Say when a node stops or comes back. The others go on: a node stopped from the
    dashboard (or one that crashed) can be started again from there."""
    from raftlog.local.cluster import LocalCluster  # noqa: PLC0415

    assert isinstance(cluster, LocalCluster)
    running = {n.id: n.running for n in (await cluster.state()).nodes}
    while True:
        await asyncio.sleep(every_s)
        for node in (await cluster.state()).nodes:
            was = running.get(node.id)
            if was and not node.running:
                code = cluster.nodes[node.id].process
                rc = code.returncode if code is not None else None
                print(
                    f"raftlog cluster: node {node.id} exited (code {rc}); the others go on "
                    "(start it again from the dashboard; Ctrl-C stops all)",
                    flush=True,
                )
            elif was is False and node.running:
                print(f"raftlog cluster: node {node.id} runs again", flush=True)
            running[node.id] = node.running


async def _lab_client(cluster: object, stop: asyncio.Event) -> None:
    """What the lab's client does: find the leader with is_leader(), send two commands."""
    from raftlog.local.cluster import LocalCluster  # noqa: PLC0415

    assert isinstance(cluster, LocalCluster)
    say = cluster.echo_line
    say("lab client: looking for the leader with is_leader() on every node ...")
    leader = None
    while leader is None and not stop.is_set():
        for i in cluster.nodes:
            with contextlib.suppress(OSError, ConnectionError):
                if await cluster.call_xmlrpc(i, "is_leader"):
                    leader = i
                    break
        if leader is None:
            await asyncio.sleep(0.5)
    if leader is None:
        return
    say(f"lab client: node {leader} is the leader")
    for command in ("SET 5", "ADD 1"):
        ok = await cluster.call_xmlrpc(leader, "leader_receive_log", command)
        say(f"lab client: leader_receive_log({command!r}) -> {ok}")
    from raftlog.local.cluster import wait_for  # noqa: PLC0415

    for i in cluster.nodes:
        # A follower learns of the commit with the leader's next message: wait for it.
        async def has_both(i: int = i) -> list[str] | None:
            entries = await cluster.log(i)
            return entries if entries and entries[-2:] == ["SET 5", "ADD 1"] else None

        try:
            entries = await wait_for(has_both, 30.0, "not yet")
        except TimeoutError:
            entries = await cluster.log(i)
        say(f"lab client: node {i} committed log: {entries}")
