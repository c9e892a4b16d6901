"""The grader's checks on records written by hand: each passes a good run and fails the
defect it names (no namespaces, no processes)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from raftlog.grade import checks
from raftlog.grade import lines as ph
from raftlog.grade.model import Action, Call, Check, Line, Poll, RunRecord, Timings

T = Timings(0.1)  # election 0.6-1.0 s, heartbeat 0.2 s


def _typical(name: str = "typical") -> RunRecord:
    """Node 1 times out 0.8 s after starting, wins with node 2's vote, heartbeats every
    0.2 s; SET 5 and ADD 1 are acknowledged and both followers commit them."""
    rec = RunRecord(name=name, timings=T, t0=0.0, duration=3.0)
    rec.actions.append(Action("start", (1, 2, 3), 0.0, 0.1))
    for n in (1, 2, 3):
        rec.lines.append(Line(n, 0.05, "Node started! State: Follower. Term: 0"))
    rec.lines += [
        Line(1, 0.85, "New election term 1. State: Candidate"),
        Line(2, 0.86, "Voted for node 1 in term 1"),
        Line(3, 0.86, "Voted for node 1 in term 1"),
        Line(1, 0.87, "Received 2 votes. State: Leader"),
    ]
    beats = [0.87 + 0.2 * k for k in range(10)]
    rec.lines += [Line(1, t, "Sending a heartbeat to followers") for t in beats]
    rec.calls += [
        Call(1, "SET 5", 1.0, 1.02, True),
        Call(1, "ADD 1", 1.1, 1.12, True),
    ]
    rec.lines += [
        Line(1, 1.01, "Leader committed 'SET 5'"),
        Line(1, 1.11, "Leader committed 'ADD 1'"),
    ]
    for n in (2, 3):
        rec.lines += [
            Line(n, 1.27, "Follower committed 'SET 5'"),
            Line(n, 1.28, "Follower committed 'ADD 1'"),
        ]
    rec.polls = [Poll(t / 20, {1: t / 20 > 0.9, 2: False, 3: False}) for t in range(1, 60)]
    rec.lines.sort(key=lambda x: x.t)
    return rec


def _by_name(found: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in found}


def test_a_good_typical_run_passes_every_check() -> None:
    found = _by_name(checks.check_run(_typical()))
    assert set(found) == {
        "leader-elected",
        "one-leader",
        "appends",
        "followers-commit",
        "election-timeout",
        "heartbeat",
        "log-lines",
    }
    assert {c.name: c.verdict for c in found.values()} == dict.fromkeys(found, "pass")
    assert "0.200 s" in found["heartbeat"].summary


def test_two_leaders_fail_unless_a_deposed_leader_steps_down_within_two_heartbeats() -> None:
    rec = _typical()  # polls every 0.05 s; two heartbeats with slack, and late: 1.35 s
    for k in range(30, 40):  # 0.45 s of overlap: an old leader learning of the new one
        rec.polls[k] = Poll(rec.polls[k].t, {1: True, 2: True, 3: False})
    short = checks.one_leader(rec)
    assert short.verdict == "pass" and "1 overlap(s) of at most 0.45 s" in short.summary
    for k in range(40, 59):  # 1.4 s: nobody stepped down
        rec.polls[k] = Poll(rec.polls[k].t, {1: True, 2: True, 3: False})
    long = checks.one_leader(rec)
    assert long.verdict == "fail" and "nodes [1, 2] answered is_leader() True" in long.summary
    same_term = _typical()  # whatever the polls caught, two winners of one term
    same_term.lines += [
        Line(2, 0.9, "New election term 1. State: Candidate"),
        Line(2, 0.95, "Received 2 votes. State: Leader"),
    ]
    same_term.lines.sort(key=lambda x: x.t)
    check = checks.one_leader(same_term)
    assert check.verdict == "fail" and "both won term 1" in check.summary


def test_no_leader_or_a_late_one_fails_leader_elected() -> None:
    rec = _typical()
    rec.polls = [replace(p, answers={1: False, 2: False, 3: False}) for p in rec.polls]
    assert checks.leader_elected(rec).verdict == "fail"
    late = _typical()
    late.polls = [Poll(p.t + 1.0, p.answers) for p in late.polls]  # first True at 1.95 s
    check = checks.leader_elected(late)
    assert check.verdict == "fail" and "bound 1.75 s" in check.summary


def test_an_append_never_acknowledged_fails() -> None:
    rec = _typical()
    rec.calls[1] = replace(rec.calls[1], result=False)
    check = checks.appends(rec)
    assert check is not None and check.verdict == "fail" and "'ADD 1'" in check.summary


def test_a_follower_missing_or_reordering_a_commit_fails() -> None:
    rec = _typical()
    rec.lines = [x for x in rec.lines if not (x.node == 3 and "ADD 1" in x.text)]
    check = checks.followers_commit(rec)
    assert check is not None and check.verdict == "fail"
    assert "node 3 never logged Follower committed 'ADD 1'" in check.summary
    swapped = _typical()
    swapped.lines = [
        replace(x, t=1.29) if x.node == 2 and "SET 5" in x.text else x for x in swapped.lines
    ]
    swapped.lines.sort(key=lambda x: x.t)
    check = checks.followers_commit(swapped)
    assert check is not None and check.verdict == "fail" and "out of order" in check.summary


def test_short_and_long_election_timeouts_fail() -> None:
    short = _typical()
    short.lines = [
        replace(x, t=0.3) if x.node == 1 and "New election" in x.text else x for x in short.lines
    ]
    short.lines.sort(key=lambda x: x.t)
    check = checks.election_timeout(short)
    assert check.verdict == "fail" and "shorter than 0.41 s" in check.summary
    long = _typical()
    long.lines = [
        replace(x, t=1.9) if x.node == 1 and "New election" in x.text else x for x in long.lines
    ]
    long.lines.sort(key=lambda x: x.t)
    check = checks.election_timeout(long)
    assert check.verdict == "fail" and "longer than 1.75 s" in check.summary


def _times_out_after_a_heartbeat(*extra: Line) -> RunRecord:
    """Node 2 stands at 2.0 s, 0.13 s after node 1's heartbeat at 1.87 s."""
    rec = _typical()
    rec.lines += [Line(2, 2.0, "New election term 2. State: Candidate"), *extra]
    rec.lines.sort(key=lambda x: x.t)
    return rec


