"""The environment of the node processes a parent starts (``raftlog cluster``, the demos,
chaos, bench, netcluster).

Every flag of ``raftlog node`` can be set as ``RAFTLOG_<FLAG>`` (``cli/config.py``). A
user's ``RAFTLOG_DATA_DIR`` or ``RAFTLOG_ID``, meant for a node of their own, must not
reach the nodes of a local cluster: there it would silently change every node the same
way. So a parent passes its nodes what it means as flags, and gives them its environment
without any ``RAFTLOG_*`` variable (settings and ``RAFTLOG_CONFIG`` alike), plus the admin
token it chose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PREFIX = "RAFTLOG_"
ADMIN_TOKEN_ENV = "RAFTLOG_ADMIN_TOKEN"


def node_environment(
    admin_token: str | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``environ`` (default: this process's) without RAFTLOG_* variables, with unbuffered
    output, and with ``RAFTLOG_ADMIN_TOKEN`` if ``admin_token`` is given."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items()}
    for name in [k for k in env if k.startswith(PREFIX)]:
        del env[name]
    env["PYTHONUNBUFFERED"] = "1"
    if admin_token is not None:
        env[ADMIN_TOKEN_ENV] = admin_token
    return env
