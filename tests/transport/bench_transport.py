"""Throughput of TcpTransport between two processes on loopback (a script, not a test).

    .venv/bin/python tests/transport/bench_transport.py [--count N]

Node 1 (this process) sends to node 2 (a child process) as fast as its bounded queue
accepts (when ``send`` returns False it yields to the event loop and tries again); node 2
counts what ``on_message`` delivers. Reported: messages/s and MB/s of payload from the
first delivered message to the last, for small heartbeats and for AppendEntries of 64
entries of 100 bytes each.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import time
from multiprocessing.connection import Connection

import msgspec

from raftlog.core.messages import AppendEntries, Heartbeat, Message
from raftlog.core.types import Entry, NodeId
from raftlog.transport import TcpConfig, TcpTransport

CLUSTER = "bench"


def receiver(sock: socket.socket, sender_port: int, count: int, pipe: Connection) -> None:
    async def main() -> None:
        done = asyncio.Event()
        first = 0.0
        received = 0

        def on_message(msg: Message) -> None:
            nonlocal first, received
            if received == 0:
                first = time.perf_counter()
            received += 1
            if received == count:
                done.set()

        config = TcpConfig(
            cluster_id=CLUSTER, node_id=NodeId(2), peers={NodeId(1): ("127.0.0.1", sender_port)}
        )
        transport = TcpTransport(config, on_message, sock=sock)
        await transport.start()
        cpu = time.process_time()
        pipe.send("ready")
        await done.wait()
        pipe.send((received, time.perf_counter() - first, time.process_time() - cpu))
        await transport.close()

    asyncio.run(main())


def run(label: str, msg: Message, count: int) -> None:
    rsock = socket.socket()
    rsock.bind(("127.0.0.1", 0))
    ssock = socket.socket()
    ssock.bind(("127.0.0.1", 0))
    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(
        target=receiver, args=(rsock, ssock.getsockname()[1], count, child)
    )
    proc.start()
    rsock_port = rsock.getsockname()[1]
    rsock.close()
    assert parent.recv() == "ready"

    async def main() -> None:
        config = TcpConfig(
            cluster_id=CLUSTER,
            node_id=NodeId(1),
            peers={NodeId(2): ("127.0.0.1", rsock_port)},
        )
        transport = TcpTransport(config, lambda m: None, sock=ssock)
        await transport.start()
        cpu = time.process_time()
        sent = 0
        while sent < count:
            if transport.send(msg):
                sent += 1
            else:
                await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        received, seconds, receiver_cpu = await loop.run_in_executor(None, parent.recv)
        sender_cpu = time.process_time() - cpu
        info = transport.peers()[NodeId(2)]
        await transport.close()
        size = len(msgspec.msgpack.encode(msg)) + 4
        print(
            f"{label:<34} {received / seconds:>10,.0f} msg/s  "
            f"{received * size / seconds / 1e6:>7.1f} MB/s  "
            f"({received} x {size} B in {seconds:.2f} s; CPU s: sender {sender_cpu:.2f}, "
            f"receiver {receiver_cpu:.2f}; {info.dropped} sends refused by a full queue, retried)"
        )

    asyncio.run(main())
    proc.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="heartbeats to send")
    args = parser.parse_args()
    heartbeat = Heartbeat(src=NodeId(1), dst=NodeId(2), term=7, commit=12345)
    entries = tuple(Entry(index=1000 + i, term=7, data=bytes(100)) for i in range(64))
    append = AppendEntries(
        src=NodeId(1),
        dst=NodeId(2),
        term=7,
        prev_log_index=999,
        prev_log_term=7,
        entries=entries,
        commit=990,
    )
    run("Heartbeat", heartbeat, args.count)
    run("AppendEntries (64 x 100-byte entries)", append, max(args.count // 10, 1))


if __name__ == "__main__":
    main()
