"""The deployment files, checked structurally (no Docker engine or Kubernetes here): the
compose topology of the lab, its fast override, the image, and the StatefulSet."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from raftlog.cli.main import build_parser
from raftlog.cli.node_cmd import id_from_ordinal
from raftlog.node import parse_peers

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text())


def _node_args(argv: list[str]) -> Any:
    """Parse a node command line with raftlog's own parser (it must be valid)."""
    return build_parser().parse_args(argv)


def test_compose_runs_the_labs_three_nodes_and_client_on_one_network() -> None:
    compose = _load("docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"node_1", "node_2", "node_3", "node_4", "client"}
    volumes = set(compose["volumes"])
    for n in (1, 2, 3):
        svc = services[f"node_{n}"]
        assert (
            svc["hostname"] == svc["container_name"] == f"node_{n}"
        )  # docker container stop node_3
        assert svc["image"] == "raftlog:latest" and svc["build"] == "."
        args = _node_args(svc["command"])
        assert args.command == "node" and args.id == n
        assert args.client_port == 1234 and str(args.data_dir) == "/data"
        assert not args.fast  # the lab's timings by default
        peers = parse_peers(args.peers, args.client_port)
        assert {p: (a.host, a.peer_port) for p, a in peers.items()} == {
            1: ("node_1", 4321),
            2: ("node_2", 4321),
            3: ("node_3", 4321),
        }
        (mount,) = svc["volumes"]
        name, path = mount.split(":")
        assert path == "/data" and name == f"node_{n}_data" and name in volumes
        assert "networks" not in svc  # all on the default network
    # A fourth node, only with `--profile extra`, joins the running three.
    extra = services["node_4"]
    assert extra["profiles"] == ["extra"] and extra["hostname"] == "node_4"
    args = _node_args(extra["command"])
    assert args.id == 4 and args.peers is None and args.advertise == "node_4"
    assert args.join.split(",") == [f"http://node_{n}:1234" for n in (1, 2, 3)]
    client = services["client"]
    assert set(client["depends_on"]) == {"node_1", "node_2", "node_3"}
    assert client["entrypoint"] == ["python", "/app/lab_client.py"]
    assert client["command"] == [f"http://node_{n}:1234" for n in (1, 2, 3)]


def _published(svc: dict[str, Any]) -> list[tuple[str, int, int]]:
    """A service's published ports as (host address, host port, container port)."""
    out = []
    for spec in svc.get("ports", []):
        host, host_port, container = str(spec).split(":")
        out.append((host, int(host_port), int(container)))
    return out


def test_compose_publishes_each_nodes_client_port_on_the_hosts_loopback() -> None:
    """`raftlog status` (and append, log) run on the host reach the compose cluster with
    no flags: the nodes' client ports are published where the CLI looks by default."""
    from raftlog.cli.client_cmd import DEFAULT_CLUSTER  # noqa: PLC0415

    services = _load("docker-compose.yml")["services"]
    published = {name: _published(svc) for name, svc in services.items() if "node" in name}
    for name, ports in published.items():
        n = int(name.removeprefix("node_"))
        args = _node_args(services[name]["command"])
        # Only the client port, only on loopback (the API has no token by default).
        assert ports == [("127.0.0.1", 1233 + n, args.client_port)], (name, ports)
    host_ports = [port for ports in published.values() for _, port, _ in ports]
    assert len(set(host_ports)) == len(host_ports)
    founders = [
        f"127.0.0.1:{port}"
        for name in ("node_1", "node_2", "node_3")
        for _, port, _ in published[name]
    ]
    assert DEFAULT_CLUSTER.split(",") == founders
    assert "ports" not in services["client"]


def test_the_published_ports_check_reads_a_port_spec() -> None:
    assert _published({"ports": ["127.0.0.1:1235:1234"]}) == [("127.0.0.1", 1235, 1234)]
    assert _published({}) == []


def test_the_fast_override_switches_every_node_to_fast_timings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = _load("docker-compose.fast.yml")["services"]
    assert set(fast) == {"node_1", "node_2", "node_3", "node_4"}
    base = _load("docker-compose.yml")["services"]
    for name, svc in fast.items():
        env = svc["environment"]
        assert env == {"RAFTLOG_FAST": "1"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert _node_args(base[name]["command"]).fast is True


def test_the_image_is_non_root_with_raftlog_as_entrypoint_and_a_readiness_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1\d-slim", text, re.M)
    assert re.search(r"^USER raftlog$", text, re.M)
    assert 'ENTRYPOINT ["raftlog"]' in text
    assert 'VOLUME ["/data"]' in text
    health = text[text.index("HEALTHCHECK") :]
    assert "/readyz" in health.split("\n\n")[0]
    assert "COPY examples/lab_client.py /app/lab_client.py" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def _k8s() -> dict[tuple[str, str], Any]:
    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/raftlog.yaml").read_text()))
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_the_statefulset_is_what_a_raft_cluster_needs() -> None:
    objs = _k8s()
    sts = objs[("StatefulSet", "raftlog")]["spec"]
    peers_svc = objs[("Service", sts["serviceName"])]["spec"]
    assert sts["replicas"] == 3
    assert sts["podManagementPolicy"] == "Parallel"
    assert peers_svc["clusterIP"] == "None" and peers_svc["publishNotReadyAddresses"] is True
    labels = sts["template"]["metadata"]["labels"]
    assert sts["selector"]["matchLabels"] == labels == peers_svc["selector"]
    (claim,) = sts["volumeClaimTemplates"]
    (container,) = sts["template"]["spec"]["containers"]
    assert container["volumeMounts"] == [{"name": claim["metadata"]["name"], "mountPath": "/data"}]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"client": 1234, "peer": 4321}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "client"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "client"}
    assert sts["template"]["spec"]["securityContext"]["runAsNonRoot"] is True

    args = _node_args(container["args"])
    assert args.id_from_ordinal and args.id is None and str(args.data_dir) == "/data"
    # One command line for every replica: the founding three start from --peers, pods
    # beyond them (kubectl scale) join the cluster those three form, advertising the
    # pod's own name on the headless service.
    assert args.join == "peers"
    assert args.advertise == f"$(POD_NAME).{sts['serviceName']}"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    peers = parse_peers(args.peers, args.client_port)
    assert sorted(peers) == [1, 2, 3]
    for node, address in peers.items():
        pod = f"raftlog-{node - 1}"
        assert address.host == f"{pod}.{sts['serviceName']}" and address.peer_port == 4321
        assert id_from_ordinal(pod) == node  # the pod finds its own id


def test_the_client_service_reaches_the_nodes_on_1234() -> None:
    objs = _k8s()
    svc = objs[("Service", "raftlog")]["spec"]
    sts = objs[("StatefulSet", "raftlog")]["spec"]
    assert svc["selector"] == sts["template"]["metadata"]["labels"]
    assert svc["ports"] == [{"name": "client", "port": 1234, "targetPort": "client"}]


@pytest.mark.parametrize(
    ("hostname", "node"), [("raftlog-0", 1), ("raftlog-2.raftlog-peers", 3), ("db-11", 12)]
)
def test_id_from_ordinal(hostname: str, node: int) -> None:
    assert id_from_ordinal(hostname) == node


def test_id_from_ordinal_refuses_a_hostname_without_one() -> None:
    with pytest.raises(ValueError, match="does not end in -ORDINAL"):
        id_from_ordinal("node_1")
