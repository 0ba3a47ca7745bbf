"""The Kubernetes manifests: valid against the API schemas, and wired together right.

`kubernetes-validate` ships the OpenAPI schemas of every Kubernetes release, so this runs
without a cluster. Schemas say each object is well-formed; the other tests check what they
cannot: that names, labels, ports, mounts and config paths agree across the objects.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path, PurePosixPath

import kubernetes_validate
import pytest
import yaml

from attribution.config import parse_config
from tests.deploy.common import KUBERNETES, ROOT

MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
# The oldest release still widely run that has everything used here (grpc/sysctl/PDB v1).
VERSIONS = ("1.29", kubernetes_validate.latest_version())


def documents(paths: list[Path] = MANIFESTS) -> list[tuple[Path, dict]]:
    """(file, object) for every object of ``paths`` (default: the core manifests)."""
    docs = []
    for path in paths:
        docs += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def objects(kind: str) -> list[dict]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def one(kind: str) -> dict:
    (found,) = objects(kind)
    return found


def pod_spec() -> dict:
    return one("StatefulSet")["spec"]["template"]["spec"]


def container() -> dict:
    (found,) = pod_spec()["containers"]
    return found


def test_there_are_manifests():
    kinds = {doc["kind"] for _, doc in documents()}
    assert {
        *("StatefulSet", "ConfigMap", "Secret", "Service", "PodDisruptionBudget", "NetworkPolicy")
    } <= kinds


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_validates_strictly_against_the_kubernetes_schemas(path, version):
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            # raises ValidationError naming the field; strict: unknown fields are errors
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_namespace_is_applied_first():
    """`kubectl apply -f deploy/kubernetes/` goes in file name order."""
    kinds = [doc["kind"] for _, doc in documents()]
    assert kinds[0] == "Namespace" and kinds.count("Namespace") == 1


def test_everything_is_in_one_namespace():
    (namespace,) = [doc["metadata"]["name"] for doc in objects("Namespace")]
    for _, doc in documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]


def test_each_replica_has_a_config_that_loads_and_a_bgp_identifier_of_its_own():
    sts = one("StatefulSet")
    config_map = one("ConfigMap")
    names = [f"{sts['metadata']['name']}-{i}" for i in range(sts["spec"]["replicas"])]
    assert sorted(config_map["data"]) == sorted(f"{name}.toml" for name in names)
    configs = [parse_config(config_map["data"][f"{n}.toml"], f"{n}.toml") for n in names]
    assert len({c.router_id for c in configs}) == len(configs)
    # same otherwise: the same routers, exporters and API
    assert len({(c.routers, c.api, c.metrics_listen, c.bgp.neighbors) for c in configs}) == 1
    # the container reads its own file: $(POD_NAME) is expanded by the kubelet
    env = {e["name"]: e for e in container()["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    args = container()["args"]
    config_path = PurePosixPath(args[args.index("--config") + 1])
    assert config_path.name == "$(POD_NAME).toml"
    assert mounted_from(config_path.parent / "x.toml") == ("configMap", "attribution-config", None)


def mounted_from(path: PurePosixPath) -> tuple[str, str, str | None]:
    """(volume kind, object name, key or None) of the file at ``path`` in the container."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    for mount in container()["volumeMounts"]:
        base = PurePosixPath(mount["mountPath"])
        if path.is_relative_to(base):
            if mount["name"] not in volumes:  # a volumeClaimTemplate's claim
                claims = one("StatefulSet")["spec"]["volumeClaimTemplates"]
                assert mount["name"] in {c["metadata"]["name"] for c in claims}, mount
                return "persistentVolumeClaim", mount["name"], None
            volume = volumes[mount["name"]]
            for kind, name_key in (("configMap", "name"), ("secret", "secretName")):
                if kind in volume:
                    source = volume[kind]
                    rel = str(path.relative_to(base))
                    items = {i["path"]: i["key"] for i in source.get("items", [])}
                    if items:
                        assert rel in items, f"{path}: not among {volume['name']}'s items"
                    return kind, source[name_key], items.get(rel, rel if items else None)
            return next(k for k in volume if k != "name"), mount["name"], None
    raise AssertionError(f"{path} is on no mounted volume")


def test_tls_material_and_tokens_come_from_secrets_and_match_the_config():
    secrets = {s["metadata"]["name"]: s for s in objects("Secret")}
    config = parse_config(next(iter(one("ConfigMap")["data"].values())))
    paths = [config.api.tls_cert, config.api.tls_key]
    paths += [config.api.read_token_file, config.api.admin_token_file]
    assert all(paths), "TLS and tokens are on"
    for path in paths:
        kind, name, key = mounted_from(PurePosixPath(path))
        assert kind == "secret", path
        data = secrets[name]["stringData"]
        assert (key or PurePosixPath(path).name) in data, path
    ca = {e["name"]: e.get("value") for e in container()["env"]}["ATTRIBUTION_CA"]
    assert mounted_from(PurePosixPath(ca))[0] == "secret"


def test_readiness_and_liveness_probes_ask_grpc_health():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    readiness = container()["readinessProbe"]["exec"]["command"]
    liveness = container()["livenessProbe"]["exec"]["command"]
    for command in (readiness, liveness):
        assert scripts[command[0]] == "attribution.healthcheck:main"
    # ready only when SERVING; alive whenever it answers (NOT_SERVING while converging)
    assert "--liveness" not in readiness and "--liveness" in liveness
    env = {e["name"]: e.get("value") for e in container()["env"]}
    config = parse_config(next(iter(one("ConfigMap")["data"].values())))
    assert env["ATTRIBUTION_TARGET"].rpartition(":")[2] == config.grpc_listen.rpartition(":")[2]


