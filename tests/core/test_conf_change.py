"""Membership changes in the core (thesis §4): configurations in the log, single-server
changes, learners, removing the leader. Hand-driven, deterministic."""

from __future__ import annotations

import pytest

from raftlog.core.errors import ConfChangeRefused, NotLeader
from raftlog.core.messages import AppendEntries, RequestVote, RequestVoteResponse, TimeoutNow
from raftlog.core.types import EntryKind, NodeId, Role
from raftlog.sim.harness import Harness, HarnessOptions


def cluster(nodes: int = 4, learners: frozenset[int] = frozenset({4}), **kw: object) -> Harness:
    h = Harness(HarnessOptions(nodes=nodes, learners=learners, **kw))  # type: ignore[arg-type]
    h.campaign(1)
    h.stabilize()
    return h


def test_a_learner_gets_the_log_but_neither_votes_nor_counts() -> None:
    h = cluster()
    h.propose(1, b"x")
    h.stabilize()
    assert [e.data for e in h.log(4) if e.kind is EntryKind.NORMAL] == [b"x"]
    assert h.node(4).raft.conf.learners == {4}
    # With two voters down, the learner's copy does not make a majority.
    h.crash(2)
    h.crash(3)
    index, _ = h.propose(1, b"y")
    h.stabilize()
    assert h.node(4).raft.log.last_index() == index
    assert h.node(1).raft.log.committed < index
    # A learner never campaigns, however long it hears nothing.
    h.crash(1)
    h.elapse(200)
    assert h.node(4).raft.role is Role.FOLLOWER and h.node(4).raft.term == 1


def test_a_configuration_takes_effect_on_append_and_a_truncation_undoes_it() -> None:
    h = cluster(nodes=3, learners=frozenset(), pre_vote=False, check_quorum=False)
    h.partition([1], [2], [3])
    index = h.change(1, [1, 2, 3], [4])  # add learner 4, uncommitted: only 1 has it
    h.drop()
    assert h.node(1).raft.conf.learners == {4}
    assert h.node(1).raft.conf_index == index
    h.crash(1)
    h.heal()
    h.campaign(2)
    h.stabilize()
    h.propose(2, b"z")
    h.stabilize()
    h.restart(1)
    h.elapse(5)  # node 2's heartbeats reach it, and its log is repaired
    # Node 1's uncommitted configuration was replaced by node 2's entries: undone.
    assert h.node(1).raft.conf.learners == frozenset()
    assert h.node(1).raft.conf_index == 0


def test_refusals_name_the_reason() -> None:
    h = cluster()
    with pytest.raises(NotLeader):
        h.change(2, [1, 2, 3, 4])
    with pytest.raises(ConfChangeRefused, match="one voter at a time"):
        h.change(1, [1, 2, 3, 4, 5])
    with pytest.raises(ConfChangeRefused, match="must join as a learner"):
        h.change(1, [1, 2, 3, 5], [4])
    with pytest.raises(ConfChangeRefused, match="at least one voter"):
        h.change(1, [], [4])
    with pytest.raises(ConfChangeRefused, match="nothing to change"):
        h.change(1, [1, 2, 3], [4])
    h.partition([1], [2, 3, 4])
    h.change(1, [1, 2, 3], [4, 5])  # accepted, cannot commit: 2 and 3 are cut off
    with pytest.raises(ConfChangeRefused, match="change is in progress"):
        h.change(1, [1, 2, 3], [4, 5, 6])


def test_a_new_leader_commits_an_entry_of_its_term_before_any_change() -> None:
    h = cluster(pre_vote=False, check_quorum=False)
    h.crash(1)
    h.campaign(2)
    h.deliver(lambda m: isinstance(m, RequestVote))
    h.deliver(lambda m: isinstance(m, RequestVoteResponse))
    assert h.node(2).raft.role is Role.LEADER
    with pytest.raises(ConfChangeRefused, match="not committed an entry of its term"):
        h.change(2, [2, 3], [4])
    h.stabilize()
    h.change(2, [2, 3], [4])  # once the no-op has committed


def test_a_caught_up_learner_is_promoted_and_then_counts() -> None:
    h = cluster()
    h.propose(1, b"x")
    h.stabilize()
    index = h.change(1, [1, 2, 3, 4])
    h.stabilize()
    assert all(h.node(n).raft.conf.voters == {1, 2, 3, 4} for n in (1, 2, 3, 4))
    assert h.node(1).raft.log.committed >= index
    h.crash(2)
    h.crash(3)
    i2, _ = h.propose(1, b"y")
    h.stabilize()
    assert h.node(1).raft.log.committed < i2  # 2 of 4 voters are not a majority
    h.restart(2)
    h.elapse(5)  # heartbeats find node 2 back, and it catches up
    assert h.node(1).raft.log.committed >= i2  # 1, 2 and 4: a majority of 4


