"""The reference lab node: a submission that ``raftlog grade --reference`` grades (the
directory of this package is a submission: ``node.py`` in it)."""

from __future__ import annotations

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
"""The reference submission's directory (it holds ``node.py``)."""
