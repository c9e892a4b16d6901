"""The security options of the ``raftlog`` commands: TLS files and the write token.

Client commands (``append``, ``log``, ``status``, ``members``, ``leader``): ``--cacert``,
``--cert``, ``--key`` (as etcdctl's) and ``--token-file``; the token also comes from
``RAFTLOG_TOKEN``, so that it never shows on a command line. Nodes: etcd's names
(``--peer-cert-file``, ``--cert-file``, ``--client-cert-auth``...), see
:func:`add_node_options`.
"""

from __future__ import annotations

import argparse
import os
import ssl
from pathlib import Path

TOKEN_ENV = "RAFTLOG_TOKEN"


def read_token(path: Path | None) -> str | None:
    """The token in ``path`` (its first line, stripped), else ``$RAFTLOG_TOKEN``, else
    None. Raises ValueError naming the file if it cannot be read or is empty."""
    if path is None:
        return os.environ.get(TOKEN_ENV) or None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the token file {path}: {exc}") from None
    lines = text.strip().splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ValueError(f"the token file {path} is empty")
    return token


def add_client_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("security")
    group.add_argument(
        "--cacert",
        type=Path,
        metavar="FILE",
        help="trust the nodes' certificates signed by this CA (PEM); with any of these "
        "TLS options the endpoints are https://",
    )
    group.add_argument(
        "--cert",
        type=Path,
        metavar="FILE",
        help="client certificate (PEM), for nodes with --client-cert-auth",
    )
    group.add_argument("--key", type=Path, metavar="FILE", help="the client certificate's key")
    group.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help=f"the cluster's write token, for appends and changes (default ${TOKEN_ENV})",
    )


def client_security(args: argparse.Namespace) -> tuple[ssl.SSLContext | None, str | None]:
    """The TLS context (None: plaintext, unless an endpoint is https://, which then gets
    the system's CAs) and the token the client options ask for. Raises ValueError."""
    from raftlog.tls import client_context  # noqa: PLC0415

    # (A command's defaults may lack the options: `raftlog members` alone lists.)
    cacert, cert, key = (getattr(args, name, None) for name in ("cacert", "cert", "key"))
    token = read_token(getattr(args, "token_file", None))
    context = None
    if cacert is not None or cert is not None or key is not None:
        context = client_context(cacert, cert, key)
    return context, token


def add_node_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "security",
        "TLS between the nodes (all three --peer-* files: mutual TLS, each peer's "
        "certificate naming its node as raftlog-node-N) and for clients (--cert-file); "
        f"writes need the token from --token-file or ${TOKEN_ENV}. `raftlog certs` makes "
        "a throwaway set.",
    )
    group.add_argument(
        "--peer-cert-file", type=Path, metavar="FILE", help="this node's peer certificate"
    )
    group.add_argument("--peer-key-file", type=Path, metavar="FILE", help="its key")
    group.add_argument(
        "--peer-trusted-ca-file",
        type=Path,
        metavar="FILE",
        help="the CA that signed every member's peer certificate",
    )
    group.add_argument(
        "--cert-file",
        type=Path,
        metavar="FILE",
        help="serve clients over TLS with this certificate (client URLs become https://)",
    )
    group.add_argument("--key-file", type=Path, metavar="FILE", help="its key")
    group.add_argument(
        "--trusted-ca-file",
        type=Path,
        metavar="FILE",
        help="the CA of client certificates (with --client-cert-auth), also trusted when "
        "this node forwards to the leader (default there: --peer-trusted-ca-file)",
    )
    group.add_argument(
        "--client-cert-auth",
        action="store_true",
        help="clients must present a certificate signed by --trusted-ca-file",
    )
    group.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help=f"writes (appends, changes) need this token (default ${TOKEN_ENV}; none: "
        "anyone may write)",
    )


def node_security(args: argparse.Namespace) -> dict[str, object]:
    """NodeConfig's security fields from the node options. Raises ValueError (a missing
    companion option, a file that cannot be used)."""
    from raftlog.tls import client_context, peer_tls, server_context  # noqa: PLC0415

    found: dict[str, object] = {"token": read_token(args.token_file)}
    peer = (args.peer_cert_file, args.peer_key_file, args.peer_trusted_ca_file)
    if any(f is not None for f in peer):
        if args.peer_cert_file is None or args.peer_trusted_ca_file is None:
            raise ValueError(
                "peer TLS needs --peer-cert-file and --peer-trusted-ca-file "
                "(and --peer-key-file unless the key is in the certificate's file)"
            )
        found["peer_tls"] = peer_tls(*peer)
    if args.key_file is not None and args.cert_file is None:
        raise ValueError("--key-file needs --cert-file")
    if args.client_cert_auth and (args.cert_file is None or args.trusted_ca_file is None):
        raise ValueError("--client-cert-auth needs --cert-file and --trusted-ca-file")
    if args.cert_file is not None:
        found["client_tls"] = server_context(
            args.cert_file,
            args.key_file,
            args.trusted_ca_file if args.client_cert_auth else None,
        )
        # Forwarding to the leader: trust the CA, present this node's certificate.
        found["forward_tls"] = client_context(
            args.trusted_ca_file or args.peer_trusted_ca_file, args.cert_file, args.key_file
        )
    return found


CERTS_HELP = """\
Make a throwaway certificate authority and certificates for a local or test cluster in
DIR: ca.pem (what every node and client trusts), node-N.pem and node-N-key.pem for nodes
1..N (each good for both planes, naming its node as raftlog-node-N, valid for localhost,
127.0.0.1, ::1, node_N and every --hosts name), client.pem and client-key.pem (for nodes
with --client-cert-auth). Keys are mode 0600. Not for production: the CA's key lies in
DIR too, and nothing can be revoked.

  raftlog certs tls --nodes 3
  raftlog node --id 1 --peers ... --peer-cert-file tls/node-1.pem \\
      --peer-key-file tls/node-1-key.pem --peer-trusted-ca-file tls/ca.pem \\
      --cert-file tls/node-1.pem --key-file tls/node-1-key.pem
  raftlog status --cacert tls/ca.pem"""


def add_certs_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "certs",
        help="make a throwaway CA and node certificates (TLS for a local cluster)",
        description=CERTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "dir", type=Path, metavar="DIR", help="where to write them (no file is overwritten)"
    )
    p.add_argument("--nodes", type=int, default=3, help="certificates for nodes 1..N (default 3)")
    p.add_argument(
        "--hosts",
        default="",
        metavar="NAME[,NAME...]",
        help="more host names or addresses the nodes are reached at (in every node's certificate)",
    )
    p.add_argument("--cluster-id", default="raftlog", help="named in the certificates")
    p.set_defaults(handler=run_certs)


def run_certs(args: argparse.Namespace) -> int:
    import sys  # noqa: PLC0415

    from raftlog.local.certs import CertsError, make_certs  # noqa: PLC0415

    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    try:
        files = make_certs(args.dir, args.nodes, hosts, cluster=args.cluster_id)
    except CertsError as exc:
        print(f"raftlog certs: {exc}", file=sys.stderr)
        return 2
    print(f"CA: {files.ca} (trust it: --cacert {files.ca})")
    for node in range(1, args.nodes + 1):
        print(f"node {node}: {files.node_cert(node)}, key {files.node_key(node)}")
    print(f"client: {files.client_cert}, key {files.client_key}")
    return 0


__all__ = [
    "TOKEN_ENV",
    "add_certs_parser",
    "add_client_options",
    "add_node_options",
    "client_security",
    "node_security",
    "read_token",
]
