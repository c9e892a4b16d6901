"""Broken on purpose: it saves its role to a file and, started again, comes back as the
leader it was; a leader never steps down, whatever term it hears of."""

import json
from pathlib import Path

from raftlog.grade.reference.node import Node, log, main

STATE = Path("state.json")


class StaysLeader(Node):
    def __init__(self, node_id: int) -> None:
        super().__init__(node_id)
        if STATE.exists():
            saved = json.loads(STATE.read_text())
            self.term, self.state = saved["term"], saved["state"]

    def become_leader(self, votes: int) -> None:
        super().become_leader(votes)
        STATE.write_text(json.dumps({"term": self.term, "state": self.state}))

    def become_follower(self, term: int) -> None:
        if self.state != "Leader":
            super().become_follower(term)

    def on_heartbeat_as_leader(self, term: int) -> bool:
        return self.state == "Leader"

    def serve(self) -> None:
        if self.state == "Leader":
            log(f"Back as the leader of term {self.term}")
            self.become_leader(0)
        super().serve()


if __name__ == "__main__":
    main(StaysLeader)
