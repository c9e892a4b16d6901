"""The checks: each a function of a :class:`~raftlog.grade.model.RunRecord` alone.

:func:`check_run` gives every check that applies to a run, each with a verdict and the
evidence it rests on. What each check asks (the lab's words in quotes):

=====================  ==============================================================
``leader-elected``     a leader (one node answering ``is_leader()`` True) within the
                       lab's bound after the nodes started (twice it after a split
                       vote with no winner)
``one-leader``         never two nodes answering True in two poll rounds in a row (one
                       round alone may catch a leadership change in flight)
``appends``            every ``leader_receive_log`` the client needed returned True
``followers-commit``   every follower running when an append was acknowledged logs
                       "Follower committed" for it, in the order acknowledged
``election-timeout``   election timeouts seen from the timestamps lie in 6-10 s (scaled)
``heartbeat``          the leader's "Sending a heartbeat" lines come every 2 s (scaled)
``log-lines``          the lab's lines for each event seen
``new-leader``         dead leader: another node leads within the bound
``old-leader-follows`` dead leader: back, it never claims to lead, starts no election
                       and commits what the leader commits
``keeps-committing``   dead follower: appends work while it is down
``follower-follows``   dead follower: back, it follows as above
``no-majority``        dead follower: with both followers down, an append is not
                       acknowledged
``split-observed``     split vote: two nodes stood in one term (else "not observed")
``one-winner``         split vote: at most one of them won that term
``elections-stop``     split vote: no election after the vote settled
=====================  ==============================================================
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Iterable

from raftlog.grade import lines as ph
from raftlog.grade.model import Call, Check, Line, Poll, RunRecord, Timings, Verdict

CheckFn = Callable[[RunRecord], Check | None]


def _check(
    rec: RunRecord,
    name: str,
    verdict: Verdict,
    summary: str,
    evidence: Iterable[str] = (),
    *,
    required: bool = True,
) -> Check:
    return Check(rec.name, name, verdict, summary, tuple(evidence), required)


def _verdict(ok: bool) -> Verdict:
    return "pass" if ok else "fail"


def _s(t: float) -> str:
    return f"{t:.2f} s"


def _poll(p: Poll) -> str:
    shown = ", ".join(
        f"{i}: {'no answer' if a is None else a}" for i, a in sorted(p.answers.items())
    )
    return f"{p.t:8.3f} s  is_leader() -> {{{shown}}}"


def _call(c: Call) -> str:
    answer = "no answer" if c.result is None else str(c.result)
    why = f" ({c.error})" if c.error else ""
    return (
        f"{c.start:8.3f} s  node {c.node}: leader_receive_log({c.text!r}) -> {answer}"
        f"{why} after {c.end - c.start:.2f} s"
    )


def _first_starts(rec: RunRecord) -> dict[int, float]:
    found: dict[int, float] = {}
    for node in rec.nodes:
        starts = rec.starts(node)
        if starts:
            found[node] = starts[0]
    return found


def _started_line_time(rec: RunRecord, node: int, life: int) -> float | None:
    for line in rec.node_lines(node):
        if line.life == life and ph.STARTED in line.text:
            return line.t
    return None


def _life_start(rec: RunRecord, node: int, life: int) -> float:
    """When life ``life`` of ``node`` began: its "Node started!" line, else the grader's
    start of it."""
    at = _started_line_time(rec, node, life)
    if at is not None:
        return at
    starts = rec.starts(node)
    return starts[life - 1] if 0 < life <= len(starts) else 0.0


def _linked(rec: RunRecord, a: int, b: int, t: float) -> bool:
    """Was the link between ``a`` and ``b`` up at ``t``?"""
    cut = False
    for action in sorted(rec.actions, key=lambda x: x.t):
        if action.t > t:
            break
        if action.kind == "cut" and set(action.nodes) == {a, b}:
            cut = True
        elif action.kind == "heal":
            cut = action.end > t  # healed once the heal returned
    return not cut


def _leader_before(rec: RunRecord, t: float) -> int | None:
    """The node the last poll before ``t`` with exactly one leader named."""
    found = None
    for p in rec.polls:
        if p.t >= t:
            break
        if len(p.leaders()) == 1:
            found = p.leaders()[0]
    return found


def _acks(rec: RunRecord) -> list[Call]:
    """The first acknowledgement of each text the client needed, in order."""
    seen: set[str] = set()
    found = []
    for c in sorted(rec.calls, key=lambda x: x.end):
        if c.expect and c.result is True and c.text not in seen:
            seen.add(c.text)
            found.append(c)
    return found


def _life_at(rec: RunRecord, node: int, t: float) -> int:
    return sum(1 for s in rec.starts(node) if s <= t)


# --------------------------------------------------------------------------- common


def leader_elected(rec: RunRecord) -> Check:
    bound = rec.timings.election_bounds()[1]
    first = next((p for p in rec.polls if len(p.leaders()) == 1), None)
    starts = _first_starts(rec)
    if first is None:
        return _check(
            rec,
            "leader-elected",
            "fail",
            f"no node ever answered is_leader() True alone ({len(rec.polls)} poll rounds)",
            [_poll(p) for p in rec.polls[-3:]],
        )
    leader = first.leaders()[0]
    began = [_life_start(rec, n, 1) for n, s in starts.items() if s <= first.t]
    ref = max(began) if began else 0.0
    # A split vote with no winner before the first leader: the lab allows one more round.
    terms: dict[int, set[int]] = {}
    for e in ph.elections(rec):
        if e.t < first.t:
            terms.setdefault(e.term, set()).add(e.node)
    won_terms = {w.term for w in ph.wins(rec) if w.t <= first.t + 1}
    splits = [t for t, nodes in terms.items() if len(nodes) > 1 and t not in won_terms]
    allowed = rec.timings.late(bound * (2 if splits else 1))
    took = first.t - ref
    evidence = [
        f"the nodes had started by {_s(ref)}",
        _poll(first),
        f"bound: {allowed:.2f} s (election timeout at most {rec.timings.election_high:g} s "
        f"plus slack{'; doubled after a split vote with no winner' if splits else ''}, "
        f"plus {rec.timings.late_s:g} s for a busy machine)",
    ]
    return _check(
        rec,
        "leader-elected",
        _verdict(took <= allowed),
        f"node {leader} led {took:.2f} s after the nodes started (bound {allowed:.2f} s)",
        evidence,
    )


def _double_wins(rec: RunRecord) -> dict[int, list[ph.Win]]:
    """Terms that two or more nodes said they won (Raft's election safety broken)."""
    by_term: dict[int, dict[int, ph.Win]] = {}
    for w in ph.wins(rec):
        if w.term is not None:
            by_term.setdefault(w.term, {}).setdefault(w.node, w)
    return {t: list(ws.values()) for t, ws in by_term.items() if len(ws) > 1}


def one_leader(rec: RunRecord) -> Check:
    """Two nodes answering True together is a failure when they won the same term, or
    when it lasts longer than a deposed leader needs to hear of the new one (its next
    heartbeat round: two intervals, with slack). A partition (the split-vote run's cut)
    can leave an old leader believing it leads for that long, as in any Raft."""
    allowed = rec.timings.late(2 * rec.timings.heartbeat_bounds()[1] + 0.25)
    episodes: list[list[Poll]] = []
    run: list[Poll] = []
    for p in rec.polls:
        if len(p.leaders()) >= 2:
            run.append(p)
        elif run:
            episodes.append(run)
            run = []
    if run:
        episodes.append(run)
    long = [ep for ep in episodes if len(ep) >= 2 and ep[-1].t - ep[0].t > allowed]
    doubles = _double_wins(rec)
    if long or doubles:
        problems = [
            f"nodes {ep[0].leaders()} answered is_leader() True together from {_s(ep[0].t)} "
            f"to {_s(ep[-1].t)} ({len(ep)} rounds; a deposed leader steps down within "
            f"{allowed:.2f} s)"
            for ep in long
        ] + [f"nodes {sorted(w.node for w in ws)} both won term {t}" for t, ws in doubles.items()]
        evidence = [_poll(p) for ep in long for p in (ep[0], ep[-1])] + [
            ph.show(w.line) for ws in doubles.values() for w in ws
        ]
        return _check(rec, "one-leader", "fail", "; ".join(problems[:3]), evidence)
    summary = f"at most one leader in all {len(rec.polls)} poll rounds"
    if episodes:
        longest = max(ep[-1].t - ep[0].t for ep in episodes)
        summary = (
            f"one leader at a time in {len(rec.polls)} poll rounds, but for {len(episodes)} "
            f"overlap(s) of at most {longest:.2f} s while a deposed leader stepped down"
        )
    return _check(rec, "one-leader", "pass", summary, [_poll(ep[0]) for ep in episodes[:6]])


def appends(rec: RunRecord) -> Check | None:
    needed = [c for c in rec.calls if c.expect]
    if not needed:
        return None
    texts = list(dict.fromkeys(c.text for c in needed))
    acked = {c.text for c in _acks(rec)}
    missing = [t for t in texts if t not in acked]
    evidence = [_call(c) for c in needed]
    if missing:
        return _check(
            rec,
            "appends",
            "fail",
            f"not acknowledged with True: {', '.join(map(repr, missing))}",
            evidence,
        )
    retried = len(needed) - len(texts)
    return _check(
        rec,
        "appends",
        "pass",
        f"{len(texts)} appends returned True"
        + (f" ({retried} call(s) answered otherwise first)" if retried else ""),
        evidence,
    )


def followers_commit(rec: RunRecord) -> Check | None:
    acks = _acks(rec)
    if not acks:
        return None
    problems: list[str] = []
    evidence: list[str] = []
    for node in rec.nodes:
        lives: dict[int, list[Call]] = {}
        for ack in acks:
            if ack.node == node or not rec.running_at(node, ack.end):
                continue
            lives.setdefault(_life_at(rec, node, ack.end), []).append(ack)
        for life, wanted in lives.items():
            found: list[tuple[float, str]] = []
            for line in rec.node_lines(node):
                if line.life != life:
                    continue
                text = ph.committed(line.text, "Follower")
                if text is not None:
                    found.append((line.t, text))
                    if any(text == w.text for w in wanted):
                        evidence.append(ph.show(line))
            firsts: list[float] = []
            for w in wanted:
                at = next((t for t, text in found if text == w.text), None)
                if at is None:
                    problems.append(
                        f"node {node} never logged Follower committed {w.text!r} "
                        f"(acknowledged by node {w.node} at {_s(w.end)})"
                    )
                else:
                    firsts.append(at)
            if firsts != sorted(firsts):
                problems.append(f"node {node} committed {[w.text for w in wanted]} out of order")
    if problems:
        return _check(rec, "followers-commit", "fail", "; ".join(problems), evidence)
    return _check(
        rec,
        "followers-commit",
        "pass",
        f"every running follower committed the {len(acks)} acknowledged appends, in order",
        evidence,
    )


def _merge_s(rec: RunRecord) -> float:
    """Timer lines closer than this are one firing (a pre-vote then its election)."""
    return min(0.25, rec.timings.election_low / 4)


def _link_settled(rec: RunRecord, a: int, b: int, t: float) -> bool:
    """Had nodes ``a`` and ``b`` both run, with the link between them up, for one
    heartbeat interval (with slack) before ``t``? A message sent right after a heal or a
    start may still be on its way, or wait for a reconnect."""
    settle = rec.timings.late(rec.timings.heartbeat_bounds()[1])
    if not (rec.running_at(a, t) and rec.running_at(b, t) and _linked(rec, a, b, t)):
        return False
    changes = [
        x.end
        for x in rec.actions
        if x.t <= t and (x.kind in ("cut", "heal") or {a, b} & set(x.nodes))
    ]
    return not changes or t - max(changes) >= settle


def _reset_points(rec: RunRecord, node: int, life: int) -> list[tuple[float, str]]:
    """When ``node`` (in life ``life``) surely restarted its election timer: it started,
    timed out, voted, or (its own line) heard a heartbeat. Only for an implementation
    that never logs "Heartbeat received": another node's "Sending a heartbeat" on a link
    that had been up for an interval. A heartbeat that did not arrive (a reconnect after a
    heal) would otherwise make a good timeout look short."""
    points = [(_life_start(rec, node, life), "it started")]
    for fired in ph.timeouts(rec, _merge_s(rec)):
        if fired.node == node and fired.line.life == life:
            points.append((fired.t, "its own election timeout"))
    for line in rec.node_lines(node):
        if line.life != life:
            continue
        if ph.voted_for(line.text) is not None:
            points.append((line.t, "it voted"))
        elif ph.HEARD in line.text:
            points.append((line.t, "it heard a heartbeat"))
    if any(ph.HEARD in line.text for line in rec.lines):
        return sorted(points)
    for line in rec.lines:
        if (
            line.node != node
            and ph.HEARTBEAT in line.text
            and _link_settled(rec, node, line.node, line.t)
            and _life_at(rec, node, line.t) == life
        ):
            points.append((line.t, f"node {line.node} sent a heartbeat"))
    return sorted(points)


def election_timeout(rec: RunRecord) -> Check:
    low, high = rec.timings.election_bounds()
    samples: list[tuple[float, str]] = []
    bad: list[str] = []
    fired = ph.timeouts(rec, _merge_s(rec))
    for e in fired:  # nothing restarts a timer later than what we know of: a floor
        before = [p for p in _reset_points(rec, e.node, e.line.life) if p[0] < e.t - 1e-6]
        if not before:
            continue
        at, why = before[-1]
        gap = e.t - at
        if gap < low:
            bad.append(
                f"node {e.node} timed out at {_s(e.t)}, {gap:.2f} s after {why} at {_s(at)}: "
                f"shorter than {low:.2f} s ({e.line.text!r})"
            )
        samples.append((gap, f"node {e.node} at {_s(e.t)}: >= {gap:.2f} s (since {why})"))
    uppers: list[tuple[float, str]] = []
    if fired:  # the first node to time out had heard nothing since it started
        first = fired[0]
        began = _life_start(rec, first.node, first.line.life)
        if first.line.life == 1:
            uppers.append(
                (
                    first.t - began,
                    f"node {first.node}: first timeout, {_s(first.t - began)} after it started",
                )
            )
    for stop in (a for a in rec.actions if a.kind == "stop"):
        victim = stop.nodes[0]
        if _leader_before(rec, stop.t) != victim:
            continue
        beats = [
            line.t
            for line in rec.node_lines(victim)
            if ph.HEARTBEAT in line.text and line.t <= stop.t
        ]
        last = beats[-1] if beats else stop.t
        after = [e for e in fired if e.t > stop.t and e.node != victim]
        if after:
            gap = after[0].t - last
            uppers.append(
                (
                    gap,
                    f"node {after[0].node}: {gap:.2f} s after the stopped leader's last "
                    f"heartbeat at {_s(last)}",
                )
            )
    latest = rec.timings.late(high)
    for gap, what in uppers:
        if gap > latest:
            bad.append(f"{what}: longer than {latest:.2f} s")
    evidence = [w for _, w in samples] + [w for _, w in uppers]
    if not samples and not uppers:
        return _check(
            rec,
            "election-timeout",
            "not observed",
            "no election timed out in this run",
            required=False,
        )
    if bad:
        return _check(rec, "election-timeout", "fail", "; ".join(bad[:3]), bad + evidence)
    shown = [g for g, _ in samples + uppers]
    return _check(
        rec,
        "election-timeout",
        "pass",
        f"{len(samples)} timeout(s) each at least {low:.2f} s after its timer's last known "
        f"restart (seen {min(shown):.2f}-{max(shown):.2f} s)"
        + (f"; {len(uppers)} first timeout(s) within {latest:.2f} s" if uppers else ""),
        evidence,
    )


def heartbeat(rec: RunRecord) -> Check:
    low, high = rec.timings.heartbeat_bounds()
    gaps: list[float] = []
    stalls: list[str] = []
    for node in rec.nodes:
        rounds: list[float | None] = []  # None: a tenure ends
        for line in rec.node_lines(node):
            if ph.HEARTBEAT in line.text:
                last = rounds[-1] if rounds else None
                if last is not None and line.t - last < rec.timings.heartbeat / 8:
                    continue  # one line per follower: one round
                rounds.append(line.t)
            elif (
                ph.election_term(line.text) is not None
                or "State: Follower" in line.text
                or ph.STARTED in line.text
            ):
                rounds.append(None)
        for a, b in itertools.pairwise(rounds):
            if a is not None and b is not None:
                gaps.append(b - a)
                if b - a >= rec.timings.late(rec.timings.election_low):
                    stalls.append(f"node {node}: no heartbeat from {_s(a)} to {_s(b)}")
    if not gaps:
        return _check(
            rec,
            "heartbeat",
            "not observed",
            "fewer than two heartbeat lines in a row",
            required=False,
        )
    median = statistics.median(gaps)
    ok = low <= median <= high and not stalls
    summary = (
        f"median interval {median:.3f} s over {len(gaps)} intervals (min {min(gaps):.3f}, "
        f"max {max(gaps):.3f}); expected {low:.2f}-{high:.2f} s"
    )
    if stalls:
        summary += f"; {len(stalls)} gap(s) as long as an election timeout"
    return _check(rec, "heartbeat", _verdict(ok), summary, stalls)


def _longest_tenure(rec: RunRecord, node: int) -> float:
    """The longest stretch of poll rounds in which ``node`` answered True (first to last)."""
    longest = 0.0
    began: float | None = None
    for p in rec.polls:
        if p.answers.get(node) is True:
            began = p.t if began is None else began
            longest = max(longest, p.t - began)
        else:
            began = None
    return longest


def log_lines(rec: RunRecord) -> Check:
    missing: list[str] = []
    evidence: list[str] = []

    def first(node: int | None, test: Callable[[Line], bool]) -> Line | None:
        return next((x for x in rec.lines if (node is None or x.node == node) and test(x)), None)

    for node in rec.nodes:
        for life in range(1, len(rec.starts(node)) + 1):
            if _started_line_time(rec, node, life) is None:
                missing.append(f"{ph.STARTED!r} from node {node} (start {life})")
    leaders = sorted({i for p in rec.polls for i in p.leaders()})
    for node in leaders:
        wanted: list[tuple[str, Callable[[Line], bool]]] = [
            (ph.NEW_TERM, lambda x: ph.election_term(x.text) is not None),
            ("Received N votes", lambda x: ph.won(x.text)),
        ]
        if _longest_tenure(rec, node) >= 1.5 * rec.timings.heartbeat_bounds()[1]:
            wanted.append((ph.HEARTBEAT, lambda x: ph.HEARTBEAT in x.text))
        for label, test in wanted:
            found = first(node, test)
            if found is None:
                missing.append(f"{label!r} from node {node}, which led")
            else:
                evidence.append(ph.show(found))
        voter = next(
            (x for x in rec.lines if x.node != node and ph.voted_for(x.text) == node), None
        )
        if voter is None:
            missing.append(f"'Voted for node {node}' from any other node")
        else:
            evidence.append(ph.show(voter))
    for ack in _acks(rec):
        found = next(
            (x for x in rec.node_lines(ack.node) if ph.committed(x.text, "Leader") == ack.text),
            None,
        )
        if found is None:
            missing.append(f"'Leader committed {ack.text!r}' from node {ack.node}")
        else:
            evidence.append(ph.show(found))
    if _acks(rec) and len(rec.nodes) > 1:
        found = first(None, lambda x: ph.committed(x.text, "Follower") is not None)
        if found is None:
            missing.append(f"{ph.FOLLOWER_COMMITTED!r} from any node")
        else:
            evidence.append(ph.show(found))
    if rec.name == "dead-follower":
        for stop in [a for a in rec.actions if a.kind == "stop"][:1]:
            victim, lead = stop.nodes[0], _leader_before(rec, stop.t)
            if lead is None:
                continue
            found = next(
                (
                    x
                    for x in rec.node_lines(lead)
                    if x.t >= stop.t
                    and ph.OFFLINE in x.text.lower()
                    and ph.mentions_node(x.text, victim)
                ),
                None,
            )
            if found is None:
                missing.append(f"a line of node {lead} saying node {victim} is offline")
            else:
                evidence.append(ph.show(found))
    if missing:
        return _check(rec, "log-lines", "fail", "missing: " + "; ".join(missing), evidence)
    return _check(rec, "log-lines", "pass", "the lab's lines for every event seen", evidence)


# --------------------------------------------------------------------------- per run


def _returned_follows(rec: RunRecord, name: str) -> Check | None:
    """After its stop and start, the node never claims to lead, starts no election and
    commits what the leader acknowledges after its return."""
    stops = [a for a in rec.actions if a.kind == "stop"]
    if not stops:
        return None
    node = stops[0].nodes[0]
    back = [s for s in rec.starts(node) if s > stops[0].t]
    if not back:
        return _check(rec, name, "fail", f"node {node} was never started again", [])
    since = back[0]
    life = _life_at(rec, node, since)
    window_end = min((a.t for a in stops[1:] if a.t > since), default=rec.duration)
    polls = [p for p in rec.polls if since <= p.t <= window_end and node in p.answers]
    claims = [p for p in polls if p.answers.get(node) is True]
    denials = [p for p in polls if p.answers.get(node) is False]
    stood = [
        e for e in ph.elections(rec) if e.node == node and e.line.life == life and e.t <= window_end
    ]
    later = [c for c in _acks(rec) if c.start > since and c.node != node]
    committed = {ph.committed(x.text, "Follower") for x in rec.node_lines(node) if x.life == life}
    missed = [c.text for c in later if c.text not in committed]
    problems = []
    if claims:
        problems.append(f"it answered is_leader() True at {_s(claims[0].t)}")
    if not denials and not claims:
        problems.append("it never answered is_leader()")
    if stood:
        problems.append(
            f"it started an election at {_s(stood[0].t)} (it did not hear the leader's heartbeats?)"
        )
    if missed:
        problems.append(f"it never committed {missed} (acknowledged after it came back)")
    evidence = (
        [f"node {node} started again at {_s(since)}; watched until {_s(window_end)}"]
        + [_poll(p) for p in claims[:3] + denials[:1]]
        + [ph.show(e.line) for e in stood[:3]]
    )
    if problems:
        return _check(rec, name, "fail", f"node {node} back: " + "; ".join(problems), evidence)
    watched = window_end - since
    return _check(
        rec,
        name,
        "pass",
        f"node {node} back for {watched:.1f} s: follower in {len(denials)} polls, no "
        f"election, committed {[c.text for c in later]}",
        evidence,
    )


def new_leader(rec: RunRecord) -> Check | None:
    stops = [a for a in rec.actions if a.kind == "stop"]
    if not stops:
        return None
    old = stops[0].nodes[0]
    bound = rec.timings.late(rec.timings.election_bounds()[1])
    after = next(
        (
            p
            for p in rec.polls
            if p.t > stops[0].t and len(p.leaders()) == 1 and p.leaders()[0] != old
        ),
        None,
    )
    if after is None:
        return _check(
            rec,
            "new-leader",
            "fail",
            f"no other node led after node {old} stopped",
            [_poll(p) for p in rec.polls if p.t > stops[0].t][-3:],
        )
    took = after.t - stops[0].t
    return _check(
        rec,
        "new-leader",
        _verdict(took <= bound),
        f"node {after.leaders()[0]} led {took:.2f} s after node {old} was stopped "
        f"(bound {bound:.2f} s)",
        [f"{stops[0].t:8.3f} s  node {old} stopped", _poll(after)],
    )


def old_leader_follows(rec: RunRecord) -> Check | None:
    return _returned_follows(rec, "old-leader-follows")


def follower_follows(rec: RunRecord) -> Check | None:
    return _returned_follows(rec, "follower-follows")


def keeps_committing(rec: RunRecord) -> Check | None:
    stops = [a for a in rec.actions if a.kind == "stop"]
    if not stops:
        return None
    node = stops[0].nodes[0]
    back = min((s for s in rec.starts(node) if s > stops[0].t), default=rec.duration)
    during = [c for c in rec.calls if c.expect and stops[0].end <= c.start < back]
    if not during:
        return _check(rec, "keeps-committing", "fail", "no append was tried while it was down")
    ok = [c for c in during if c.result is True]
    return _check(
        rec,
        "keeps-committing",
        _verdict(bool(ok) and {c.text for c in ok} == {c.text for c in during}),
        f"with node {node} down: {len(ok)} of {len(during)} calls returned True",
        [_call(c) for c in during],
    )


def no_majority(rec: RunRecord) -> Check | None:
    probes = [c for c in rec.calls if not c.expect]
    if not probes:
        return None
    acked = [c for c in probes if c.result is True]
    if acked:
        c = acked[0]
        return _check(
            rec,
            "no-majority",
            "fail",
            f"node {c.node} acknowledged {c.text!r} with both followers down: no majority "
            "held it (the leader must answer True only once a majority has the entry)",
            [_call(c) for c in probes],
        )
    return _check(
        rec,
        "no-majority",
        "pass",
        "with both followers down, the leader did not acknowledge the append",
        [_call(c) for c in probes],
    )


def _contested(rec: RunRecord, e: ph.Election) -> bool:
    """Could a vote for ``e`` have been given: was another node running, and linked to
    the candidate, when it stood? A candidate alone (its peers cut off or not started
    yet) splits nothing."""
    return any(
        v != e.node and rec.running_at(v, e.t) and _linked(rec, e.node, v, e.t) for v in rec.nodes
    )


def split_term(rec: RunRecord) -> tuple[int, list[ph.Election]] | None:
    """The split vote of ``rec``: the first term two or more nodes stood in, each while a
    voter could hear it, and someone won (else the first such term), with their elections."""
    by_term: dict[int, dict[int, ph.Election]] = {}
    for e in ph.elections(rec):
        if not e.transfer and _contested(rec, e):
            by_term.setdefault(e.term, {}).setdefault(e.node, e)
    split = sorted(t for t, stood in by_term.items() if len(stood) >= 2)
    won = {w.term for w in ph.wins(rec)}
    term = next((t for t in split if t in won), split[0] if split else None)
    if term is None:
        return None
    return term, sorted(by_term[term].values(), key=lambda e: e.t)


def split_observed(rec: RunRecord) -> Check:
    found = split_term(rec)
    if found is None:
        return _check(
            rec,
            "split-observed",
            "not observed",
            "no two nodes stood in the same term (each while a voter could hear it) in this run",
            rec.notes,
            required=False,
        )
    term, stood = found
    return _check(
        rec,
        "split-observed",
        "pass",
        f"nodes {[e.node for e in stood]} both stood in term {term}",
        [ph.show(e.line) for e in stood],
        required=False,
    )


def one_winner(rec: RunRecord) -> Check:
    doubles = _double_wins(rec)
    if doubles:
        term, ws = min(doubles.items())
        return _check(
            rec,
            "one-winner",
            "fail",
            f"nodes {sorted(w.node for w in ws)} both won term {term}: two leaders in one term",
            [ph.show(w.line) for ws in doubles.values() for w in ws],
        )
    found = split_term(rec)
    if found is None:
        return _check(rec, "one-winner", "not observed", "no split vote to judge", required=False)
    term, _ = found
    winners = [w for w in ph.wins(rec) if w.term == term]
    evidence = [ph.show(w.line) for w in winners]
    if not winners:
        return _check(
            rec,
            "one-winner",
            "pass",
            f"nobody won term {term}; a later term elected a leader",
            evidence,
        )
    return _check(
        rec, "one-winner", "pass", f"node {winners[0].node} alone won term {term}", evidence
    )


def quiet_from(timings: Timings, healed: float) -> float:
    """From when no election may start once the split vote's cut was healed at ``healed``:
    the loser hears the winner's next heartbeat at most one interval later."""
    return healed + timings.late(timings.heartbeat_bounds()[1] + timings.abs_s)


def elections_stop_watch(timings: Timings, healed: float) -> float:
    """Until when a run watches after the heal for :func:`elections_stop` to judge: the
    longest election timeout after :func:`quiet_from`."""
    return quiet_from(timings, healed) + timings.election_bounds()[1]


def elections_stop(rec: RunRecord) -> Check:
    heals = [a for a in rec.actions if a.kind == "heal"]
    settled = heals[-1].end if heals else 0.0
    start = quiet_from(rec.timings, settled)
    late = [e for e in ph.elections(rec) if e.t > start]
    watched = rec.duration - start
    if late:
        return _check(
            rec,
            "elections-stop",
            "fail",
            f"{len(late)} election(s) after the vote settled, first node {late[0].node} "
            f"in term {late[0].term} at {_s(late[0].t)}",
            [ph.show(e.line) for e in late[:5]],
        )
    if watched < rec.timings.election_bounds()[1]:
        return _check(
            rec,
            "elections-stop",
            "not observed",
            f"watched only {watched:.1f} s after the vote settled",
            required=False,
        )
    return _check(
        rec,
        "elections-stop",
        "pass",
        f"no election in the {watched:.1f} s after the vote settled at {_s(settled)}",
    )


COMMON: tuple[CheckFn, ...] = (
    leader_elected,
    one_leader,
    appends,
    followers_commit,
    election_timeout,
    heartbeat,
    log_lines,
)
PER_RUN: dict[str, tuple[CheckFn, ...]] = {
    "typical": (),
    "split-vote": (split_observed, one_winner, elections_stop),
    "dead-leader": (new_leader, old_leader_follows),
    "dead-follower": (keeps_committing, follower_follows, no_majority),
}


def check_run(rec: RunRecord) -> list[Check]:
    """Every check that applies to ``rec``; a run that stopped early fails ``ran``."""
    found: list[Check] = []
    if rec.error:
        found.append(_check(rec, "ran", "fail", rec.error, rec.notes))
    for fn in COMMON + PER_RUN.get(rec.name, ()):
        check = fn(rec)
        if check is not None:
            found.append(check)
    return found
