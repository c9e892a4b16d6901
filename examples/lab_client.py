"""The lab's client: find the leader with is_leader() over XML-RPC on port 1234 and append
two commands with leader_receive_log(text), printing each commit.

It uses nothing but the standard library, exactly as the lab's client did; unlike it, it
retries until a leader exists instead of giving up after one pass over the nodes.

    python lab_client.py [http://node_1:1234 http://node_2:1234 http://node_3:1234]
"""

from __future__ import annotations

import socket
import sys
import time
import xmlrpc.client

NODES = ["http://node_1:1234", "http://node_2:1234", "http://node_3:1234"]
COMMANDS = ["SET 5", "ADD 1"]


def find_leader(nodes: list[str], deadline: float) -> str:
    while time.monotonic() < deadline:
        for url in nodes:
            try:
                with xmlrpc.client.ServerProxy(url) as node:
                    if node.is_leader():
                        return url
            except (OSError, xmlrpc.client.Error):
                continue  # not up yet, or gone: try the next one
        print("no leader yet, retrying ...", flush=True)
        time.sleep(1.0)
    raise SystemExit("no leader found before the deadline")


def main(argv: list[str]) -> int:
    nodes = argv or NODES
    socket.setdefaulttimeout(30)
    deadline = time.monotonic() + 120
    for command in COMMANDS:
        while True:
            leader = find_leader(nodes, deadline)
            print(f"Leader is {leader}", flush=True)
            try:
                with xmlrpc.client.ServerProxy(leader) as node:
                    committed = node.leader_receive_log(command)
            except (OSError, xmlrpc.client.Error) as exc:
                print(f"{leader} failed: {exc}; looking for the leader again", flush=True)
                continue
            if committed:
                print(f"Committed {command!r}", flush=True)
                break
            print(f"{leader} did not commit {command!r}; looking for the leader again", flush=True)
            if time.monotonic() > deadline:
                raise SystemExit(f"{command!r} was not committed before the deadline")
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
