"""A client library for a raftlog cluster.

``Client`` is the blocking client (scripts, threads, the REPL); ``AsyncClient`` is the
asyncio one (``raftlog.client.aio.Client``). The blocking one is the default name because a
script is where a client is most often wanted, and it is built on the asyncio one, so both
behave the same: leader discovery from any seed, retries with backoff for ``retry_for``
seconds, exactly-once appends (each carries ``(client_id, seq)``; retries reuse the seq)::

    from raftlog.client import Client

    with Client(["127.0.0.1:1234", "127.0.0.1:1235", "127.0.0.1:1236"]) as client:
        print(client.append("SET 5"))             # AppendResult(index=3, term=1, ...)
        print([r.text() for r in client.read_all()])

    from raftlog.client import AsyncClient

    async with AsyncClient(["127.0.0.1:1234"]) as client:
        await client.append(b"\\x00\\x01")

Errors: see :mod:`raftlog.client.errors`.
"""

from raftlog.client.aio import (
    AppendResult,
    Consistency,
    MemberStatus,
    NodeStatus,
    ReadResult,
    Record,
    Staleness,
)
from raftlog.client.aio import Client as AsyncClient
from raftlog.client.errors import (
    BadRequest,
    ChangeRefused,
    ClientError,
    EntriesTrimmed,
    NoLeader,
    OutcomeUnknown,
    StaleRequest,
    Unavailable,
)
from raftlog.client.sync import Client

__all__ = [
    "AppendResult",
    "AsyncClient",
    "BadRequest",
    "ChangeRefused",
    "Client",
    "ClientError",
    "Consistency",
    "EntriesTrimmed",
    "MemberStatus",
    "NoLeader",
    "NodeStatus",
    "OutcomeUnknown",
    "ReadResult",
    "Record",
    "StaleRequest",
    "Staleness",
    "Unavailable",
]
