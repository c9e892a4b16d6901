"""Appends in-process: a program embedding the library proposes commands directly, no
HTTP in between. Three processes on loopback; the one that becomes leader generates the
load (a window of commands in flight) and reports appends/s.

- raftlog: :class:`raftlog.Node` with a minimal state machine, durable (SQLite, fsync
  before a node acknowledges), ``python -m raftlog.bench.library``;
- PySyncObj (0.3.17): a ``@replicated`` append, in memory (its default) or with its
  journal file (which it does not fsync); run from a virtualenv of its own, since it is no
  dependency of raftlog (:func:`pysyncobj_python` makes it on first use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from raftlog.local.cluster import free_ports

PYSYNCOBJ_VERSION = "0.3.17"
PYSYNCOBJ_ENV = "RAFTLOG_BENCH_PYSYNCOBJ_PYTHON"
"""A Python that has pysyncobj (default: a virtualenv made under ~/.cache/raftlog)."""


@dataclass
class LibraryResult:
    system: str
    appends: int
    seconds: float
    window: int
    durable: bool

    @property
    def rate(self) -> float:
        return self.appends / self.seconds if self.seconds else 0.0


# -- raftlog's side (runs in the node processes) -----------------------------------------


class _Count:
    """The smallest state machine: it counts what it applies."""

    def __init__(self) -> None:
        self.count = 0

    def apply(self, index: int, term: int, data: bytes) -> None:
        self.count += 1

    def snapshot(self) -> Any:
        import raftlog  # noqa: PLC0415

        return raftlog.BytesSnapshot(str(self.count).encode())

    def restore(self, source: BinaryIO) -> None:
        self.count = int(source.read() or b"0")


async def _raftlog_node(args: argparse.Namespace) -> None:
    import raftlog  # noqa: PLC0415

    ports = [int(p) for p in args.ports.split(",")]
    config = raftlog.NodeConfig(
        id=args.id,
        members={i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)},
        data_dir=Path(args.dir) / f"node-{args.id}",
        state_machine=_Count(),
        election_timeout_s=(0.3, 0.6),
        heartbeat_s=0.05,
    )
    payload = b"x" * 100
    async with raftlog.Node(config) as node:
        deadline = time.monotonic() + 30
        while node.leader is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if not node.is_leader:
            await asyncio.Event().wait()  # a follower: until the bench stops it
        count = 0
        until = time.perf_counter() + args.seconds

        async def proposer() -> None:
            nonlocal count
            while time.perf_counter() < until:
                await node.apply(payload, timeout=30)
                if time.perf_counter() <= until:  # completed within the measured time
                    count += 1

        started = time.perf_counter()
        await asyncio.gather(*(proposer() for _ in range(args.window)))
        elapsed = until - started
        print(json.dumps({"leader": args.id, "appends": count, "seconds": elapsed}), flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m raftlog.bench.library")
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--ports", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--event-loop", default="auto")
    args = p.parse_args(argv)
    from raftlog.server.eventloop import loop_factory  # noqa: PLC0415

    with asyncio.Runner(loop_factory=loop_factory(args.event_loop)) as runner:
        runner.run(_raftlog_node(args))


# -- PySyncObj's side (a script run by the Python that has it) -----------------------------

_PYSYNCOBJ_SCRIPT = r"""
import json, sys, threading, time
from pysyncobj import SyncObj, SyncObjConf, replicated, FAIL_REASON

me, ports, seconds, window, journal = (
    int(sys.argv[1]), sys.argv[2].split(","), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
)

class Appends(SyncObj):
    def __init__(self, addr, partners, conf):
        super().__init__(addr, partners, conf)
        self.count = 0

    @replicated
    def append(self, value):
        self.count += 1

addrs = ["127.0.0.1:" + p for p in ports]
conf = SyncObjConf(journalFile=journal or None, raftMinTimeout=0.3, raftMaxTimeout=0.6,
                   appendEntriesPeriod=0.05)
