"""Conformance suite for transports (raftlog.transport.base.Transport).

Every test runs against MemoryTransport and TcpTransport (on loopback) and uses only the
protocol: ``start``, ``send``, ``close``, ``peers`` and the ``on_message`` callback.
"""

from __future__ import annotations

import asyncio
import logging
import typing

import msgspec.inspect as mi
import pytest
from transport_testlib import WIRE_TYPES, make_cluster, run, sample, samples, wait_until

from raftlog.core.messages import AppendEntries, Heartbeat, Message, WireMessage
from raftlog.core.types import Entry, NodeId
from raftlog.transport import TransportError

KINDS = ["memory", "tcp", "tls"]


def heartbeat(src: int, dst: int, n: int) -> Heartbeat:
    return Heartbeat(src=NodeId(src), dst=NodeId(dst), term=n, commit=n)


def test_samples_cover_every_message_kind_with_non_default_values() -> None:
    messages = samples(1, 2, salt=1)
    assert [type(m) for m in messages] == list(WIRE_TYPES)
    assert set(WIRE_TYPES) == set(typing.get_args(WireMessage))
    for msg in messages:
        info = mi.type_info(type(msg))
        assert isinstance(info, mi.StructType)
        for f in info.fields:
            if f.default is not mi.NODEFAULT:
                assert getattr(msg, f.name) != f.default, (type(msg).__name__, f.name)


