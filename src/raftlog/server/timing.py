"""Seconds become ticks here, and nowhere else.

The core counts time in ticks. A node ticks every ``tick_s`` seconds of its monotonic
clock; election timeouts and the heartbeat interval are given in seconds and converted
once, when the node's Config is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TICK_SLACK_S = 0.002
"""How early a tick may come (timers fire up to a millisecond early under uvloop)."""


@dataclass(frozen=True)
class Timing:
    election_min_s: float
    election_max_s: float
    heartbeat_s: float
    tick_s: float

    def __post_init__(self) -> None:
        if not all(
            math.isfinite(v) for v in (self.election_min_s, self.election_max_s, self.heartbeat_s)
        ):
            raise ValueError("timings must be finite numbers of seconds")
        if not 0 < self.election_min_s <= self.election_max_s:
            raise ValueError(
                f"election timeout must be 0 < min <= max, not {self.election_min_s}-"
                f"{self.election_max_s}"
            )
        if not 0 < self.heartbeat_s < self.election_min_s:
            raise ValueError(
                f"heartbeat ({self.heartbeat_s} s) must be shorter than the election timeout "
                f"({self.election_min_s} s)"
            )

    @property
    def election_min_ticks(self) -> int:
        return max(2, math.ceil(self.election_min_s / self.tick_s))

    @property
    def election_max_ticks(self) -> int:
        return max(self.election_min_ticks, math.ceil(self.election_max_s / self.tick_s))

    @property
    def heartbeat_ticks(self) -> int:
        return max(1, min(self.election_min_ticks - 1, round(self.heartbeat_s / self.tick_s)))

    def ticks(self, seconds: float) -> int:
        return max(1, math.ceil(seconds / self.tick_s))

    def describe(self) -> str:
        return (
            f"election timeout {self.election_min_s:g}-{self.election_max_s:g} s, "
            f"heartbeat {self.heartbeat_s:g} s, tick {self.tick_s * 1000:g} ms"
        )


def lab_timing() -> Timing:
    """The classroom lab: election timeout uniform in 6-10 s, a heartbeat every 2 s."""
    return Timing(6.0, 10.0, 2.0, 0.1)


def fast_timing() -> Timing:
    """The production preset: 150-300 ms, heartbeat 50 ms."""
    return Timing(0.15, 0.3, 0.05, 0.01)


def parse_range(text: str) -> tuple[float, float]:
    """``"0.15-0.3"`` or ``"6"`` -> (min, max) seconds."""
    lo, sep, hi = text.partition("-")
    try:
        low = float(lo)
        high = float(hi) if sep else low
    except ValueError:
        raise ValueError(f"expected SECONDS or MIN-MAX seconds, not {text!r}") from None
    return low, high


def timing_for(
    *, fast: bool, election: str | None = None, heartbeat: float | None = None
) -> Timing:
    base = fast_timing() if fast else lab_timing()
    lo, hi = parse_range(election) if election else (base.election_min_s, base.election_max_s)
    hb = heartbeat if heartbeat is not None else base.heartbeat_s
    # Fine enough that the heartbeat is 20 ticks and the election range has resolution
    # (the lab's timings tick every 100 ms), but no finer than 5 ms.
    tick = max(0.005, min(hb / 20, lo / 60))
    return Timing(lo, hi, hb, tick)
