"""The fuzz targets, small (``make fuzz`` runs them at 1,000,000 inputs): every target
with a few thousand inputs in all and no failure; each target's checks caught failing on
an injected bug; hypothesis properties of the decoders; regressions of what fuzzing found.
"""

from __future__ import annotations

import asyncio
import logging
import random
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import api_targets
import msgspec
import peer_targets
import pytest
from api_targets import FastPath, HttpApi, JsonBodies, XmlRpc, http_request
from fuzzlib import Target, Violation, quiet_loggers, run_target
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peer_targets import TAGS, Handshake, PeerFrames, PeerMessages
from run_fuzz import main as fuzz_main
from targets import all_targets

from raftlog.api.fastpath import FastPathProtocol
from raftlog.api.http import ClientApi
from raftlog.core import messages
from raftlog.core.config import Config
from raftlog.core.errors import UsageError
from raftlog.core.messages import AppendEntries, Heartbeat, InstallSnapshot, message_problem
from raftlog.core.raft import Raft
from raftlog.core.types import (
    MAX_INT,
    ConfState,
    Entry,
    EntryKind,
    Member,
    NodeId,
    SnapshotMeta,
    encode_conf,
    split_address,
)
from raftlog.storage.memory import MemoryStorage
from raftlog.transport.tcp import TcpTransport

SMALL = {
    "peer_messages": 1500,
    "peer_frames": 800,
    "handshake": 800,
    "json_bodies": 800,
    "fastpath": 600,
    "xmlrpc": 150,
    "http_api": 60,
}
"""Inputs per target in the default suite: a few thousand in all, a few seconds."""


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with quiet_loggers("raftlog", "aiohttp"):
        yield


def _run(target: Target, count: int, seed: int = 1, out: Path | None = None) -> Any:
    return asyncio.run(run_target(target, count, seed, out, max_failures=1))


def test_every_target_has_a_small_count() -> None:
    assert sorted(t.name for t in all_targets()) == sorted(SMALL)


@pytest.mark.parametrize("target", all_targets(), ids=lambda t: t.name)
def test_the_target_finds_nothing_wrong(target: Target, tmp_path: Path) -> None:
    report = _run(target, SMALL[target.name], out=tmp_path)
    assert report.failures == [], "\n".join(report.lines())
    assert report.inputs == SMALL[target.name]
    # Both outcomes occur: the inputs reach past the first check.
    assert report.accepted and report.rejected, "\n".join(report.lines())


# -- the checks can fail ---------------------------------------------------------------


def test_a_validation_that_lets_everything_through_is_caught(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(peer_targets, "message_problem", lambda msg: None)
    report = _run(PeerMessages(), 2000, out=tmp_path)
    assert report.failures, "\n".join(report.lines())
    failure = report.failures[0]
    assert failure.file is not None and failure.file.exists()
    assert "replay:" in failure.file.with_suffix(".txt").read_text()
    # The saved input fails again on replay, and passes once the bug is gone.
    assert fuzz_main(["--replay", str(failure.file)]) == 1
    monkeypatch.undo()
    assert fuzz_main(["--replay", str(failure.file)]) == 0


def test_a_reader_that_loses_a_frame_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = TcpTransport._receive

    async def lossy(self: TcpTransport, reader: Any, peer: Any) -> None:
        handler = self._on_message
        seen = [0]

        def every_other(msg: Any) -> None:
            seen[0] += 1
            if seen[0] % 2:
                handler(msg)

        self._on_message = every_other
        try:
            await original(self, reader, peer)
        finally:
            self._on_message = handler

    monkeypatch.setattr(TcpTransport, "_receive", lossy)
    report = _run(PeerFrames(), 800)
    assert report.failures and "delivered" in report.failures[0].error


def test_a_handshake_that_checks_nothing_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TcpTransport, "_hello_problem", lambda self, hello, expected, writer: None)
    report = _run(Handshake(), 800)
    assert report.failures and "accepted" in report.failures[0].error


