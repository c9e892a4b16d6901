"""A small seeded fuzzer: inputs (mutated, generated, random), targets, the runner and its
report.

A *target* takes one input (bytes) and says what the code under test made of it:
``accepted`` (with a short label) or ``rejected`` (with the reason, the module's own error
kind). It raises :class:`Violation` when the code broke a property (it accepted what it
must refuse, lost bytes, answered a 500, ...); any other exception escaping it is a crash
of the code under test. Either is a *failure*: the runner saves the input's bytes
(``DIR/TARGET-sSEED-iINDEX.bin``, with the traceback beside it in ``.txt``), and
``run_fuzz.py --replay FILE`` runs that one input again.

Input ``i`` of a target in a run of seed ``S`` depends only on ``(S, target, i)``, so a
failure is reproducible from its seed and index as well as from its file.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import math
import random
import re
import struct
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

MAX_INT = (1 << 63) - 1

INPUT_TIMEOUT_S = 20.0
"""One input's check must finish within this (else: a hang, a failure)."""
WATCHDOG_S = 120.0
"""No input finished for this long: the process dumps its stacks and exits (a busy loop
that no asyncio timeout can interrupt)."""


class Violation(Exception):
    """The code under test broke a property on this input."""


Outcome = tuple[bool, str]
"""(accepted, label): the label is a short reason for a rejection, a kind for an
acceptance."""


def accepted(label: str) -> Outcome:
    return True, label


def rejected(reason: str) -> Outcome:
    return False, reason


class Target(Protocol):
    """One thing to fuzz. ``async with target:`` sets it up (a node, a server) for a run."""

    name: str
    weight: float
    """Share of a run's inputs, relative to the other targets."""
    fast: bool
    """In-process decoding (many inputs a second) rather than a server round trip."""

    def seeds(self) -> list[bytes]:
        """Valid inputs, for the mutators to start from."""
        ...

    def generate(self, rng: random.Random) -> bytes:
        """A structure-aware input: valid-ish, with odd values in places."""
        ...

    async def check(self, data: bytes) -> Outcome: ...

    async def __aenter__(self) -> Target: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


# -- odd values ----------------------------------------------------------------------------

ODD_INTS = (
    0,
    1,
    -1,
    2,
    127,
    128,
    255,
    256,
    -128,
    65535,
    65536,
    2**31 - 1,
    2**31,
    -(2**31),
    2**32 - 1,
    2**32,
    2**53,
    MAX_INT,
    MAX_INT + 1,
    2**64 - 1,
    -(2**63),
)
ODD_FLOATS = (0.0, -0.0, 1.5, -1.0, 1e300, -1e300, 5e-324, math.nan, math.inf, -math.inf)
ODD_TEXT = (
    "",
    " ",
    "\x00",
    "é",
    "日本語",
    "🙂",
    "\u202e",
    "\ufeff",
    "a" * 300,
    "\ud800",
    "127.0.0.1:",
    ":1",
    "host:99999",
    "host:-1",
    "host:+5",
    "[::1]:7000",
    "h:1_000",
    "%s%n",
    "\r\n",
)


def odd_int(rng: random.Random) -> int:
    if rng.random() < 0.7:
        return rng.choice(ODD_INTS)
    return rng.randrange(-(2**63), 2**64)