def test_a_learner_that_has_not_caught_up_is_not_promoted() -> None:
    h = cluster(promote_max_lag=0)
    h.isolate(4)
    h.propose(1, b"x")
    h.stabilize()
    with pytest.raises(ConfChangeRefused, match="node 4 has not caught up"):
        h.change(1, [1, 2, 3, 4])
    h.heal()
    h.propose(1, b"y")
    h.stabilize()
    h.change(1, [1, 2, 3, 4])


def test_a_change_that_would_lose_quorum_is_refused() -> None:
    h = cluster(nodes=3, learners=frozenset())
    h.crash(3)
    h.elapse(30)  # a CheckQuorum round: node 3 is not answering
    with pytest.raises(ConfChangeRefused, match="would lose quorum"):
        h.change(1, [1, 3])


def test_a_change_just_after_a_quorum_round_starts_is_not_refused() -> None:
    """A new CheckQuorum round forgets who answered; followers that answered in the round
    before still count as live (a regression: joins were refused at round boundaries)."""
    h = cluster(nodes=3, learners=frozenset())
    h.propose(1, b"x")
    h.stabilize()
    h.tick(1, 10)  # the leader alone: a round ends, nobody has answered in the new one
    assert not any(pr.recent_active for n, pr in h.node(1).raft._progress.items() if n != 1)
    h.change(1, [1, 2])
    h.stabilize()
    assert h.node(1).raft.conf.voters == {1, 2}


def test_removing_the_leader_it_steps_down_once_committed_and_hands_over() -> None:
    h = cluster(nodes=3, learners=frozenset())
    h.propose(1, b"x")
    h.stabilize()
    index = h.change(1, [2, 3])
    # Until the change commits the old leader still leads (without counting itself).
    assert h.node(1).raft.role is Role.LEADER
    h.deliver(lambda m: isinstance(m, AppendEntries))
    h.deliver()
    assert h.node(1).raft.log.committed >= index
    assert h.node(1).raft.role is Role.FOLLOWER
    assert any(isinstance(m, TimeoutNow) for m in h.inflight)
    h.stabilize()
    leaders = [n for n in (2, 3) if h.node(n).raft.role is Role.LEADER]
    assert len(leaders) == 1
    # The removed node learned it was removed, and never campaigns again.
    assert NodeId(1) not in h.node(1).raft.conf.ids()
    h.elapse(300)
    assert h.node(1).raft.role is Role.FOLLOWER
    assert [n for n in (2, 3) if h.node(n).raft.role is Role.LEADER] == leaders


def _stale_config_race(bugs: frozenset[str]) -> Harness:
    """Ongaro's single-server change bug (raft-dev, 2015): a leader promotes a learner,
    reaching only it, and fails; the next leader removes it at once, commits with the new
    (smaller) majority and fails; the first one comes back with its configuration and a
    majority of it that never saw the second leader's entries."""
    h = Harness(
        HarnessOptions(
            nodes=5, learners=frozenset({5}), pre_vote=False, check_quorum=False, bugs=bugs
        )
    )
    h.campaign(1)
    h.stabilize()
    h.propose(1, b"x")
    h.stabilize()
    h.change(1, [1, 2, 3, 4, 5])  # C1: promote 5; only 5 hears of it
    h.deliver(lambda m: m.dst == 5)
    h.drop()
    h.crash(1)
    h.campaign(2)  # elected in term 2 by 3 and 4, under the old configuration
    h.deliver(lambda m: isinstance(m, RequestVote) and m.dst in (3, 4))
    h.deliver(lambda m: isinstance(m, RequestVoteResponse))
    assert h.node(2).raft.role is Role.LEADER
    h.change(2, [2, 3, 4])  # C2: remove 1, before the no-op has committed
    for _ in range(3):
        h.deliver(lambda m: m.dst == 3 or m.src == 3)
    h.drop()
    return h


def test_the_no_op_first_rule_prevents_the_stale_configuration_race() -> None:
    with pytest.raises(ConfChangeRefused):
        _stale_config_race(frozenset())