def test_a_body_bound_left_out_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    class Ticks(msgspec.Struct, forbid_unknown_fields=True):
        ticks: int = 1  # no bounds: 0 and 10**20 ticks pass

    kinds = [(k, msgspec.json.Decoder(Ticks) if k == "tick" else d) for k, d in api_targets.KINDS]
    monkeypatch.setattr(api_targets, "KINDS", kinds)
    report = _run(JsonBodies(), 800)
    assert report.failures and "tick" in report.failures[0].error


def test_a_fast_path_that_drops_bytes_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = FastPathProtocol._hand_over

    def forgetful(self: FastPathProtocol, unanswered: bytes) -> None:
        original(self, unanswered[1:])

    monkeypatch.setattr(FastPathProtocol, "_hand_over", forgetful)
    report = _run(FastPath(), 600)
    assert report.failures and "aiohttp" in report.failures[0].error


def test_an_xmlrpc_handler_that_raises_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xmlrpc.client, "loads", lambda *a, **k: ([[]] * 3, "is_leader"))
    report = _run(XmlRpc(), 20)
    assert report.failures


def test_an_internal_error_of_the_http_api_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: ClientApi, request: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(ClientApi, "nodes", broken)
    target = HttpApi()

    async def main() -> None:
        async with target:
            with pytest.raises(Violation, match="500"):
                await target.check(http_request("GET", "/v1/nodes", b""))

    asyncio.run(main())


# -- hypothesis: the decoders on structured and random input ---------------------------

_INT = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_SMALL = st.integers(min_value=-2, max_value=12)
_FIELD = st.one_of(_SMALL, _INT, st.booleans(), st.binary(max_size=8), st.text(max_size=8))


def _doc(tag: str) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {"type": st.just(tag)}
    for name in TAGS[tag]:
        if name in ("src", "dst"):
            fields[name] = st.sampled_from([1, 2, 3, 0, 2**63])
        elif name == "entries":
            entry = st.tuples(_SMALL, _SMALL, st.sampled_from([0, 1, 2, 7]), st.binary(max_size=8))
            fields[name] = st.lists(entry.map(list), max_size=4)
        elif name == "snapshot":
            conf = st.fixed_dictionaries(
                {"voters": st.lists(_SMALL, max_size=3), "learners": st.lists(_SMALL, max_size=2)}
            )
            fields[name] = st.fixed_dictionaries({"index": _SMALL, "term": _SMALL, "conf": conf})
        else:
            fields[name] = _FIELD
    return st.fixed_dictionaries(fields)


MESSAGE_DOCS = st.sampled_from(sorted(TAGS)).flatmap(_doc)
PROPERTY = settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])


_SHARED: dict[str, Target] = {}


def _check(kind: type[Target], data: bytes) -> None:
    """One input through a target (in-process ones only: made once, shared by examples,
    on one event loop: a loop per example would cost more than the check)."""
    target = _SHARED.setdefault(kind.__name__, kind())
    runner = _SHARED.setdefault("runner", asyncio.Runner())  # type: ignore[arg-type]
    runner.run(target.check(data))  # type: ignore[attr-defined]


@pytest.fixture(scope="module", autouse=True)
def _close_runner() -> Iterator[None]:
    yield
    runner = _SHARED.pop("runner", None)
    if runner is not None:
        runner.close()  # type: ignore[attr-defined]


@PROPERTY
@given(MESSAGE_DOCS)
def test_any_message_is_refused_or_valid_and_stepped(doc: dict[str, Any]) -> None:
    _check(PeerMessages, msgspec.msgpack.encode(doc))


@PROPERTY
@given(st.binary(max_size=300))
def test_any_bytes_as_a_message(data: bytes) -> None:
    _check(PeerMessages, data)


