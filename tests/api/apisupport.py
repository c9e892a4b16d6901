"""Helpers for the client API's tests."""

from __future__ import annotations

import json
from typing import Any


async def sse_events(response: Any, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next ``count`` server-sent events of a streaming response: (kind, data)."""
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    while len(events) < count:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[len("data: ") :])))
    return events
