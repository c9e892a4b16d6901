"""The lab's docker-compose topology, built from Linux network namespaces (root only).

``up`` creates a bridge, one namespace per node (``node_1`` .. ``node_N``) and one for the
client (``client``), each with its own address on the bridge and its own
``/etc/netns/<name>/hosts`` so that the names resolve exactly as on compose's network
(``http://node_1:1234``), and starts ``raftlog node`` inside each node namespace, or,
with ``node_cmd``, any program (the lab's ``python3 node.py {id}``: a *foreign* node).
A foreign node runs in a directory given (or in its own copy of it, as each container
has its own file system), with its host name set to ``node_N`` in a UTS namespace of its
own (as compose's ``hostname:``), and its standard output and error go through
:mod:`raftlog.local.stamp` into its log, each line with the time it was printed. The
other operations do what the lab does to containers, to either kind of node:

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
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import xmlrpc.client
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from raftlog import wire
from raftlog.local import stamp
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
    starttime: int = 0
    """The process's start time (clock ticks since boot, /proc/PID/stat): with the pid,
    it names the process, whatever program it is (0: recorded by an older raftlog)."""
    stamper: int = 0
    """The pid of the process stamping a foreign node's output (0: none)."""
    stamper_starttime: int = 0


STAMPER_READY_S = 30.0
"""How long a foreign node's output stamper may take to start reading."""
COPY_IGNORE = (".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache")
"""Not copied into a foreign node's own copy of its directory."""
PLACEHOLDERS = ("{id}", "{name}", "{data}", "{python}")


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
    (the state file is root's, mode 600). Never given to a foreign node."""
    node_cmd: str = ""
    """A foreign node's command line (empty: ``raftlog node``); ``{id}``, ``{name}``,
    ``{data}`` and ``{python}`` are replaced in each of its words."""
    node_dir: str = ""
    """The directory a foreign node runs in (or is copied from, with ``node_copy``)."""
    node_copy: bool = False
    node_env: dict[str, str] = field(default_factory=dict)
    """Set in a foreign node's environment."""


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
        self._stampers: list[subprocess.Popen[bytes]] = []
        """Output stampers of foreign nodes started by this object (reaped by ``down``)."""

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
        node_cmd: str = "",
        node_dir: str | os.PathLike[str] | None = None,
        node_copy: bool = False,
        node_env: Mapping[str, str] | None = None,
        start: Sequence[int] | None = None,
    ) -> None:
        """Build the topology and start ``nodes`` nodes (only those in ``start``, if
        given; :meth:`start` starts the others): ``raftlog node`` (with ``fast`` and
        ``extra_args``), or the foreign command ``node_cmd`` run in ``node_dir``
        (default: the current directory; with ``node_copy``, each node in its own copy
        of it) with ``node_env`` added to its environment."""
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
        if node_cmd:
            check_node_cmd(node_cmd)
            directory = Path(node_dir or os.getcwd()).resolve()
            if not directory.is_dir():
                raise NetClusterError(f"{directory} is not a directory")
        elif node_dir is not None or node_copy or node_env:
            raise NetClusterError("a node directory, copy or environment needs a node command")
        self._refuse_existing(names)
        self.state = State(
            nodes=nodes,
            fast=fast,
            subnet=subnet,
            extra_args=list(extra_args),
            admin_token=secrets.token_urlsafe(18),
            node_cmd=node_cmd,
            node_dir=str(directory) if node_cmd else "",
            node_copy=node_copy,
            node_env=dict(node_env or {}),
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
            if node_cmd and node_copy:
                for i in range(1, nodes + 1):
                    shutil.copytree(
                        self.state.node_dir,
                        self._workdir(i),
                        symlinks=True,
                        ignore=shutil.ignore_patterns(*COPY_IGNORE),
                    )
            for i in range(1, nodes + 1) if start is None else start:
                self._start_node(self._check_node(i))
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
            if proc.pid and _is_ours(proc):
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
        # A stamper exits once the node's output is closed (it writes the last lines
        # first); one that has not after a while (something still holds the node's
        # output open) goes now.
        deadline = time.monotonic() + 3.0
        for name, proc in self.state.procs.items():
            while (
                proc.stamper
                and _same_process(proc.stamper, proc.stamper_starttime)
                and time.monotonic() < deadline
            ):
                for stamper in self._stampers:
                    stamper.poll()
                time.sleep(0.02)
            if proc.stamper and _same_process(proc.stamper, proc.stamper_starttime):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.stamper, signal.SIGKILL)
                removed.append(f"process {proc.stamper} ({name}'s output stamper)")
        for stamper in self._stampers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                stamper.wait(timeout=5)
        self._stampers = [p for p in self._stampers if p.returncode is None]
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

    def _workdir(self, i: int) -> Path:
        """Where foreign node ``i`` runs: its own copy, or the directory given."""
        if self.state.node_copy:
            return self.state_dir / "data" / node_name(i) / "app"
        return Path(self.state.node_dir)

    def _datadir(self, i: int) -> Path:
        """``{data}`` of foreign node ``i``: a directory of its own, kept across restarts
        until ``down``."""
        return self.state_dir / "data" / node_name(i) / "data"

    def _node_command(self, i: int) -> list[str]:
        if self.state.node_cmd:
            return self._foreign_command(i)
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

    def _foreign_command(self, i: int) -> list[str]:
        name = node_name(i)
        values = {
            "{id}": str(i),
            "{name}": name,
            "{data}": str(self._datadir(i)),
            "{python}": sys.executable,
        }
        argv = []
        for word in shlex.split(self.state.node_cmd):
            expanded = word
            for key, value in values.items():
                expanded = expanded.replace(key, value)
            argv.append(expanded)
        prefix = ["ip", "netns", "exec", name]
        if shutil.which("unshare"):
            # Its own UTS namespace with the host name compose would give it (written to
            # /proc: hostname(1) refuses the underscore); every step execs, so the pid
            # recorded is the node's own.
            script = 'printf %s "$0" > /proc/sys/kernel/hostname && exec "$@"'
            prefix += ["unshare", "--uts", "--", "sh", "-c", script, name]
        return prefix + argv

    def _start_node(self, i: int) -> None:
        with self._lock:
            if self.state.node_cmd:
                self._start_foreign_locked(i)
            else:
                self._start_node_locked(i)

    def _start_foreign_locked(self, i: int) -> None:
        name = node_name(i)
        proc = self.state.procs.get(name) or NodeProc()
        if proc.pid and _is_ours(proc):
            raise NetClusterError(f"{name} is already running (pid {proc.pid})")
        proc.command = self._node_command(i)
        proc.log = str(self.state_dir / f"{name}.log")
        self._datadir(i).mkdir(parents=True, exist_ok=True)
        workdir = self._workdir(i)
        if not workdir.is_dir():
            raise NetClusterError(f"{name}'s directory {workdir} is gone")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ready_r, ready_w = os.pipe()
        try:
            stamper = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    stamp.__file__,
                    proc.log,
                    "--stderr-fd",
                    str(err_r),
                    "--ready-fd",
                    str(ready_w),
                ],
                stdin=out_r,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,  # never the caller's: it outlives the caller
                pass_fds=(err_r, ready_w),
                start_new_session=True,
            )
            self._stampers.append(stamper)
            proc.stamper = stamper.pid
            proc.stamper_starttime = _starttime(stamper.pid)
            os.close(ready_w)
            ready_w = -1
            if not _ready(ready_r, STAMPER_READY_S):
                with contextlib.suppress(ProcessLookupError):
                    stamper.kill()
                raise NetClusterError(
                    f"{name}'s output stamper did not start within {STAMPER_READY_S:g} s"
                )
            try:
                child = subprocess.Popen(
                    proc.command,
                    stdin=subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=err_w,
                    cwd=workdir,
                    start_new_session=True,
                    env=self._foreign_env(),
                )
            except OSError as exc:
                raise NetClusterError(f"cannot start {name}: {exc}") from None
        finally:
            for fd in (out_r, out_w, err_r, err_w, ready_r, ready_w):
                if fd >= 0:
                    os.close(fd)
        proc.pid = child.pid
        proc.starttime = _starttime(child.pid)
        self._children[child.pid] = child
        proc.starts += 1
        self.state.procs[name] = proc
        self._save()
        self._stampers = [p for p in self._stampers if p.poll() is None]

    def _foreign_env(self) -> dict[str, str]:
        # No RAFTLOG_* variable (as for raftlog's nodes) and so never the nodes' admin token,
        # which is not for foreign code.
        env = node_environment(None)
        env.update(self.state.node_env)
        return env

    def _start_node_locked(self, i: int) -> None:
        name = node_name(i)
        proc = self.state.procs.get(name) or NodeProc()
        if proc.pid and _is_ours(proc):
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
        proc.starttime = _starttime(child.pid)
        self._children[child.pid] = child
        proc.starts += 1
        self.state.procs[name] = proc
        self._save()

    def _node_env(self) -> dict[str, str]:
        return node_environment(self.state.admin_token or None)

    def _pid(self, i: int) -> int:
        proc = self.state.procs.get(node_name(self._check_node(i)))
        if proc is None or not proc.pid or not self._lives(proc):
            raise NetClusterError(f"{node_name(i)} is not running")
        return proc.pid

    def running(self, i: int) -> bool:
        proc = self.state.procs.get(node_name(i))
        return bool(proc and proc.pid and self._lives(proc))

    def _lives(self, proc: NodeProc) -> bool:
        """Is the node process ``proc`` alive? A child of this object is asked directly:
        its /proc cmdline is empty or not yet the node's while it execs (``ip netns exec``
        then Python), which once made a node just started look dead."""
        child = self._children.get(proc.pid)
        if child is not None:
            return child.poll() is None
        return _is_ours(proc)

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

    def is_leader(self, i: int, timeout: float = 2.0) -> bool | None:
        """Node ``i``'s answer to the lab's ``is_leader()`` over XML-RPC (any node, raftlog's
        or foreign); None if it gives no yes or no."""
        transport = _TimeoutTransport(timeout)
        try:
            with xmlrpc.client.ServerProxy(self.url(i), transport=transport) as proxy:
                answer = proxy.is_leader()
        except (OSError, xmlrpc.client.Error, ValueError):
            return None
        return answer if isinstance(answer, bool) else None

    def lab_leader(self, timeout: float = 60.0) -> int:
        """Wait until exactly one running node answers ``is_leader()`` with True."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids = [i for i in range(1, self.state.nodes + 1) if self.running(i)]
            leaders = [i for i in ids if self.is_leader(i, timeout=1.0)]
            if len(leaders) == 1:
                return leaders[0]
            time.sleep(0.1)
        raise NetClusterError(f"no single leader within {timeout} s")

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


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host: Any) -> Any:
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        return conn


def _ready(fd: int, timeout: float) -> bool:
    """Did a byte come on ``fd`` within ``timeout`` seconds (not end of file)?"""
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable) and os.read(fd, 1) != b""


def check_node_cmd(command: str) -> list[str]:
    """The words of a foreign node's command; NetClusterError if it has none or does not
    split (an unclosed quote)."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise NetClusterError(f"cannot split the node command {command!r}: {exc}") from None
    if not words:
        raise NetClusterError("the node command is empty")
    return words


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


def _is_ours(proc: NodeProc) -> bool:
    """Is ``proc`` still running: the same pid started at the same time (any program),
    or, recorded by an older raftlog without a start time, a raftlog node?"""
    if proc.starttime:
        return _same_process(proc.pid, proc.starttime)
    return _is_our_node(proc.pid)


def _starttime(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return 0


def _same_process(pid: int, starttime: int) -> bool:
    return bool(pid) and _alive(pid) and _starttime(pid) == starttime


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _pids_in_namespace(name: str) -> list[int]:
    proc = _run("ip", "netns", "pids", name, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]
