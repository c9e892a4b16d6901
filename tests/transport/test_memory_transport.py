"""MemoryNetwork's fault injection and MemoryTransport specifics (the shared contract is
in test_transport_conformance.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from transport_testlib import run

from raftlog.core.messages import Heartbeat, Message
from raftlog.core.types import NodeId
from raftlog.transport import MemoryNetwork, MemoryTransport, TransportError

A, B, C = NodeId(1), NodeId(2), NodeId(3)


def hb(src: int, dst: int, n: int = 0) -> Heartbeat:
    return Heartbeat(src=NodeId(src), dst=NodeId(dst), term=n, commit=0)


class Net:
    """Three started nodes on one MemoryNetwork, each with an inbox."""

    def __init__(self, **kwargs: int) -> None:
        self.network = MemoryNetwork(**kwargs)
        self.inbox: dict[int, list[Message]] = {1: [], 2: [], 3: []}
        self.t = {n: self.network.create(NodeId(n), self.inbox[n].append) for n in (1, 2, 3)}

    async def start(self) -> Net:
        for transport in self.t.values():
            await transport.start()
        return self

    async def settle(self) -> None:
        """Let every message sent so far arrive (delivery takes one turn of the loop)."""
        await asyncio.sleep(0)

    def everyone_sends(self, n: int = 0) -> None:
        for src in (1, 2, 3):
            for dst in (1, 2, 3):
                if src != dst:
                    assert self.t[src].send(hb(src, dst, n))

    def links(self) -> set[tuple[int, int]]:
        """Which (src, dst) links delivered something since the last call."""
        got = {(m.src, dst) for dst, msgs in self.inbox.items() for m in msgs}
        for msgs in self.inbox.values():
            msgs.clear()
        return got


ALL = {(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)}


def test_faults_cut_links_and_heal_restores_them() -> None:
    async def main() -> None:
        net = await Net().start()
        cases: list[tuple[str, set[tuple[int, int]]]] = [
            ("cut", ALL - {(1, 2), (2, 1)}),
            ("cut_one_way", ALL - {(1, 2)}),
            ("isolate", {(2, 3), (3, 2)}),
            ("down", {(2, 3), (3, 2)}),
        ]
        for fault, expected in cases:
            network = net.network
            if fault == "cut":
                network.cut(A, B)
            elif fault == "cut_one_way":
                network.cut_one_way(A, B)
            elif fault == "isolate":
                network.isolate(A)
            else:
                network.down(A)
            net.everyone_sends()  # send() still says True: lost on the way
            await net.settle()
            assert net.links() == expected, fault
            network.heal()
            net.everyone_sends()
            await net.settle()
            assert net.links() == ALL, f"after heal of {fault}"

    run(main())


def test_up_undoes_down_and_lost_messages_count_as_dropped() -> None:
    async def main() -> None:
        net = await Net().start()
        net.network.down(B)
        assert net.t[1].send(hb(1, 2))
        await net.settle()
        assert net.inbox[2] == []
        assert net.t[1].peers()[B].dropped == 1
        assert not net.t[1].peers()[B].connected
        net.network.up(B)
        assert net.t[1].peers()[B].connected
        assert net.t[1].send(hb(1, 2, 5))
        await net.settle()
        assert net.inbox[2] == [hb(1, 2, 5)]
        info = net.t[1].peers()[B]
        assert (info.sent, info.dropped) == (1, 1)
        assert net.t[2].peers()[A].received == 1

    run(main())


def test_a_fault_catches_messages_already_in_flight() -> None:
    async def main() -> None:
        net = await Net().start()
        assert net.t[1].send(hb(1, 2))
        net.network.cut(A, B)  # before the loop delivered it
        await net.settle()
        assert net.inbox[2] == []

    run(main())


def test_isolation_covers_nodes_added_later() -> None:
    async def main() -> None:
        network = MemoryNetwork()
        inbox: list[Message] = []
        one = network.create(A, lambda m: None)
        await one.start()
        network.isolate(A)
        late = network.create(NodeId(4), inbox.append)
        await late.start()
        assert NodeId(4) in one.peers()  # peers=None: every node of the network
        one.send(hb(1, 4))
        await asyncio.sleep(0)
        assert inbox == []

    run(main())


def test_the_link_queue_is_bounded_and_drops_beyond_it() -> None:
    async def main() -> None:
        net = await Net(queue_size=4).start()
        results = [net.t[1].send(hb(1, 2, n)) for n in range(6)]
        assert results == [True] * 4 + [False] * 2
        assert net.t[1].peers()[B].queued == 4
        await net.settle()
        assert [m.term for m in net.inbox[2]] == [0, 1, 2, 3]
        info = net.t[1].peers()[B]
        assert (info.queued, info.sent, info.dropped) == (0, 4, 2)
        assert net.t[1].send(hb(1, 2, 6))  # room again

    run(main())


def test_explicit_peers_limit_who_can_be_reached() -> None:
    async def main() -> None:
        network = MemoryNetwork()
        one = network.create(A, lambda m: None, peers=[B])
        network.create(B, lambda m: None)
        network.create(C, lambda m: None)
        assert set(one.peers()) == {B}
        assert one.send(hb(1, 2))
        assert not one.send(hb(1, 3))

    run(main())


def test_a_node_restarts_with_a_new_transport() -> None:
    async def main() -> None:
        network = MemoryNetwork()
        inbox: list[Message] = []
        one = network.create(A, lambda m: None)
        two = network.create(B, inbox.append)
        with pytest.raises(TransportError, match="already has an open transport"):
            network.create(B, inbox.append)
        await one.start()
        await two.start()
        await two.close()
        one.send(hb(1, 2, 1))  # to a stopped node: lost
        await asyncio.sleep(0)
        assert one.peers()[B].dropped == 1
        again = network.factory(B)(inbox.append)
        assert isinstance(again, MemoryTransport)
        one.send(hb(1, 2, 2))  # in flight when node 2 comes back: arrives
        await again.start()
        await asyncio.sleep(0)
        assert inbox == [hb(1, 2, 2)]
        assert network.node_ids == {A, B}

    run(main())


def test_a_transport_that_is_not_started_receives_nothing() -> None:
    async def main() -> None:
        network = MemoryNetwork()
        inbox: list[Message] = []
        one = network.create(A, lambda m: None)
        network.create(B, inbox.append)
        assert one.send(hb(1, 2))
        await asyncio.sleep(0)
        assert inbox == []
        assert one.peers()[B].dropped == 1
        assert not one.peers()[B].connected

    run(main())


def test_messages_cross_as_bytes_unless_told_otherwise() -> None:
    async def main() -> None:
        for encode in (True, False):
            network = MemoryNetwork(encode=encode)
            inbox: list[Message] = []
            one = network.create(A, lambda m: None)
            two = network.create(B, inbox.append)
            await two.start()
            msg = hb(1, 2, 3)
            one.send(msg)
            await asyncio.sleep(0)
            assert inbox == [msg]
            assert (inbox[0] is msg) is not encode

    run(main())


def test_send_outside_the_loop_is_a_usage_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    network = MemoryNetwork()
    one = network.create(A, lambda m: None)
    network.create(B, lambda m: None)
    with pytest.raises(RuntimeError):
        one.send(hb(1, 2))
    with pytest.raises(ValueError):
        MemoryNetwork(queue_size=0)
