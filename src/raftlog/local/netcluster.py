"""The lab's docker-compose topology, built from Linux network namespaces (root only).

``up`` creates a bridge, one namespace per node (``node_1`` .. ``node_N``) and one for the
client (``client``), each with its own address on the bridge and its own
``/etc/netns/<name>/hosts`` so that the names resolve exactly as on compose's network
(``http://node_1:1234``), and starts ``raftlog node`` inside each node namespace. The
other operations do what the lab does to containers:

=============  ========================================================================
``stop N``     SIGTERM, then SIGKILL after a grace period (``docker container stop``)
``start N``    start it again on its data (``docker container start``)
``kill N``     SIGKILL
``pause N``    SIGSTOP / SIGCONT (``docker pause`` / ``unpause``)
``isolate N``  its link to the bridge goes down
``cut A B``    blackhole routes in both namespaces: A and B no longer reach each other
``heal``       every link up, every cut removed
``exec NAME``  run any program inside a namespace (e.g. the lab's client in ``client``)
``down``       remove every namespace, link, hosts file and process it made
=============  ========================================================================

Everything created is recorded in a state file *before* it is created, so ``down`` cleans
up even after the harness crashed half-way.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from raftlog import wire
from raftlog.local.nodeenv import node_environment

S = TypeVar("S", bound=msgspec.Struct)

DEFAULT_STATE_DIR = Path("/run/raftlog-netcluster")
ADMIN_TOKEN_ENV = "RAFTLOG_ADMIN_TOKEN"
DEFAULT_SUBNET = "10.77.0.0/24"
BRIDGE = "rlbr0"
CLIENT_PORT = 1234
PEER_PORT = 4321
NETNS_ETC = Path("/etc/netns")


class NetClusterError(Exception):
    pass


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None if they can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetClusterError(
            f"`{' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def node_name(node: int) -> str:
    return f"node_{node}"


def parse_node(text: str) -> int:
    """``3`` or ``node_3`` -> 3."""
    raw = text.removeprefix("node_")
    try:
        value = int(raw)
    except ValueError:
        raise NetClusterError(f"expected a node number or node_N, not {text!r}") from None
    if value < 1:
        raise NetClusterError(f"node numbers start at 1, not {value}")
    return value


@dataclass
class NodeProc:
    pid: int = 0
    command: list[str] = field(default_factory=list)
    log: str = ""
    starts: int = 0


@dataclass
class State:
    nodes: int = 3
    fast: bool = False
    subnet: str = DEFAULT_SUBNET
    bridge: str = ""
    namespaces: list[str] = field(default_factory=list)
    hosts_dirs: list[str] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)
    procs: dict[str, NodeProc] = field(default_factory=dict)
    cuts: list[list[str]] = field(default_factory=list)
    isolated: list[str] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    admin_token: str = ""
    """Given to every node (RAFTLOG_ADMIN_TOKEN): its admin endpoints (step mode,
    partitions) answer requests with it. ``raftlog netcluster dashboard`` reads it here
    (the state file is root's, mode 600)."""


class NetCluster:
    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR) -> None:
        self.state_dir = state_dir
        self.state_file = state_dir / "state.json"
        self.state = self._load()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        """Node processes started by this object (so that it can reap them)."""
        self._lock = threading.RLock()
        """Control actions may run concurrently (``raftlog chaos`` restarts every node
        at once, each from a thread): one changes the state and saves it at a time."""

    # -- state -----------------------------------------------------------------------

    def _load(self) -> State:
        if not self.state_file.exists():
            return State()
        try:
            raw = json.loads(self.state_file.read_text())
            procs = {k: NodeProc(**v) for k, v in raw.pop("procs", {}).items()}
            return State(**raw, procs=procs)
        except (ValueError, TypeError) as exc:
            raise NetClusterError(f"cannot read {self.state_file}: {exc}") from None

    def reload(self) -> None:
        """Read the state file again (another process may have changed it)."""
        with self._lock:
            self.state = self._load()

    def _save(self) -> None:
        with self._lock:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            # A temporary file of this process's own: another process (an earlier
            # ``raftlog netcluster`` command still running) never renames it away.
            tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:  # it holds the nodes' admin token
                f.write(json.dumps(asdict(self.state), indent=2))
            os.replace(tmp, self.state_file)

    @property
    def exists(self) -> bool:
        return bool(self.state.namespaces or self.state.bridge or self.state.procs)

    def address(self, name: str) -> str:
        return self.state.addresses[name]

    def url(self, node: int) -> str:
        return f"http://{self.address(node_name(node))}:{CLIENT_PORT}"

    # -- up / down -------------------------------------------------------------------

    def up(
        self,
        nodes: int = 3,
        *,
        fast: bool = False,
        subnet: str = DEFAULT_SUBNET,
        extra_args: Sequence[str] = (),
    ) -> None:
        reason = unavailable_reason()
        if reason:
            raise NetClusterError(reason)
        if self.exists:
            raise NetClusterError(
                f"a netcluster is already up (state in {self.state_file}); "
                "run `raftlog netcluster down`"
            )
        net = ipaddress.ip_network(subnet)
        hosts = list(net.hosts())
        if nodes < 1 or 11 + nodes >= len(hosts):
            raise NetClusterError(f"{subnet} has room for 1..{len(hosts) - 12} nodes, not {nodes}")
        names = [node_name(i) for i in range(1, nodes + 1)] + ["client"]
        self._refuse_existing(names)
        self.state = State(
            nodes=nodes,
            fast=fast,
            subnet=subnet,
            extra_args=list(extra_args),
            admin_token=secrets.token_urlsafe(18),
        )
        self.state.addresses = {name: str(hosts[10 + i]) for i, name in enumerate(names)}
        bridge_ip = f"{hosts[0]}/{net.prefixlen}"
        try:
            self.state.bridge = BRIDGE
            self._save()
            _run("ip", "link", "add", BRIDGE, "type", "bridge")
            _run("ip", "addr", "add", bridge_ip, "dev", BRIDGE)
            _run("ip", "link", "set", BRIDGE, "up")
            hosts_text = self._hosts_file()
            for name in names:
                self.state.namespaces.append(name)
                self.state.hosts_dirs.append(str(NETNS_ETC / name))
                self._save()
                veth = _veth(name)
                _run("ip", "netns", "add", name)
                _run(
                    "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name
                )
                _run("ip", "link", "set", veth, "master", BRIDGE)
                _run("ip", "link", "set", veth, "up")
                _run(
                    "ip",
                    "-n",
                    name,
                    "addr",
                    "add",
                    f"{self.address(name)}/{net.prefixlen}",
                    "dev",
                    "eth0",
                )
                _run("ip", "-n", name, "link", "set", "eth0", "up")
                _run("ip", "-n", name, "link", "set", "lo", "up")
                etc = NETNS_ETC / name
                etc.mkdir(parents=True, exist_ok=True)
                (etc / "hosts").write_text(hosts_text)
            for i in range(1, nodes + 1):
                self._start_node(i)
        except BaseException:
            self.down()
            raise

    @staticmethod
    def _refuse_existing(names: list[str]) -> None:
        """Never take over (and later delete) what someone else made."""
        taken = set(_run("ip", "netns", "list", check=False).stdout.split())
        clashes = [f"namespace {n}" for n in names if n in taken]
        clashes += [f"{NETNS_ETC / n}" for n in names if (NETNS_ETC / n).exists()]
        if _run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
            clashes.append(f"link {BRIDGE}")
        clashes += [
            f"link {_veth(n)}"
            for n in names
            if _run("ip", "link", "show", _veth(n), check=False).returncode == 0
        ]
        if clashes:
            raise NetClusterError(
                "refusing to start: these exist already and are not ours: " + ", ".join(clashes)
            )

    def _hosts_file(self) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{ip}\t{name}" for name, ip in self.state.addresses.items()]
        return "\n".join(lines) + "\n"

    def down(self, *, keep_data: bool = False) -> list[str]:
        """Remove everything recorded: processes, namespaces, links, hosts files, and
        (unless ``keep_data``) the nodes' data and logs. Returns what was removed."""
        removed: list[str] = []
        for name, proc in list(self.state.procs.items()):
            if proc.pid and _is_our_node(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                self._reap(proc.pid)
                removed.append(f"process {proc.pid} ({name})")
        for name in self.state.namespaces:
            for pid in _pids_in_namespace(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    removed.append(f"process {pid} (in {name})")
            if _run("ip", "netns", "del", name, check=False).returncode == 0:
                removed.append(f"namespace {name}")
        for directory in self.state.hosts_dirs:  # recorded before they were made: ours
            path = Path(directory)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(f"hosts file {path}/hosts")
        if (
            self.state.bridge
            and _run("ip", "link", "del", self.state.bridge, check=False).returncode == 0
        ):
            removed.append(f"bridge {self.state.bridge}")
        for name in self.state.namespaces:  # host-side veths go with their namespace
            _run("ip", "link", "del", _veth(name), check=False)
        for pid in list(self._children):
            self._reap(pid)
        if not keep_data:
            data = self.state_dir / "data"
            if data.exists():
                shutil.rmtree(data, ignore_errors=True)
                removed.append(f"data {data}")
            for proc in self.state.procs.values():
                if proc.log and Path(proc.log).exists():
                    Path(proc.log).unlink()
                    removed.append(f"log {proc.log}")
        self.state = State()
        if self.state_file.exists():
            self.state_file.unlink()
        return removed

    # -- processes -------------------------------------------------------------------

    def _node_command(self, i: int) -> list[str]:
        peers = ",".join(f"{n}={node_name(n)}:{PEER_PORT}" for n in range(1, self.state.nodes + 1))
        args = [
            "ip",
            "netns",
            "exec",
            node_name(i),
            sys.executable,
            "-m",
            "raftlog",
            "node",
            "--id",
            str(i),
            "--peers",
            peers,
            "--data-dir",
            str(self.state_dir / "data" / node_name(i)),
            "--client-port",
            str(CLIENT_PORT),
            "--color",
            "never",
        ]
        if self.state.fast:
            args.append("--fast")
        return args + self.state.extra_args

    def _start_node(self, i: int) -> None:
        with self._lock:
            self._start_node_locked(i)

    def _start_node_locked(self, i: int) -> None:
        name = node_name(i)
        proc = self.state.procs.get(name) or NodeProc()
        if proc.pid and _is_our_node(proc.pid):
            raise NetClusterError(f"{name} is already running (pid {proc.pid})")
        proc.command = self._node_command(i)
        proc.log = str(self.state_dir / f"{name}.log")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(proc.log, "a") as out:
            child = subprocess.Popen(
                proc.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self._node_env(),
            )
        proc.pid = child.pid
        self._children[child.pid] = child
        proc.starts += 1
        self.state.procs[name] = proc
        self._save()

    def _node_env(self) -> dict[str, str]:
        return node_environment(self.state.admin_token or None)

    def _pid(self, i: int) -> int:
        proc = self.state.procs.get(node_name(self._check_node(i)))
        if proc is None or not proc.pid or not self._lives(proc.pid):
            raise NetClusterError(f"{node_name(i)} is not running")
        return proc.pid

    def running(self, i: int) -> bool:
        proc = self.state.procs.get(node_name(i))
        return bool(proc and proc.pid and self._lives(proc.pid))

    def _lives(self, pid: int) -> bool:
        """Is the node process ``pid`` alive? A child of this object is asked directly:
        its /proc cmdline is empty or not yet the node's while it execs (``ip netns exec``
        then Python), which once made a node just started look dead."""
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        return _is_our_node(pid)

    def start(self, i: int) -> None:
        self._check_node(i)
        self._start_node(i)

    def stop(self, i: int, grace_s: float = 10.0) -> int | None:
        pid = self._pid(i)
        os.kill(pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            code = self._reap(pid, wait=False)
            if not _alive(pid):
                return code
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return self._reap(pid)

    def kill(self, i: int) -> None:
        pid = self._pid(i)
        os.kill(pid, signal.SIGKILL)
        self._reap(pid)

    def pause(self, i: int) -> None:
        os.kill(self._pid(i), signal.SIGSTOP)

    def unpause(self, i: int) -> None:
        os.kill(self._pid(i), signal.SIGCONT)

    # -- the network -----------------------------------------------------------------

    # Each holds the lock throughout: the recorded cuts and the routes in force change
    # together, whichever threads cut and heal at once.

    def isolate(self, i: int) -> None:
        name = node_name(self._check_node(i))
        with self._lock:
            _run("ip", "link", "set", _veth(name), "down")
            if name not in self.state.isolated:
                self.state.isolated.append(name)
                self._save()

    def cut(self, a: int, b: int) -> None:
        na, nb = node_name(self._check_node(a)), node_name(self._check_node(b))
        if na == nb:
            raise NetClusterError("cut needs two different nodes")
        pair = sorted([na, nb])
        with self._lock:
            if pair in self.state.cuts:
                return
            self.state.cuts.append(pair)
            self._save()
            _run("ip", "-n", na, "route", "add", "blackhole", f"{self.address(nb)}/32")
            _run("ip", "-n", nb, "route", "add", "blackhole", f"{self.address(na)}/32")

    def heal(self) -> None:
        with self._lock:
            for na, nb in self.state.cuts:
                for here, there in ((na, nb), (nb, na)):
                    _run(
                        "ip",
                        "-n",
                        here,
                        "route",
                        "del",
                        "blackhole",
                        f"{self.address(there)}/32",
                        check=False,
                    )
            for name in self.state.isolated:
                _run("ip", "link", "set", _veth(name), "up", check=False)
            self.state.cuts = []
            self.state.isolated = []
            self._save()

    def exec(
        self, namespace: str, command: Sequence[str], **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        if namespace not in self.state.namespaces:
            raise NetClusterError(
                f"no namespace {namespace!r}; have {', '.join(self.state.namespaces)}"
            )
        check = bool(kwargs.pop("check", False))
        return subprocess.run(["ip", "netns", "exec", namespace, *command], check=check, **kwargs)

    # -- observation -----------------------------------------------------------------

    def _get(self, i: int, path: str, shape: type[S], timeout: float) -> S | None:
        """Node ``i``'s answer to ``GET path`` as the :mod:`raftlog.wire` Struct
        ``shape``; None if it does not answer, or answers something else."""
        try:
            with urllib.request.urlopen(self.url(i) + path, timeout=timeout) as resp:
                return msgspec.json.decode(resp.read(), type=shape)
        except (OSError, ValueError):  # unreachable, an HTTP error, not that shape
            return None

    def node_status(self, i: int, timeout: float = 2.0) -> wire.Status | None:
        return self._get(i, "/v1/status", wire.Status, timeout)

    def status(self, i: int, timeout: float = 2.0) -> dict[str, Any] | None:
        """Node ``i``'s ``GET /v1/status`` as JSON (None if it does not answer one)."""
        found = self.node_status(i, timeout)
        return None if found is None else msgspec.to_builtins(found)

    def log_entries(self, i: int, timeout: float = 5.0) -> list[str] | None:
        page = self._get(i, "/v1/log?consistency=local&limit=10000", wire.ReadAnswer, timeout)
        return None if page is None else [e.data for e in page.entries]

    def leader(self, timeout: float = 30.0, among: Sequence[int] | None = None) -> int:
        """Wait for one leader that a majority of the answering nodes agree on."""
        deadline = time.monotonic() + timeout
        ids = list(range(1, self.state.nodes + 1))
        while time.monotonic() < deadline:
            found = {i: self.node_status(i, timeout=1.0) for i in ids if self.running(i)}
            statuses = {i: s for i, s in found.items() if s is not None}
            leaders = [
                i
                for i, s in statuses.items()
                if s.state == "Leader" and (among is None or i in among)
            ]
            if len(leaders) == 1:
                lead = leaders[0]
                term = statuses[lead].term
                agree = sum(1 for s in statuses.values() if s.leader == lead and s.term == term)
                if agree * 2 > self.state.nodes:
                    return lead
            time.sleep(0.1)
        raise NetClusterError(f"no leader within {timeout} s")

    def _reap(self, pid: int, *, wait: bool = True) -> int | None:
        """The exit status of a node this object started; for one started by another
        process (an earlier ``raftlog netcluster`` command), wait for it to disappear."""
        child = self._children.get(pid)
        if child is not None:
            code = child.wait() if wait else child.poll()
            if code is not None:
                del self._children[pid]
            return code
        if wait:
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        return None

    def _check_node(self, i: int) -> int:
        if not 1 <= i <= self.state.nodes:
            raise NetClusterError(f"no node {i}: the netcluster has nodes 1..{self.state.nodes}")
        return i


def _veth(name: str) -> str:
    return f"rlv-{name}"[:15]


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_our_node(pid: int) -> bool:
    """Is ``pid`` still a raftlog node process (and not a recycled pid)?"""
    cmd = _cmdline(pid)
    return _alive(pid) and "raftlog" in cmd and "node" in cmd


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _pids_in_namespace(name: str) -> list[int]:
    proc = _run("ip", "netns", "pids", name, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]
