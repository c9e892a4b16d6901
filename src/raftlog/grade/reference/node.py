"""A node of the Raft lab, written the way the lab asks: ``python3 node.py ID``.

Three of these (ids 1..3, host names ``node_1``..``node_3``) form a cluster. Each serves
XML-RPC on port 1234:

- ``request_vote(term, candidate_id) -> bool``: a candidate asks for a vote;
- ``heartbeat(leader_entry) -> bool``: the leader's heartbeat; ``leader_entry`` is a
  struct ``{"term", "leader", "log", "commit"}`` (the leader's whole log of texts and how
  many of them are committed); False tells a stale leader that its term is over;
- ``is_leader() -> bool`` and ``leader_receive_log(text) -> bool`` for the client: True
  once a majority of the nodes holds the entry.

Timings are the lab's (election timeout uniform in 6-10 s, heartbeat every 2 s), all
multiplied by ``LAB_TIME_SCALE`` from the environment (default 1), which ``raftlog grade
--timings`` sets to grade faster. Everything is in memory: a restarted node starts over as
a follower in term 0 and takes the leader's log from its heartbeats.

It prints the lab's lines: ``Node started!``, ``New election term``, ``Voted for node``,
``Received N votes``, ``Sending a heartbeat``, ``Leader committed``, ``Follower
committed``, ``Follower node N is offline``.

The behaviour lives in small methods of :class:`Node` so that a test can derive a broken
node from it (``tests/grade/submissions/``). Standard library only.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
import xmlrpc.client
from socketserver import ThreadingMixIn
from typing import Any
from xmlrpc.server import SimpleXMLRPCServer

SCALE = float(os.environ.get("LAB_TIME_SCALE", "1"))
PORT = 1234
NODES = [1, 2, 3]


def log(text: str) -> None:
    print(text, flush=True)


class Server(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    allow_reuse_address = True


class Transport(xmlrpc.client.Transport):
    """An XML-RPC transport whose calls give up after ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host: Any) -> Any:
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        return conn


