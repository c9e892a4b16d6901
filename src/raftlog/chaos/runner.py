"""``raftlog chaos``: attack a real cluster while clients work, then prove from the
recorded history that nothing acknowledged was lost and every answer was linearizable.

A run: start N node processes on loopback (fast timings, test-only fault injection on);
C clients append unique values (with a client id and sequence number, so that retries are
applied once) and read at the run's read level (``linearizable``: ReadIndex; ``lease``:
the leader's lease; ``local``: the node's own applied log, no barrier), each recording
every operation as invoke and ok / fail / info with monotonic times; a nemesis injects
faults on a schedule (kill -9 and restart, SIGSTOP/SIGCONT of any node or of the leader,
network partitions of several shapes, restart of every node, membership changes: a fresh
node joins, a member (the leader too) is removed);
every node's status is sampled throughout. At the end every fault is healed, clients
finish, and the checks run:

- no two leaders in one term (from the nodes' event logs and the samples);
- the nodes' committed logs are prefixes of one another;
- every acknowledged append is in the final log, at its acknowledged index, once;
- the history is linearizable (:func:`raftlog.check.logcheck.check_log_history`); local
  reads, which may be stale, are left out of it and checked against the staleness they
  report instead (:func:`raftlog.check.localreads.check_local_reads`);
- the cluster recovered (a leader, a fresh append, every pending operation done) within
  10 s of the heal.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from raftlog import wire
from raftlog.check.localreads import check_local_reads
from raftlog.check.logcheck import LogOp, check_log_history
from raftlog.local.cluster import FAULT_INJECTION_FLAG, LocalCluster
from raftlog.local.clusterbase import ClusterBase, wait_for
from raftlog.local.netns_cluster import NetnsCluster

NEMESES = (
    "kill",
    "pause",
    "pause-leader",
    "pause-leader-acks",
    "partition",
    "restart-all",
    "membership",
)
READ_LEVELS = ("linearizable", "lease", "local")
READ_LIMIT = 200
"""Records a client read asks for (from 20 below the last applied index it saw)."""
MIN_VOTERS, MAX_VOTERS = 3, 5
PARTITION_SHAPES = ("halves", "isolate-leader", "one-link", "bridge")
RECOVERY_S = 10.0
_CLIENT_VALUE = re.compile(r"c\d+-\d+")
_LEADER_LINE = re.compile(r"node (\d+) \[Leader t(\d+)\] Received \d+ votes")
_encode = msgspec.json.Encoder().encode
_JSON_BODY = {"Content-Type": "application/json"}


def _error_of(raw: bytes) -> wire.Error | None:
    """An error answer of a node (None if it is not one: not JSON, no code)."""
    try:
        return msgspec.json.decode(raw, type=wire.Error)
    except msgspec.DecodeError:
        return None


def _hint(error: wire.Error | None) -> int | None:
    """The leader an error answer names, if any."""
    return error.leader if error is not None and isinstance(error.leader, int) else None


@dataclass
class ChaosOptions:
    nodes: int = 3
    time_s: float = 60.0
    clients: int = 8
    nemesis: tuple[str, ...] = ("kill", "pause", "partition")
    seed: int | None = None
    out: Path | None = None
    inject_bugs: tuple[str, ...] = ()
    fault_every_s: tuple[float, float] = (0.5, 2.0)
    fault_length_s: tuple[float, float] = (0.5, 3.0)
    read_fraction: float = 0.3
    partition_shapes: tuple[str, ...] = PARTITION_SHAPES
    netns: bool = False
    """Run the nodes in network namespaces (root) and cut links in the network."""
    """Which partitions the nemesis draws from (see PARTITION_SHAPES)."""
    request_timeout_s: float = 1.0
    reads: str = "linearizable"
    """The clients' read level, one of READ_LEVELS."""
    min_staged: int = 0
    """The nemesis goes on past ``time_s`` until this many faults staged the read they are
    for (pause-leader, pause-leader-acks; ``staged`` in their records), up to
    ``max_time_s``: a loaded machine makes each fault slower, not the test weaker."""
    min_faults: int = 0
    """Likewise, until this many faults were injected (of any kind): a test that needs
    several of them gets them on a loaded machine too, up to ``max_time_s``."""
    max_time_s: float = 0.0
    """With ``min_staged`` or ``min_faults``: how long the nemesis may go on in all (at
    least ``time_s``)."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    problems: list[str] = field(default_factory=list)
    """Every problem found (the detail names the first few); not in :meth:`as_dict`."""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class ChaosResult:
    ok: bool
    checks: list[Check]
    summary: dict[str, Any]
    ops: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)


class _Recorder:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.ops: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self._ids = 0

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 4)

    def next_id(self) -> int:
        self._ids += 1
        return self._ids


class Chaos:
    def __init__(self, options: ChaosOptions, *, echo: Callable[[str], None] | None = None) -> None:
        self.opt = options
        self.rng = random.Random(options.seed)
        # The fault schedule (kinds, lengths, gaps) has its own generator: the shared one
        # is also drawn from where timing decides (which leaders a status poll saw), and
        # the schedule must not depend on timing.
        self._schedule_rng = random.Random(f"schedule-{options.seed}")
        self._bag: list[str] = []
        self.rec = _Recorder()
        self.echo = echo or (lambda _line: None)
        node_args = [FAULT_INJECTION_FLAG]
        for bug in options.inject_bugs:
            node_args += ["--inject-bug", bug]
        # Which cluster is chosen here only: the run drives it through the control
        # interface (raftlog.local.control), whatever hosts the nodes.
        self.cluster: ClusterBase
        if options.netns:
            self.cluster = NetnsCluster(options.nodes, node_args=node_args)
        else:
            self.cluster = LocalCluster(
                options.nodes, fast=True, node_args=node_args, log_level="info"
            )
        self.stop_clients = asyncio.Event()
        self.heal_time: float | None = None
        self.removed: dict[int, list[str]] = {}
        """Nodes removed by the membership nemesis (stopped), with their event logs."""
        self.http: aiohttp.ClientSession | None = None
        self._probe: _Probe | None = None
        """The read in flight to a stopped leader (pause-leader), until the fault ends."""
        self._probe_seq = 0
        """The last sequence number of the appends the nemesis makes (client ``clients``)."""
        self._lease_reads: dict[int, tuple[int, int]] = {}
        """Per node: the last ``lease_reads`` its status showed, and the total seen (a
        restart starts its count again)."""

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> ChaosResult:
        opt = self.opt
        async with self.cluster:
            await self.cluster.start()
            await self.cluster.leader(timeout=30)
            self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            try:
                self.rec = _Recorder()
                sampler = asyncio.create_task(self._sample())
                clients = [asyncio.create_task(self._client(k)) for k in range(opt.clients)]
                try:
                    await self._nemesis(opt.time_s)
                except Exception as exc:  # a fault that could not be made or undone
                    # End the run with the reason, and keep what was recorded so far.
                    failure = (
                        f"at {self.rec.now():.2f} s: {type(exc).__name__}: {exc}"
                        if str(exc)
                        else f"at {self.rec.now():.2f} s: {type(exc).__name__}"
                    )
                    self.echo(f"chaos: the nemesis failed {failure}; stopping the run")
                    self.stop_clients.set()
                    sampler.cancel()
                    await asyncio.gather(*clients, sampler, return_exceptions=True)
                    checks = [Check("the nemesis ran to the end", False, failure)]
                    final: dict[int, list[tuple[int, str]]] = {}
                else:
                    self.heal_time = self.rec.now()
                    await self._heal_all()
                    recovered = await self._recover(clients)
                    self.stop_clients.set()
                    await asyncio.gather(*clients)
                    self._tally_lease_reads(await self.cluster.statuses())
                    sampler.cancel()
                    await asyncio.gather(sampler, return_exceptions=True)
                    final = await self._final_logs()
                    checks = self._check(final, recovered)
            finally:
                await self.http.close()
            result = self._result(checks, final)
            if opt.out is not None:
                self._write(opt.out, result)
            return result

    # -- clients ---------------------------------------------------------------------

    def _url(self, node: int) -> str:
        if node not in self.cluster.node_ids():  # removed by the membership nemesis
            node = self.rng.choice(self._targets())  # ask a member instead
        return self.cluster.url(node)

    def _targets(self) -> list[int]:
        """The nodes a client may send to (members, running or not)."""
        return self.cluster.node_ids()

    async def _client(self, k: int) -> None:
        """A client bound to one node, as in Jepsen: it sees what that node says, whether
        it is the leader, a follower (which forwards) or a deposed leader. A node that
        cannot be reached sends the attempt elsewhere."""
        rng = random.Random(self.rng.random())
        nodes = self.cluster.node_ids()
        home = nodes[k % len(nodes)]
        # The last clients (one per node, when there are enough) only read: a node that
        # serves stale reads is then always being asked.
        reader = self.opt.clients >= 2 * len(nodes) and k >= self.opt.clients - len(nodes)
        seq = 0
        last_applied = 0
        while not self.stop_clients.is_set():
            if reader or rng.random() < self.opt.read_fraction:
                op, _target, last_applied = await self._read(k, home, last_applied, rng)
            else:
                seq += 1
                op, _target = await self._append(k, seq, home, rng)
            self.rec.ops.append(op)
            if op["status"] != "ok":
                await asyncio.sleep(0.05)  # a node that is down answers at once: no busy loop

    async def _append(
        self, k: int, seq: int, target: int, rng: random.Random
    ) -> tuple[dict[str, Any], int]:
        """One logical append: retried with the same (client id, seq) until it is known to
        have happened or not, or the client gives up (then its outcome is unknown)."""
        assert self.http is not None
        value = f"c{k}-{seq}"
        op: dict[str, Any] = {
            "type": "op",
            "id": self.rec.next_id(),
            "client": k,
            "kind": "append",
            "value": value,
            "call": self.rec.now(),
            "ret": None,
            "status": "info",
            "index": None,
            "result_len": None,
            "node": target,
            "error": None,
        }
        body = _encode(wire.AppendRequest(value, client_id=f"chaos-{k}", seq=seq))
        maybe = False
        deadline = time.monotonic() + 4 * self.opt.request_timeout_s
        while time.monotonic() < deadline:
            op["node"] = target
            try:
                async with self.http.post(
                    self._url(target) + "/v1/log",
                    data=body,
                    headers=_JSON_BODY,
                    timeout=aiohttp.ClientTimeout(total=self.opt.request_timeout_s),
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
                answer = msgspec.json.decode(raw, type=wire.AppendAnswer) if status == 200 else None
            except aiohttp.ClientConnectorError as exc:
                op["error"] = f"{type(exc).__name__}"
                target = rng.choice(self._targets())
                continue
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                maybe = True  # sent (a malformed answer too): it may have happened
                op["error"] = f"{type(exc).__name__}: {exc}"[:200]
                target = rng.choice(self._targets())
                continue
            if answer is not None:
                op.update(status="ok", ret=self.rec.now(), index=answer.index, error=None)
                return op, target
            error = _error_of(raw)
            if error is not None:  # by its code: not done, or not seen through
                maybe = maybe or error.code in wire.UNFINISHED
            else:  # not a node's answer: only a 504 says it may have happened
                maybe = maybe or status == 504
            text = error.error if error is not None else raw[:100].decode("utf-8", "replace")
            op["error"] = f"HTTP {status}: {text}"[:200]
            hint = _hint(error)
            target = hint if hint in self._targets() else rng.choice(self._targets())
            if self.stop_clients.is_set():
                break
            await asyncio.sleep(0.02)
        op["ret"] = None if maybe else self.rec.now()
        op["status"] = "info" if maybe else "fail"
        return op, target

    def _read_op(self, k: int, target: int, start: int) -> dict[str, Any]:
        return {
            "type": "op",
            "id": self.rec.next_id(),
            "client": k,
            "kind": "read",
            "level": self.opt.reads,
            "from": start,
            "limit": READ_LIMIT,
            "value": None,
            "call": self.rec.now(),
            "ret": None,
            "status": "fail",
            "index": None,
            "result_len": None,
            "node": target,
            "error": None,
        }

    def _read_path(self, start: int) -> str:
        return f"/v1/log?from={start}&limit={READ_LIMIT}&consistency={self.opt.reads}"

    @staticmethod
    def _read_done(op: dict[str, Any], page: wire.ReadAnswer) -> None:
        op.update(
            status="ok",
            node=page.node,
            applied=page.applied,
            commit=page.commit,
            window=[[e.index, e.data] for e in page.entries],
            next=page.next,
        )
        if page.staleness is not None:
            op["contact_s"] = page.staleness.last_leader_contact_s

    async def _read(
        self, k: int, target: int, last_applied: int, rng: random.Random
    ) -> tuple[dict[str, Any], int, int]:
        assert self.http is not None
        start = max(1, last_applied - 20)
        op = self._read_op(k, target, start)
        try:
            async with self.http.get(
                self._url(target) + self._read_path(start),
                timeout=aiohttp.ClientTimeout(total=self.opt.request_timeout_s),
            ) as resp:
                raw = await resp.read()
                status = resp.status
            page = msgspec.json.decode(raw, type=wire.ReadAnswer) if status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            op.update(ret=self.rec.now(), error=f"{type(exc).__name__}"[:200])
            return op, rng.choice(self._targets()), last_applied
        op["ret"] = self.rec.now()
        if page is None:
            op["error"] = f"HTTP {status}"
            hint = _hint(_error_of(raw))
            target = hint if hint in self._targets() else rng.choice(self._targets())
            return op, target, last_applied
        self._read_done(op, page)
        return op, target, max(last_applied, page.applied)

    # -- the nemesis -----------------------------------------------------------------

    async def _nemesis(self, duration: float) -> None:
        opt = self.opt
        start = time.monotonic()
        longest = start + max(duration, opt.max_time_s)

        def end() -> float:
            """``time_s``, or longer while too few faults were injected or staged their
            read."""
            injected = sum(1 for f in self.rec.faults if f["kind"] != "heal")
            enough = self._staged() >= opt.min_staged and injected >= opt.min_faults
            return start + duration if enough else longest

        await asyncio.sleep(min(1.0, duration / 10))
        while time.monotonic() < end() and opt.nemesis:
            kind = self._next_kind()
            length = self._schedule_rng.uniform(*opt.fault_length_s)
            fault = await self._inject(kind)
            self.echo(f"chaos: {self.rec.now():7.2f}s {fault['kind']} {fault['target']}")
            await asyncio.sleep(min(length, max(0.0, end() - time.monotonic())))
            await self._repair(fault)
            fault["end"] = self.rec.now()
            gap = self._schedule_rng.uniform(*opt.fault_every_s)
            await asyncio.sleep(min(gap, max(0.0, end() - time.monotonic())))

    def _staged(self) -> int:
        return sum(1 for f in self.rec.faults if f.get("staged"))

    def _next_kind(self) -> str:
        """Kinds come from a shuffled bag: every kind once in each len(nemesis) faults,
        so a short run still exercises all of them."""
        if not self._bag:
            self._bag = list(self.opt.nemesis)
            self._schedule_rng.shuffle(self._bag)
        return self._bag.pop()

    async def _leader_guess(self) -> int | None:
        statuses = await self.cluster.statuses()
        leaders = [i for i, s in statuses.items() if s and s["state"] == "Leader"]
        return self.rng.choice(leaders) if leaders else None

    async def _victim(self) -> int:
        leader = await self._leader_guess()
        if leader is not None and self.rng.random() < 0.5:
            return leader
        state = await self.cluster.state()
        running = [n.id for n in state.nodes if n.running] or self._targets()
        return self.rng.choice(running)

    async def _inject(self, kind: str) -> dict[str, Any]:
        fault: dict[str, Any] = {
            "type": "fault",
            "start": self.rec.now(),
            "end": None,
            "kind": kind,
            "target": "",
            "detail": "",
            "nodes": [],
        }
        ids = self.cluster.node_ids()
        if kind == "kill":
            victim = await self._victim()
            await self.cluster.kill(victim)
            fault.update(target=f"node {victim}", detail="SIGKILL, restarted after", nodes=[victim])
        elif kind == "pause":
            victim = await self._victim()
            await self.cluster.pause(victim)
            fault.update(target=f"node {victim}", detail="SIGSTOP, then SIGCONT", nodes=[victim])
        elif kind in ("pause-leader", "pause-leader-acks"):
            await self._pause_leader(fault, late_acks=kind == "pause-leader-acks")
        elif kind == "restart-all":
            await asyncio.gather(*(self.cluster.kill(i) for i in ids))  # all at once
            fault.update(target="all nodes", detail="SIGKILL of every node", nodes=ids)
        elif kind == "membership":
            await self._change_membership(fault)
        elif kind == "partition":
            sides = await self._partition_shape()
            fault.update(target=" | ".join(str(sorted(s)) for s in sides[:2]), detail=sides[2])
            await self._cut(sides[0], sides[1], bridge=sides[3])
        else:
            raise ValueError(f"unknown nemesis {kind!r}")
        self.rec.faults.append(fault)
        return fault

    async def _pause_leader(self, fault: dict[str, Any], *, late_acks: bool) -> None:
        """SIGSTOP the leader, long enough for the others to elect a new one, cut off (so
        that, woken, it hears nothing of the new term until the fault ends, as a leader
        whose network failed during a GC pause); once another node leads and a client
        append has been acknowledged since, a read at the run's level is sent to the
        stopped leader over a connection opened before, so that it is in flight when the
        leader wakes. Its answer is recorded like a client's (client ``clients``); the
        fault is ``staged`` once that read is sent (and, with ``late_acks``, the
        acknowledgements waited as planned).

        ``pause-leader`` cuts the leader off first (it drops what its peers send from
        then on), then stops it. Without any cut the woken leader reads the new leader's
        messages (which waited in its sockets before the read did) first and steps down:
        no lease bug could show. ``pause-leader-acks`` (``late_acks``) stops the leader
        with a follower's acknowledgements of its messages waiting in its socket, and then
        has the peers cut it off on their side (:meth:`_stop_with_acks_waiting`): a leader
        that counted an acknowledgement from when it handles it (``ack-at-handling``)
        wakes with a quorum that looks fresh."""
        leader = await self._leader_guess()
        if leader is None:
            fault.update(target="no leader", detail="no leader to pause")
            return
        others = [i for i in self.cluster.node_ids() if i != leader]
        probe = _Probe(self.cluster.url(leader))
        try:
            await probe.open()
        except (OSError, TimeoutError, ValueError) as exc:
            fault.update(target=f"node {leader}", detail=f"could not reach it: {exc}"[:200])
            return
        fault.update(target=f"node {leader} (leader)", nodes=[leader])
        unstaged: str | None = None
        if late_acks:
            unstaged = await self._stop_with_acks_waiting(leader, others)
            how = "SIGSTOP with acknowledgements waiting, then cut off by its peers"
        else:
            await self.cluster.isolate(leader)
            await self.cluster.pause(leader)
            how = "cut off and SIGSTOP"

        async def successor() -> int | None:
            found = await asyncio.gather(
                *(self.cluster.get_as(i, "/v1/status", wire.Status, timeout=1) for i in others)
            )
            return next((s.id for s in found if s is not None and s.state == "Leader"), None)

        try:
            new = await wait_for(successor, 10, "")
        except TimeoutError:
            fault["detail"] = f"{how}; no other leader within 10 s"
            probe.close()
            return
        since = self.rec.now()
        # An append the stopped leader cannot hold, acknowledged before the read goes: a
        # read that misses it is stale (the run's own client, recorded like the others).
        self._probe_seq += 1
        append, _target = await self._append(self.opt.clients, self._probe_seq, new, self.rng)
        self.rec.ops.append(append)
        if append["status"] != "ok" and unstaged is None:
            unstaged = f"the append through node {new} failed: {append['error']}"
        while append["ret"] is not None and self.rec.now() <= append["ret"]:
            await asyncio.sleep(0.001)  # the read begins after it ended, on the record's clock
        fault["detail"] = (
            f"{how}; node {new} led at {since:.2f} s and acknowledged an append; a read in "
            "flight to the stopped leader; SIGCONT, then the cut heals"
            + (f" (not staged: {unstaged})" if unstaged else "")
        )
        await probe.send(self, self.opt.clients, leader, 1)
        self._probe = probe
        assert probe.op is not None
        fault["read"] = probe.op["id"]  # the staged read's operation
        fault["staged"] = unstaged is None

    async def _stop_with_acks_waiting(self, leader: int, others: list[int]) -> str | None:
        """Stop ``leader`` (SIGSTOP) with a follower's acknowledgements of its messages
        waiting in its socket, then cut it off on its peers' side; None if that went as
        planned, else what did not (the leader is stopped and cut off all the same).

        Staged, not hoped for: a follower holds the leader's messages (the test-only
        partition endpoint) until it holds a heartbeat; the leader is stopped; the
        follower gets them (stepped now, long after they were sent) and answers; two
        status calls in a row show that it answered in the leader's term (the second is
        handled after the answers went to the transport); only then do the peers cut the
        leader off (``cluster.cut``: they drop what it sends and send it nothing)."""
        status = await self.cluster.get_as(leader, "/v1/status", wire.Status, timeout=2)
        term = status.term if status is not None else -1
        follower = self.rng.choice(others)
        why: str | None = None
        await self._hold(follower, [leader])

        async def holds_heartbeat() -> bool:
            s = await self.cluster.get_as(follower, "/v1/status", wire.Status, timeout=1)
            return s is not None and any(
                h.src == leader and h.type == "heartbeat" and h.term == term for h in s.held
            )

        try:
            await wait_for(holds_heartbeat, 5, "", interval=0.01)
        except TimeoutError:
            why = f"node {follower} held no heartbeat of node {leader} (term {term})"
        await self.cluster.pause(leader)
        await self._hold(follower, [])
        answered = None
        for _call in range(2):
            answered = await self.cluster.get_as(follower, "/v1/status", wire.Status, timeout=2)
        if why is None and (answered is None or answered.term != term or answered.leader != leader):
            seen = "no status" if answered is None else f"term {answered.term}"
            why = f"node {follower} did not answer in term {term} ({seen})"
        await self._blocked_by_peers(leader, others)
        return why

    async def _blocked_by_peers(self, leader: int, peers: list[int]) -> None:
        """``peers`` drop what ``leader`` sends them and send it nothing (none: they stop).
        Told to the peers alone, through the test-only partition endpoint: what already
        waits in the leader's sockets stays there for it to read when it wakes (a cut the
        cluster makes is also told to the leader as it resumes, which would then drop it
        as it reads it, as no network does)."""
        body = {"blocked": [leader] if peers else []}
        for peer in peers or [i for i in self.cluster.node_ids() if i != leader]:
            code, doc = await self.cluster.post(peer, "/v1/admin/partition", body)
            if code != 200:
                raise RuntimeError(f"node {peer} refused the partition {body}: HTTP {code} {doc}")

    async def _hold(self, node: int, peers: list[int]) -> None:
        """``node`` keeps (or, with none, delivers) what ``peers`` send it."""
        code, doc = await self.cluster.post(node, "/v1/admin/partition", {"held": peers})
        if code != 200:
            raise RuntimeError(f"node {node} refused to hold {peers}: HTTP {code} {doc}")

    async def _change_membership(self, fault: dict[str, Any]) -> None:
        """A fresh node joins (``raftlog node --join``; it is promoted once caught up), or
        a voter (the leader too, sometimes) is removed, keeping 3 to 5 voters."""
        leader = await self._leader_guess()
        status = (
            await self.cluster.get_as(leader, "/v1/status", wire.Status)
            if leader is not None
            else None
        )
        voters = list(status.voters) if status else self.cluster.node_ids()
        add = len(voters) < MAX_VOTERS and (len(voters) <= MIN_VOTERS or self.rng.random() < 0.5)
        if add:
            new = self.cluster.add_node()
            try:
                await self.cluster.start_node(new)
            except (RuntimeError, TimeoutError) as exc:
                fault.update(target=f"node {new} joins", detail=f"could not start: {exc}")
                return
            fault.update(target=f"node {new} joins", detail="--join, promoted once caught up")
            fault["nodes"] = [new]
            return
        victim = (
            leader
            if leader is not None and self.rng.random() < 0.3
            else self.rng.choice([v for v in voters if v in self.cluster.node_ids()])
        )
        fault.update(target=f"node {victim} removed", nodes=[victim])
        refusal = await self._remove_member(victim)
        if refusal:
            fault["detail"] = f"refused or failed: {refusal}"[:200]
            return
        fault["detail"] = "removed: it stops by itself"
        await self.cluster.resume(victim)  # if it was paused meanwhile

        async def exited() -> bool:
            state = await self.cluster.state()
            return not next(n for n in state.nodes if n.id == victim).running

        try:
            await wait_for(exited, 10, "")
        except TimeoutError:
            # It did not hear of its removal (cut off, or paused meanwhile): stop it.
            await self.cluster.kill(victim)
        self.removed[victim] = self.cluster.lines(victim)
        self.cluster.forget(victim)

    async def _remove_member(self, victim: int, retry_for: float = 10.0) -> str:
        """``DELETE /v1/members/N`` through any live node (followers forward), retrying
        passing refusals and unreachable nodes for ``retry_for`` seconds. Returns "" once
        the removal committed, else the last reason it did not."""
        assert self.http is not None
        deadline = time.monotonic() + retry_for
        reason = "no node answered"
        while time.monotonic() < deadline:
            state = await self.cluster.state()
            for node in state.nodes:
                i = node.id
                if not node.running or node.paused:
                    continue
                try:
                    async with self.http.delete(
                        f"{node.url}/v1/members/{victim}",
                        timeout=aiohttp.ClientTimeout(total=5),
                    ) as resp:
                        raw = await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    reason = f"node {i}: {type(exc).__name__}"
                    continue
                if status == 200:
                    return ""
                error = _error_of(raw)
                reason = error.error if error is not None else f"HTTP {status}"
                if error is not None and error.code == wire.REFUSED and error.retryable is not True:
                    return reason  # a final refusal
            await asyncio.sleep(0.2)
        return reason

    async def _partition_shape(self) -> tuple[set[int], set[int], str, int | None]:
        ids = self.cluster.node_ids()
        shape = self.rng.choice(self.opt.partition_shapes)
        if shape == "isolate-leader":
            leader = await self._leader_guess() or self.rng.choice(ids)
            return {leader}, set(ids) - {leader}, "the leader cut off from everyone", None
        if shape == "one-link":
            a, b = self.rng.sample(ids, 2)
            return {a}, {b}, f"only the link {a} <-> {b} is cut", None
        if shape == "bridge" and len(ids) >= 3:
            self.rng.shuffle(ids)
            bridge, rest = ids[0], ids[1:]
            half = len(rest) // 2
            return set(rest[:half]), set(rest[half:]), f"node {bridge} bridges two halves", bridge
        self.rng.shuffle(ids)
        half = self.rng.randint(1, len(ids) // 2)
        return set(ids[:half]), set(ids[half:]), "random halves", None

    async def _cut(self, a: set[int], b: set[int], *, bridge: int | None) -> None:
        """Cut every link between the sides ``a`` and ``b`` (a bridge node is on neither:
        it keeps talking to both)."""
        del bridge
        await asyncio.gather(*(self.cluster.cut(x, y) for x, y in itertools.product(a, b)))

    async def _start_down(self, ids: list[int]) -> None:
        """Start those of ``ids`` that are down, all at once, in any order: any of them
        may lead next."""
        state = await self.cluster.state()
        down = [n.id for n in state.nodes if n.id in ids and not n.running]
        self.rng.shuffle(down)
        await asyncio.gather(*(self.cluster.start_node(i) for i in down))

    async def _repair(self, fault: dict[str, Any]) -> None:
        kind = fault["kind"]
        if kind in ("kill", "restart-all"):
            await self._start_down([i for i in fault["nodes"] if i in self.cluster.node_ids()])
        elif kind == "pause":
            for i in fault["nodes"]:
                if i in self.cluster.node_ids():
                    await self.cluster.resume(i)
        elif kind in ("pause-leader", "pause-leader-acks"):
            for i in fault["nodes"]:
                await self.cluster.resume(i)
            probe, self._probe = self._probe, None
            if probe is not None:
                self.rec.ops.append(await probe.finish(self, 5.0))
            if kind == "pause-leader-acks":
                for i in fault["nodes"]:
                    await self._blocked_by_peers(i, [])
            await self.cluster.heal()
        elif kind == "partition":
            await self.cluster.heal()

    async def _heal_all(self) -> None:
        ids = self.cluster.node_ids()
        await asyncio.gather(*(self.cluster.resume(i) for i in ids))
        await self._start_down(ids)
        await self.cluster.heal()
        self.rec.faults.append(
            {
                "type": "fault",
                "start": self.rec.now(),
                "end": self.rec.now(),
                "kind": "heal",
                "target": "all",
                "detail": "every fault repaired",
                "nodes": [],
            }
        )

    async def _recover(self, clients: list[asyncio.Task[None]]) -> float | None:
        """Seconds from the heal until there is a leader and a fresh append commits, and
        then every pending client operation ends (each gives up within its own retry
        budget); None if that takes longer than RECOVERY_S (plus that budget)."""
        healed = time.monotonic()
        try:
            async with asyncio.timeout(RECOVERY_S):
                leader = await self.cluster.leader(timeout=RECOVERY_S)
                await self.cluster.append(leader, "recovery-probe", timeout=RECOVERY_S)
            recovered = time.monotonic() - healed
            self.stop_clients.set()
            async with asyncio.timeout(RECOVERY_S + 4 * self.opt.request_timeout_s):
                await asyncio.gather(*clients)
        except (TimeoutError, RuntimeError, aiohttp.ClientError):
            self.stop_clients.set()
            return None
        return recovered

    async def _sample(self) -> None:
        while True:
            t = self.rec.now()
            statuses = await self.cluster.statuses()
            for i, s in statuses.items():
                self.rec.statuses.append(
                    {
                        "type": "status",
                        "time": t,
                        "node": i,
                        "state": s["state"] if s else "down",
                        "term": s["term"] if s else None,
                        "commit": s["commit"] if s else None,
                        "leader": s["leader"] if s else None,
                    }
                )
            self._tally_lease_reads(statuses)
            await asyncio.sleep(0.25)

    def _tally_lease_reads(self, statuses: dict[int, dict[str, Any] | None]) -> None:
        for i, s in statuses.items():
            if not s:
                continue
            now = int(s.get("lease_reads", 0))
            last, total = self._lease_reads.get(i, (0, 0))
            self._lease_reads[i] = (now, total + (now - last if now >= last else now))

    async def _final_logs(self) -> dict[int, list[tuple[int, str]]]:
        async def full_log(i: int) -> list[tuple[int, str]] | None:
            out: list[tuple[int, str]] = []
            start: int | None = 1
            while start is not None:
                page = await self.cluster.get_as(
                    i,
                    f"/v1/log?consistency=local&from={start}&limit=10000",
                    wire.ReadAnswer,
                    timeout=10,
                )
                if page is None:
                    return None
                out += [(e.index, e.data) for e in page.entries]
                if not page.entries and page.next is not None and page.next <= start:
                    # Nothing more the node has applied: records above its applied index
                    # wait for it (a node that lost entries it had applied, as with the
                    # injected ack-before-fsync, may never get there). Asking again would
                    # loop for good.
                    break
                start = page.next
            return out

        async def converged() -> dict[int, list[tuple[int, str]]] | None:
            statuses = await self.cluster.statuses()
            commits = {s["commit"] for s in statuses.values() if s}
            applied = {s["applied"] for s in statuses.values() if s}
            if len(commits) != 1 or commits != applied or None in statuses.values():
                return None
            logs = {i: await full_log(i) for i in self.cluster.node_ids()}
            if any(v is None for v in logs.values()):
                return None
            return {i: v for i, v in logs.items() if v is not None}

        try:
            found: dict[int, list[tuple[int, str]]] = await wait_for(
                converged, 30, "no convergence"
            )
            return found
        except TimeoutError:
            return {i: (await full_log(i)) or [] for i in self.cluster.node_ids()}

    # -- the checks ------------------------------------------------------------------

    def _check(
        self, logs: dict[int, list[tuple[int, str]]], recovered: float | None
    ) -> list[Check]:
        checks = [self._check_leaders(), self._check_prefixes(logs)]
        final = max(logs.values(), key=len) if logs else []
        checks.append(self._check_acked(final))
        checks.append(self._check_linearizable(final))
        if self.opt.reads == "local":
            checks.append(self._check_local(final))
        checks.append(
            Check(
                f"recovered within {RECOVERY_S:g} s of the heal",
                recovered is not None,
                f"{recovered:.2f} s"
                if recovered is not None
                else "no leader, no fresh append, or pending operations after the bound",
            )
        )
        return checks

    def _check_leaders(self) -> Check:
        leaders: dict[int, set[int]] = defaultdict(set)
        every = [self.cluster.lines(i) for i in self.cluster.node_ids()]
        every += list(self.removed.values())
        for lines in every:
            for line in lines:
                m = _LEADER_LINE.search(line)
                if m:
                    leaders[int(m.group(2))].add(int(m.group(1)))
        for s in self.rec.statuses:
            if s["state"] == "Leader":
                leaders[s["term"]].add(s["node"])
        bad = {t: sorted(n) for t, n in leaders.items() if len(n) > 1}
        return Check(
            "no two leaders in one term",
            not bad,
            f"{len(leaders)} terms with a leader" if not bad else f"terms with two leaders: {bad}",
        )

    def _check_prefixes(self, logs: dict[int, list[tuple[int, str]]]) -> Check:
        items = sorted(logs.items(), key=lambda kv: len(kv[1]))
        for (a, la), (b, lb) in itertools.pairwise(items):
            if lb[: len(la)] != la:
                at = next(i for i, (x, y) in enumerate(zip(la, lb, strict=False)) if x != y)
                return Check(
                    "committed logs are prefixes of one another",
                    False,
                    f"node {a} and node {b} differ at entry {at + 1}: {la[at]} vs {lb[at]}",
                )
        sizes = ", ".join(f"node {i}: {len(v)}" for i, v in sorted(logs.items()))
        return Check("committed logs are prefixes of one another", True, f"entries: {sizes}")

    def _check_acked(self, final: list[tuple[int, str]]) -> Check:
        where: dict[str, list[int]] = defaultdict(list)
        for index, value in final:
            where[value].append(index)
        lost = []
        for op in self.rec.ops:
            acked = op["kind"] == "append" and op["status"] == "ok"
            if acked and where.get(op["value"]) != [op["index"]]:
                found = where.get(op["value"], [])
                lost.append(f"{op['value']} acked at {op['index']}, found at {found}")
        twice = [v for v, idx in where.items() if len(idx) > 1]
        ok = not lost and not twice
        acked = sum(1 for op in self.rec.ops if op["kind"] == "append" and op["status"] == "ok")
        detail = (
            f"{acked} acknowledged appends all present, once"
            if ok
            else (f"{len(lost)} lost or moved: {lost[:5]}; applied twice: {twice[:5]}")
        )
        return Check("no acknowledged append lost or applied twice", ok, detail)

    def _check_local(self, final: list[tuple[int, str]]) -> Check:
        invoked: dict[str, float] = {}
        for op in self.rec.ops:
            if op["kind"] == "append":
                value = op["value"]
                invoked[value] = min(invoked.get(value, float("inf")), float(op["call"]))
        verdict = check_local_reads(self.rec.ops, final, invoked)
        detail = (
            f"{verdict.checked} local reads: each the committed log's records from where it "
            "asked through its reported applied index (no gap, nothing past it), nothing "
            "from the future"
            if verdict.ok
            else f"{len(verdict.problems)} problems, first: " + "; ".join(verdict.problems[:4])
        )
        return Check(
            "local reads match the staleness they report", verdict.ok, detail, verdict.problems
        )

    def _check_linearizable(self, final: list[tuple[int, str]]) -> Check:
        client_values = [(i, v) for i, v in final if _CLIENT_VALUE.fullmatch(v)]
        position = {index: pos for pos, (index, _v) in enumerate(client_values, start=1)}
        indexes = [index for index, _v in client_values]
        by_index = dict(final)
        values = [v.encode() for _i, v in client_values]
        history: list[LogOp] = []
        bad_windows: list[str] = []
        for op in self.rec.ops:
            if op["kind"] == "read" and op.get("level") == "local":
                continue  # may be stale by design: checked by _check_local
            call = float(op["call"])
            ret = float(op["ret"]) if op["ret"] is not None else float("inf")
            if op["kind"] == "append":
                pos = position.get(op["index"], 0) if op["status"] == "ok" else 0
                history.append(
                    LogOp(
                        op["id"],
                        op["client"],
                        "append",
                        call,
                        ret,
                        op["status"],
                        value=op["value"].encode(),
                        position=pos,
                    )
                )
            elif op["status"] == "ok":
                applied = op["applied"]
                for index, data in op["window"]:
                    if by_index.get(index) != data:
                        bad_windows.append(
                            f"read {op['id']} from node {op['node']} saw {data!r} at {index}, "
                            f"the final log has {by_index.get(index)!r}"
                        )
                seen = bisect.bisect_right(indexes, applied)
                history.append(
                    LogOp(
                        op["id"], op["client"], "read", call, ret, "ok", result=tuple(values[:seen])
                    )
                )
        verdict = check_log_history(history, values, max_problems=1_000_000)
        problems = bad_windows[:5] + list(verdict.problems)
        ok = verdict.ok and not bad_windows
        reads = sum(
            1
            for op in self.rec.ops
            if op["kind"] == "read" and op["status"] == "ok" and op.get("level") != "local"
        )
        involving_reads = sum(1 for p in problems if " read " in p or p.startswith("read "))
        detail = (
            f"{verdict.checked_ops} operations ({reads} reads) in one order that respects real time"
            if ok
            else f"{len(problems)} problems ({involving_reads} involving reads), first: "
            + "; ".join(problems[:4])
        )
        return Check("history is linearizable", ok, detail, problems)

    # -- output ----------------------------------------------------------------------

    def _result(self, checks: list[Check], logs: dict[int, list[tuple[int, str]]]) -> ChaosResult:
        counts = {"ok": 0, "fail": 0, "info": 0}
        for op in self.rec.ops:
            counts[op["status"]] += 1
        summary = {
            "nodes": self.opt.nodes,
            "clients": self.opt.clients,
            "duration_s": self.opt.time_s,
            "nemesis": ",".join(self.opt.nemesis),
            "reads": self.opt.reads,
            "seed": self.opt.seed,
            "ops_ok": counts["ok"],
            "ops_fail": counts["fail"],
            "ops_info": counts["info"],
            "faults": sum(1 for f in self.rec.faults if f["kind"] != "heal"),
            "staged_faults": self._staged(),
            "lease_reads": sum(total for _last, total in self._lease_reads.values()),
            "final_log_entries": max((len(v) for v in logs.values()), default=0),
            "injected_bugs": ",".join(self.opt.inject_bugs) or "none",
        }
        return ChaosResult(
            ok=all(c.ok for c in checks),
            checks=checks,
            summary=summary,
            ops=self.rec.ops,
            faults=self.rec.faults,
            statuses=self.rec.statuses,
        )

    def _write(self, out: Path, result: ChaosResult) -> None:
        from raftlog.chaos.report import write_report  # noqa: PLC0415

        out.mkdir(parents=True, exist_ok=True)
        with (out / "history.jsonl").open("w") as f:
            for record in [*result.ops, *result.faults, *result.statuses]:
                f.write(json.dumps(record) + "\n")
        node_logs = {}
        every = {i: self.cluster.lines(i) for i in self.cluster.node_ids()} | self.removed
        for i, lines in sorted(every.items()):
            path = out / f"node-{i}.log"
            path.write_text("\n".join(lines) + "\n")
            node_logs[i] = path.name
        write_report(
            out,
            ops=result.ops,
            faults=result.faults,
            statuses=result.statuses,
            checks=[c.as_dict() for c in result.checks],
            summary=result.summary,
            node_logs=node_logs,
            t0=time.time() - (time.monotonic() - self.rec.t0),  # the unix time of time 0
        )


class _Probe:
    """One read sent to a node that is stopped (SIGSTOP), over a raw HTTP/1.1 connection
    opened (and used once) while it ran: the kernel takes the request while the process
    is stopped, so the read is in flight when it wakes, and the node reads it from a
    connection it already serves (a new one would wait to be accepted)."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.op: dict[str, Any] | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), 5
        )
        await self._request("/livez")
        status, _body = await asyncio.wait_for(self._answer(), 5)
        if status != 200:
            raise ValueError(f"/livez answered HTTP {status}")

    async def _request(self, path: str) -> None:
        assert self.writer is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        await self.writer.drain()

    async def _answer(self) -> tuple[int, bytes]:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        size = next(
            (
                int(v)
                for k, _, v in (h.partition(":") for h in lines[1:])
                if k.lower() == "content-length"
            ),
            0,
        )
        return status, await self.reader.readexactly(size)

    async def send(self, chaos: Chaos, client: int, node: int, start: int) -> None:
        self.op = chaos._read_op(client, node, start)
        await self._request(chaos._read_path(start))

    async def finish(self, chaos: Chaos, timeout: float) -> dict[str, Any]:
        """The read's outcome, as a recorded operation."""
        op = self.op
        assert op is not None
        try:
            status, body = await asyncio.wait_for(self._answer(), timeout)
            page = msgspec.json.decode(body, type=wire.ReadAnswer) if status == 200 else None
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            op.update(ret=chaos.rec.now(), error=type(exc).__name__)
            return op
        finally:
            self.close()
        op["ret"] = chaos.rec.now()
        if page is None:
            error = _error_of(body)
            op["error"] = f"HTTP {status}" + (f": {error.error}"[:200] if error else "")
        else:
            chaos._read_done(op, page)
        return op

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