node = Appends(addrs[me - 1], [a for i, a in enumerate(addrs) if i != me - 1], conf)
deadline = time.time() + 30
while node._getLeader() is None and time.time() < deadline:
    time.sleep(0.01)
if not node._isLeader():
    while True:
        time.sleep(3600)
room = threading.Semaphore(window)
done = [0]
lock = threading.Lock()

def finished(result, error):
    if error == FAIL_REASON.SUCCESS:
        with lock:
            done[0] += 1
    room.release()

payload = "x" * 100
started = time.perf_counter()
until = started + seconds
while time.perf_counter() < until:
    if room.acquire(timeout=0.1):
        node.append(payload, callback=finished)
with lock:
    count = done[0]
elapsed = time.perf_counter() - started
print(json.dumps({"leader": me, "appends": count, "seconds": elapsed}), flush=True)
while True:
    time.sleep(3600)
"""


def pysyncobj_python(install: bool = True) -> str:
    """A Python interpreter with pysyncobj: $RAFTLOG_BENCH_PYSYNCOBJ_PYTHON, or a
    virtualenv under ~/.cache/raftlog (made, and pysyncobj installed from PyPI, on first
    use when ``install``)."""
    given = os.environ.get(PYSYNCOBJ_ENV)
    if given:
        return given
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = cache / "raftlog" / f"pysyncobj-{PYSYNCOBJ_VERSION}"
    python = venv / "bin" / "python"
    if python.exists():
        return str(python)
    if not install:
        raise RuntimeError(f"no pysyncobj virtualenv at {venv}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"pysyncobj=={PYSYNCOBJ_VERSION}"],
        check=True,
    )
    return str(python)


async def _run_three(commands: list[list[str]], timeout: float) -> dict[str, Any]:
    """Start the three processes; the leader's JSON line is the result; stop them all."""
    procs = [
        await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        for cmd in commands
    ]

    async def line_of(proc: asyncio.subprocess.Process) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                await asyncio.Event().wait()  # exited without a result: not the leader
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if isinstance(doc, dict) and "appends" in doc:
                return doc

    waits = [asyncio.create_task(line_of(p)) for p in procs]
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise TimeoutError("no leader reported a result")
        return next(iter(done)).result()
    finally:
        for task in waits:
            task.cancel()
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            await proc.wait()


async def run_raftlog(seconds: float, window: int = 1000) -> LibraryResult:
    ports = ",".join(str(p) for p in free_ports(3))
    with tempfile.TemporaryDirectory(prefix="raftlog-bench-lib-") as tmp:
        commands = [
            [
                sys.executable,
                "-m",
                "raftlog.bench.library",
                "--id",
                str(i),
                "--ports",
                ports,
                "--dir",
                tmp,
                "--seconds",
                str(seconds),
                "--window",
                str(window),
            ]
            for i in (1, 2, 3)
        ]
        doc = await _run_three(commands, seconds + 60)
    return LibraryResult("raftlog", doc["appends"], doc["seconds"], window, durable=True)


async def run_pysyncobj(
    seconds: float, window: int = 50_000, *, journal: bool = False
) -> LibraryResult:
    python = await asyncio.to_thread(pysyncobj_python)
    ports = ",".join(str(p) for p in free_ports(3))
    with tempfile.TemporaryDirectory(prefix="raftlog-bench-pso-") as tmp:
        script = Path(tmp) / "pysyncobj_bench.py"
        script.write_text(_PYSYNCOBJ_SCRIPT)
        commands = [
            [
                python,
                str(script),
                str(i),
                ports,
                str(seconds),
                str(window),
                str(Path(tmp) / f"journal-{i}") if journal else "",
            ]
            for i in (1, 2, 3)
        ]
        doc = await _run_three(commands, seconds + 60)
    name = "pysyncobj (journal)" if journal else "pysyncobj"
    return LibraryResult(name, doc["appends"], doc["seconds"], window, durable=False)


if __name__ == "__main__":
    main()
