"""``raftlog certs``: a throwaway certificate authority and node certificates for a local
or test cluster (with the ``cryptography`` package: ``pip install 'raftlog[certs]'``).

In ``DIR``: ``ca.pem`` (the CA every node and client trusts) and ``ca-key.pem``;
``node-N.pem`` and ``node-N-key.pem`` for nodes 1..n, each good for both planes (server
and client authentication: a node dials its peers and forwards to its leader with it);
``client.pem`` and ``client-key.pem`` for a client of a node with ``--client-cert-auth``.
Keys are written mode 0600. A node certificate names its node as ``raftlog-node-N``
(common name and DNS name: see :mod:`raftlog.tls`) and carries the names clients reach
it by: ``localhost``, ``127.0.0.1``, ``::1``, the lab's ``node_N``, and every ``hosts``.

Not for production: the CA key lies next to the certificates, nothing is revoked, and
every certificate is good for a year.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from raftlog.tls import PEER_NAME

VALID_DAYS = 365


class CertsError(Exception):
    """The certificates cannot be made (the message says why)."""


@dataclass(frozen=True)
class CertFiles:
    """Where ``make_certs`` wrote a cluster's files."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    def node_cert(self, node: int) -> Path:
        return self.dir / f"node-{node}.pem"

    def node_key(self, node: int) -> Path:
        return self.dir / f"node-{node}-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "client-key.pem"


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write a new file (never over an existing one); keys are readable by their owner
    only from the start."""
    mode = 0o600 if private else 0o644
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CertsError(f"{path} exists: choose an empty directory") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # whatever the umask


def _san_entries(names: Sequence[str]) -> list[object]:
    from cryptography import x509  # noqa: PLC0415

    entries: list[object] = []
    seen: set[str] = set()
    for given in names:
        name = given.strip()
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def make_certs(
    directory: Path, nodes: int, hosts: Sequence[str] = (), *, cluster: str = "raftlog"
) -> CertFiles:
    """Make a CA and the certificates of nodes 1..``nodes`` and of one client in
    ``directory`` (created if need be; no file in it is overwritten). Raises CertsError."""
    try:
        from cryptography import x509  # noqa: PLC0415
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415
    except ImportError:
        raise CertsError(
            "making certificates needs the cryptography package: pip install 'raftlog[certs]'"
        ) from None
    if nodes < 1:
        raise CertsError("--nodes must be at least 1")
    directory.mkdir(parents=True, exist_ok=True)
    files = CertFiles(directory)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=VALID_DAYS)

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"raftlog cluster {cluster}"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name(f"raftlog throwaway CA ({cluster})")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(
        common: str, sans: Sequence[str], usages: list[x509.ObjectIdentifier]
    ) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        entries = _san_entries(sans)
        if entries:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(entries),  # type: ignore[arg-type]
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    for host in hosts:
        if not host.strip() or any(c.isspace() for c in host.strip()) or "/" in host:
            raise CertsError(f"not a host name or address: {host!r}")
    _write(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(directory / "ca-key.pem", key_pem(ca_key), private=True)
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    for node in range(1, nodes + 1):
        peer_name = PEER_NAME.format(node)
        sans = [peer_name, "localhost", "127.0.0.1", "::1", f"node_{node}", *hosts]
        cert_pem, node_key = issue(peer_name, sans, both)
        _write(files.node_cert(node), cert_pem, private=False)
        _write(files.node_key(node), node_key, private=True)
    cert_pem, client_key = issue("raftlog-client", [], [ExtendedKeyUsageOID.CLIENT_AUTH])
    _write(files.client_cert, cert_pem, private=False)
    _write(files.client_key, client_key, private=True)
    return files


__all__ = ["VALID_DAYS", "CertFiles", "CertsError", "make_certs"]
