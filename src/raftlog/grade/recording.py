"""A run's record as a timeline :class:`~raftlog.timeline.Recording` (the chaos report's
and the dashboard's format, drawn by the same ``timeline.js``).

A node's role over time is read from what it said and answered: down until the grader
starts it and from when it stops it; a follower once started; a candidate from each "New
election term"; the leader from "Received N votes" / "State: Leader" or a True
``is_leader()``; a follower again on "State: Follower" or a False ``is_leader()`` after
leading. Faults are the grader's stops and cuts; operations are the client's calls.
"""

from __future__ import annotations

from raftlog.grade import lines as ph
from raftlog.grade.model import RunRecord
from raftlog.timeline import Mark, Op, Recording, Role, Span, TimelineFault


def _roles(rec: RunRecord, node: int) -> list[tuple[float, Role, int | None]]:
    """(time, role, term) changes of ``node``, in time order."""
    changes: list[tuple[float, int, Role | None, int | None]] = []
    # (time, order among equal times, role or None for "leader lost", term)
    for a in rec.actions:
        if node in a.nodes and a.kind == "start":
            changes.append((a.t, 0, "follower", None))
        elif node in a.nodes and a.kind == "stop":
            changes.append((a.t, 0, "down", None))
    for line in rec.node_lines(node):
        stood = ph.election_term(line.text)
        if stood is not None:
            changes.append((line.t, 1, "candidate", stood))
        elif ph.won(line.text):
            changes.append((line.t, 1, "leader", None))
        elif "State: Follower" in line.text:
            changes.append((line.t, 1, "follower", None))
    for p in rec.polls:
        answer = p.answers.get(node)
        if answer is True:
            changes.append((p.t, 2, "leader", None))
        elif answer is False:
            changes.append((p.t, 2, None, None))
    changes.sort(key=lambda c: (c[0], c[1]))
    out: list[tuple[float, Role, int | None]] = []
    role: Role = "down"
    term: int | None = None
    for t, _, change, new_term in changes:
        if change is None and role != "leader":
            continue
        new: Role = "follower" if change is None else change  # None: not the leader (now)
        if new == "down" or (role == "down" and new != "follower"):
            term = None
        if new_term is not None:
            term = new_term
        if new != role:
            role = new
            out.append((t, role, term))
    return out


def recording(rec: RunRecord) -> Recording:
    duration = max(rec.duration, 0.0)
    spans: list[Span] = []
    marks: list[Mark] = []
    for node in rec.nodes:
        changes = _roles(rec, node)
        if not changes or changes[0][0] > 0:
            changes.insert(0, (0.0, "down", None))
        for (t, role, term), nxt in zip(changes, [*changes[1:], None], strict=True):
            start = min(max(t, 0.0), duration)
            end = None if nxt is None else min(max(nxt[0], start), duration)
            spans.append(Span(node=node, role=role, term=term, start=start, end=end))
            if role == "leader":
                marks.append(Mark(t=start, node=node, kind="BecameLeader", text="leader"))
    faults: list[TimelineFault] = []
    for a in rec.actions:
        if a.kind == "stop":
            who = f"node {a.nodes[0]}" if len(a.nodes) == 1 else f"nodes {list(a.nodes)}"
            restart = next(
                (
                    b.t
                    for b in rec.actions
                    if b.kind == "start" and b.t > a.t and set(a.nodes) & set(b.nodes)
                ),
                None,
            )
            faults.append(
                TimelineFault(
                    kind="stop",
                    start=max(a.t, 0.0),
                    end=None if restart is None else min(restart, duration),
                    nodes=list(a.nodes),
                    target=who,
                    detail="docker container stop: SIGTERM, then SIGKILL after a grace period",
                )
            )
        elif a.kind == "cut":
            heal = next((b.end for b in rec.actions if b.kind == "heal" and b.t >= a.t), None)
            faults.append(
                TimelineFault(
                    kind="cut",
                    start=max(a.t, 0.0),
                    end=None if heal is None else min(max(heal, a.t), duration),
                    nodes=list(a.nodes),
                    target=f"link {a.nodes[0]}-{a.nodes[1]}",
                    detail="blackhole routes both ways",
                )
            )
    ops = [
        Op(
            process=0,
            kind="append",
            start=max(c.start, 0.0),
            end=max(c.end, c.start, 0.0),
            outcome="info" if c.result is None else ("ok" if c.result else "fail"),
            value=c.text,
            node=c.node,
            error=c.error or None,
        )
        for c in rec.calls
    ]
    return Recording(
        source="grade",
        t0=rec.t0,
        duration=duration,
        nodes=list(rec.nodes),
        spans=spans,
        faults=faults,
        ops=ops,
        marks=marks,
    )