def test_a_timeout_right_after_a_heartbeat_is_short_only_if_it_surely_arrived() -> None:
    # Nodes that never log "Heartbeat received": the leader's heartbeat on a settled link
    # restarted node 2's timer.
    check = checks.election_timeout(_times_out_after_a_heartbeat())
    assert check.verdict == "fail"
    assert "0.13 s after node 1 sent a heartbeat at 1.87 s" in check.summary
    # Sent 0.06 s after the link 1-2 was healed: it may not have arrived (a reconnect).
    healed = _times_out_after_a_heartbeat()
    healed.actions += [Action("cut", (1, 2), 1.0, 1.01), Action("heal", (), 1.8, 1.81)]
    assert checks.election_timeout(healed).verdict == "pass"
    # Nodes that log receipts are judged by their own lines only: node 2 heard nothing
    # after its vote at 0.86 s, so 1.14 s is all that can be said...
    own = _times_out_after_a_heartbeat(Line(3, 1.88, "Heartbeat received from leader 1"))
    assert checks.election_timeout(own).verdict == "pass"
    # ...and 0.12 s after a heartbeat it says it heard is too short.
    heard = _times_out_after_a_heartbeat(Line(2, 1.88, "Heartbeat received from leader 1"))
    check = checks.election_timeout(heard)
    assert check.verdict == "fail" and "0.12 s after it heard a heartbeat" in check.summary


def test_a_wrong_heartbeat_interval_fails() -> None:
    rec = _typical()
    rec.lines = [x for x in rec.lines if ph.HEARTBEAT not in x.text]
    rec.lines += [Line(1, 0.87 + 0.05 * k, "Sending a heartbeat to followers") for k in range(30)]
    rec.lines.sort(key=lambda x: x.t)
    check = checks.heartbeat(rec)
    assert check.verdict == "fail" and "median interval 0.050 s" in check.summary


def test_missing_lab_lines_are_named() -> None:
    rec = _typical()
    rec.lines = [x for x in rec.lines if "Voted for node" not in x.text]
    check = checks.log_lines(rec)
    assert check.verdict == "fail" and "'Voted for node 1' from any other node" in check.summary
    rec = _typical()
    rec.lines = [x for x in rec.lines if "Leader committed 'ADD 1'" not in x.text]
    assert "Leader committed 'ADD 1'" in checks.log_lines(rec).summary


def _dead_follower(probe: bool | None) -> RunRecord:
    rec = _typical("dead-follower")
    rec.duration = 6.0
    rec.actions += [
        Action("stop", (3,), 1.5, 1.6),
        Action("start", (3,), 2.5, 2.6),
        Action("stop", (2, 3), 5.0, 5.1),
    ]
    rec.calls += [Call(1, "MUL 3", 1.7, 1.72, True), Call(1, "SUB 2", 2.7, 2.72, True)]
    rec.lines += [
        Line(1, 1.71, "Leader committed 'MUL 3'"),
        Line(2, 1.9, "Follower committed 'MUL 3'"),
        Line(1, 1.8, "Follower node 3 is offline"),
        Line(3, 2.55, "Node started! State: Follower. Term: 0", life=2),
        Line(1, 2.71, "Leader committed 'SUB 2'"),
        Line(2, 2.9, "Follower committed 'SUB 2'"),
        Line(3, 2.9, "Follower committed 'SUB 2'", life=2),
        Line(1, 5.2, "Follower node 2 is offline"),
    ]
    rec.lines.sort(key=lambda x: x.t)
    rec.polls = [
        Poll(t / 20, {1: t / 20 > 0.9, 2: False} | ({} if 1.5 <= t / 20 < 2.6 else {3: False}))
        for t in range(1, 100)
    ]
    rec.calls.append(Call(1, "DIV 2", 5.2, 5.3, probe, expect=False))
    return rec


