"""Broken on purpose: election timeouts of 1-2 s and a heartbeat every 0.5 s instead of
the lab's 6-10 s and 2 s (all scaled as the reference's)."""

from raftlog.grade.reference.node import Node, main


class WrongTimeouts(Node):
    election_timeout = (1.0, 2.0)
    heartbeat_interval = 0.5


if __name__ == "__main__":
    main(WrongTimeouts)