def odd_text(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return rng.choice(ODD_TEXT)
    return "".join(
        chr(rng.choice((rng.randrange(32, 127), rng.randrange(0x110000))))
        for _ in range(rng.randrange(12))
    )


def odd_value(rng: random.Random, depth: int = 0) -> Any:
    """Any value of the wrong kind, now and then nested deep."""
    roll = rng.random()
    if roll < 0.25:
        return odd_int(rng)
    if roll < 0.35:
        return rng.choice(ODD_FLOATS)
    if roll < 0.5:
        return odd_text(rng)
    if roll < 0.58:
        return rng.randbytes(rng.randrange(16))
    if roll < 0.66:
        return rng.choice((None, True, False))
    if roll < 0.72:
        return nested(rng.randrange(1, 200))
    if depth > 3:
        return None
    if roll < 0.86:
        return [odd_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {odd_text(rng): odd_value(rng, depth + 1) for _ in range(rng.randrange(3))}


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def maybe_odd(rng: random.Random, value: Any, p: float) -> Any:
    return odd_value(rng) if rng.random() < p else value


# -- mutators ------------------------------------------------------------------------------

_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC0, 0xC1, 0xCF, 0xD3, 0xDC, 0xDD, 0xDE)


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """``data`` with one to four random mutations: bit flips, odd bytes, insertions and
    deletions, duplicated or spliced stretches, truncation, odd 32-bit numbers."""
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        n = len(buf)
        op = rng.randrange(10)
        if op == 0 and n:
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[rng.randrange(n)] = rng.choice(_INTERESTING_BYTES)
        elif op == 2:
            i = rng.randrange(n + 1)
            buf[i:i] = rng.randbytes(rng.randrange(1, 9))
        elif op == 3 and n:
            i = rng.randrange(n)
            del buf[i : i + rng.randrange(1, 9)]
        elif op == 4 and n:
            i = rng.randrange(n)
            j = min(n, i + rng.randrange(1, 32))
            k = rng.randrange(n + 1)
            buf[k:k] = buf[i:j]
        elif op == 5 and n:
            del buf[rng.randrange(n) :]
        elif op == 6 and n >= 4:
            i = rng.randrange(n - 3)
            value = rng.choice(ODD_INTS) & 0xFFFFFFFF
            buf[i : i + 4] = struct.pack(">I", value)
        elif op == 7 and others:
            other = rng.choice(others)
            if other:
                i = rng.randrange(len(other))
                k = rng.randrange(n + 1)
                buf[k:k] = other[i : i + rng.randrange(1, 64)]
        elif op == 8:
            buf += rng.randbytes(rng.randrange(1, 32))
        elif op == 9 and n:
            i = rng.randrange(n)
            buf[i] = (buf[i] + rng.choice((1, -1, 16, -16))) & 0xFF
    return bytes(buf)


def make_input(target: Target, seed: int, index: int, seeds: list[bytes]) -> bytes:
    """Input ``index`` of ``target`` in a run of ``seed``."""
    rng = random.Random(f"{seed}/{target.name}/{index}")
    roll = rng.random()
    if roll < 0.35:
        return target.generate(rng)
    if roll < 0.9:
        base = rng.choice(seeds) if seeds and rng.random() < 0.5 else target.generate(rng)
        return mutate(base, rng, seeds)
    return rng.randbytes(rng.choice((1, 4, 8, 32, 256, 4096)))


# -- reasons ---------------------------------------------------------------------------

_PATH = re.compile(r" - at `\$[^`]*`")
_NUMBER = re.compile(r"-?\d+")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def reason_of(text: str, limit: int = 70) -> str:
    """A rejection's message with the parts that vary (numbers, quoted values, where in
    the document) taken out, so that counts group by kind."""
    text = _PATH.sub("", text)
    text = _QUOTED.sub("…", text)
    text = _NUMBER.sub("N", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the runner ------------------------------------------------------------------------


@dataclass
class Failure:
    target: str
    seed: int
    index: int
    error: str
    file: Path | None


@dataclass
class Report:
    target: str
    inputs: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self, top: int = 8) -> list[str]:
        rate = self.inputs / self.seconds if self.seconds else 0.0
        out = [
            f"{self.target}: {self.inputs} inputs in {self.seconds:.1f} s ({rate:,.0f}/s): "
            f"{sum(self.accepted.values())} accepted, {sum(self.rejected.values())} rejected, "
            f"{len(self.failures)} failures"
        ]
        for title, counter in (("accepted", self.accepted), ("rejected", self.rejected)):
            common = counter.most_common(top)
            for label, count in common:
                out.append(f"    {title:8} {count:9}  {label}")
            rest = sum(counter.values()) - sum(c for _, c in common)
            if rest:
                kinds = len(counter) - len(common)
                out.append(f"    {title:8} {rest:9}  ({kinds} other kinds)")
        for failure in self.failures[:10]:
            out.append(f"    FAILURE input {failure.index}: {failure.error} -> {failure.file}")
        return out


class _Watchdog:
    """Dumps every thread's stack and exits when no input finished for WATCHDOG_S."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def pet(self) -> None:
        faulthandler.dump_traceback_later(
            self.seconds, repeat=False, file=sys.__stderr__, exit=True
        )

    def __enter__(self) -> _Watchdog:
        self.pet()
        return self

    def __exit__(self, *exc: object) -> None:
        faulthandler.cancel_dump_traceback_later()


def save_failure(
    out_dir: Path | None, target: str, seed: int, index: int, data: bytes, text: str
) -> Path | None:
    if out_dir is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{target}-s{seed}-i{index}.bin"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(
        f"target: {target}\nseed: {seed}\nindex: {index}\n"
        f"replay: python tests/fuzz/run_fuzz.py --replay {path}\n\n{text}"
    )
    return path


async def check_one(target: Target, data: bytes) -> Outcome:
    """One input through ``target``; raises what the target raised, or TimeoutError as a
    :class:`Violation` (a hang)."""
    try:
        async with asyncio.timeout(INPUT_TIMEOUT_S):
            return await target.check(data)
    except TimeoutError:
        raise Violation(f"no outcome within {INPUT_TIMEOUT_S:g} s (a hang)") from None


async def run_target(
    target: Target,
    count: int,
    seed: int,
    out_dir: Path | None,
    progress: Callable[[Report], None] | None = None,
    max_failures: int = 20,
) -> Report:
    """``count`` inputs through ``target`` (set up once); a report of what became of them."""
    report = Report(target.name)
    started = time.perf_counter()
    with _Watchdog(WATCHDOG_S) as watchdog:
        async with target:
            seeds = target.seeds()
            for index in range(count):
                data = make_input(target, seed, index, seeds)
                try:
                    ok, label = await check_one(target, data)
                except Exception as exc:  # a failure of the code under test: keep it
                    text = "".join(traceback.format_exception(exc))
                    kind = "violation" if isinstance(exc, Violation) else "crash"
                    error = f"{kind}: {type(exc).__name__}: {exc}"[:300]
                    path = save_failure(out_dir, target.name, seed, index, data, text)
                    report.failures.append(Failure(target.name, seed, index, error, path))
                    if len(report.failures) >= max_failures:
                        report.inputs = index + 1
                        break
                else:
                    (report.accepted if ok else report.rejected)[label] += 1
                report.inputs = index + 1
                if index % 256 == 255:
                    watchdog.pet()
                    if progress is not None:
                        report.seconds = time.perf_counter() - started
                        progress(report)
    report.seconds = time.perf_counter() - started
    return report


def split_count(total: int, targets: list[Target]) -> dict[str, int]:
    """``total`` inputs shared out by the targets' weights (each gets at least one)."""
    weights = sum(t.weight for t in targets)
    counts = {t.name: max(1, round(total * t.weight / weights)) for t in targets}
    return counts


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """The code under test logs every input it refuses: not at this volume."""
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.CRITICAL + 1)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.setLevel(level)
            logger.propagate = propagate