@pytest.mark.parametrize("kind", KINDS)
def test_every_message_kind_arrives_intact_and_in_order_per_link(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2, 3])
        try:
            await cluster.start()
            await cluster.ready()
            sent: dict[tuple[int, int], list[Message]] = {}
            for rnd in range(5):
                for src in (1, 2, 3):
                    for dst in (1, 2, 3):
                        if src == dst:
                            continue
                        for msg in samples(src, dst, salt=rnd * 10 + src):
                            assert cluster.transports[src].send(msg)
                            sent.setdefault((src, dst), []).append(msg)
            total = sum(len(v) for v in sent.values())
            await wait_until(
                lambda: sum(len(v) for v in cluster.inbox.values()) >= total,
                f"{total} messages delivered",
            )
            for (src, dst), messages in sent.items():
                assert cluster.received(dst, src) == messages, (src, dst)
                for got, want in zip(cluster.received(dst, src), messages, strict=True):
                    assert type(got) is type(want)
        finally:
            await cluster.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_a_thousand_messages_keep_their_order(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2])
        try:
            await cluster.start()
            await cluster.ready()
            one_to_two = [heartbeat(1, 2, n) for n in range(1000)]
            two_to_one = [heartbeat(2, 1, n) for n in range(1000)]
            for a, b in zip(one_to_two, two_to_one, strict=True):
                assert cluster.transports[1].send(a)
                assert cluster.transports[2].send(b)
            await wait_until(
                lambda: len(cluster.inbox[1]) == 1000 and len(cluster.inbox[2]) == 1000,
                "2000 messages delivered",
            )
            assert cluster.inbox[2] == one_to_two
            assert cluster.inbox[1] == two_to_one
            await wait_until(lambda: cluster.peers(1)[NodeId(2)].sent == 1000, "sent counted")
            info = cluster.peers(2)[NodeId(1)]
            assert info.received == 1000
            assert info.dropped == 0
        finally:
            await cluster.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_delivery_is_asynchronous_and_on_the_loop(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2])
        try:
            await cluster.start()
            await cluster.ready()
            assert cluster.transports[1].send(heartbeat(1, 2, 1))
            assert cluster.inbox[2] == []  # never delivered inside send()
            await wait_until(lambda: len(cluster.inbox[2]) == 1, "delivery")
        finally:
            await cluster.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_send_to_an_unknown_peer_or_to_itself_returns_false(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2])
        try:
            await cluster.start()
            t1 = cluster.transports[1]
            assert t1.send(heartbeat(1, 99, 1)) is False
            assert t1.send(heartbeat(1, 1, 1)) is False
            assert set(t1.peers()) == {2}
            assert t1.peers()[NodeId(2)].dropped == 0
        finally:
            await cluster.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_send_with_another_nodes_src_is_a_bug_and_raises(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2])
        try:
            with pytest.raises(ValueError, match="sent through node 1"):
                cluster.transports[1].send(heartbeat(2, 1, 1))
        finally:
            await cluster.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_messages_sent_before_start_are_delivered_after_it(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2])
        try:
            await cluster.transports[2].start()
            assert cluster.transports[1].send(heartbeat(1, 2, 7))
            await cluster.transports[1].start()
            await wait_until(lambda: cluster.inbox[2] == [heartbeat(1, 2, 7)], "delivery")
        finally:
            await cluster.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_close_is_clean_idempotent_and_final(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2, 3])
        await cluster.start()
        await cluster.ready()
        t1, t2 = cluster.transports[1], cluster.transports[2]
        assert t1.send(heartbeat(1, 2, 1))
        await wait_until(lambda: len(cluster.inbox[2]) == 1, "first delivery")

        await t2.close()
        await t2.close()  # idempotent
        await asyncio.gather(t2.close(), t2.close())  # and concurrently
        assert t2.send(heartbeat(2, 1, 1)) is False  # closed: dropped
        t1.send(heartbeat(1, 2, 2))  # to a closed peer: queued or dropped, never delivered
        assert t1.send(heartbeat(1, 3, 1))  # the others carry on
        await wait_until(lambda: len(cluster.inbox[3]) == 1, "delivery to node 3")
        assert cluster.inbox[2] == [heartbeat(1, 2, 1)]
        with pytest.raises(TransportError):
            await t2.start()

        await cluster.close()
        await cluster.close()
        # Nothing left running: every task of every transport was awaited.
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_close_before_start_is_fine_and_start_after_close_refused(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2])
        t1 = cluster.transports[1]
        await t1.close()
        assert t1.send(heartbeat(1, 2, 1)) is False
        with pytest.raises(TransportError):
            await t1.start()
        await cluster.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_start_twice_is_refused(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2])
        try:
            await cluster.transports[1].start()
            with pytest.raises(TransportError):
                await cluster.transports[1].start()
        finally:
            await cluster.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_peers_reports_every_peer_and_the_counters(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2, 3])
        try:
            await cluster.start()
            await cluster.ready()
            for n in range(10):
                cluster.transports[1].send(heartbeat(1, 2, n))
            await wait_until(lambda: len(cluster.inbox[2]) == 10, "delivery")
            await wait_until(lambda: cluster.peers(1)[NodeId(2)].sent == 10, "sent counted")
            info = cluster.peers(1)
            assert set(info) == {2, 3}
            assert info[NodeId(2)].node_id == 2
            assert info[NodeId(2)].connected
            assert info[NodeId(2)].queued == 0
            assert info[NodeId(2)].dropped == 0
            assert info[NodeId(3)].sent == 0
            assert cluster.peers(2)[NodeId(1)].received == 10
            await wait_until(lambda: cluster.peers(2)[NodeId(1)].inbound, "inbound seen")
        finally:
            await cluster.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_an_exception_in_on_message_is_logged_and_delivery_goes_on(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="raftlog.transport")

    async def main() -> None:
        cluster = make_cluster(kind, [1, 2])
        got: list[Message] = []

        def fussy(msg: Message) -> None:
            if isinstance(msg, Heartbeat) and msg.term == 1:
                raise RuntimeError("boom")
            got.append(msg)

        cluster.transports[2]._on_message = fussy  # type: ignore[attr-defined]
        try:
            await cluster.start()
            await cluster.ready()
            for n in range(3):
                cluster.transports[1].send(heartbeat(1, 2, n))
            await wait_until(lambda: len(got) == 2, "the other messages")
            assert [m.term for m in got] == [0, 2]
        finally:
            await cluster.close()

    run(main())
    assert any("on_message failed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", KINDS)
def test_large_append_entries_arrive_intact(kind: str) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, [1, 2])
        try:
            await cluster.start()
            await cluster.ready()
            big = AppendEntries(
                src=NodeId(1),
                dst=NodeId(2),
                term=3,
                prev_log_index=10,
                prev_log_term=2,
                entries=tuple(Entry(11 + i, 3, data=bytes([i]) * 100_000) for i in range(20)),
                commit=9,
            )
            msgs = [big, sample(Heartbeat, 1, 2), big]
            for msg in msgs:
                assert cluster.transports[1].send(msg)
            await wait_until(lambda: len(cluster.inbox[2]) == 3, "three messages")
            assert cluster.inbox[2] == msgs
        finally:
            await cluster.close()

    run(main())