class Node:
    election_timeout = (6.0, 10.0)
    heartbeat_interval = 2.0

    def __init__(self, node_id: int) -> None:
        self.id = node_id
        self.peers = [n for n in NODES if n != node_id]
        self.lock = threading.RLock()
        self.append_lock = threading.Lock()
        self.state = "Follower"
        self.term = 0
        self.voted_for: int | None = None
        self.log: list[str] = []
        self.commit = 0  # how many entries of the log are committed
        self.offline: set[int] = set()
        self.last_reset = time.monotonic()
        self.timeout = self.new_timeout()

    # -- timings ---------------------------------------------------------------------

    def new_timeout(self) -> float:
        low, high = self.election_timeout
        return random.uniform(low, high) * SCALE

    def reset_timer(self) -> None:
        self.last_reset = time.monotonic()
        self.timeout = self.new_timeout()

    def rpc(self, peer: int) -> xmlrpc.client.ServerProxy:
        wait = max(0.2, self.heartbeat_interval * SCALE / 2)
        return xmlrpc.client.ServerProxy(f"http://node_{peer}:{PORT}", transport=Transport(wait))

    # -- votes -----------------------------------------------------------------------

    def request_vote(self, term: int, candidate_id: int) -> bool:
        with self.lock:
            if term > self.term:
                self.become_follower(term)
            if self.grant_vote(term, candidate_id):
                self.voted_for = candidate_id
                self.reset_timer()
                log(f"Voted for node {candidate_id} in term {term}")
                return True
            why = (
                f"term {term} < {self.term}"
                if term < self.term
                else f"already voted for {self.voted_for}"
            )
            log(f"Didn't vote for {candidate_id} ({why})")
            return False

    def grant_vote(self, term: int, candidate_id: int) -> bool:
        return term == self.term and self.voted_for in (None, candidate_id)

    def election_loop(self) -> None:
        while True:
            time.sleep(0.02)
            with self.lock:
                expired = time.monotonic() - self.last_reset >= self.timeout
                if self.state == "Leader" or not expired:
                    continue
                self.term += 1
                self.state = "Candidate"
                self.voted_for = self.id
                self.reset_timer()
                term = self.term
                log(f"New election term {term}. State: Candidate")
            self.campaign(term)

    def campaign(self, term: int) -> None:
        votes = [1]  # its own

        def ask(peer: int) -> None:
            try:
                granted = self.rpc(peer).request_vote(term, self.id)
            except (OSError, xmlrpc.client.Error):
                return
            with self.lock:
                if not granted or self.state != "Candidate" or self.term != term:
                    return
                votes[0] += 1
                if votes[0] * 2 > len(NODES):
                    self.become_leader(votes[0])

        for peer in self.peers:
            threading.Thread(target=ask, args=(peer,), daemon=True).start()

    def become_leader(self, votes: int) -> None:
        self.state = "Leader"
        log(f"Received {votes} votes. State: Leader")
        threading.Thread(target=self.heartbeat_loop, args=(self.term,), daemon=True).start()

    def become_follower(self, term: int) -> None:
        changed = self.state != "Follower"
        if term > self.term:
            self.term = term
            self.voted_for = None
        self.state = "Follower"
        if changed:
            log(f"Term {self.term}: a leader or a newer term exists. State: Follower")

    # -- heartbeats and replication --------------------------------------------------

    def heartbeat_loop(self, term: int) -> None:
        while True:
            with self.lock:
                if self.state != "Leader" or self.term != term:
                    return
            log("Sending a heartbeat to followers")
            started = time.monotonic()
            self.replicate()
            time.sleep(max(0.0, self.heartbeat_interval * SCALE - (time.monotonic() - started)))

    def replicate(self) -> int:
        """Send the log to every follower; commit what a majority holds. Returns how many
        nodes hold the log as sent (this one included)."""
        with self.lock:
            entry: dict[str, Any] = {
                "term": self.term,
                "leader": self.id,
                "log": list(self.log),
                "commit": self.commit,
            }
            sent_term = self.term
        acks = [1]
        done = threading.Lock()

        def send(peer: int) -> None:
            try:
                ok = self.rpc(peer).heartbeat(entry)
            except (OSError, xmlrpc.client.Error):
                with self.lock:
                    if peer not in self.offline:
                        self.offline.add(peer)
                        log(f"Follower node {peer} is offline")
                return
            with self.lock:
                if peer in self.offline:
                    self.offline.discard(peer)
                    log(f"Follower node {peer} is back online")
                if not ok and self.state == "Leader" and self.term == sent_term:
                    self.become_follower(self.term)
                    self.reset_timer()
            if ok:
                with done:
                    acks[0] += 1

        threads = [threading.Thread(target=send, args=(p,), daemon=True) for p in self.peers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if acks[0] * 2 > len(NODES):
            self.commit_up_to(len(entry["log"]), sent_term)
        return acks[0]

    def commit_up_to(self, count: int, term: int) -> None:
        with self.lock:
            if self.state != "Leader" or self.term != term:
                return
            while self.commit < min(count, len(self.log)):
                log(f"Leader committed {self.log[self.commit]!r}")
                self.commit += 1

    def heartbeat(self, leader_entry: dict[str, Any]) -> bool:
        with self.lock:
            term = int(leader_entry["term"])
            if term < self.term:
                return False
            if self.on_heartbeat_as_leader(term):
                return True
            if term > self.term or self.state != "Follower":
                self.become_follower(term)
            self.reset_timer()
            log(f"Heartbeat received from leader {leader_entry['leader']}")
            self.log = [str(text) for text in leader_entry["log"]]
            commit = min(int(leader_entry["commit"]), len(self.log))
            while self.commit < commit:
                log(f"Follower committed {self.log[self.commit]!r}")
                self.commit += 1
            self.commit = min(self.commit, len(self.log))
            return True

    def on_heartbeat_as_leader(self, term: int) -> bool:
        """True: ignore this heartbeat (the reference node never does)."""
        return False

    # -- the client ------------------------------------------------------------------

    def is_leader(self) -> bool:
        with self.lock:
            return self.state == "Leader"

    def leader_receive_log(self, text: str) -> bool:
        with self.append_lock:
            with self.lock:
                if self.state != "Leader":
                    return False
                log(f"Leader received log {text!r} from client")
                self.log.append(text)
                index = len(self.log)
            self.replicate()
            with self.lock:
                return self.state == "Leader" and self.commit >= index

    # -- running ---------------------------------------------------------------------

    def serve(self) -> None:
        server = Server(("0.0.0.0", PORT), logRequests=False, allow_none=False)
        for name in ("request_vote", "heartbeat", "is_leader", "leader_receive_log"):
            server.register_function(getattr(self, name), name)
        with self.lock:
            self.reset_timer()
            log(f"Node started! State: {self.state}. Term: {self.term}")
        threading.Thread(target=self.election_loop, daemon=True).start()
        server.serve_forever()


def main(node_class: type[Node] = Node) -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) not in NODES:
        raise SystemExit(f"usage: python3 node.py ID (ID one of {NODES})")
    node_class(int(sys.argv[1])).serve()


if __name__ == "__main__":
    main()
