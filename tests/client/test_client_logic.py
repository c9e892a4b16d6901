"""The client's retry, backoff and leader-finding logic, against fake nodes."""

from __future__ import annotations

import asyncio
import base64
import random
import time
from typing import Any

import pytest
from aiohttp import web
from clientfakes import DEFAULT_CODE, HANG, RecordingClient, err, fake_cluster, ok, run

from raftlog import wire
from raftlog.client import (
    AppendResult,
    AsyncClient,
    BadRequest,
    ChangeRefused,
    Client,
    ClientError,
    NoLeader,
    OutcomeUnknown,
    Record,
    StaleRequest,
    Unavailable,
)
from raftlog.client.aio import BACKOFF_BASE, BACKOFF_MAX, backoff_delay, normalize_endpoint
from raftlog.local.cluster import free_ports

STATUS = {
    "id": 1,
    "state": "Leader",
    "term": 3,
    "leader": 1,
    "vote": 1,
    "commit": 7,
    "applied": 7,
    "last_index": 7,
    "last_term": 3,
    "first_index": 1,
    "snapshot_index": 0,
    "voters": [1, 2],
    "learners": [],
    "conf_index": 0,
    "client_url": None,
    "event_loop": "asyncio",
    "peers": [],
}


def test_endpoints_are_normalized_and_checked() -> None:
    assert normalize_endpoint("127.0.0.1:1234") == "http://127.0.0.1:1234"
    assert normalize_endpoint(" http://node_1:1234/ ") == "http://node_1:1234"
    assert normalize_endpoint("https://n:1") == "https://n:1"
    for bad in ("", "ftp://x:1", "http://x:1/v1/log", "http://x:1?a=b"):
        with pytest.raises(ValueError):
            normalize_endpoint(bad)
    with pytest.raises(ValueError):
        AsyncClient([])
    with pytest.raises(ValueError):
        AsyncClient(["a:1"], client_id="x" * 129)
    assert AsyncClient("a:1, b:2").seeds == ("http://a:1", "http://b:2")


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt)
        delays = [backoff_delay(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert backoff_delay(1000, rng) <= BACKOFF_MAX


def test_append_retries_503_with_the_same_seq_and_new_appends_take_new_seqs() -> None:
    async def main() -> None:
        async with fake_cluster(1, leader=1) as (a,):
            a.script("POST /v1/log", err(503, "no leader"), err(503, "no leader"), ok(5), ok(6))
            async with RecordingClient([a.url], timeout=5, retry_for=10) as client:
                assert await client.append("x") == AppendResult(5, 1, False)
                assert (await client.append(b"\x00\xff")).index == 6
            posts = a.posts()
            assert [p["seq"] for p in posts] == [1, 1, 1, 2]
            assert {p["client_id"] for p in posts} == {client.client_id}
            assert len(client.client_id) == 32
            assert posts[0]["data"] == "x" and "encoding" not in posts[0]
            assert posts[3] == {
                "data": base64.b64encode(b"\x00\xff").decode(),
                "encoding": "base64",
                "client_id": client.client_id,
                "seq": 2,
            }
            assert len(client.pauses) == 2  # one pause per failed round

    run(main())


def test_a_leader_hint_is_followed_at_once_and_remembered() -> None:
    async def main() -> None:
        async with fake_cluster(3, leader=None) as (a, b, c):
            a.script("POST /v1/log", err(503, "leader 2 unreachable", leader=2))
            b.script("POST /v1/log", ok(3), ok(4))
            async with RecordingClient([a.url], timeout=5, retry_for=10) as client:
                assert (await client.append("x")).index == 3
                assert client.pauses == []  # the hint was followed without a pause
                assert client.known_leader == 2
                assert client.members == {1: a.url, 2: b.url, 3: c.url}
                assert (await client.append("y")).index == 4
            assert [p["seq"] for p in a.posts()] == [1]  # the second went to 2 directly
            assert [p["seq"] for p in b.posts()] == [1, 2]
            assert c.posts() == []

    run(main())


def test_the_known_leader_is_asked_first() -> None:
    async def main() -> None:
        async with fake_cluster(3, leader=3) as (a, b, c):
            for node in (a, b, c):
                node.script("POST /v1/log", ok(node.id * 10))
            async with AsyncClient([a.url, b.url], timeout=5, retry_for=10) as client:
                assert (await client.append("first")).index == 10  # via the first seed
                assert client.known_leader == 3  # learnt after the first success
                assert (await client.append("second")).index == 30
                assert await client.leader() == 3

    run(main())


def test_the_seeds_stay_candidates_when_advertised_urls_are_unreachable() -> None:
    """As from outside Docker: the members' URLs do not resolve; the seeds forward."""

    async def main() -> None:
        dead = free_ports(2)
        async with fake_cluster(1) as (a,):
            a.nodes_doc = {
                "leader": 2,
                "nodes": [
                    {"id": 1, "client_url": f"http://127.0.0.1:{dead[0]}"},
                    {"id": 2, "client_url": f"http://127.0.0.1:{dead[1]}"},
                ],
            }
            a.script("POST /v1/log", ok(1), ok(2), ok(3))
            async with AsyncClient([a.url], timeout=5, retry_for=10) as client:
                for n in (1, 2, 3):
                    assert (await client.append(str(n))).index == n
            assert [p["seq"] for p in a.posts()] == [1, 2, 3]

    run(main())


def test_a_timeout_is_retried_elsewhere_with_the_same_seq() -> None:
    async def main() -> None:
        async with fake_cluster(2, leader=None) as (a, b):
            a.script("POST /v1/log", HANG)
            b.script("POST /v1/log", ok(9, duplicate=True))
            async with RecordingClient([a.url, b.url], timeout=0.3, retry_for=10) as client:
                result = await client.append("x")
            assert result.duplicate and result.index == 9
            assert a.posts()[0]["seq"] == b.posts()[0]["seq"] == 1
            assert a.posts()[0]["client_id"] == b.posts()[0]["client_id"]

    run(main())


def test_409_not_committed_is_retried_but_stale_and_4xx_are_final() -> None:
    async def main() -> None:
        async with fake_cluster(1, leader=1) as (a,):
            a.script(
                "POST /v1/log",
                err(409, "not committed: leadership lost", leader=1, code=wire.NOT_COMMITTED),
                ok(2),
            )
            async with RecordingClient([a.url], timeout=5, retry_for=10) as client:
                assert (await client.append("x")).index == 2
                assert [p["seq"] for p in a.posts()] == [1, 1]

                a.seen.clear()
                a.script(
                    "POST /v1/log",
                    err(409, "stale request: client 'c' is at seq 9, not 2", code="stale_request"),
                )
                with pytest.raises(StaleRequest) as stale:
                    await client.append("y")
                assert "is at seq 9" in stale.value.message and stale.value.status == 409

                for status in (400, 413):
                    a.script("POST /v1/log", err(status, f"refused {status}"))
                    with pytest.raises(BadRequest) as bad:
                        await client.append("z")
                    assert bad.value.status == status and bad.value.message == f"refused {status}"
                    assert bad.value.doc == {
                        "error": f"refused {status}",
                        "code": DEFAULT_CODE[status],
                    }
                assert [p["seq"] for p in a.posts()] == [2, 3, 4]  # each tried once
                assert not isinstance(bad.value, Unavailable)

    run(main())


def test_a_passing_refusal_of_a_change_is_retried_and_a_final_one_is_not() -> None:
    conf = {
        "index": 9,
        "term": 2,
        "members": [{"id": 3, "role": "learner", "peer": "h:1", "client": None}],
    }
    passing = (
        409,
        {"error": "refused: a change is in progress", "code": "refused", "retryable": True},
    )

    async def main() -> None:
        async with fake_cluster(1, leader=1) as (a,):
            a.script("POST /v1/members", passing, passing, (200, conf))
            async with RecordingClient([a.url], timeout=5, retry_for=10) as client:
                assert await client.add_member(3, "h:1") == conf
                assert len(a.posts()) == 3 and len(client.pauses) == 2

                a.seen.clear()
                a.script(
                    "POST /v1/members/3/promote",
                    err(409, "refused: has not caught up", code=wire.REFUSED),
                )
                with pytest.raises(ChangeRefused) as final:
                    await client.promote_member(3)
                assert not final.value.transient and len(a.posts()) == 1

            a.script("POST /v1/members", passing)
            async with RecordingClient([a.url], timeout=5, retry_for=0.5) as client:
                with pytest.raises(ChangeRefused) as kept:
                    await client.add_member(3, "h:1")
                assert kept.value.transient and "in progress" in kept.value.message

    run(main())


def test_a_final_refusal_after_an_attempt_that_may_have_happened_is_outcome_unknown() -> None:
    """add gets a 504 (the change may have been made), then "already a learner" (maybe
    because of that very attempt): not a plain refusal, the outcome is unknown."""

    async def main() -> None:
        async with fake_cluster(1, leader=1) as (a,):
            a.script(
                "POST /v1/members",
                err(504, "outcome unknown: request timed out"),
                err(409, "refused: node 3 is already a learner", code=wire.REFUSED),
            )
            async with RecordingClient([a.url], timeout=5, retry_for=10) as client:
                with pytest.raises(OutcomeUnknown) as unknown:
                    await client.add_member(3, "h:1")
                text = str(unknown.value)
                assert "already a learner" in text and "may or may not have been made" in text
                assert len(a.posts()) == 2

    run(main())


def test_504s_until_retry_for_give_outcome_unknown_and_a_resend_settles_it() -> None:
    async def main() -> None:
        async with fake_cluster(1, leader=1) as (a,):
            a.script("POST /v1/log", err(504, "outcome unknown: request timed out"))
            async with RecordingClient([a.url], timeout=5, retry_for=0.5) as client:
                began = time.monotonic()
                with pytest.raises(OutcomeUnknown) as unknown:
                    await client.append("x")
                took = time.monotonic() - began
                assert 0.5 <= took < 3
                exc = unknown.value
                assert exc.seq == 1 and exc.client_id == client.client_id
                assert "504" in exc.reason and "outcome unknown" in str(exc)
                assert not isinstance(exc, Unavailable)
                seqs = [p["seq"] for p in a.posts()]
                assert len(seqs) >= 3 and set(seqs) == {1}
                # pauses grow (jittered) and never pass the deadline
                assert len(client.pauses) == len(seqs) - 1 or len(client.pauses) == len(seqs)
                assert sum(client.pauses) <= 0.5 + 1e-6

                a.seen.clear()
                a.script("POST /v1/log", ok(4, duplicate=True), ok(5))
                resent = await client.append("x", seq=exc.seq)
                assert resent.duplicate and resent.index == 4
                assert (await client.append("next")).index == 5
                assert [p["seq"] for p in a.posts()] == [1, 2]

    run(main())


def test_an_unknown_outcome_stays_unknown_after_later_refusals() -> None:
    async def main() -> None:
        async with fake_cluster(1, leader=1) as (a,):
            a.script("POST /v1/log", err(504, "outcome unknown"), err(503, "no leader"))
            async with AsyncClient([a.url], timeout=5, retry_for=0.3) as client:
                with pytest.raises(OutcomeUnknown):
                    await client.append("x")

    run(main())


def test_nothing_reachable_gives_no_leader_after_retry_for() -> None:
    async def main() -> None:
        ports = free_ports(2)
        seeds = [f"127.0.0.1:{p}" for p in ports]
        async with RecordingClient(seeds, timeout=1, retry_for=0.6) as client:
            began = time.monotonic()
            with pytest.raises(NoLeader) as caught:
                await client.append("x")
            assert 0.6 <= time.monotonic() - began < 3
            assert isinstance(caught.value, Unavailable)
            assert len(caught.value.errors) == 2
            assert all("unreachable" in e for e in caught.value.errors)
            assert len(client.pauses) >= 3
            # exponential: each ceiling doubles, so the pauses (bar the last, cut at the
            # deadline) are at least half of base·2^n
            for n, pause in enumerate(client.pauses[:-1]):
                assert pause >= min(BACKOFF_MAX, BACKOFF_BASE * 2**n) / 2
            with pytest.raises(NoLeader):
                await client.read()
            assert await client.leader() is None

    run(main())


def test_one_append_at_a_time_per_client() -> None:
    async def main() -> None:
        in_flight = 0
        most = 0
        index = 0

        async def slow(_request: web.Request) -> tuple[int, Any]:
            nonlocal in_flight, most, index
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0.05)
            in_flight -= 1
            index += 1
            return ok(index)

        async with fake_cluster(1, leader=1) as (a,):
            a.script("POST /v1/log", slow)
            async with AsyncClient([a.url], timeout=5, retry_for=5) as client:
                results = await asyncio.gather(*(client.append(str(i)) for i in range(4)))
            assert most == 1
            assert sorted(r.index for r in results) == [1, 2, 3, 4]
            assert sorted(p["seq"] for p in a.posts()) == [1, 2, 3, 4]

    run(main())


def test_reads_decode_entries_follow_next_and_retry() -> None:
    pages = {
        1: {
            "node": 2,
            "consistency": "linearizable",
            "commit": 4,
            "applied": 4,
            "first_index": 2,
            "entries": [
                {"index": 2, "term": 1, "data": "SET 5"},
                {"index": 3, "term": 1, "data": "AP8=", "encoding": "base64"},
            ],
            "next": 4,
        },
        4: {
            "node": 2,
            "consistency": "linearizable",
            "commit": 4,
            "applied": 4,
            "first_index": 2,
            "entries": [{"index": 4, "term": 2, "data": "ADD 1"}],
            "next": None,
        },
    }

    async def page(request: web.Request) -> tuple[int, Any]:
        return 200, pages[int(request.query.get("from", 1))]  # no "from": the first kept

    async def main() -> None:
        async with fake_cluster(2, leader=None) as (a, b):
            a.script(
                "GET /v1/log", err(504, "could not confirm leadership", code=wire.TIMEOUT), page
            )
            b.script("GET /v1/log", err(503, "no leader"), page)
            async with AsyncClient([a.url, b.url], timeout=5, retry_for=10) as client:
                records = await client.read_all(page=2)
                assert records == [
                    Record(2, 1, b"SET 5"),
                    Record(3, 1, b"\x00\xff"),
                    Record(4, 2, b"ADD 1"),
                ]
                assert records[0].text() == "SET 5"
                assert client.known_leader == 2  # a linearizable read names its server

                a.script(
                    "GET /v1/log",
                    (
                        200,
                        {
                            **pages[4],
                            "consistency": "local",
                            "staleness": {
                                "leader": 2,
                                "applied": 4,
                                "commit": 4,
                                "last_leader_contact_s": 0.25,
                            },
                        },
                    ),
                )
                b.script("GET /v1/log", err(503, "no leader"))
                local = await client.read(consistency="local", start=4)
                assert local.staleness is not None
                assert local.staleness.last_leader_contact_s == 0.25
                assert local.raw["consistency"] == "local" and local.next is None

                a.script("GET /v1/log", err(400, "limit must be at most 10000"))
                with pytest.raises(BadRequest, match="at most 10000"):
                    await client.read(limit=10**6)
            queries = [s.path for s in a.seen + b.seen if s.path.startswith("/v1/log?")]
            assert "/v1/log?limit=2&consistency=linearizable" in queries  # the first kept
            assert "/v1/log?limit=2&consistency=linearizable&from=4" in queries  # "next"

    run(main())


def test_reads_that_time_out_give_unavailable_not_no_leader() -> None:
    async def main() -> None:
        async with fake_cluster(1, leader=1) as (a,):
            a.script("GET /v1/log", err(504, "could not confirm leadership", code=wire.TIMEOUT))
            async with AsyncClient([a.url], timeout=5, retry_for=0.3) as client:
                with pytest.raises(Unavailable) as caught:
                    await client.read()
                assert not isinstance(caught.value, NoLeader)
                assert "could not confirm leadership" in str(caught.value)

    run(main())


def test_cluster_status_marks_unreachable_members() -> None:
    async def main() -> None:
        dead = free_ports(1)[0]
        async with fake_cluster(1) as (a,):
            a.nodes_doc = {
                "leader": 1,
                "nodes": [
                    {"id": 1, "client_url": a.url},
                    {"id": 2, "client_url": f"http://127.0.0.1:{dead}"},
                ],
            }
            a.script("GET /v1/status", (200, {**STATUS, "client_url": a.url}))
            async with AsyncClient([a.url], timeout=2, retry_for=1) as client:
                rows = await client.cluster_status()
                assert [(r.id, r.reachable) for r in rows] == [(1, True), (2, False)]
                assert rows[0].status is not None and rows[0].status.state == "Leader"
                assert rows[0].status.raw["peers"] == []
                assert rows[1].error is not None and "unreachable" in rows[1].error
                assert (await client.status(1)).term == 3
                with pytest.raises(Unavailable):
                    await client.status(f"127.0.0.1:{dead}")
                with pytest.raises(ClientError):
                    await client.status(7)  # no such member

    run(main())


def test_the_blocking_client_runs_from_threads_and_closes() -> None:
    async def main() -> None:
        async with fake_cluster(1, leader=1) as (a,):
            a.script("POST /v1/log", err(503, "no leader"), ok(1), ok(2), ok(3))

            def work() -> Client:
                with Client([a.url], timeout=5, retry_for=10) as client:
                    results = [client.append("x"), client.append(b"y")]
                    assert [r.index for r in results] == [1, 2]
                    assert client.last_seq == 2 and client.known_leader == 1
                return client

            client = await asyncio.to_thread(work)
            assert client.closed
            with pytest.raises(RuntimeError, match="closed"):
                client.append("late")
            client.close()  # idempotent
            assert [p["seq"] for p in a.posts()] == [1, 1, 2]

    run(main())
