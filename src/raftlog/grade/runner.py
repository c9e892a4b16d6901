"""The lab's four runs, on any implementation, watched from outside.

Each run gets a fresh cluster of three foreign nodes in the lab's topology
(:class:`~raftlog.local.netns_cluster.NetnsCluster` with a node command: namespaces
``node_1..node_3``, host names, each node in its own copy of the submission). While it
runs, a poller asks every running node ``is_leader()`` several times a heartbeat; the
client is the lab's (``is_leader()`` on each node, then ``leader_receive_log(text)`` on
the one that says yes, again until one takes it). Faults are the lab's: ``stop`` is
``docker container stop`` (SIGTERM, SIGKILL after a grace period), ``start`` brings the
node back. Every action, answer and output line lands in a
:class:`~raftlog.grade.model.RunRecord` that :mod:`raftlog.grade.checks` then judges.

The split vote is provoked, not waited for: the link between nodes 1 and 2 is cut and
node 3 starts 0.4 election timeouts after them, so the first of 1 and 2 to time out wins
with node 3's vote while the other cannot hear it; when that one times out too it stands
in the same term and node 3 (having voted) must refuse it. One heartbeat interval later
the link is healed, and the loser must follow the winner. A candidate nobody could hear
(node 3 started late, after a slow start, and the other peer cut off) splits nothing: the
cut is held until two nodes stood in one term each while node 3 could hear them (the
loser's next term, if not the first). A submission whose timeouts or rules keep that
from happening gets "not observed" (``--attempts`` tries again on a fresh cluster).

Waiting is for conditions with deadlines scaled from the lab's timings; the only fixed
pauses are parts of a scenario (node 3's later start, the held cut, the watch after a
node returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from raftlog.grade import checks
from raftlog.grade import lines as ph
from raftlog.grade.model import SCALE_ENV, Action, Call, Line, Poll, RunRecord, Timings
from raftlog.grade.submission import Submission
from raftlog.local.control import ControlError
from raftlog.local.netns_cluster import ClusterUnavailable, NetnsCluster
from raftlog.local.stamp import parse_line

MAX_ANSWER = 1 << 20
"""Bytes of an XML-RPC answer read at most."""


class ScenarioError(Exception):
    """A run could not go on (a node would not start, no leader to talk to); ``unbuilt``:
    its cluster could not even be built (the submission is not to blame)."""

    def __init__(self, message: str, *, unbuilt: bool = False) -> None:
        super().__init__(message)
        self.unbuilt = unbuilt


class LabRpcError(Exception):
    """No usable answer to an XML-RPC call (the message says why)."""


async def xmlrpc_call(
    session: aiohttp.ClientSession, url: str, method: str, *params: Any, timeout: float
) -> Any:
    """``method(*params)`` on the lab node at ``url``, as the lab's client calls it; the
    answer decoded by the standard library's XML-RPC parser (no evaluation of anything)."""
    body = xmlrpc.client.dumps(params, method).encode()
    try:
        async with session.post(
            url + "/RPC2",
            data=body,
            headers={"Content-Type": "text/xml"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            raw = await resp.content.read(MAX_ANSWER + 1)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise LabRpcError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
    if status != 200:
        raise LabRpcError(f"HTTP {status}")
    if len(raw) > MAX_ANSWER:
        raise LabRpcError("answer too large")
    try:
        (result,), _ = xmlrpc.client.loads(raw)
    except xmlrpc.client.Fault as fault:
        raise LabRpcError(f"fault {fault.faultCode}: {fault.faultString}") from None
    except Exception as exc:  # expat errors, a wrong shape: the node's mistake
        raise LabRpcError(f"not an XML-RPC answer ({type(exc).__name__})") from None
    return result


@dataclass(frozen=True)
class Waits:
    """How long a run waits for what, from the timings."""

    timings: Timings

    @property
    def election(self) -> float:
        return self.timings.election_bounds()[1]

    @property
    def heartbeat(self) -> float:
        return self.timings.heartbeat_bounds()[1]

    @property
    def leader(self) -> float:
        return 2 * self.election + 2.0

    @property
    def commit(self) -> float:
        return 3 * self.heartbeat + 1.0

    @property
    def call(self) -> float:
        return self.election + 2 * self.heartbeat + 1.0

    @property
    def poll(self) -> float:
        return min(0.25, max(0.05, self.timings.heartbeat / 4))

    @property
    def answer(self) -> float:
        return min(1.0, max(0.3, self.timings.heartbeat))

    @property
    def grace(self) -> float:
        """``docker container stop``'s grace period (10 s), scaled, at least 2 s."""
        return max(2.0, 10.0 * self.timings.scale)


class Scenario:
    """One run: a cluster, its record, the poller, the lab's client."""

    def __init__(
        self,
        cluster: NetnsCluster,
        rec: RunRecord,
        session: aiohttp.ClientSession,
        echo: Callable[[str], None],
    ) -> None:
        self.cluster = cluster
        self.rec = rec
        self.session = session
        self.echo = echo
        self.waits = Waits(rec.timings)
        self._starts: dict[int, list[float]] = {i: [] for i in rec.nodes}

    def now(self) -> float:
        return time.time() - self.rec.t0

    def say(self, text: str) -> None:
        self.rec.notes.append(f"{self.now():8.3f} s  {text}")
        self.echo(f"  {self.rec.name}: {text}")

    # -- observation -----------------------------------------------------------------

    def refresh(self) -> None:
        """Read every node's output again into the record."""
        found: list[Line] = []
        logs: dict[int, list[str]] = {}
        for i in self.rec.nodes:
            raw = self.cluster.lines(i)
            logs[i] = raw
            for text in raw:
                parsed = parse_line(text)
                if parsed is None:
                    continue
                at, stderr, body = parsed
                t = at - self.rec.t0
                life = max(1, sum(1 for s in self._starts[i] if s <= t))
                found.append(Line(i, t, body, life, stderr))
        found.sort(key=lambda x: x.t)
        self.rec.lines = found
        self.rec.logs = logs

    async def poller(self) -> None:
        while True:
            started = self.now()
            ids = [i for i in self.rec.nodes if self.cluster.answers(i)]
            answers = await asyncio.gather(*(self.is_leader(i) for i in ids))
            self.rec.polls.append(Poll(started, dict(zip(ids, answers, strict=True))))
            await asyncio.sleep(max(0.0, self.waits.poll - (self.now() - started)))

    async def is_leader(self, i: int) -> bool | None:
        try:
            answer = await xmlrpc_call(
                self.session, self.cluster.url(i), "is_leader", timeout=self.waits.answer
            )
        except LabRpcError:
            return None
        return answer if isinstance(answer, bool) else None

    async def until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait for ``condition`` (on a fresh read of the lines) for up to ``timeout``
        seconds; whether it held."""
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            if condition():
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def watch(self, until: float) -> None:
        """Watch (poll, record) until run time ``until``: an observation window."""
        await asyncio.sleep(max(0.0, until - self.now()))

    async def wait_leader(self, among: list[int] | None = None, timeout: float = 0.0) -> int:
        """The node that a poll round found the one leader (among ``among``)."""
        seen = len(self.rec.polls)
        deadline = time.monotonic() + (timeout or self.waits.leader)
        while time.monotonic() < deadline:
            for p in self.rec.polls[seen:]:
                leaders = p.leaders()
                if len(leaders) == 1 and (among is None or leaders[0] in among):
                    return leaders[0]
            seen = len(self.rec.polls)
            await asyncio.sleep(0.02)
        raise ScenarioError(
            f"no single leader{'' if among is None else f' among nodes {among}'} within "
            f"{timeout or self.waits.leader:.1f} s"
        )

    # -- actions ---------------------------------------------------------------------

    async def _act(
        self, kind: Any, nodes: tuple[int, ...], action: Callable[[], Awaitable[object]]
    ) -> None:
        t = self.now()
        if kind == "start":
            for i in nodes:
                self._starts[i].append(t)
        try:
            await action()
        except ClusterUnavailable as exc:
            raise ScenarioError(f"the cluster could not be built: {exc}", unbuilt=True) from None
        except ControlError as exc:
            raise ScenarioError(f"{kind} of node(s) {list(nodes)}: {exc}") from None
        finally:
            self.rec.actions.append(Action(kind, nodes, t, self.now()))

    async def up(self, nodes: list[int]) -> None:
        """Build the topology and start ``nodes`` (the others stay down)."""
        await self._act("start", tuple(nodes), self.cluster.start)
        self.say(f"nodes {nodes} started" if nodes else "namespaces up, no node started")

    async def start(self, i: int) -> None:
        await self._act("start", (i,), lambda: self.cluster.start_node(i))
        self.say(f"node {i} started")

    async def stop(self, *nodes: int) -> None:
        await self._act(
            "stop",
            nodes,
            lambda: asyncio.gather(*(self.cluster.stop(i, self.waits.grace) for i in nodes)),
        )
        self.say(f"node(s) {list(nodes)} stopped (SIGTERM, SIGKILL after {self.waits.grace:g} s)")

    async def cut(self, a: int, b: int) -> None:
        await self._act("cut", (a, b), lambda: self.cluster.cut(a, b))
        self.say(f"link {a}-{b} cut")

    async def heal(self) -> None:
        await self._act("heal", (), self.cluster.heal)
        self.say("every link healed")

    # -- the lab's client ------------------------------------------------------------

    async def append(self, text: str) -> int | None:
        """The lab's client: ask each node is_leader(), send ``text`` to one that says
        yes, until one returns True (a node that says yes and then False is passed over
        for the next that says yes: two nodes claiming to lead do not keep the client
        from the real leader); the node that took it (None: none did)."""
        deadline = time.monotonic() + self.waits.leader + self.waits.call
        while time.monotonic() < deadline:
            for i in self.rec.nodes:
                if not self.cluster.answers(i) or await self.is_leader(i) is not True:
                    continue
                if await self._call(i, text, expect=True):
                    self.say(f"client: leader_receive_log({text!r}) on node {i} -> True")
                    return i
            await asyncio.sleep(self.waits.poll)
        self.say(f"client: no node took {text!r}")
        return None

    async def probe(self, i: int, text: str) -> bool | None:
        """One ``leader_receive_log`` that must not be acknowledged."""
        result = await self._call(i, text, expect=False)
        self.say(f"client: leader_receive_log({text!r}) on node {i} -> {result}")
        return result

    async def _call(self, i: int, text: str, *, expect: bool) -> bool | None:
        start = self.now()
        result: bool | None = None
        error = ""
        try:
            answer = await xmlrpc_call(
                self.session,
                self.cluster.url(i),
                "leader_receive_log",
                text,
                timeout=self.waits.call,
            )
            if isinstance(answer, bool):
                result = answer
            else:
                error = f"answered {answer!r}, not a bool"
        except LabRpcError as exc:
            error = str(exc) or "no answer"
        self.rec.calls.append(Call(i, text, start, self.now(), result, error, expect))
        return result

    async def followers_committed(self) -> bool:
        """Wait until every running node other than the one that took each acknowledged
        append logged "Follower committed" for it."""

        def done() -> bool:
            for call in self.rec.calls:
                if not (call.expect and call.result is True):
                    continue
                for i in self.rec.nodes:
                    if i == call.node or not self.cluster.answers(i):
                        continue
                    life = len(self._starts[i])
                    if not any(
                        x.life == life and ph.committed(x.text, "Follower") == call.text
                        for x in self.rec.node_lines(i)
                    ):
                        return False
            return True

        return await self.until(done, self.waits.commit)


# --------------------------------------------------------------------------- the runs


async def typical(s: Scenario) -> None:
    await s.up(s.rec.nodes)
    leader = await s.wait_leader()
    s.say(f"node {leader} leads")
    for text in ("SET 5", "ADD 1"):
        await s.append(text)
    await s.followers_committed()

    def beats() -> bool:
        return sum(1 for x in s.rec.node_lines(leader) if ph.HEARTBEAT in x.text) >= 5

    await s.until(beats, 6 * s.waits.heartbeat + 1)


async def split_vote(s: Scenario) -> None:
    await s.up([])
    await s.cut(1, 2)
    await asyncio.gather(s.start(1), s.start(2))
    # Node 3 times out no sooner than 0.4 + 0.6 election timeouts after 1 and 2 started,
    # not before the first of them (at most 1.0): it votes, it does not stand.
    await asyncio.sleep(0.4 * s.rec.timings.election_high)
    await s.start(3)

    def split_with_winner() -> bool:
        found = checks.split_term(s.rec)
        return found is not None and any(w.term == found[0] for w in ph.wins(s.rec))

    if await s.until(split_with_winner, 3 * s.waits.election + 1):
        term, stood = checks.split_term(s.rec) or (0, [])
        s.say(f"nodes {[e.node for e in stood]} stood in term {term}; holding the cut")
        await asyncio.sleep(s.rec.timings.heartbeat)  # a second winner would show now
    else:
        s.say("no two nodes stood in one term with a winner before the deadline")
    await s.heal()
    settled = s.now()
    leader = await s.wait_leader()
    s.say(f"node {leader} leads")
    await s.append("SET 5")
    await s.followers_committed()
    await s.watch(checks.elections_stop_watch(s.rec.timings, settled) + 0.1)


async def dead_leader(s: Scenario) -> None:
    await s.up(s.rec.nodes)
    old = await s.wait_leader()
    s.say(f"node {old} leads")
    await s.append("SET 5")
    await s.followers_committed()
    await s.stop(old)
    others = [i for i in s.rec.nodes if i != old]
    new = await s.wait_leader(others)
    s.say(f"node {new} leads")
    await s.append("ADD 1")
    await s.followers_committed()
    await s.start(old)
    back = s.now()
    await s.append("MUL 3")
    await s.followers_committed()
    await s.watch(back + s.waits.election + s.waits.heartbeat)


async def dead_follower(s: Scenario) -> None:
    await s.up(s.rec.nodes)
    leader = await s.wait_leader()
    s.say(f"node {leader} leads")
    await s.append("SET 5")
    await s.followers_committed()
    victim = min(i for i in s.rec.nodes if i != leader)
    await s.stop(victim)
    await s.append("ADD 1")
    await s.followers_committed()
    stopped = s.now()
    await s.until(
        lambda: any(
            x.t >= stopped - 1 and ph.OFFLINE in x.text.lower() for x in s.rec.node_lines(leader)
        ),
        2 * s.waits.heartbeat + 1,
    )
    await s.start(victim)
    back = s.now()
    await s.append("MUL 3")
    await s.followers_committed()
    await s.watch(back + s.waits.election + s.waits.heartbeat)
    # No majority: with both followers down, the leader must not acknowledge.
    leader = await s.wait_leader()
    followers = tuple(i for i in s.rec.nodes if i != leader)
    await s.stop(*followers)
    await s.probe(leader, "DIV 2")


SCENARIOS: dict[str, Callable[[Scenario], Awaitable[None]]] = {
    "typical": typical,
    "split-vote": split_vote,
    "dead-leader": dead_leader,
    "dead-follower": dead_follower,
}


async def run_one(
    name: str,
    submission: Submission,
    timings: Timings,
    *,
    attempt: int = 1,
    echo: Callable[[str], None] = print,
) -> RunRecord:
    """Run scenario ``name`` on a fresh cluster of ``submission``; the record, complete
    (a run that failed part-way says why in ``error``)."""
    rec = RunRecord(name=name, timings=timings, t0=time.time(), attempt=attempt)
    cluster = NetnsCluster(
        len(rec.nodes),
        node_cmd=submission.command,
        node_dir=submission.directory,
        node_copy=submission.copy,
        node_env={**submission.env, **timings_env(timings)},
        start_nodes=[] if name == "split-vote" else None,
    )
    async with aiohttp.ClientSession() as session:
        scenario = Scenario(cluster, rec, session, echo)
        poller = asyncio.create_task(scenario.poller())
        try:
            await SCENARIOS[name](scenario)
        except ScenarioError as exc:
            rec.error = str(exc)
            rec.unbuilt = exc.unbuilt
            scenario.say(f"stopped: {exc}")
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            rec.duration = scenario.now()
            try:
                scenario.refresh()
            finally:
                await cluster.close()
    return rec


def timings_env(timings: Timings) -> dict[str, str]:
    """What tells a node to scale the lab's timings (nothing at the lab's own)."""
    return {SCALE_ENV: f"{timings.scale:g}"} if timings.scale != 1 else {}
