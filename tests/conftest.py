"""Shared pytest configuration."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.txt with the actual output instead of comparing",
    )


def _hypothesis_profiles() -> None:
    # The machine is shared and noisy: no per-example deadline. In CI, the same examples
    # every run, so that a red build is reproducible.
    settings.register_profile("dev", deadline=None)
    settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")


_hypothesis_profiles()
