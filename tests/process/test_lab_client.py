"""The XML-RPC contract exactly as the lab's client uses it."""

from __future__ import annotations

import asyncio
import xmlrpc.client

import pytest
from procsupport import run

from scaffold import running_cluster


def _lab_client(urls: list[str]) -> tuple[str, list[bool], list[bool]]:
    """What the lab's client does, with nothing but the standard library."""
    leader_url = ""
    answers = []
    for url in urls:
        with xmlrpc.client.ServerProxy(url) as node:
            answer = node.is_leader()
            answers.append(answer)
            if answer:
                leader_url = url
    results = []
    with xmlrpc.client.ServerProxy(leader_url) as leader:
        for command in ("SET 5", "ADD 1"):
            results.append(leader.leader_receive_log(command))
    return leader_url, answers, results


def test_the_lab_client_finds_the_leader_and_commits_both_commands() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            urls = [n.url for n in cluster.nodes.values()]
            leader_url, answers, results = await asyncio.to_thread(_lab_client, urls)
            assert leader_url == cluster.nodes[leader].url
            assert sorted(answers) == [False, False, True]
            assert all(type(a) is bool for a in answers)
            assert results == [True, True] and all(type(r) is bool for r in results)
            for i in cluster.nodes:
                entries = None
                for _ in range(200):
                    entries = await cluster.log(i)
                    if entries == ["SET 5", "ADD 1"]:
                        break
                    await asyncio.sleep(0.02)
                assert entries == ["SET 5", "ADD 1"], (i, entries)

    run(main())


def test_a_follower_answers_false_never_a_fault_and_bad_calls_get_faults() -> None:
    async def main() -> None:
        async with running_cluster(3) as cluster:
            leader = await cluster.leader()
            follower = next(i for i in cluster.nodes if i != leader)
            url = cluster.nodes[follower].url

            def calls() -> None:
                with xmlrpc.client.ServerProxy(url) as node:
                    assert node.is_leader() is False
                    assert node.leader_receive_log("SET 9") is False
                    with pytest.raises(xmlrpc.client.Fault, match="unknown method"):
                        node.request_vote(1, 2)
                    with pytest.raises(xmlrpc.client.Fault, match="bad arguments"):
                        node.leader_receive_log()
                # The lab's proxies may also point at "/", not "/RPC2".
                with xmlrpc.client.ServerProxy(url + "/") as node:
                    assert node.is_leader() is False

            await asyncio.to_thread(calls)
            assert await cluster.log(follower) == []

    run(main())