def test_the_pod_runs_non_root_without_capabilities_on_a_read_only_root():
    pod = pod_spec()["securityContext"]
    ctr = container()["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert ctr["allowPrivilegeEscalation"] is False
    assert ctr["readOnlyRootFilesystem"] is True
    assert ctr["capabilities"] == {"drop": ["ALL"]}
    # port 179 without a capability: unprivileged in the pod's network namespace
    sysctls = {s["name"]: s["value"] for s in pod["sysctls"]}
    config = parse_config(next(iter(one("ConfigMap")["data"].values())))
    assert int(sysctls["net.ipv4.ip_unprivileged_port_start"]) <= config.bgp.listen_port
    assert pod_spec().get("hostNetwork") is not True  # the sysctl needs the pod's own netns
    assert pod_spec()["automountServiceAccountToken"] is False


def test_the_service_writes_only_to_its_volumes():
    """Read-only root: the snapshot, ExaBGP's work_dir, the feed socket and /tmp need
    writable volumes; the snapshot's must outlive the pod."""
    config = parse_config(next(iter(one("ConfigMap")["data"].values())))
    claims = {c["metadata"]["name"] for c in one("StatefulSet")["spec"]["volumeClaimTemplates"]}
    for path in (config.snapshot_path, config.bgp.work_dir + "/exabgp.conf"):
        kind, name, _ = mounted_from(PurePosixPath(path))
        assert kind == "persistentVolumeClaim" and name in claims, path
    assert mounted_from(PurePosixPath(config.bgp.feed_socket))[0] == "emptyDir"
    assert mounted_from(PurePosixPath("/tmp/x"))[0] == "emptyDir"


def test_resources_are_requested_and_memory_is_limited():
    resources = container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    # a CPU limit throttles ExaBGP and the feed: sized by request only
    assert "cpu" not in resources["limits"]


def pod_labels() -> dict:
    return one("StatefulSet")["spec"]["template"]["metadata"]["labels"]


def test_services_select_the_pods_and_name_ports_the_container_has():
    sts = one("StatefulSet")
    port_names = {p["name"]: p["containerPort"] for p in container()["ports"]}
    pod_names = {f"{sts['metadata']['name']}-{i}" for i in range(sts["spec"]["replicas"])}
    bgp_pods = set()
    for service in objects("Service"):
        selector = dict(service["spec"]["selector"])
        pod_name = selector.pop("statefulset.kubernetes.io/pod-name", None)
        assert selector.items() <= pod_labels().items(), service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]
            if port["targetPort"] == "bgp":
                assert pod_name in pod_names, service["metadata"]["name"]
                bgp_pods.add(pod_name)
                # the router's own address must reach ExaBGP: it identifies the neighbor
                assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert bgp_pods == pod_names, "every replica needs its own BGP address"
    assert sts["spec"]["serviceName"] in {s["metadata"]["name"] for s in objects("Service")}
    config = parse_config(next(iter(one("ConfigMap")["data"].values())))
    assert port_names["bgp"] == config.bgp.listen_port
    assert str(port_names["grpc"]) == config.grpc_listen.rpartition(":")[2]
    assert str(port_names["metrics"]) == config.metrics_listen.rpartition(":")[2]


def test_the_disruption_budget_keeps_a_replica_of_these_pods():
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels().items()
    assert pdb["spec"]["minAvailable"] >= 1
    assert one("StatefulSet")["spec"]["replicas"] > pdb["spec"]["minAvailable"]


def test_the_grace_period_leaves_time_to_write_the_snapshot():
    assert pod_spec()["terminationGracePeriodSeconds"] >= 60


def test_the_network_policy_opens_exactly_the_containers_ports():
    policy = one("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels().items()
    opened = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert opened == {p["name"] for p in container()["ports"]}
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    config = parse_config(next(iter(one("ConfigMap")["data"].values())))
    routers = [r.neighbor for r in config.routers]
    (bgp_out,) = policy["spec"]["egress"]
    assert [p["port"] for p in bgp_out["ports"]] == [179]
    blocks = [ipaddress.ip_network(t["ipBlock"]["cidr"]) for t in bgp_out["to"]]
    assert all(any(ipaddress.ip_address(r) in b for b in blocks) for r in routers)


def test_clients_balance_over_a_headless_grpc_service_of_ready_pods():
    """Client-side balancing (issue 15): a DNS name listing every ready pod's gRPC port,
    which the client's `dns:///` target resolves and balances over."""
    from attribution.balancing import parse_targets

    headless = [
        s
        for s in objects("Service")
        if s["spec"].get("clusterIP") == "None"
        and any(p["targetPort"] == "grpc" for p in s["spec"]["ports"])
    ]
    (grpc_service,) = headless
    spec = grpc_service["spec"]
    assert spec["selector"].items() <= pod_labels().items()
    assert spec.get("publishNotReadyAddresses", False) is False  # ready (SERVING) pods only
    (port,) = spec["ports"]
    assert port["appProtocol"] == "grpc"
    namespace = grpc_service["metadata"]["namespace"]
    name = f"dns:///{grpc_service['metadata']['name']}.{namespace}.svc.cluster.local"
    assert parse_targets(f"{name}:{port['port']}").balanced
    # the manifests name it where clients look
    assert grpc_service["metadata"]["name"] in (KUBERNETES / "statefulset.yaml").read_text()


def test_replicas_run_on_different_nodes_and_a_drain_leaves_a_majority():
    sts = one("StatefulSet")
    assert sts["spec"]["replicas"] >= 3
    (term,) = pod_spec()["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels().items()
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == sts["spec"]["replicas"] - 1
