"""What the raftlog client raises.

::

    ClientError                 anything the client raises on purpose
    ├── Unavailable             gave up (retry_for ran out): the cluster could not serve a read
    │   │                       or a status query; nothing was changed
    │   └── NoLeader            gave up: no node could serve (refused, 503 no leader, leader
    │                           unreachable, 409 not committed). For an append: nothing was
    │                           appended, by any attempt
    ├── OutcomeUnknown          an append gave up after an attempt whose outcome is unknown (a
    │                           504, a timeout, a connection lost after sending): it may or may
    │                           not be in the log. Re-sending it with the same (client_id, seq)
    │                           is safe: ``await client.append(data, seq=exc.seq)``
    ├── StaleRequest            409: the seq is older than the latest this client_id sent (two
    │                           clients share a client_id?): a bug, not retried
    └── BadRequest              any other 4xx (400 bad input, 413 too large, ...), with the
        │                       server's message: not retried
        ├── EntriesTrimmed      410: the read started before the first entry the log still
        │                       keeps (retention); ``first_index`` says where it starts
        └── ChangeRefused       409: the leader refused a membership change; ``message`` says
                                why. Final at once for refusals that need an operator (not
                                caught up, unknown member, two voters at a time); refusals
                                that pass on their own (a change in progress, a new leader,
                                voters not answering) are retried for ``retry_for`` first
                                and raised with ``transient`` True

``OutcomeUnknown`` is deliberately *not* an ``Unavailable``: code that catches
``Unavailable`` may assume that nothing happened, which is false for an unknown outcome.
Retries happen inside the client (with exponential backoff, for ``retry_for`` seconds): these
errors are final answers, not invitations to retry at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ClientError(Exception):
    """Base class of the raftlog client's errors."""


class Unavailable(ClientError):
    """The cluster could not serve the request before ``retry_for`` ran out.

    ``errors`` lists the last failure seen at each endpoint (``"URL: reason"``).
    """

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.errors: tuple[str, ...] = tuple(errors)


class NoLeader(Unavailable):
    """No node could serve the request: none reachable, or none knew a reachable leader.

    Every attempt was definitely not carried out (for an append: nothing was appended).
    """


class OutcomeUnknown(ClientError):
    """A write gave up, and at least one attempt may have been applied.

    ``reason`` is the last such attempt's failure. For an append, ``client_id`` and ``seq``
    identify it: re-sending it with them (``append(data, seq=exc.seq)``) applies it at
    most once. For a membership change (``seq`` 0), read the membership to find out.
    """

    def __init__(
        self, reason: str, *, client_id: str, seq: int, errors: Sequence[str] = ()
    ) -> None:
        if seq:
            what = (
                f"the entry may or may not have been appended (client_id {client_id}, seq "
                f"{seq}: re-sending with these is safe)"
            )
        else:
            what = "the change may or may not have been made (read the membership to know)"
        super().__init__(f"outcome unknown: {reason}; {what}")
        self.reason = reason
        self.client_id = client_id
        self.seq = seq
        self.errors: tuple[str, ...] = tuple(errors)


class StaleRequest(ClientError):
    """409 stale request: the server has applied a later seq of this client_id."""

    def __init__(self, message: str, *, status: int = 409, doc: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.doc = doc


class BadRequest(ClientError):
    """The server refused the request (a 4xx other than the retryable ones).

    ``status`` is the HTTP status, ``message`` the server's ``error`` text and ``doc`` the
    whole answer (as JSON, or None).
    """

    def __init__(self, status: int, message: str, doc: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.doc = doc


class EntriesTrimmed(BadRequest):
    """410: the entries asked for were trimmed away (retention). Read from
    ``first_index`` instead."""

    def __init__(self, status: int, message: str, doc: Any, first_index: int) -> None:
        super().__init__(status, message, doc)
        self.first_index = first_index


class ChangeRefused(BadRequest):
    """409: the leader refused the membership change; ``message`` says why. Nothing was
    changed."""

    @property
    def transient(self) -> bool:
        """The reason passes on its own (the client already retried for ``retry_for``)."""
        return isinstance(self.doc, dict) and self.doc.get("retryable") is True


__all__ = [
    "BadRequest",
    "ChangeRefused",
    "ClientError",
    "EntriesTrimmed",
    "NoLeader",
    "OutcomeUnknown",
    "StaleRequest",
    "Unavailable",
]
