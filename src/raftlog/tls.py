"""TLS for both planes, with the standard library's :mod:`ssl`: the contexts a node and
its clients use, built from PEM files, and the node id a peer certificate speaks for.

Peer plane (node to node): mutual TLS, always. Both ends present a certificate signed by
the cluster's CA and verify the other's. The name that matters between peers is the Raft
node id, not the network address: a peer certificate names its node as ``raftlog-node-N``
(its subject's common name, or a DNS name among its subject alternative names), and a
connection whose handshake (:class:`raftlog.transport.wire.Hello`) claims another id is
refused. So one stolen or misused member certificate cannot speak, or vote, for the other
members. Host names are not checked between peers (addresses change with membership and
may be bare IPs behind NAT); the CA is the trust boundary, the node id the identity.

Client plane (HTTP/JSON, XML-RPC, the dashboard): a server certificate that clients check
the usual way (chain and host name); optionally (``--client-cert-auth``) clients must
present a certificate signed by the client CA too.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEER_NAME = "raftlog-node-{}"
"""How a peer certificate names the node it speaks for (CN or DNS name)."""
_PEER_NAME = re.compile(r"raftlog-node-([1-9][0-9]{0,17})")


class TlsConfigError(ValueError):
    """A certificate, key or CA file cannot be used (the message names the file)."""


def _load_chain(context: ssl.SSLContext, cert: str | Path, key: str | Path | None) -> None:
    for path, what in ((cert, "certificate"), (key, "key")):
        if path is not None and not Path(path).is_file():
            raise TlsConfigError(f"no such {what} file: {path}")
    try:
        context.load_cert_chain(str(cert), str(key) if key is not None else None)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(
            f"cannot use the certificate {cert} with the key {key or cert}: {exc}"
        ) from None


def _load_ca(context: ssl.SSLContext, ca: str | Path) -> None:
    if not Path(ca).is_file():
        raise TlsConfigError(f"no such CA file: {ca}")
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"cannot use the CA file {ca}: {exc}") from None


@dataclass(frozen=True)
class PeerTls:
    """The two contexts of a node's peer plane: ``server`` for the connections it
    accepts, ``client`` for those it dials. Both require the other end's certificate."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def peer_tls(cert: str | Path, key: str | Path | None, ca: str | Path) -> PeerTls:
    """Mutual TLS for the peer plane: this node's certificate and key, and the CA that
    signed every member's certificate. Raises :class:`TlsConfigError`."""
    # Contexts of our own, not create_default_context(): a peer trusts the cluster's CA
    # and nothing else (not the system's CAs).
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False  # the node id is checked instead (module docstring)
    client.verify_mode = ssl.CERT_REQUIRED
    for context in (server, client):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        _load_chain(context, cert, key)
        _load_ca(context, ca)
    return PeerTls(server, client)


def server_context(
    cert: str | Path, key: str | Path | None, client_ca: str | Path | None = None
) -> ssl.SSLContext:
    """The client plane's server side; with ``client_ca``, clients must present a
    certificate it signed (``--client-cert-auth``). Raises :class:`TlsConfigError`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # trusts no CA unless told
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert, key)
    if client_ca is not None:
        _load_ca(context, client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    ca: str | Path | None = None,
    cert: str | Path | None = None,
    key: str | Path | None = None,
) -> ssl.SSLContext:
    """What a client of the client plane uses: trust ``ca`` only (default: the system's
    CAs), check the server's host name, and present ``cert`` (with ``key``) to a node
    that wants client certificates. Raises :class:`TlsConfigError`."""
    if ca is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:  # that CA only (as etcdctl's --cacert)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_ca(context, ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        _load_chain(context, cert, key)
    elif key is not None:
        raise TlsConfigError("a client key was given without its certificate")
    return context


def certified_node(peercert: dict[str, Any] | None) -> int | None:
    """The node id a verified peer certificate (``SSLObject.getpeercert()``) speaks for:
    ``raftlog-node-N`` as its common name or a DNS name; None if it names none. A
    certificate naming two different nodes names none."""
    if not peercert:
        return None
    names: list[str] = []
    for rdn in peercert.get("subject", ()):
        names.extend(value for key, value in rdn if key == "commonName")
    names.extend(value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS")
    ids = {int(m.group(1)) for name in names if (m := _PEER_NAME.fullmatch(name))}
    return ids.pop() if len(ids) == 1 else None


def tls_reason(exc: BaseException) -> str:
    """A TLS failure in a few words (``certificate verify failed: unable to get local
    issuer certificate``), without the library's file and line."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        text = reason.lower().replace("_", " ") if reason else str(exc)
        return text or type(exc).__name__
    return str(exc) or type(exc).__name__


__all__ = [
    "PEER_NAME",
    "PeerTls",
    "TlsConfigError",
    "certified_node",
    "client_context",
    "peer_tls",
    "server_context",
    "tls_reason",
]
