"""The wire format of the client API (HTTP/JSON): every request and answer body, as msgspec
Structs that the server (:mod:`raftlog.api.http`) and its clients (:mod:`raftlog.client`,
the local cluster tools, the chaos runner) share. A leaf module: it imports the standard
library and msgspec, nothing of raftlog.

Requests are decoded strictly: unknown fields are refused (``forbid_unknown_fields``),
bounds live in the types (``msgspec.Meta``), and the few rules that span two fields run in
``__post_init__``, so one decode checks everything and a bad body fails with a message that
names the field (``Expected `int` >= 1 - at `$.seq```). Answers are decoded leniently: a
field a client does not know is ignored, so a server may add fields.

Fields left out of a body: ``omit_defaults`` leaves out a field at its default (an entry's
``"encoding"`` unless it is base64, a read's ``"staleness"`` unless the read is local); a
field defaulting to ``UNSET`` is left out unless it is set, for fields whose ``null`` says
something (an error's ``"leader": null``: no leader known).

Errors
------
Every error answer is an :class:`Error`, ``{"error": MESSAGE, "code": CODE, ...}``, with
some of ``"leader"`` (where the leader is, as far as the node knows; null: no leader
known), ``"retryable"`` and ``"first_index"``. ``MESSAGE`` is for people; programs decide
by ``CODE``, one of (with the HTTP status each comes with, always the same):

================== ====== ================================================================
code               status meaning; whether sending the same request again is safe
================== ====== ================================================================
bad_request        400    the body, the query or the path is malformed or out of bounds.
                          Final: the same request fails again.
unauthorized       401    an admin endpoint of a node (or the supervisor) that has a token,
                          asked without it (``Authorization: Bearer TOKEN``). Final.
not_found          404    no such path; or a log read on a node whose state machine is not
                          the replicated log. Final.
method_not_allowed 405    the path exists, the method does not (``Allow`` lists them). Final.
too_large          413    the body is over the node's limit. Final.
trimmed            410    a read from before the first entry the log keeps (retention);
                          ``first_index`` says where it starts. Final: read from there.
stale_request      409    an append's ``seq`` is older than the latest its ``client_id`` sent
                          (two clients share an id?). Final: it would be refused again.
refused            409    the leader refused a membership change or a leadership transfer;
                          nothing was changed. ``retryable`` true: the reason passes on its
                          own (a change in progress, a new leader), retry later; otherwise
                          final (an operator's matter: not caught up, unknown member).
not_committed      409    the leader lost its leadership before the entry committed: it is
                          not in the log and never will be (``leader``: the new one). Safe.
no_leader          503    the node knows no leader it can reach, so nothing was sent to one
                          (``leader``: the one it knows of, or null). Safe, elsewhere or
                          later.
dropped            503    the leader did not take the proposal (e.g. a leadership transfer
                          is under way). Safe.
stopping           503    the node is shutting down; it did not take the request. Safe,
                          elsewhere.
unavailable        503    the node cannot answer just now (its status, a transfer that did
                          not start). Safe.
disk_full          507    the node cannot write its log (its disk is full): it did not take
                          the append, read or change. Safe, elsewhere or later (the node
                          takes requests again, without a restart, once it has space).
timeout            504    the node could not finish in time a request that changes nothing
                          (a read's leadership check) or whose repeating is harmless (a
                          leadership transfer, which may still complete). Safe.
outcome_unknown    504    a write reached the cluster and its outcome is not known (the
                          commit timed out, the leader stopped, the answer of the leader it
                          was forwarded to was lost): it may or may not be applied. Safe
                          only as the very same append, with the same ``client_id`` and
                          ``seq`` (applied at most once); for a membership change, read the
                          membership first.
internal           500    a bug in the node; the outcome is unknown (as outcome_unknown).
================== ====== ================================================================

A client that meets a code it does not know (a newer server) or an answer without one (a
proxy's error page) can only go by the HTTP status.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

# -- error codes ---------------------------------------------------------------------------

ErrorCode = Literal[
    "bad_request",
    "unauthorized",
    "not_found",
    "method_not_allowed",
    "too_large",
    "trimmed",
    "stale_request",
    "refused",
    "not_committed",
    "no_leader",
    "dropped",
    "stopping",
    "unavailable",
    "timeout",
    "outcome_unknown",
    "internal",
    "disk_full",
]

BAD_REQUEST: Final = "bad_request"
UNAUTHORIZED: Final = "unauthorized"
NOT_FOUND: Final = "not_found"
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
TOO_LARGE: Final = "too_large"
TRIMMED: Final = "trimmed"
STALE_REQUEST: Final = "stale_request"
REFUSED: Final = "refused"
NOT_COMMITTED: Final = "not_committed"
NO_LEADER: Final = "no_leader"
DROPPED: Final = "dropped"
STOPPING: Final = "stopping"
UNAVAILABLE: Final = "unavailable"
TIMEOUT: Final = "timeout"
OUTCOME_UNKNOWN: Final = "outcome_unknown"
INTERNAL: Final = "internal"
DISK_FULL: Final = "disk_full"

HTTP_STATUS: Final[Mapping[str, int]] = {
    BAD_REQUEST: 400,
    UNAUTHORIZED: 401,
    NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    TOO_LARGE: 413,
    TRIMMED: 410,
    STALE_REQUEST: 409,
    REFUSED: 409,
    NOT_COMMITTED: 409,
    NO_LEADER: 503,
    DROPPED: 503,
    STOPPING: 503,
    UNAVAILABLE: 503,
    TIMEOUT: 504,
    OUTCOME_UNKNOWN: 504,
    INTERNAL: 500,
    DISK_FULL: 507,
}
"""The HTTP status each code comes with."""

NOT_DONE: Final = frozenset({NOT_COMMITTED, NO_LEADER, DROPPED, STOPPING, UNAVAILABLE, DISK_FULL})
"""Codes that say the request was not carried out: sending it again is safe."""
UNFINISHED: Final = frozenset({TIMEOUT, OUTCOME_UNKNOWN, INTERNAL})
"""Codes that say the node did not see the request through: it may still take effect
(safe to repeat only as the same request: a ``timeout`` always, an append with the same
``client_id`` and ``seq``)."""
FINAL: Final = frozenset(
    {
        BAD_REQUEST,
        UNAUTHORIZED,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        TOO_LARGE,
        TRIMMED,
        STALE_REQUEST,
    }
)
"""Codes that say the same request would fail the same way (``refused`` is final unless
the error says ``"retryable": true``)."""

# -- bounds --------------------------------------------------------------------------------

MAX_CLIENT_ID: Final = 128
"""Characters in a ``client_id``, at most."""
MAX_INT: Final = (1 << 63) - 1
"""Ids, seqs and indexes are at most this (what the log's encoding carries)."""

NodeIdField = Annotated[int, Meta(gt=0, le=MAX_INT)]
ClientIdField = Annotated[str, Meta(min_length=1, max_length=MAX_CLIENT_ID)]
SeqField = Annotated[int, Meta(ge=1, le=MAX_INT)]
Count = Annotated[int, Meta(ge=0, le=MAX_INT)]
Seconds = Annotated[float, Meta(ge=0)]
Encoding = Literal["utf-8", "base64"]

# -- data: text or base64 ------------------------------------------------------------------


def encode_data(data: bytes) -> tuple[str, Encoding]:
    """Bytes as they go in a body: UTF-8 text when they are, base64 otherwise."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def decode_data(data: str, encoding: Encoding) -> bytes:
    """The bytes of a body's ``data``; ValueError if they are not valid in ``encoding``."""
    if encoding == "base64":
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError('"data" is not valid base64') from None
    try:
        return data.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError('"data" is not valid Unicode (a lone surrogate?)') from None


# -- POST /v1/log --------------------------------------------------------------------------


class AppendRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST /v1/log``: append ``data`` (a command, for a state machine of the program's
    own). With ``client_id`` and ``seq`` (together) the append is applied at most once
    however often it is sent."""

    data: str
    encoding: Encoding = "utf-8"
    client_id: ClientIdField | None = None
    seq: SeqField | None = None

    def __post_init__(self) -> None:
        check_session(self.client_id, self.seq)

    @classmethod
    def of(
        cls, data: str | bytes, client_id: str | None = None, seq: int | None = None
    ) -> AppendRequest:
        """The request for ``data``: text as it is, bytes as text or base64."""
        if isinstance(data, str):
            return cls(data, "utf-8", client_id, seq)
        if isinstance(data, bytes | bytearray | memoryview):
            return cls(base64.b64encode(data).decode("ascii"), "base64", client_id, seq)
        raise TypeError(f"data must be str or bytes, not {type(data).__name__}")

    def payload(self) -> bytes:
        """The bytes to append; ValueError if ``data`` is not valid in its encoding."""
        return decode_data(self.data, self.encoding)


def check_session(client_id: str | None, seq: int | None) -> None:
    """A session request names both its client and its seq, or neither."""
    if (client_id is None) != (seq is None):
        raise ValueError('"client_id" and "seq" go together')


class AppendAnswer(msgspec.Struct):
    """The answer to an append, once committed. ``duplicate``: this ``(client_id, seq)``
    was applied before; index and term are that entry's. ``result``: the state machine's
    answer (only with a state machine of the program's own)."""

    index: int
    term: int
    duplicate: bool = False
    result: Any = UNSET


# -- GET /v1/log ---------------------------------------------------------------------------


class Entry(msgspec.Struct, omit_defaults=True):
    """One entry of the log: ``data`` as UTF-8 text, or base64 (``"encoding": "base64"``)
    when it is not text."""

    index: int
    term: int
    data: str
    encoding: Encoding = "utf-8"

    @classmethod
    def of(cls, index: int, term: int, data: bytes) -> Entry:
        text, encoding = encode_data(data)
        return cls(index, term, text, encoding)

    def payload(self) -> bytes:
        """The entry's bytes (ValueError if its base64 is broken)."""
        if self.encoding == "base64":
            return decode_data(self.data, "base64")
        return self.data.encode("utf-8", "surrogatepass")


class Staleness(msgspec.Struct):
    """How stale a ``local`` read may be: what the serving node has applied and committed,
    the leader it follows (None: none known) and how long ago it last heard from it (0
    on the leader itself, None if never or no leader)."""

    leader: int | None
    applied: int
    commit: int
    last_leader_contact_s: float | None


class ReadAnswer(msgspec.Struct, omit_defaults=True):
    """``GET /v1/log?from=&limit=&consistency=``: one page of the log. ``next``: where to
    continue (None: nothing more). ``staleness`` only for ``consistency=local``."""

    node: int
    consistency: str
    commit: int
    applied: int
    first_index: int
    entries: list[Entry]
    next: int | None
    staleness: Staleness | None = None


# -- POST /v1/log/trim ---------------------------------------------------------------------


class TrimRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST /v1/log/trim``, retention: exactly one of ``before`` (an index),
    ``keep_last`` (a number of entries) and ``older_than_s`` (an age in seconds)."""

    before: Count | None = None
    keep_last: Count | None = None
    older_than_s: Seconds | None = None

    def __post_init__(self) -> None:
        given = (self.before, self.keep_last, self.older_than_s)
        if sum(v is not None for v in given) != 1:
            raise ValueError('give exactly one of "before", "keep_last", "older_than_s"')


class TrimAnswer(msgspec.Struct):
    """The trim committed (at ``index``, ``term``): the log now starts at ``first_index``."""

    first_index: int
    index: int
    term: int


# -- GET /v1/status, GET /v1/nodes ---------------------------------------------------------


class PeerStatus(msgspec.Struct):
    """The leader's view of one follower's replication (``state``: Probe, Replicate or
    Snapshot)."""

    id: int
    match: int
    next: int
    state: str
    recent_active: bool
    inflight: int
    learner: bool
    last_contact_s: float | None


class HeldMessage(msgspec.Struct):
    """A peer message a node holds undelivered (step mode, or a held link): ``term`` is
    the message's, ``fields`` its other fields for a person to read."""

    id: int
    src: int
    dst: int
    type: str
    term: int
    fields: dict[str, Any]


class Status(msgspec.Struct):
    """``GET /v1/status``: one node's Raft state. ``leader``/``vote`` null: none.
    ``peers``: on the leader, each other member's progress (else empty). ``event_loop``:
    the asyncio loop implementation the node runs on (asyncio or uvloop). ``clock``:
    ``real``, or ``step`` when the node ticks only when told (the dashboard's step mode);
    ``election_elapsed``/``election_timeout``: ticks since its election clock was reset
    and the tick count at which it fires (both 0 on a leader), ``tick_s`` seconds a tick;
    ``held``: the peer messages it holds, oldest first; ``lease_reads``: the reads it
    served from its leader lease (``consistency=lease`` answered without a round of
    heartbeats) since it started."""

    id: int
    state: str
    term: int
    leader: int | None
    vote: int | None
    commit: int
    applied: int
    last_index: int
    last_term: int
    first_index: int
    snapshot_index: int
    voters: list[int]
    learners: list[int]
    conf_index: int
    client_url: str | None
    peers: list[PeerStatus]
    event_loop: str = ""
    """Empty from a node older than the field."""
    clock: str = "real"
    tick_s: float = 0.0
    election_elapsed: int = 0
    election_timeout: int = 0
    held: list[HeldMessage] = msgspec.field(default_factory=list)
    lease_reads: int = 0


class NodeInfo(msgspec.Struct):
    """A member and the URL of its client API (None: not known)."""

    id: int
    client_url: str | None


class NodesAnswer(msgspec.Struct):
    """``GET /v1/nodes``: the members and the leader (null: none known), served without
    the consensus (what clients discover the cluster with)."""

    leader: int | None
    nodes: list[NodeInfo]


# -- membership ----------------------------------------------------------------------------


class MemberRow(msgspec.Struct, omit_defaults=True):
    """One member of the configuration (``role``: voter or learner; ``peer``/``client``
    null: not known). On the leader, for the others: ``match`` (its last entry known to be
    replicated), ``caught_up`` (how many committed entries it lacks) and ``active``."""

    id: int
    role: str
    peer: str | None
    client: str | None
    match: int | None = None
    caught_up: int | None = None
    active: bool | None = None


class MembersAnswer(msgspec.Struct):
    """``GET /v1/members``: the configuration in force (``pending``: a change is
    appended and not committed yet)."""

    node: int
    leader: int | None
    term: int
    conf_index: int
    pending: bool
    members: list[MemberRow]


class AddMemberRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/members``: add node ``id`` (reached by its peers at ``peer``,
    ``HOST:PORT``; its client API at ``client``, ``http://HOST:PORT``) as a learner."""

    id: NodeIdField
    peer: Annotated[str, Meta(min_length=1)]
    client: str = ""


class ChangeAnswer(msgspec.Struct):
    """A membership change (add, ``POST /v1/members/N/promote``, ``DELETE
    /v1/members/N``) committed at ``index``/``term``; the members now."""

    index: int
    term: int
    members: list[MemberRow]


class TransferRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST /v1/leader/transfer``: hand leadership to ``to`` (left out, or an empty
    body: the most up-to-date voter)."""

    to: NodeIdField | None = None


class TransferAnswer(msgspec.Struct):
    """The new leader, and how long the handover took."""

    leader: int
    took_ms: float


# -- test-only: POST /v1/admin/partition ---------------------------------------------------


class PartitionRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Traffic with a ``blocked`` peer is dropped both ways; messages from a ``held`` peer
    are kept until it is no longer held. A key left out leaves that setting as it is (one
    at least)."""

    blocked: list[NodeIdField] | None = None
    held: list[NodeIdField] | None = None

    def __post_init__(self) -> None:
        if self.blocked is None and self.held is None:
            raise ValueError('give "blocked" or "held" (or both)')


class PartitionAnswer(msgspec.Struct):
    """The peers blocked and held now."""

    blocked: list[int]
    held: list[int]


class ClockRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/admin/clock``: ``step`` stops the node's clock and holds every peer
    message; ``real`` delivers what is held, in order, and lets time run again."""

    mode: Literal["real", "step"]


class TickRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/admin/tick``: in step mode, advance the node's clock this many ticks."""

    ticks: Annotated[int, Meta(ge=1, le=10_000)] = 1


class ReleaseRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/admin/release``: deliver or drop the held message ``id``."""

    id: Annotated[int, Meta(ge=1)]
    action: Literal["deliver", "drop"]


class StepAnswer(msgspec.Struct):
    """The node's clock and the messages it holds, after a step-mode request."""

    clock: str
    held: list[HeldMessage]


# -- GET /v1/debug/log ---------------------------------------------------------------------


class LogCell(msgspec.Struct):
    """One entry of a node's own log: ``kind`` normal, noop or conf; ``preview``: the
    start of its data as text."""

    index: int
    term: int
    kind: str
    preview: str


class DebugLogAnswer(msgspec.Struct):
    """``GET /v1/debug/log``: a stretch of the node's own log, committed or not."""

    first_index: int
    last_index: int
    commit: int
    snapshot_index: int
    entries: list[LogCell]


# -- probes --------------------------------------------------------------------------------


class Liveness(msgspec.Struct):
    """``GET /livez``: the node's process serves."""

    live: bool
    node: int


class Readiness(msgspec.Struct, omit_defaults=True):
    """``GET /readyz``: ready (200, with the ``leader``) once a leader is known; not ready
    (503, with the ``reason``) before."""

    ready: bool
    leader: int | None = None
    reason: str | None = None


# -- errors --------------------------------------------------------------------------------


class Error(msgspec.Struct):
    """Every error answer: ``error`` for people, ``code`` (see the module's table) for
    programs; ``leader``, ``retryable`` and ``first_index`` where the code says so."""

    error: str
    code: str
    leader: int | UnsetType | None = UNSET
    retryable: bool | UnsetType = UNSET
    first_index: int | UnsetType = UNSET


__all__ = [
    "BAD_REQUEST",
    "DISK_FULL",
    "DROPPED",
    "FINAL",
    "HTTP_STATUS",
    "INTERNAL",
    "MAX_CLIENT_ID",
    "MAX_INT",
    "METHOD_NOT_ALLOWED",
    "NOT_COMMITTED",
    "NOT_DONE",
    "NOT_FOUND",
    "NO_LEADER",
    "OUTCOME_UNKNOWN",
    "REFUSED",
    "STALE_REQUEST",
    "STOPPING",
    "TIMEOUT",
    "TOO_LARGE",
    "TRIMMED",
    "UNAUTHORIZED",
    "UNAVAILABLE",
    "UNFINISHED",
    "AddMemberRequest",
    "AppendAnswer",
    "AppendRequest",
    "ChangeAnswer",
    "Entry",
    "Error",
    "ErrorCode",
    "Liveness",
    "MemberRow",
    "MembersAnswer",
    "NodeInfo",
    "NodesAnswer",
    "PartitionAnswer",
    "PartitionRequest",
    "PeerStatus",
    "ReadAnswer",
    "Readiness",
    "Staleness",
    "Status",
    "TransferAnswer",
    "TransferRequest",
    "TrimAnswer",
    "TrimRequest",
    "check_session",
    "decode_data",
    "encode_data",
]