def test_dead_follower_checks_pass_and_an_early_true_fails_no_majority() -> None:
    good = _by_name(checks.check_run(_dead_follower(False)))
    assert [c.name for c in good.values() if c.verdict != "pass"] == []
    assert "node 3 back" in good["follower-follows"].summary
    bad = checks.no_majority(_dead_follower(True))
    assert bad is not None and bad.verdict == "fail" and "'DIV 2'" in bad.summary


def test_a_dead_follower_run_without_the_offline_line_fails_log_lines() -> None:
    rec = _dead_follower(False)
    rec.lines = [x for x in rec.lines if "offline" not in x.text]
    assert "node 3 is offline" in checks.log_lines(rec).summary


def test_a_returned_node_that_claims_to_lead_or_stands_fails() -> None:
    rec = _dead_follower(False)
    rec.polls = [
        replace(p, answers=p.answers | {3: True}) if 3.0 < p.t < 3.5 else p for p in rec.polls
    ]
    check = checks.follower_follows(rec)
    assert check is not None and check.verdict == "fail" and "is_leader() True" in check.summary
    rec = _dead_follower(False)
    rec.lines.append(Line(3, 3.8, "New election term 2. State: Candidate", life=2))
    check = checks.follower_follows(rec)
    assert check is not None and check.verdict == "fail" and "started an election" in check.summary


def _split(winners: tuple[int, ...]) -> RunRecord:
    rec = _typical("split-vote")
    rec.duration = 5.0
    rec.actions += [Action("cut", (1, 2), 0.0, 0.01), Action("heal", (), 2.0, 2.01)]
    rec.lines.append(Line(2, 1.6, "New election term 1. State: Candidate"))
    rec.lines += [Line(w, 1.62, "Received 2 votes. State: Leader") for w in winners if w != 1]
    rec.lines.sort(key=lambda x: x.t)
    return rec


def test_split_vote_verdicts() -> None:
    one = _by_name(checks.check_run(_split((1,))))
    assert one["split-observed"].verdict == "pass" and "term 1" in one["split-observed"].summary
    assert one["one-winner"].verdict == "pass"
    assert one["elections-stop"].verdict == "pass"
    two = checks.one_winner(_split((1, 2)))
    assert two.verdict == "fail" and "two leaders in one term" in two.summary
    none = _typical("split-vote")
    seen = checks.split_observed(none)
    assert seen.verdict == "not observed" and not seen.required and not seen.failed
    # Node 2 stood at 0.5 s, before node 3 was up (node 1 cut off), node 1 at 0.85 s with
    # node 3 there: node 2 was a candidate nobody could hear, so term 1 split nothing.
    alone = _split((1,))
    alone.actions = [
        Action("start", (1, 2), 0.0, 0.1),
        Action("cut", (1, 2), 0.0, 0.01),
        Action("start", (3,), 0.55, 0.6),
        Action("heal", (), 2.0, 2.01),
    ]
    alone.lines = sorted(
        (replace(x, t=0.5) if x.node == 2 and "New election" in x.text else x for x in alone.lines),
        key=lambda x: x.t,
    )
    seen = checks.split_observed(alone)
    assert seen.verdict == "not observed" and "while a voter could hear it" in seen.summary
    assert checks.split_observed(_split((1,))).verdict == "pass"  # node 3 up at 0.1 s
    late = _split((1,))
    late.lines.append(Line(3, 4.0, "New election term 2. State: Candidate"))
    stop = checks.elections_stop(late)
    assert stop.verdict == "fail" and "term 2" in stop.summary


def test_a_run_that_stopped_early_fails_ran() -> None:
    rec = _typical()
    rec.error = "no single leader within 4.5 s"
    assert _by_name(checks.check_run(rec))["ran"].failed


@pytest.mark.parametrize(
    ("line", "who", "text"),
    [
        ("Follower committed 'SET 5'", "Follower", "SET 5"),
        ('Follower committed "SET 5"', "Follower", "SET 5"),
        ("Follower committed SET 5", "Follower", "SET 5"),
        (
            "2026-11-30 07:22:44.843 node 3 [Leader t1] Leader committed 'SET 5' (index 2)",
            "Leader",
            "SET 5",
        ),
        ("Leader received log 'SET 5' from client", "Leader", None),
    ],
)
def test_committed_reads_the_lab_lines_and_raftlogs(line: str, who: str, text: str | None) -> None:
    assert ph.committed(line, who) == text


def test_raftlog_lines_read_as_the_labs() -> None:
    assert ph.election_term("node 2 [Candidate t3] New election term 3. State: Candidate") == 3
    assert not ph.is_timeout_election("New election term 4. State: Candidate (leadership transfer)")
    assert ph.voted_for("Voted for node 2 in term 3") == 2
    assert ph.voted_for("Pre-voted for node 2 for term 3") is None
    assert ph.won("node 1 [Leader t3] Received 2 votes. State: Leader")
