"""deploy/k8s (kustomize base, local overlay, Prometheus Operator component), checked for
what an operator relies on.

No cluster here: the tree is rendered by a small kustomize subset (resources, components,
generators, namespace, images, JSON 6902 patches) and parsed. Where kubectl is installed,
its own rendering must agree.
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.common import topics
from libs.common.settings import Settings
from tests.unit.deploy.promql import JOBS

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
LOCAL = K8S / "overlays" / "local"
OPERATOR = K8S / "components" / "prometheus-operator"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
KUBERNETES_SCRAPE = ROOT / "deploy" / "prometheus" / "kubernetes.yml"

SETTINGS = {f"EXCHANGE_{name.upper()}" for name in Settings.model_fields}
PROCESSOR_INPUT = {
    "risk": topics.RISK_IN,
    "matcher": topics.MATCHER_IN,
    "liquidator": topics.LIQUIDATIONS,
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
IMAGE_USER = 10001  # the Dockerfile's USER

Resource = dict[str, Any]


# ------------------------------------------------------------------ a kustomize subset


def kustomization(directory: Path) -> dict[str, Any]:
    loaded = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert isinstance(loaded, dict), directory
    return loaded


def documents(path: Path) -> list[Resource]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: {doc}"
        assert doc.get("metadata", {}).get("name"), f"{path}: a {doc['kind']} has no name"
    return docs


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {line!r}"
            pairs[key.strip()] = value
    return pairs


def generated(kind: str, spec: dict[str, Any], directory: Path) -> Resource:
    data: dict[str, str] = {}
    for name in spec.get("envs", []):
        data.update(env_file(directory / name))
    for literal in spec.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    labels = spec.get("options", {}).get("labels", {})
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": spec["name"], "labels": dict(labels)},
        "data" if kind == "ConfigMap" else "stringData": data,
    }


def selected(resource: Resource, target: dict[str, Any]) -> bool:
    if "kind" in target and resource["kind"] != target["kind"]:
        return False
    if "name" in target and resource["metadata"]["name"] != target["name"]:
        return False
    labels = resource["metadata"].get("labels", {})
    for term in filter(None, target.get("labelSelector", "").split(",")):
        if "!=" in term:
            key, value = term.split("!=")
            if labels.get(key) == value:
                return False
        else:
            key, value = term.split("=")
            if labels.get(key) != value:
                return False
    return True


def json_patch(resource: Resource, operations: list[dict[str, Any]]) -> None:
    for op in operations:
        *parents, last = op["path"].split("/")[1:]
        node: Any = resource
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif op["op"] == "replace":
            key = int(last) if isinstance(node, list) else last
            assert isinstance(node, list) or key in node, f"replace of a missing {op['path']}"
            node[key] = op["value"]
        elif op["op"] == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), op["value"])
            else:
                node[last] = op["value"]
        else:
            raise AssertionError(f"unsupported patch op {op['op']}")


def containers(resource: Resource) -> Iterator[dict[str, Any]]:
    spec = resource.get("spec", {}).get("template", {}).get("spec", {})
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def set_image(resource: Resource, image: dict[str, str]) -> None:
    for spec in containers(resource):
        name, _, tag = spec["image"].partition(":")
        if name == image["name"]:
            name, tag = image.get("newName", name), image.get("newTag", tag)
            spec["image"] = f"{name}:{tag}" if tag else name


def render(directory: Path) -> list[Resource]:
    """The resources ``kubectl kustomize directory`` builds, without name hashes."""
    spec = kustomization(directory)
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        resources += render(path) if path.is_dir() else documents(path)
    for entry in spec.get("components", []):
        resources += render(directory / entry)
    for gen in spec.get("configMapGenerator", []):
        resources.append(generated("ConfigMap", gen, directory))
    for gen in spec.get("secretGenerator", []):
        resources.append(generated("Secret", gen, directory))
    resources = copy.deepcopy(resources)
    for patch in spec.get("patches", []):
        operations = yaml.safe_load(patch["patch"])
        matched = [r for r in resources if selected(r, patch["target"])]
        assert matched, f"{directory}: a patch matches nothing: {patch['target']}"
        for resource in matched:
            json_patch(resource, operations)
    for image in spec.get("images", []):
        for resource in resources:
            set_image(resource, image)
    if "namespace" in spec:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = spec["namespace"]
    return resources


def find(resources: list[Resource], kind: str, name: str) -> Resource:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name!r}"
    return matches[0]


def container(deployment: Resource) -> dict[str, Any]:
    name = deployment["metadata"]["name"]
    found = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(found) == 1, f"{name}: no container named after the service"
    return found[0]


def port_number(spec: dict[str, Any], name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    numbers = [p["containerPort"] for p in spec.get("ports", []) if p.get("name") == name_or_number]
    assert numbers, f"no port named {name_or_number!r}"
    return int(numbers[0])


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (cpu or memory) as a number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, value
    return float(match.group(1)) * units.get(match.group(2), 1)


def settings_map(resources: list[Resource]) -> dict[str, str]:
    data: dict[str, str] = find(resources, "ConfigMap", "exchange-settings")["data"]
    return data


RENDERS = {"base": BASE, "local": LOCAL}


@pytest.fixture(scope="module", params=sorted(RENDERS))
def rendered(request: pytest.FixtureRequest) -> list[Resource]:
    return render(RENDERS[request.param])


@pytest.fixture(scope="module")
def local() -> list[Resource]:
    return render(LOCAL)


# ------------------------------------------------------------------ the tree itself


@pytest.mark.parametrize("directory", [BASE, LOCAL, OPERATOR], ids=lambda d: d.name)
def test_every_listed_file_exists_and_parses(directory: Path) -> None:
    spec = kustomization(directory)
    assert spec["kind"] in ("Kustomization", "Component")
    for entry in [*spec.get("resources", []), *spec.get("components", [])]:
        path = directory / entry
        assert path.exists(), f"{directory.name}: {entry} does not exist"
        if path.is_dir():
            assert (path / "kustomization.yaml").exists(), entry
        else:
            assert documents(path), f"{entry} holds no resource"
    for gen in [*spec.get("configMapGenerator", []), *spec.get("secretGenerator", [])]:
        for name in gen.get("envs", []):
            assert env_file(directory / name), name
    listed = {Path(e).name for e in spec.get("resources", [])}
    unlisted = {p.name for p in directory.glob("*.yaml")} - listed - {"kustomization.yaml"}
    assert not unlisted, f"{directory.name}: files no kustomization lists: {sorted(unlisted)}"


def test_no_object_is_defined_twice(local: list[Resource]) -> None:
    keys = [(r["kind"], r["metadata"]["name"]) for r in local]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


# ------------------------------------------------------------------ the services


@pytest.mark.parametrize("name", JOBS)
def test_each_service_is_a_deployment_of_the_project_image(
    rendered: list[Resource], name: str
) -> None:
    deployment = find(rendered, "Deployment", name)
    main = container(deployment)
    assert main["command"] == ["python", "-m", f"services.{name}"]
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == name
    assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "perp-exchange"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    # Every pod creates the missing topics before its service starts, with the same image.
    (init,) = pod["spec"]["initContainers"]
    assert init["command"] == ["python", "-m", "libs.common.admin", "create-topics"]
    assert init["image"] == main["image"]
    assert main["image"].split(":")[0] == "perp-exchange"


def test_images_are_tagged_per_environment(local: list[Resource]) -> None:
    base = render(BASE)
    assert {c["image"] for r in base for c in containers(r)} == {"perp-exchange:0.1.0"}
    images = {c["image"] for r in local for c in containers(r)}
    assert images == {"perp-exchange:local", "apache/kafka:4.1.1", "redis:7.2"}


@pytest.mark.parametrize("name", JOBS)
def test_each_service_runs_non_root_on_a_read_only_filesystem(
    rendered: list[Resource], name: str
) -> None:
    pod = find(rendered, "Deployment", name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_USER
    assert pod["automountServiceAccountToken"] is False
    assert find(rendered, "ServiceAccount", pod["serviceAccountName"])
    for spec in [*pod["initContainers"], *pod["containers"]]:
        context = spec["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, spec["name"]
        assert context["readOnlyRootFilesystem"] is True, spec["name"]
        assert context["capabilities"]["drop"] == ["ALL"], spec["name"]


@pytest.mark.parametrize("name", JOBS)
def test_each_container_requests_cpu_and_memory_and_caps_memory(
    rendered: list[Resource], name: str
) -> None:
    for spec in containers(find(rendered, "Deployment", name)):
        resources = spec["resources"]
        assert quantity(resources["requests"]["cpu"]) > 0, spec["name"]
        requested = quantity(resources["requests"]["memory"])
        assert 0 < requested <= quantity(resources["limits"]["memory"]), spec["name"]


@pytest.mark.parametrize("name", JOBS)
def test_each_service_is_probed_on_the_endpoint_it_serves(
    rendered: list[Resource], name: str
) -> None:
    settings = settings_map(rendered)
    main = container(find(rendered, "Deployment", name))
    if name == "gateway":
        path, port = "/health", int(settings["EXCHANGE_GATEWAY_PORT"])
    else:
        path, port = "/health", int(settings["EXCHANGE_METRICS_PORT"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        check = main[probe]["httpGet"]
        assert check["path"] == path, f"{name} {probe}"
        assert port_number(main, check["port"]) == port, f"{name} {probe}"
        assert main[probe].get("timeoutSeconds", 1) < main[probe].get("periodSeconds", 10)


@pytest.mark.parametrize("name", JOBS)
def test_each_pod_asks_to_be_scraped_on_its_metrics_port(
    rendered: list[Resource], name: str
) -> None:
    metrics_port = int(settings_map(rendered)["EXCHANGE_METRICS_PORT"])
    deployment = find(rendered, "Deployment", name)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == metrics_port
    assert port_number(container(deployment), "metrics") == metrics_port


@pytest.mark.parametrize("name", JOBS)
def test_each_service_has_a_service_object_selecting_its_pods(
    rendered: list[Resource], name: str
) -> None:
    service = find(rendered, "Service", name)
    pod_labels = find(rendered, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["metrics"]["targetPort"] == "metrics"
    if name == "gateway":
        gateway_port = int(settings_map(rendered)["EXCHANGE_GATEWAY_PORT"])
        assert ports["http"]["port"] == gateway_port
        assert ports["http"]["targetPort"] == "http"
        assert "operator" not in ports, "the public Service must not carry the operator API"


def test_the_operator_api_has_an_internal_service_of_its_own(rendered: list[Resource]) -> None:
    operator_port = int(settings_map(rendered)["EXCHANGE_OPERATOR_PORT"])
    deployment = find(rendered, "Deployment", "gateway")
    assert port_number(container(deployment), "operator") == operator_port
    service = find(rendered, "Service", "gateway-operator")
    assert service["spec"]["type"] == "ClusterIP"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (operator_port, "operator")


@pytest.mark.parametrize("name", JOBS)
def test_each_service_has_a_disruption_budget_that_lets_drains_through(
    rendered: list[Resource], name: str
) -> None:
    budget = find(rendered, "PodDisruptionBudget", name)
    deployment = find(rendered, "Deployment", name)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    spec = budget["spec"]
    assert ("maxUnavailable" in spec) != ("minAvailable" in spec)
    if "minAvailable" in spec:
        # A budget that needs every replica would block node drains forever.
        floor = (
            deployment["spec"].get("replicas")
            or find(rendered, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"]
        )
        assert spec["minAvailable"] < floor
    else:
        assert spec["maxUnavailable"] >= 1


def test_the_gateway_scales_on_cpu_and_owns_no_replica_count(rendered: list[Resource]) -> None:
    hpa = find(rendered, "HorizontalPodAutoscaler", "gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "gateway",
    )
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    deployment = find(rendered, "Deployment", "gateway")
    assert "replicas" not in deployment["spec"], "the autoscaler owns the gateway's count"
    assert quantity(container(deployment)["resources"]["requests"]["cpu"]) > 0


def test_the_base_gateway_is_highly_available() -> None:
    assert find(render(BASE), "HorizontalPodAutoscaler", "gateway")["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("name", sorted(PROCESSOR_INPUT))
def test_processors_run_no_more_instances_than_input_partitions(
    rendered: list[Resource], name: str
) -> None:
    deployment = find(rendered, "Deployment", name)
    replicas = deployment["spec"]["replicas"]
    assert 1 <= replicas <= topics.spec(PROCESSOR_INPUT[name]).partitions
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_the_oracle_runs_exactly_one_instance(rendered: list[Resource]) -> None:
    # Not a consumer group: a second instance would publish every tick twice.
    deployment = find(rendered, "Deployment", "oracle")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


# ------------------------------------------------------------------ settings


def test_configmaps_and_secrets_hold_only_real_settings(local: list[Resource]) -> None:
    for resource in local:
        if resource["kind"] in ("ConfigMap", "Secret"):
            keys = set(resource.get("data") or resource.get("stringData") or {})
            assert keys, resource["metadata"]["name"]
            assert keys <= SETTINGS, f"not settings: {sorted(keys - SETTINGS)}"


@pytest.mark.parametrize("name", JOBS)
def test_container_environments_are_real_settings_and_resolve(
    local: list[Resource], name: str
) -> None:
    for spec in containers(find(local, "Deployment", name)):
        names = {var["name"] for var in spec.get("env", [])}
        assert names <= SETTINGS, f"not settings: {sorted(names - SETTINGS)}"
        for source in spec.get("envFrom", []):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source:
                    assert find(local, kind, source[key]["name"])


def test_secrets_carry_what_must_not_be_in_a_configmap(local: list[Resource]) -> None:
    secret = find(local, "Secret", "exchange-secrets")["stringData"]
    assert {"EXCHANGE_REDIS_URL", "EXCHANGE_OPERATOR_TOKEN"} <= set(secret)
    assert not {"EXCHANGE_REDIS_URL", "EXCHANGE_OPERATOR_TOKEN"} & set(settings_map(local))
    # The base commits no secret at all.
    assert not [r for r in render(BASE) if r["kind"] == "Secret"]


def test_services_listen_on_all_interfaces_in_pods(rendered: list[Resource]) -> None:
    settings = settings_map(rendered)
    assert settings["EXCHANGE_METRICS_HOST"] == "0.0.0.0"
    assert settings["EXCHANGE_GATEWAY_HOST"] == "0.0.0.0"


# ------------------------------------------------------------------ the local overlay


def test_local_overlay_puts_everything_in_its_namespace(local: list[Resource]) -> None:
    namespace = kustomization(LOCAL)["namespace"]
    assert find(local, "Namespace", namespace)
    for resource in local:
        if resource["kind"] not in CLUSTER_SCOPED:
            assert resource["metadata"]["namespace"] == namespace, resource["metadata"]["name"]


def test_local_kafka_is_a_kraft_node_the_services_reach(local: list[Resource]) -> None:
    kafka = find(local, "StatefulSet", "kafka")
    (broker,) = kafka["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", broker["image"])
    env = {var["name"]: var["value"] for var in broker["env"]}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split("://", 1)[1]
    assert settings_map(local)["EXCHANGE_KAFKA_BOOTSTRAP"] == advertised
    host, port = advertised.split(":")
    service = find(local, "Service", host)
    assert (
        service["spec"]["selector"].items()
        <= kafka["spec"]["template"]["metadata"]["labels"].items()
    )
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    mounts = {m["name"]: m["mountPath"] for m in broker["volumeMounts"]}
    assert env["KAFKA_LOG_DIRS"].startswith(mounts["data"] + "/")
    assert [t["metadata"]["name"] for t in kafka["spec"]["volumeClaimTemplates"]] == ["data"]


def test_local_redis_keeps_an_append_only_file_the_services_reach(local: list[Resource]) -> None:
    redis = find(local, "StatefulSet", "redis")
    (server,) = redis["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(r"redis:7\.\d+(\.\d+)?", server["image"])
    args = server["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert {m["mountPath"] for m in server["volumeMounts"]} == {"/data"}
    assert [t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]] == ["data"]
    url = find(local, "Secret", "exchange-secrets")["stringData"]["EXCHANGE_REDIS_URL"]
    match = re.fullmatch(r"redis://([^:/]+):(\d+)/\d+", url)
    assert match, url
    host, port = match.groups()
    service = find(local, "Service", host)
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}


# ------------------------------------------------------------------ scraping in the cluster


def test_kubernetes_scrape_config_finds_every_service_pod(local: list[Resource]) -> None:
    config = yaml.safe_load(KUBERNETES_SCRAPE.read_text())
    compose = yaml.safe_load((KUBERNETES_SCRAPE.parent / "prometheus.yml").read_text())
    assert config["rule_files"] == compose["rule_files"]
    (job,) = config["scrape_configs"]
    assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"]
    relabel = {
        (tuple(r.get("source_labels", [])), r.get("action", "replace")): r
        for r in job["relabel_configs"]
    }
    keep_part_of = relabel[(("__meta_kubernetes_pod_label_app_kubernetes_io_part_of",), "keep")]
    keep_scrape = relabel[(("__meta_kubernetes_pod_annotation_prometheus_io_scrape",), "keep")]
    keep_port = relabel[(("__meta_kubernetes_pod_container_port_name",), "keep")]
    to_job = relabel[(("__meta_kubernetes_pod_label_app_kubernetes_io_name",), "replace")]
    assert to_job["target_label"] == "job"
    for name in JOBS:
        deployment = find(local, "Deployment", name)
        pod = deployment["spec"]["template"]["metadata"]
        assert re.fullmatch(keep_part_of["regex"], pod["labels"]["app.kubernetes.io/part-of"])
        assert re.fullmatch(keep_scrape["regex"], pod["annotations"]["prometheus.io/scrape"])
        ports = [p["name"] for p in container(deployment)["ports"]]
        assert [p for p in ports if re.fullmatch(keep_port["regex"], p)] == ["metrics"]
        # The job label is the service's name, as in compose: rules and dashboards match.
        assert pod["labels"]["app.kubernetes.io/name"] == name


def test_prometheus_operator_component_scrapes_and_alerts_like_compose(
    local: list[Resource],
) -> None:
    resources = render(OPERATOR)
    monitor = find(resources, "PodMonitor", "perp-exchange")
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    for name in JOBS:
        labels = find(local, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    rule = find(resources, "PrometheusRule", "perp-exchange")
    groups = [
        group
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == groups, (
        "the PrometheusRule is behind deploy/prometheus/rules: "
        "run deploy/local/prometheus.sh operator-rules"
    )


# ------------------------------------------------------------------ kubectl, when present

HASH_SUFFIX = re.compile(r"-[a-z0-9]{10}$")


def identity(resource: Resource) -> tuple[str, str, str]:
    name = resource["metadata"]["name"]
    if resource["kind"] in ("ConfigMap", "Secret"):
        name = HASH_SUFFIX.sub("", name)
    return resource["kind"], name, resource["metadata"].get("namespace", "")


@pytest.mark.parametrize("directory", [BASE, LOCAL], ids=lambda d: d.name)
def test_kubectl_kustomize_builds_the_same_objects(directory: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the renderer above checked the tree")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    theirs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    ours = render(directory)
    assert sorted(map(identity, theirs)) == sorted(map(identity, ours))
    by_identity = {identity(r): r for r in ours}
    for resource in theirs:
        mine = by_identity[identity(resource)]
        if resource["kind"] == "Deployment":
            assert resource["spec"].get("replicas") == mine["spec"].get("replicas")
            assert [c["image"] for c in containers(resource)] == [
                c["image"] for c in containers(mine)
            ]
            for theirs_c, mine_c in zip(containers(resource), containers(mine), strict=True):
                assert theirs_c["resources"] == mine_c["resources"]
        if resource["kind"] in ("ConfigMap", "Secret"):
            data = resource.get("data", {})
            if resource["kind"] == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in data.items()}
            assert data == (mine.get("data") or mine.get("stringData"))
