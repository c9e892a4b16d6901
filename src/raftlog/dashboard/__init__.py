"""The live dashboard: plain HTML, CSS and JavaScript files in ``static/``, served by every
node at ``GET /`` and ``/dashboard/<file>`` (no build step; nothing fetched from the
internet). See docs/dashboard.md for the feeds the page reads."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file the dashboard serves: its name -> (content, content type). Read once;
    only these names are served (no path from a request reaches the file system)."""
    root = resources.files(__name__) / "static"
    files: dict[str, tuple[bytes, str]] = {}
    if not root.is_dir():
        return files
    for item in root.iterdir():
        suffix = Path(item.name).suffix
        if item.is_file() and suffix in CONTENT_TYPES:
            files[item.name] = (item.read_bytes(), CONTENT_TYPES[suffix])
    return files