@PROPERTY
@given(st.lists(MESSAGE_DOCS.map(msgspec.msgpack.encode), max_size=4), st.binary(max_size=12))
def test_any_frames_then_any_tail(payloads: list[bytes], tail: bytes) -> None:
    _check(PeerFrames, b"".join(len(p).to_bytes(4, "big") + p for p in payloads) + tail)


@PROPERTY
@given(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["hello", "refused", "x"]),
            "cluster_id": st.sampled_from(["fuzz-cluster", "other", ""]),
            "node_id": _INT,
            "version": st.sampled_from([2, 1, 3]),
            "address": st.text(max_size=20),
        }
    )
)
def test_any_hello(doc: dict[str, Any]) -> None:
    payload = msgspec.msgpack.encode(doc)
    _check(Handshake, len(payload).to_bytes(4, "big") + payload)


@PROPERTY
@given(st.integers(0, 7), st.dictionaries(st.text(max_size=12), _FIELD, max_size=4))
def test_any_json_object_as_a_request_body(kind: int, doc: dict[str, Any]) -> None:
    try:
        body = msgspec.json.encode(doc)
    except (OverflowError, UnicodeEncodeError):
        return
    _check(JsonBodies, bytes([kind]) + body)


@PROPERTY
@given(st.binary(max_size=400))
def test_any_bytes_on_the_fast_path(data: bytes) -> None:
    _check(FastPath, b"POST /v1/log HTTP/1.1\r\n" + data)


# -- regressions: what fuzzing found -----------------------------------------------------

N1, N2 = NodeId(1), NodeId(2)


@pytest.mark.parametrize(
    ("msg", "problem"),
    [
        (Heartbeat(N1, N2, MAX_INT + 1, 0), "bad header"),
        (Heartbeat(NodeId(2**64 - 1), N2, 1, 0), "bad header"),
        (Heartbeat(N1, N2, 1, MAX_INT + 1), "commit out of range"),
        (AppendEntries(N1, N2, 1, 0, 0, (Entry(1, 0),), 0), "out of order"),
        (
            AppendEntries(N1, N2, 1, 0, 0, (Entry(1, 1, EntryKind.CONF_CHANGE, b"\xc1"),), 0),
            "undecodable",
        ),
        (
            AppendEntries(
                N1,
                N2,
                1,
                0,
                0,
                (
                    Entry(
                        1,
                        1,
                        EntryKind.CONF_CHANGE,
                        encode_conf(ConfState(frozenset({N1}), frozenset({N1}))),
                    ),
                ),
                0,
            ),
            "both voter and learner",
        ),
        (
            InstallSnapshot(
                N1,
                N2,
                2,
                SnapshotMeta(3, 1, ConfState(frozenset({N1}), members=(Member(N1, "host:99999"),))),
            ),
            "bad peer address",
        ),
    ],
)
def test_messages_fuzzing_found_are_refused(msg: messages.WireMessage, problem: str) -> None:
    found = message_problem(msg)
    assert found is not None and problem in found


def test_a_configuration_entry_that_does_not_decode_would_stop_the_core() -> None:
    """Why message_problem must refuse it: the core raises on it (the node would stop)."""
    raft = Raft(Config(id=N2, voters=frozenset({N1, N2})), MemoryStorage(), random.Random(1))
    bad = AppendEntries(N1, N2, 1, 0, 0, (Entry(1, 1, EntryKind.CONF_CHANGE, b"\xc1"),), 0)
    with pytest.raises(UsageError, match="not a configuration"):
        raft.step(bad)
    assert message_problem(bad) is not None


@pytest.mark.parametrize("address", ["h:99999", "h:-1", "h:+5", "h: 5", "h:1_0", "h:١٢", "h:"])
def test_a_port_out_of_range_or_not_plain_digits_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="0 to 65535"):
        split_address(address)


def test_ports_at_the_bounds_are_taken() -> None:
    assert split_address("[::1]:0") == ("[::1]", 0)
    assert split_address("node_1:65535") == ("node_1", 65535)


