"""The process tests' configuration: ``RAFTLOG_TEST_TLS=1`` (``make test-tls``) runs every
cluster they start with TLS on both planes (certificates of one throwaway CA, which the
tests' own HTTP clients and the ``raftlog`` commands they run trust through
``SSL_CERT_FILE``, set before aiohttp makes its default context)."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TLS_ENV = "RAFTLOG_TEST_TLS"
TLS = os.environ.get(TLS_ENV, "").strip().lower() in ("1", "true", "yes")

if TLS:
    from raftlog.local.certs import make_certs

    CERTS = make_certs(Path(tempfile.mkdtemp(prefix="raftlog-test-tls-")), 9)
    os.environ["SSL_CERT_FILE"] = str(CERTS.ca)

from raftlog.local.cluster import LocalCluster  # noqa: E402 (after SSL_CERT_FILE)


@pytest.fixture(autouse=True)
def _clusters_over_tls() -> Iterator[None]:
    if not TLS:
        yield
        return
    original = LocalCluster.__init__

    @functools.wraps(original)
    def with_tls(self: LocalCluster, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("tls", CERTS)
        original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalCluster, "__init__", with_tls)
        yield
