"""Which asyncio event loop a node runs on.

``uvloop`` (libuv under asyncio's API) costs less per socket read and write than the
standard selector loop; with many small requests that is most of a node's time (see
README "Performance"). It is optional (``pip install 'raftlog[fast]'``): ``auto`` takes it
when it is installed and the standard loop otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CHOICES = ("auto", "asyncio", "uvloop")
"""``--event-loop`` (or ``RAFTLOG_EVENT_LOOP``: see ``cli/config.py``)."""


def loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for ``asyncio.Runner(loop_factory=...)``; None means the standard loop.
    ``uvloop`` when it is not installed is an error naming the extra to install."""
    if choice not in CHOICES:
        raise ValueError(f"event loop must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        if choice == "uvloop":
            raise ValueError(
                "--event-loop uvloop: uvloop is not installed (pip install 'raftlog[fast]')"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop`` or ``asyncio``: the loop running now (or the one given)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
