"""Broken on purpose: the leader answers True as soon as it has the entry itself, before
a majority holds it (followers get it with the next heartbeat)."""

from raftlog.grade.reference.node import Node, log, main


class EarlyTrue(Node):
    def leader_receive_log(self, text: str) -> bool:
        with self.lock:
            if self.state != "Leader":
                return False
            log(f"Leader received log {text!r} from client")
            self.log.append(text)
            log(f"Leader committed {text!r}")
            self.commit = len(self.log)
            return True


if __name__ == "__main__":
    main(EarlyTrue)
