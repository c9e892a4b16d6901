"""The state machine interface: what a program embedding :class:`raftlog.Node` provides.

A state machine is the replicated thing itself (a key-value store, a queue, the lab's
log of strings). Raft orders the commands; every node applies the same commands in the
same order to its own copy, so every copy goes through the same states.

The contract (read it before writing one):

``apply(index, term, data) -> result``
    Called once per committed command, in log order (``index`` increases, with gaps
    where the log holds entries that are not commands: a new leader's no-op, membership
    changes; ``term`` is the term of the leader that proposed it), on every node. It
    **must be deterministic**: the same commands in the same
    order must give the same state and the same results on every node, so it may not read
    clocks, random numbers, the environment, or anything that differs between machines
    (put such values *in* the command, decided by the proposer). It must not raise for a
    command it does not like: return an error value instead (an exception stops the node:
    its copy could no longer be trusted to match the others). The result goes back to the
    caller of :meth:`raftlog.Node.apply` on the node that proposed the command; other
    nodes discard it. To be returned through the HTTP API it should be ``None``, ``bytes``,
    ``str`` or something ``json`` can encode. Called on the node's event loop: keep it
    short (it holds up the node while it runs).

``snapshot() -> Snapshot``
    Called on the event loop, between two applies, when the node compacts its log or a
    follower needs the state. It must capture the state as of the last applied command
    *quickly* (a copy, a copy-on-write reference, an open read transaction), and return
    an object whose ``write(sink)`` serialises that captured state to the binary file
    object ``sink``. ``write`` runs in a worker thread **while the node goes on applying
    commands**, so it must not read the live state. ``release()`` is called when the
    snapshot is no longer needed (after ``write``, or instead of it).

``restore(source)``
    Replace the whole state with the one ``source`` (a binary file object, positioned at
    what ``write`` produced, ending where it ended) describes. Called in a worker thread
    while nothing else touches the state machine: at start-up, and when the node installs
    a snapshot from its leader. The bytes were checksummed before ``restore`` sees them.

Optionally, ``persisted_index() -> int``
    A state machine that keeps its state on disk (rather than rebuilding it at start from
    the latest snapshot and the log) says up to which index its applied state would
    survive a crash. raftlog then does not apply those entries again after a restart, and
    compacts its own log only up to that index. It must also be able to produce snapshots
    (for followers that need one). :class:`raftlog.ReplicatedLog` is one.
"""

from __future__ import annotations

from typing import Any, BinaryIO, Protocol, runtime_checkable


class Snapshot(Protocol):
    """A captured, immutable state, written out by a worker thread."""

    def write(self, sink: BinaryIO) -> None:
        """Serialise the captured state to ``sink`` (runs in a worker thread)."""
        ...

    def release(self) -> None:
        """The snapshot is no longer needed (free what it holds)."""
        ...


class StateMachine(Protocol):
    """See the module docstring for the full contract."""

    def apply(self, index: int, term: int, data: bytes) -> Any:
        """Apply one committed command (deterministic, on the event loop)."""
        ...

    def snapshot(self) -> Snapshot:
        """Capture the current state quickly (on the event loop)."""
        ...

    def restore(self, source: BinaryIO) -> None:
        """Replace the state with the one in ``source`` (in a worker thread)."""
        ...


@runtime_checkable
class PersistentStateMachine(Protocol):
    """A state machine whose applied state survives a restart on its own."""

    def persisted_index(self) -> int:
        """Everything applied up to this index survives a crash (0: nothing yet)."""
        ...


class BytesSnapshot:
    """A :class:`Snapshot` of state already serialised on the event loop (for small
    states: ``BytesSnapshot(json.dumps(self.data).encode())``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def write(self, sink: BinaryIO) -> None:
        sink.write(self._data)

    def release(self) -> None:
        self._data = b""


__all__ = ["BytesSnapshot", "PersistentStateMachine", "Snapshot", "StateMachine"]
