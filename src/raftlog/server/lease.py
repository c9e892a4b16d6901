"""The leader's read lease: its clock and its lengths (the bookkeeping is the node's).

A leader stamps every AppendEntries and Heartbeat with :func:`lease_clock_ns` as it sends
it (``sent_ns``); a follower that steps one from the leader of its term restarts its
election timer and, from then, neither campaigns nor grants a (non-transfer) vote for a
minimum election timeout; it echoes the stamp in its answers (``echo_ns``). The leader
serves a read from its lease while a majority of voters (itself included) echoed a send
younger than :func:`lease_s`. See docs/DECISIONS.md ("Lease reads under faults").
"""

from __future__ import annotations

import math
import time

from raftlog.server.timing import TICK_SLACK_S, Timing

LEASE_FRACTION = 0.5
"""A leader serves lease reads while a quorum acknowledged messages it *sent* within this
fraction of the minimum election timeout: a follower that steps a message of the leader
refuses other candidates (and does not campaign) for a minimum election timeout from
then, which began after the send; the rest of that timeout covers clock drift and the
tick granularity (see :func:`lease_s`)."""

_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def lease_clock_ns() -> int:
    """The lease's clock, in nanoseconds: ``CLOCK_BOOTTIME`` where there is one (Linux),
    which goes on counting while the machine is suspended (``CLOCK_MONOTONIC``, asyncio's
    clock, stands still then: a leader whose machine slept would wake with echoes that
    look fresh); the monotonic clock elsewhere. Only ever compared with itself, on the
    leader: followers echo its readings without reading them."""
    if _BOOTTIME is not None:
        return time.clock_gettime_ns(_BOOTTIME)
    return time.monotonic_ns()


def lease_s(timing: Timing) -> float:
    """How long after sending a message that a quorum acknowledged a leader may serve
    lease reads: LEASE_FRACTION of the minimum election timeout, and never more than the
    follower's promise in the worst case it echoes (:func:`max_pending_ticks`: the
    message stepped with two ticks pending, the next one due at once and early by
    TICK_SLACK_S). 0: no lease (reads take the ReadIndex path)."""
    ticks = (timing.election_min_ticks - 3) * timing.tick_s - TICK_SLACK_S
    return max(0.0, min(LEASE_FRACTION * timing.election_min_s, ticks))


def promise_left_s(timing: Timing, pending: int) -> float:
    """How long, at least, a follower's promise lasts after it stepped a leader's message
    with ``pending`` ticks due at once (a late loop: they fire right after the step, and
    count time from before it): the election timer runs out on the ``election_min_ticks``-th
    tick after the step; the first tick not pending is due within one tick and may come
    TICK_SLACK_S early, each later one a tick after it."""
    return (timing.election_min_ticks - pending - 1) * timing.tick_s - TICK_SLACK_S


def max_pending_ticks(timing: Timing) -> int:
    """The most ticks that may be pending when a follower steps a leader's message for its
    echo of it to be worth a lease: :func:`promise_left_s` at least :func:`lease_s`. Two
    at least (what :func:`lease_s` allows for); more when the election timeout is many
    ticks long (30 ticks of 5 ms with ``--fast``: 13)."""
    lease = lease_s(timing)
    if lease <= 0:
        return 2
    # The largest k with (min - k - 1) * tick - slack >= lease (a hair of tolerance for
    # the float division; promise_left_s checks the answer exactly).
    k = timing.election_min_ticks - 1 - math.ceil((lease + TICK_SLACK_S) / timing.tick_s - 1e-9)
    while k > 2 and promise_left_s(timing, k) < lease:
        k -= 1
    return max(2, k)