@pytest.mark.parametrize("node_id", [0, -1, MAX_INT + 1])
def test_a_hello_with_a_node_id_out_of_range_is_a_bad_handshake(node_id: int) -> None:
    doc = {"type": "hello", "cluster_id": "fuzz-cluster", "node_id": node_id, "version": 2}
    payload = msgspec.msgpack.encode(doc)

    async def main() -> tuple[bool, str]:
        async with Handshake() as target:
            return await target.check(len(payload).to_bytes(4, "big") + payload)

    assert asyncio.run(main()) == (False, "bad_handshake")


def _xmlrpc(body: bytes) -> Any:
    async def main() -> Any:
        async with XmlRpc() as target:
            return await target.check(body)

    return asyncio.run(main())


def test_xmlrpc_params_nested_thousands_deep_get_a_fault_not_a_500() -> None:
    depth = 1400  # deeper than the recursion limit, within the size limit
    inner = "<value><array><data>" * depth + "</data></array></value>" * depth
    body = (
        "<?xml version='1.0'?><methodCall><methodName>is_leader</methodName>"
        f"<params><param>{inner}</param></params></methodCall>"
    ).encode()
    ok, label = _xmlrpc(body)
    assert not ok and label.startswith("fault 2: bad arguments for is_leader: ([[[[[[...]]")


def test_xmlrpc_refuses_a_dtd_and_an_oversized_request() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa">]><methodCall>'
        b"<methodName>is_leader</methodName></methodCall>"
    )
    ok, label = _xmlrpc(laughs)
    assert not ok and "a DTD is not allo" in label
    big = xmlrpc.client.dumps(("x" * 70_000,), "leader_receive_log").encode()
    ok, label = _xmlrpc(big)
    assert not ok and label.startswith("fault 1: request of N bytes")


@pytest.mark.parametrize("age", ["1e300", "1.7e308"])
def test_a_trim_of_records_older_than_1e300_seconds_trims_nothing(age: str) -> None:
    async def main() -> None:
        async with HttpApi() as target:
            for body in (b'{"data": "a"}', b'{"data": "b"}'):
                assert (await target.check(http_request("POST", "/v1/log", body)))[0]
            trim = http_request("POST", "/v1/log/trim", b'{"older_than_s": %s}' % age.encode())
            assert await target.check(trim) == (True, "200 application/json")
            url = f"http://127.0.0.1:{target.cluster.port}/v1/log"
            async with aiohttp.ClientSession() as session, session.get(url) as r:
                doc = await r.json()
            assert [e["data"] for e in doc["entries"]] == ["a", "b"]  # nothing trimmed

    asyncio.run(main())


def test_an_asterisk_form_request_is_refused_and_a_path_still_needs_a_json_404() -> None:
    """Found by the full run (seed 20261201, input 10379): ``OPTIONS *`` gets aiohttp's
    own plain 404 (no route matches a target that is not a path): a refusal. A path
    that matches nothing still gets the JSON 404 with a code."""

    async def main() -> None:
        async with HttpApi() as target:
            star = b"OPTIONS * HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 0\r\n\r\n"
            ok, label = await target.check(star)
            assert not ok and "request target not a path" in label
            ok, label = await target.check(http_request("GET", "/no/such/thing", b""))
            assert not ok and "404" in label and "plain-text" not in label

    asyncio.run(main())


def test_the_fuzz_command_reports_counts_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert fuzz_main(["--inputs", "300", "--seed", "3", "--targets", "handshake,json_bodies"]) == 0
    out = capsys.readouterr().out
    assert "handshake: 150 inputs" in out and "json_bodies: 150 inputs" in out
    assert "total: 300 inputs, 0 failures" in out


def test_logging_is_restored_after_a_quiet_run() -> None:
    logger = logging.getLogger("raftlog.transport")
    before = (logger.level, logger.propagate)
    with quiet_loggers("raftlog.transport"):
        assert logger.level > logging.CRITICAL
    assert (logger.level, logger.propagate) == before
