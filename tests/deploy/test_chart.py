"""The Helm chart: lint-clean, valid Kubernetes for every values file, and the topology it promises.

Rendering and linting go through helm-python-sdk (Helm's own Go SDK, offline); every rendered
manifest is validated against the Kubernetes OpenAPI schemas bundled in kubernetes-validate, in
strict mode (unknown fields fail), for the oldest Kubernetes the chart supports and a current one.
ServiceMonitor is a Prometheus Operator CRD with no bundled schema: its structure is checked here
against the Services it must scrape instead.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from helm_python import Chart, HelmError, HelmValuesError, lint

from tests.deploy.chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    VALUES_FILES,
    Manifest,
    component,
    env_of,
    line_of,
    load_values,
    mounts_of,
    named,
    of_kind,
    pod_spec,
    render,
    render_values,
    volumes_of,
    workloads,
)
from tests.deploy.importscan import ROOT
from tests.deploy.settings_map import variables

KUBE_VERSIONS = ("1.26", "1.30")
# CRDs: ServiceMonitor is checked against the Services it scrapes, KEDA's kinds against the CRD schemas
# vendored in tests/deploy/schemas (test_keda_objects_are_valid_against_keda_s_crd_schemas)
NO_BUNDLED_SCHEMA = {"ServiceMonitor", "ScaledObject", "TriggerAuthentication"}
KEDA_SCHEMAS = {
    "ScaledObject": "keda-scaledobject.json",
    "TriggerAuthentication": "keda-triggerauthentication.json",
}
SOCKET_DIR = "/run/edgeinspect"
MODEL_DIR = "/var/lib/edgeinspect/models"
PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def _lines(values_file: str) -> list[dict[str, Any]]:
    values = load_values(values_file) or {}
    lines = values.get("lines")
    if lines is None:  # the chart's defaults
        with Chart.load(CHART) as chart:
            lines = chart.values["lines"]
    assert isinstance(lines, list)
    return lines


def _containers(workload: Manifest) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod_spec(workload)["containers"]}


def _settings_of(container_name: str) -> str:
    return "worker" if container_name.startswith("worker-") else container_name


# ---- lint and schema validity -------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_chart_lints_clean_in_strict_mode(values_file: str) -> None:
    report = lint(CHART, load_values(values_file), strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    infos = {m["error"] for m in report["messages"] if m["severity"] == 1}
    assert report["errors"] == [] and problems == []
    assert infos <= {"icon is recommended"}, infos  # the project publishes no icon URL


@pytest.mark.parametrize("values_file", VALUES_FILES)
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_is_valid_kubernetes(values_file: str, kube_version: str) -> None:
    for doc in render(values_file):
        if doc["kind"] in NO_BUNDLED_SCHEMA:
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ({"lines": [{"name": "Line_1", "camera": {"source": "usb:0"}}]}, "/lines/0/name"),
        ({"lines": [{"name": "line-1", "camera": {"source": "usb:0"}, "workers": 0}]}, "/lines/0/workers"),
        ({"mqtt": {"url": "http://broker:1883"}}, "/mqtt/url"),
        ({"modelDir": {"type": "nfs"}}, "/modelDir/type"),
        ({"ui": {"auth": {"mode": "oauth"}}}, "/ui/auth/mode"),
        ({"unknownTopLevel": True}, "unknownTopLevel"),
    ],
    ids=["line-name", "workers", "mqtt-url", "model-dir-type", "ui-auth", "typo"],
)
def test_values_schema_refuses_wrong_values(override: dict[str, Any], where: str) -> None:
    with pytest.raises(HelmValuesError, match=re.escape(where)):
        render_values(override)


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_port_names_are_valid_service_names(values_file: str) -> None:
    docs = render(values_file)
    ports = [p for s in of_kind(docs, "Service") for p in s["spec"]["ports"]]
    ports += [p for w in workloads(docs) for c in pod_spec(w)["containers"] for p in c.get("ports", [])]
    for port in ports:
        assert len(port["name"]) <= 15 and PORT_NAME.match(port["name"]), port["name"]


# ---- one release, N lines ----------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_one_camera_and_one_inference_deployment_per_line(values_file: str) -> None:
    docs = render(values_file)
    deployments = of_kind(docs, "Deployment")
    for wanted in ("camera", "inference"):
        per_line = sorted(line_of(d) or "" for d in deployments if component(d) == wanted)
        assert per_line == sorted(line["name"] for line in _lines(values_file))
        scaled = {o["spec"]["scaleTargetRef"]["name"] for o in of_kind(docs, "ScaledObject")}
        fixed = [d for d in deployments if component(d) == wanted and d["metadata"]["name"] not in scaled]
        assert all(d["spec"]["replicas"] == 1 for d in fixed)


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_inference_pod_runs_the_agent_and_the_line_s_workers(values_file: str) -> None:
    docs = render(values_file)
    for line in _lines(values_file):
        pod = next(
            d
            for d in of_kind(docs, "Deployment")
            if component(d) == "inference" and line_of(d) == line["name"]
        )
        containers = _containers(pod)
        workers = [name for name in containers if name.startswith("worker-")]
        assert "agent" in containers and len(workers) == line.get("workers", 1)
        consumers = {env_of(containers[w])["EI_CONSUMER"] for w in workers}
        ports = {env_of(containers[w])["EI_HTTP_PORT"] for w in workers}
        assert len(consumers) == len(ports) == len(workers), "each worker needs its own name and port"
        assert all(env_of(c)["EI_LINE"] == line["name"] for c in containers.values())


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_agent_sidecar_shares_its_socket_and_shm_with_the_workers(values_file: str) -> None:
    for pod in (d for d in of_kind(render(values_file), "Deployment") if component(d) == "inference"):
        spec = pod_spec(pod)
        volumes = volumes_of(spec)
        containers = _containers(pod)
        for name, container in containers.items():
            mounts = mounts_of(container)
            assert mounts[SOCKET_DIR] == "agent-socket" and mounts["/dev/shm"] == "shm", name
            assert env_of(container)["EI_AGENT_ADDR"] == f"unix://{SOCKET_DIR}/agent.sock", name
        assert "emptyDir" in volumes["agent-socket"]
        assert volumes["shm"]["emptyDir"]["medium"] == "Memory"


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_model_manager_is_one_per_node_and_shares_the_model_folder(values_file: str) -> None:
    docs = render(values_file)
    (manager,) = [d for d in workloads(docs) if component(d) == "model-manager"]
    assert manager["kind"] == "DaemonSet"
    manager_container = _containers(manager)["model-manager"]
    manager_volume = volumes_of(pod_spec(manager))[mounts_of(manager_container)[MODEL_DIR]]
    for pod in (d for d in of_kind(docs, "Deployment") if component(d) == "inference"):
        agent = _containers(pod)["agent"]
        agent_volume = volumes_of(pod_spec(pod))[mounts_of(agent)[MODEL_DIR]]
        assert agent_volume == manager_volume
        assert env_of(agent)["EI_MODEL_DIR"] == env_of(manager_container)["EI_MODEL_DIR"] == MODEL_DIR
        if "persistentVolumeClaim" in agent_volume:  # one claim: each node in its own sub-folder
            for container in (agent, manager_container):
                mount = next(m for m in container["volumeMounts"] if m["mountPath"] == MODEL_DIR)
                assert mount["subPathExpr"] == "$(NODE_NAME)" and "NODE_NAME" in env_of(container)


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_model_manager_reaches_the_agent_on_its_own_node(values_file: str) -> None:
    docs = render(values_file)
    (manager,) = [d for d in workloads(docs) if component(d) == "model-manager"]
    host, port = env_of(_containers(manager)["model-manager"])["EI_AGENT_ADDR"].split(":")
    service = named(docs, "Service", host)
    assert service["spec"]["internalTrafficPolicy"] == "Local"
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "inference"
    assert any(str(p["port"]) == port and p["targetPort"] == "grpc" for p in service["spec"]["ports"])
    for pod in (d for d in of_kind(docs, "Deployment") if component(d) == "inference"):
        agent = _containers(pod)["agent"]
        assert env_of(agent)["EI_AGENT_TCP_ADDR"].endswith(f":{port}")


def test_one_inference_pod_per_node_keeps_node_and_thing_one_to_one() -> None:
    for pod in (d for d in of_kind(render("values.yaml"), "Deployment") if component(d) == "inference"):
        rule = pod_spec(pod)["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            0
        ]
        assert rule["topologyKey"] == "kubernetes.io/hostname"
        assert rule["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "inference"
        assert pod["spec"]["strategy"]["type"] == "Recreate"  # the new pod needs the old one's node slot


def test_jetson_lines_get_the_runtime_class_node_placement_and_jetson_agent() -> None:
    values_file = "multi-line-jetson-values.yaml"
    values = load_values(values_file) or {}
    docs = render(values_file)
    for line in _lines(values_file):
        pod = next(
            d
            for d in of_kind(docs, "Deployment")
            if component(d) == "inference" and line_of(d) == line["name"]
        )
        spec = pod_spec(pod)
        agent = _containers(pod)["agent"]
        if line.get("jetson"):
            assert spec["runtimeClassName"] == "nvidia"
            assert spec["nodeSelector"]["kubernetes.io/arch"] == "arm64"
            assert (
                spec["nodeSelector"]["kubernetes.io/hostname"]
                == line["nodeSelector"]["kubernetes.io/hostname"]
            )
            assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
            assert agent["image"].endswith(values["images"]["agentJetson"]["tag"])
            assert env_of(agent)["EI_EXECUTION_PROVIDERS"].startswith("tensorrt")
            assert agent["resources"]["limits"]["nvidia.com/gpu"] == 1
            assert 44 in spec["securityContext"]["supplementalGroups"]
        else:
            assert "runtimeClassName" not in spec
            assert "nvidia.com/gpu" not in agent["resources"]["limits"]
            assert agent["image"].endswith(f"{values['images']['agent']['repository']}:0.1.0")
    (manager,) = [d for d in workloads(docs) if component(d) == "model-manager"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod_spec(manager)["tolerations"])


# ---- services, storage, secrets ----------------------------------------------------------------------


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_every_ei_variable_is_a_setting_of_that_container(values_file: str) -> None:
    for workload in workloads(render(values_file)):
        for name, container in _containers(workload).items():
            if name == "redis":
                continue
            unknown = {k for k in env_of(container) if k.startswith("EI_")} - variables(_settings_of(name))
            assert not unknown, f"{workload['metadata']['name']}/{name} sets unknown {sorted(unknown)}"


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_every_service_container_has_probes_and_resources(values_file: str) -> None:
    for workload in workloads(render(values_file)):
        spec = pod_spec(workload)
        for container in spec["containers"] + spec.get("initContainers", []):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
                resources["limits"]
            )
        for name, container in _containers(workload).items():
            if name == "redis":
                assert container["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
                continue
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_probe_ports_are_the_ports_the_services_listen_on(values_file: str) -> None:
    for workload in workloads(render(values_file)):
        for name, container in _containers(workload).items():
            if name == "redis":
                continue
            ports = {p["name"]: str(p["containerPort"]) for p in container["ports"]}
            probe_port = container["livenessProbe"]["httpGet"]["port"]
            env = env_of(container)
            assert ports[probe_port] == env["EI_UI_PORT" if name == "ui" else "EI_HTTP_PORT"], name


def test_redis_is_bundled_as_a_statefulset_or_external_from_a_secret() -> None:
    bundled = render("minimal-values.yaml")
    (redis,) = of_kind(bundled, "StatefulSet")
    assert component(redis) == "redis"
    url = named(bundled, "Secret", f"{RELEASE}-edgeinspect-redis")["stringData"]["url"]
    assert url == f"redis://{RELEASE}-edgeinspect-redis:6379/0"

    external_file = "external-redis-ingress-monitoring-values.yaml"
    external = render(external_file)
    values = load_values(external_file) or {}
    assert not of_kind(external, "StatefulSet")
    for workload in workloads(external):
        for container in pod_spec(workload)["containers"]:
            ref = env_of(container)["EI_REDIS_URL"]["secretKeyRef"]
            assert ref == {"name": values["redis"]["existingSecret"], "key": values["redis"]["urlKey"]}


def test_uploader_spools_on_a_persistent_claim() -> None:
    docs = render("minimal-values.yaml")
    uploader = named(docs, "Deployment", f"{RELEASE}-edgeinspect-uploader")
    container = _containers(uploader)["uploader"]
    spool = volumes_of(pod_spec(uploader))[mounts_of(container)[env_of(container)["EI_SPOOL_DIR"]]]
    claim = named(docs, "PersistentVolumeClaim", spool["persistentVolumeClaim"]["claimName"])
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert uploader["spec"]["strategy"]["type"] == "Recreate"


def test_ui_has_a_service_and_an_optional_ingress() -> None:
    minimal = render("minimal-values.yaml")
    assert named(minimal, "Service", f"{RELEASE}-edgeinspect-ui")["spec"]["ports"][0]["targetPort"] == "http"
    assert not of_kind(minimal, "Ingress")
    exposed = render("external-redis-ingress-monitoring-values.yaml")
    (ingress,) = of_kind(exposed, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == f"{RELEASE}-edgeinspect-ui" and ingress["spec"]["tls"][0]["secretName"]


def test_ui_shows_every_line_and_one_agent() -> None:
    docs = render("multi-line-jetson-values.yaml")
    ui = _containers(named(docs, "Deployment", f"{RELEASE}-edgeinspect-ui"))["ui"]
    env = env_of(ui)
    assert env["EI_UI_LINES"] == ",".join(line["name"] for line in _lines("multi-line-jetson-values.yaml"))
    host = env["EI_AGENT_ADDR"].split(":")[0]
    assert named(docs, "Service", host)["spec"]["selector"]["edgeinspect.io/line"] == "weld-2"


def test_secrets_are_created_or_taken_from_existing_ones() -> None:
    minimal = render("minimal-values.yaml")
    keys = named(minimal, "Secret", f"{RELEASE}-edgeinspect-trusted-keys")["stringData"]
    assert "BEGIN PUBLIC KEY" in keys["release.pub"]
    s3 = named(minimal, "Secret", f"{RELEASE}-edgeinspect-s3")["stringData"]
    assert set(s3) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

    values_file = "external-redis-ingress-monitoring-values.yaml"
    docs = render(values_file)
    values = load_values(values_file) or {}
    created = {d["metadata"]["name"] for d in of_kind(docs, "Secret")}
    existing = {values["s3"]["existingSecret"], values["trustedKeys"]["existingSecret"]}
    existing |= {values["mqtt"]["existingSecret"], values["mqtt"]["tls"]["existingSecret"]}
    # the agent's and the camera trigger's bearer tokens and the agent's TLS certificate are generated
    # by the chart (kept across upgrades by lookup)
    generated = {f"{RELEASE}-edgeinspect-{name}" for name in ("agent-token", "trigger-token", "agent-tls")}
    assert not created & existing and created == generated, created
    (manager,) = [d for d in workloads(docs) if component(d) == "model-manager"]
    volumes = volumes_of(pod_spec(manager))
    assert volumes["trusted-keys"]["secret"]["secretName"] == values["trustedKeys"]["existingSecret"]
    assert volumes["mqtt-tls"]["secret"]["secretName"] == values["mqtt"]["tls"]["existingSecret"]


def test_ui_asks_for_a_token_by_default_and_generates_one() -> None:
    docs = render("minimal-values.yaml")
    ui = _containers(named(docs, "Deployment", f"{RELEASE}-edgeinspect-ui"))["ui"]
    assert env_of(ui)["EI_UI_AUTH"] == "bearer"
    token = named(docs, "Secret", f"{RELEASE}-edgeinspect-ui-auth")["stringData"]["token"]
    assert re.fullmatch(r"[A-Za-z0-9]{40}", token)
    given = render_values({**(load_values("minimal-values.yaml") or {}), "ui": {"auth": {"token": "t0ken"}}})
    assert named(given, "Secret", f"{RELEASE}-edgeinspect-ui-auth")["stringData"]["token"] == "t0ken"


def test_aws_iot_core_uses_aws_topics_and_each_node_s_certificate() -> None:
    docs = render("multi-line-jetson-values.yaml")
    (manager,) = [d for d in workloads(docs) if component(d) == "model-manager"]
    container = _containers(manager)["model-manager"]
    env = env_of(container)
    assert env["EI_JOBS_PREFIX"] == "$aws" and env["EI_MQTT_URL"].startswith("mqtts://")
    tls_mount = next(m for m in container["volumeMounts"] if m["name"] == "mqtt-tls")
    for variable in ("EI_MQTT_CA_FILE", "EI_MQTT_CERT_FILE", "EI_MQTT_KEY_FILE"):
        assert env[variable].startswith(tls_mount["mountPath"] + "/")
    assert "hostPath" in volumes_of(pod_spec(manager))["mqtt-tls"]
    assert "NODE_NAME" in " ".join(container["command"])  # the thing is named after its node


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_config_and_secret_checksums_roll_the_pods(values_file: str) -> None:
    for workload in workloads(render(values_file)):
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert {"checksum/config", "checksum/secrets"} <= set(annotations)


def test_a_changed_setting_changes_the_checksum() -> None:
    base = load_values("minimal-values.yaml") or {}

    def checksums(values: dict[str, Any]) -> tuple[str, str]:
        ui = named(render_values(values), "Deployment", f"{RELEASE}-edgeinspect-ui")
        annotations = ui["spec"]["template"]["metadata"]["annotations"]
        return annotations["checksum/config"], annotations["checksum/secrets"]

    config, secrets = checksums(base)
    assert checksums({**base, "logLevel": "DEBUG"})[0] != config
    assert checksums({**base, "s3": {**base["s3"], "secretAccessKey": "rotated"}})[1] != secrets


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_disruption_budgets_select_the_release_s_pods(values_file: str) -> None:
    docs = render(values_file)
    budgets = of_kind(docs, "PodDisruptionBudget")
    assert budgets
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        matching = [
            w
            for w in workloads(docs)
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, budget["metadata"]["name"]
    lines = {line_of(b) for b in budgets if component(b) in {"camera", "inference"}}
    assert lines == {line["name"] for line in _lines(values_file)}


NOT_METRICS = {"grpc", "trigger", "opcua", "modbus"}  # the agent's gRPC, the camera trigger, the PLC ports


def test_service_monitor_scrapes_every_metrics_port() -> None:
    docs = render("external-redis-ingress-monitoring-values.yaml")
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert all(e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])
    for service in of_kind(docs, "Service"):
        assert selector.items() <= service["metadata"]["labels"].items()
        for port in service["spec"]["ports"]:
            assert port["name"] in scraped or port["name"] in NOT_METRICS, port["name"]
    assert not of_kind(render("minimal-values.yaml"), "ServiceMonitor")


def test_a_line_with_line_io_gets_its_deployment_and_the_camera_trigger_port() -> None:
    docs = render("multi-line-jetson-values.yaml")
    (line_io,) = [d for d in workloads(docs) if component(d) == "line-io"]
    assert line_of(line_io) == "paint-1" and line_io["spec"]["strategy"]["type"] == "Recreate"
    env = env_of(_containers(line_io)["line-io"])
    assert env["EI_CAMERA_URL"] == f"http://{RELEASE}-edgeinspect-paint-1-camera:8090"
    assert env["EI_OPCUA_USERS"]["secretKeyRef"] == {"name": "paint-1-opcua", "key": "users"}
    camera = named(docs, "Service", f"{RELEASE}-edgeinspect-paint-1-camera")
    assert {"name": "trigger", "port": 8090, "targetPort": "trigger"} in camera["spec"]["ports"]
    assert not [d for d in workloads(render("values.yaml")) if component(d) == "line-io"]


def test_agents_grpc_port_is_closed_to_all_but_the_model_manager_and_ui() -> None:
    docs = render("minimal-values.yaml")
    policy = named(docs, "NetworkPolicy", f"{RELEASE}-edgeinspect-agent")
    grpc_rule = next(
        r for r in policy["spec"]["ingress"] if {"port": "grpc", "protocol": "TCP"} in r["ports"]
    )
    allowed = grpc_rule["from"][0]["podSelector"]["matchExpressions"][0]["values"]
    assert sorted(allowed) == ["model-manager", "ui"]


def test_default_images_are_the_edge_images_the_dockerfiles_build() -> None:
    from tests.deploy.dockerfile import Dockerfile
    from tests.deploy.images import EDGE_IMAGES
    from tests.deploy.importscan import ROOT

    titles = set()
    for image in EDGE_IMAGES:
        labels = " ".join(
            Dockerfile(ROOT / image.dockerfile, dict(image.build_args)).effective(image.target, "LABEL")
        )
        match = re.search(r'org\.opencontainers\.image\.title="([^"]+)"', labels)
        assert match is not None
        titles.add(match.group(1))
    used = set()
    for workload in workloads(render("values.yaml")):
        for container in pod_spec(workload)["containers"]:
            repository = container["image"].rsplit(":", 1)[0]
            if repository != "redis":
                used.add(repository)
    assert used <= titles, f"the chart runs images no Dockerfile builds: {sorted(used - titles)}"
    assert not any("cloud" in t for t in used), "no training image at the edge"


# ---- per-line autoscaling (KEDA) ----------------------------------------------------------------------

AUTOSCALED = "external-redis-ingress-monitoring-values.yaml"


@cache
def _keda_schema(name: str) -> dict[str, Any]:
    loaded = json.loads((ROOT / "tests" / "deploy" / "schemas" / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _keda_errors(doc: Manifest) -> list[str]:
    validator = jsonschema.Draft7Validator(_keda_schema(KEDA_SCHEMAS[doc["kind"]]))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    if doc["kind"] == "ScaledObject":
        trigger_schema = jsonschema.Draft7Validator(_keda_schema("keda-redis-streams-trigger.json"))
        for trigger in doc["spec"]["triggers"]:
            assert trigger["type"] == "redis-streams"
            problems = trigger_schema.iter_errors(trigger["metadata"])
            errors += [f"trigger metadata: {e.message}" for e in problems]
    return errors


def _with_autoscaling(values: dict[str, Any], **scaling: Any) -> dict[str, Any]:
    lines = [{**line, "autoscaling": {"enabled": True, **scaling}} for line in values["lines"]]
    return {**values, "lines": lines}


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_keda_objects_are_valid_against_keda_s_crd_schemas(values_file: str) -> None:
    docs = render(values_file)
    for doc in docs:
        if doc["kind"] in KEDA_SCHEMAS:
            assert _keda_errors(doc) == [], f"{doc['kind']} {doc['metadata']['name']}"
    wanted = [line["name"] for line in _lines(values_file) if line.get("autoscaling", {}).get("enabled")]
    assert len(of_kind(docs, "ScaledObject")) == len(wanted)


def test_an_autoscaled_line_scales_its_inference_deployment_on_its_pending_frames() -> None:
    from edgeinspect.core import names

    docs = render(AUTOSCALED)
    values = load_values(AUTOSCALED) or {}
    (scaled,) = of_kind(docs, "ScaledObject")
    line = next(line for line in values["lines"] if line.get("autoscaling", {}).get("enabled"))
    target = named(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert line_of(target) == line["name"] and component(target) == "inference"
    assert "replicas" not in target["spec"], "KEDA owns the replicas of an autoscaled line"
    spec, scaling = scaled["spec"], line["autoscaling"]
    assert spec["minReplicaCount"] == scaling["minReplicas"]
    assert spec["maxReplicaCount"] == scaling["maxReplicas"]
    (trigger,) = spec["triggers"]
    metadata = trigger["metadata"]
    assert metadata["stream"] == names.frames_stream(line["name"])
    assert metadata["consumerGroup"] == names.INFERENCE_GROUP
    assert metadata["pendingEntriesCount"] == str(scaling["pendingEntriesCount"])
    assert metadata["address"] == values["keda"]["redisAddress"]
    assert trigger["authenticationRef"]["name"] == values["keda"]["triggerAuthentication"]
    for other in workloads(docs):
        if component(other) == "inference" and other is not target:
            assert other["spec"]["replicas"] == 1


def test_autoscaling_with_the_bundled_redis_reads_its_password_and_is_let_through() -> None:
    base = load_values("minimal-values.yaml") or {}
    redis = {**base.get("redis", {}), "password": "s3cret"}
    values = _with_autoscaling({**base, "redis": redis}, minReplicas=0)
    docs = render_values(values)
    (scaled,) = of_kind(docs, "ScaledObject")
    assert _keda_errors(scaled) == [] and scaled["spec"]["minReplicaCount"] == 0
    (auth,) = of_kind(docs, "TriggerAuthentication")
    assert _keda_errors(auth) == []
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "password" and ref["key"] == "password"
    assert named(docs, "Secret", ref["name"])["stringData"]["password"] == "s3cret"
    assert scaled["spec"]["triggers"][0]["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert scaled["spec"]["triggers"][0]["metadata"]["address"].endswith(f".{NAMESPACE}.svc:6379")
    policy = named(docs, "NetworkPolicy", f"{RELEASE}-edgeinspect-redis")
    sources = policy["spec"]["ingress"][0]["from"]
    namespaces = [source.get("namespaceSelector", {}).get("matchLabels") for source in sources]
    assert {"kubernetes.io/metadata.name": "keda"} in namespaces


def test_autoscaling_with_an_external_redis_needs_its_address() -> None:
    values = _with_autoscaling({**(load_values(AUTOSCALED) or {}), "keda": {"redisAddress": ""}})
    with pytest.raises(HelmError, match=re.escape("keda.redisAddress")):
        render_values(values)


def test_keda_schema_refuses_what_the_api_server_would() -> None:
    (scaled,) = of_kind(render(AUTOSCALED), "ScaledObject")
    broken = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 3}}
    assert any("maxReplicas" in e for e in _keda_errors(broken))
    no_target = {**scaled, "spec": {k: v for k, v in scaled["spec"].items() if k != "scaleTargetRef"}}
    assert any("scaleTargetRef" in e for e in _keda_errors(no_target))


def test_every_client_of_the_agents_tcp_port_sends_its_token() -> None:
    """The agent refuses a TCP listener beyond loopback without EI_AGENT_TOKEN (issue 15): the chart
    gives the agent, the model manager and the UI the same generated token."""
    docs = render("multi-line-jetson-values.yaml")
    secret = f"{RELEASE}-edgeinspect-agent-token"
    assert named(docs, "Secret", secret)["stringData"]["token"]
    seen = set()
    for doc in workloads(docs):
        for name, container in _containers(doc).items():
            env = {e["name"]: e for e in container.get("env", [])}
            talks_tcp = name in ("agent", "model-manager", "ui") and (
                "EI_AGENT_TCP_ADDR" in env
                or not str(env.get("EI_AGENT_ADDR", {}).get("value", "")).startswith("unix")
            )
            if talks_tcp and "EI_AGENT_ADDR" in env:
                assert env["EI_AGENT_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret, (name, env)
                seen.add(name)
    assert seen == {"agent", "model-manager", "ui"}


def test_the_camera_trigger_and_the_line_io_share_the_generated_token() -> None:
    """The camera's HTTP trigger needs a bearer token (issue 15): the chart generates one Secret that
    every camera checks and every line I/O sends; the Host allow-list names the camera's Service."""
    docs = render("multi-line-jetson-values.yaml")
    secret = f"{RELEASE}-edgeinspect-trigger-token"
    assert named(docs, "Secret", secret)["stringData"]["token"]
    cameras = line_ios = 0
    for doc in workloads(docs):
        for name, container in _containers(doc).items():
            env = {e["name"]: e for e in container.get("env", [])}
            if name == "camera":
                cameras += 1
                assert env["EI_TRIGGER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret
                hosts = env["EI_TRIGGER_ALLOWED_HOSTS"]["value"].split(",")
                assert any(h.endswith("-camera") for h in hosts), hosts
                assert "EI_TRIGGER_AUTH" not in env
            if "EI_CAMERA_URL" in env:
                line_ios += 1
                assert env["EI_CAMERA_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret
                host = env["EI_CAMERA_URL"]["value"].split("//")[1].split(":")[0]
                assert any(host in d["metadata"]["name"] for d in of_kind(docs, "Service"))
    assert cameras and line_ios


def test_the_agents_tcp_port_serves_tls_its_clients_verify() -> None:
    """Beyond loopback the agent refuses a TCP listener without TLS (issue 15): the chart generates a
    CA and a certificate for agent.tls.serverName; the agent serves it, the model manager and the UI
    trust the CA and check that name, whichever Service they dial."""
    docs = render("multi-line-jetson-values.yaml")
    secret = f"{RELEASE}-edgeinspect-agent-tls"
    pem = named(docs, "Secret", secret)["stringData"]
    assert all("-----BEGIN" in pem[key] for key in ("ca.crt", "tls.crt", "tls.key"))
    seen = set()
    for doc in workloads(docs):
        volumes = volumes_of(pod_spec(doc))
        for name, container in _containers(doc).items():
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
            if name == "agent":
                assert env["EI_AGENT_TLS_CERT_FILE"].startswith(mounts["agent-tls"])
                assert env["EI_AGENT_TLS_KEY_FILE"].startswith(mounts["agent-tls"])
            elif "EI_AGENT_TOKEN" in env and not str(env.get("EI_AGENT_ADDR", "")).startswith("unix"):
                assert env["EI_AGENT_TLS_CA_FILE"].startswith(mounts["agent-tls"]), name
                assert env["EI_AGENT_TLS_SERVER_NAME"] == "edgeinspect-agent"
            else:
                continue
            assert volumes["agent-tls"]["secret"]["secretName"] == secret
            seen.add(name)
    assert seen == {"agent", "model-manager", "ui"}
