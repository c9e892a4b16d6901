"""Broken on purpose: votes for every candidate whose term is not behind its own, so two
candidates of one term can both win (two leaders at once)."""

from raftlog.grade.reference.node import Node, main


class TwoLeaders(Node):
    def grant_vote(self, term: int, candidate_id: int) -> bool:
        return term >= self.term  # forgets whom it already voted for


if __name__ == "__main__":
    main(TwoLeaders)
