"""The security options of `raftlog node`, `raftlog certs` and the client commands: what
is missing or unusable is refused at once, with exit status 2 and the file named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raftlog.cli.security import read_token


def _raftlog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftlog", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _node(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _raftlog(
        "node", "--id", "1", "--peers", "1=127.0.0.1:1", "--data-dir", str(tmp_path / "d"),
        *extra,
    )  # fmt: skip


def test_certs_makes_private_keys_and_never_overwrites(tmp_path: Path) -> None:
    out = _raftlog("certs", str(tmp_path / "tls"), "--nodes", "2", "--hosts", "db.example,10.0.0.7")
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in (tmp_path / "tls").iterdir())
    assert names == [
        "ca-key.pem",
        "ca.pem",
        "client-key.pem",
        "client.pem",
        "node-1-key.pem",
        "node-1.pem",
        "node-2-key.pem",
        "node-2.pem",
    ]
    for name in names:
        mode = (tmp_path / "tls" / name).stat().st_mode & 0o777
        assert mode == (0o600 if "key" in name else 0o644), name
    again = _raftlog("certs", str(tmp_path / "tls"))
    assert again.returncode == 2 and "exists" in again.stderr
    bad = _raftlog("certs", str(tmp_path / "other"), "--hosts", "a b")
    assert bad.returncode == 2 and "not a host name" in bad.stderr


def test_a_node_refuses_incomplete_or_unusable_security_options(tmp_path: Path) -> None:
    out = _node(tmp_path, "--peer-cert-file", str(tmp_path / "x.pem"))
    assert out.returncode == 2 and "--peer-trusted-ca-file" in out.stderr
    missing = tmp_path / "missing.pem"
    out = _node(tmp_path, "--peer-cert-file", str(missing), "--peer-trusted-ca-file", str(missing))
    assert out.returncode == 2 and str(missing) in out.stderr
    out = _node(tmp_path, "--client-cert-auth", "--cert-file", str(missing))
    assert out.returncode == 2 and "--trusted-ca-file" in out.stderr
    empty = tmp_path / "token"
    empty.write_text("\n")
    out = _node(tmp_path, "--token-file", str(empty))
    assert out.returncode == 2 and "empty" in out.stderr
    assert not (tmp_path / "d").exists()  # nothing was started


def test_the_token_comes_from_the_file_else_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAFTLOG_TOKEN", "from-env")
    assert read_token(None) == "from-env"
    path = tmp_path / "token"
    path.write_text("  from-file  \nsecond line\n")
    assert read_token(path) == "from-file"
    monkeypatch.delenv("RAFTLOG_TOKEN")
    assert read_token(None) is None
    with pytest.raises(ValueError, match="cannot read"):
        read_token(tmp_path / "none")


def test_a_client_command_with_an_unusable_ca_says_so(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("junk")
    out = _raftlog("log", "--cluster", "127.0.0.1:1", "--cacert", str(junk))
    assert out.returncode != 0 and str(junk) in out.stderr and "Traceback" not in out.stderr