def test_without_the_rule_two_majorities_disagree() -> None:
    h = _stale_config_race(frozenset({"config-before-noop"}))
    committed = h.node(2).raft.log.committed
    noop = next(e for e in h.log(2) if e.term == 2)
    assert committed >= noop.index  # committed by nodes 2 and 3: a majority of C2 only
    h.crash(2)
    h.restart(1)
    for _ in range(2):  # node 1, with C1, wins votes from 4 and 5 (no term-2 entry)
        h.campaign(1)
        h.deliver(lambda m: isinstance(m, RequestVote) and m.dst in (4, 5))
        h.deliver(lambda m: isinstance(m, RequestVoteResponse))
        h.drop()
    assert h.node(1).raft.role is Role.LEADER
    assert h.node(1).raft.log.term(noop.index) != 2  # a leader without a committed entry


def test_a_leader_removing_itself_does_not_answer_reads_alone() -> None:
    """Of voters {1, 2}, leader 1 removes itself: the one voter left is node 2, not the
    leader, so a read needs node 2's confirmation (a regression: it was answered at once)."""
    h = cluster(nodes=2, learners=frozenset())
    h.propose(1, b"x")
    h.stabilize()
    h.change(1, [2])
    h.drop()
    h.read_index(1, b"r1")
    assert h.reads[NodeId(1)] == []
    h.deliver(lambda m: isinstance(m, AppendEntries) or m.dst == 2)  # to node 2 only
    h.drop()
    assert h.reads[NodeId(1)] == []  # node 2's answers were lost: nothing confirmed


def test_a_dead_voter_does_not_count_as_live_for_a_change_right_after_an_election() -> None:
    """A new leader assumes every follower active for its first quorum round; a change
    must not count a voter that has not answered in this term."""
    h = cluster(nodes=3, learners=frozenset())
    h.propose(1, b"x")
    h.stabilize()
    h.crash(3)
    h.transfer(1, 2)
    h.stabilize()
    assert h.node(2).raft.role is Role.LEADER
    with pytest.raises(ConfChangeRefused, match="would lose quorum"):
        h.change(2, [2, 3])  # removing live node 1 would leave only dead node 3 with 2


def test_a_member_added_back_before_it_is_forgotten_starts_from_a_fresh_progress() -> None:
    """A removed node's progress is kept for a round to tell it of its removal; added
    back (on an empty disk) within that round, its old match must not pass for its log."""
    h = cluster(nodes=3, learners=frozenset({3}))
    h.propose(1, b"x")
    h.stabilize()
    h.change(1, [1, 2])  # remove learner 3
    h.stabilize()
    assert NodeId(3) in h.node(1).raft._progress  # not forgotten yet
    h.change(1, [1, 2], [3])  # and add it back
    pr = h.node(1).raft._progress[NodeId(3)]
    assert pr.match == 0


def test_learners_are_not_reported_offline_while_they_answer() -> None:
    h = cluster()
    h.elapse(100)  # several quorum rounds; learner 4 answers every heartbeat
    said = [line for line in h.lines if "node 4" in line and "line" in line.lower()]
    assert said == []


def test_a_removed_node_cut_off_when_the_removal_commits_still_learns_of_it() -> None:
    """The leader keeps telling a removed node until it held the removal's entry at the
    end of a round: cut off for two rounds after the commit, it still learns (forgetting
    it one round after the commit left it running, unaware, for good)."""
    h = cluster(nodes=4, learners=frozenset())
    h.propose(1, b"x")
    h.stabilize()
    h.partition([1, 2, 3], [4])
    index = h.change(1, [1, 2, 3])
    h.stabilize()
    assert h.node(1).raft.log.committed >= index
    h.elapse(25)  # two quorum-check rounds (10 ticks each) with node 4 cut off
    assert NodeId(4) in h.node(1).raft._progress
    h.heal()
    h.elapse(25)
    four = h.node(4).raft
    assert four.log.committed >= index and NodeId(4) not in four.conf.ids()
    h.elapse(25)
    assert NodeId(4) not in h.node(1).raft._progress  # told, then forgotten


def test_a_removed_node_that_never_catches_up_is_forgotten_and_harmless() -> None:
    h = cluster(nodes=4, learners=frozenset())
    h.partition([1, 2, 3], [4])
    index = h.change(1, [1, 2, 3])
    h.stabilize()
    h.elapse(115)  # more than REMOVAL_ROUNDS rounds
    assert NodeId(4) not in h.node(1).raft._progress
    h.heal()
    h.elapse(60)
    # It never hears of its removal, and its elections change nothing for the others.
    assert h.node(4).raft.log.committed < index
    assert h.node(1).raft.role is Role.LEADER
    assert {h.node(n).raft.term for n in (1, 2, 3)} == {h.node(1).raft.term}
