"""docker-compose.yml: valid against the Compose specification's schema, and wired to the real code.

The schema is the Compose Specification JSON schema vendored from a registry package (see
``schemas/README.md``: the 2021 revision shipped in ``docker-compose`` 1.29.2, unmodified), because
the tests run offline and no container engine (``docker compose config``) is available here. Schema
validity alone would let the file drift from the code, so the tests also check what the schema
cannot: every ``EI_`` variable is a field of that service's settings class, every build names a
Dockerfile target that exists, healthchecks ask the port the service listens on, and the agent,
worker and model manager share what they must share.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.dockerfile import Dockerfile
from tests.deploy.images import IMAGES
from tests.deploy.importscan import ROOT
from tests.deploy.settings_map import SETTINGS, variables

SCHEMA = ROOT / "tests" / "deploy" / "schemas" / "compose-spec.json"
# read by the `edgeinspect` CLI inside the fleet container, not by the service's settings
CLI_VARIABLES = {"fleet": {"EI_REGISTRY_URL", "EI_S3_ENDPOINT_URL"}}
ONE_SHOT = {"minio-init"}


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}")
# what the tests read for a required secret (``${X:?message}``), which compose refuses to leave unset
REQUIRED_SECRET = "<secret>"


def interpolate(text: str) -> str:
    """Compose's interpolation with no variable set: ``${X:-default}`` -> default, ``$$`` -> ``$``."""
    escaped = text.replace("$$", "\0")

    def value(match: re.Match[str]) -> str:
        return REQUIRED_SECRET if match.group(2) == "?" else (match.group(3) or "")

    return _VARIABLE.sub(value, escaped).replace("\0", "$")


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(interpolate((ROOT / "docker-compose.yml").read_text(encoding="utf-8")))
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, Any]:
    result = compose()["services"]
    assert isinstance(result, dict)
    return result


def _env(name: str) -> dict[str, str]:
    env = services()[name].get("environment", {})
    assert isinstance(env, dict), f"{name}: use the mapping form of environment"
    return {str(k): str(v) for k, v in env.items()}


def _mounts(name: str) -> dict[str, str]:
    """Container path -> source (volume name or host path) of a service's short-syntax volumes."""
    mounts = {}
    for spec in services()[name].get("volumes", []):
        source, target = spec.split(":")[:2]
        mounts[target] = source
    return mounts


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


def test_stack_has_the_whole_topology() -> None:
    expected = {"redis", "mosquitto", "minio", "minio-init", "fleet", "agent", "worker", "camera"}
    expected |= {"model-manager", "uploader", "ui", "line-io"}
    assert set(services()) == expected


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_ei_variable_is_a_setting_of_that_service(name: str) -> None:
    unknown = (
        {key for key in _env(name) if key.startswith("EI_")}
        - variables(name)
        - CLI_VARIABLES.get(name, set())
    )
    assert not unknown, f"{name} sets {sorted(unknown)}, which {SETTINGS[name].__name__} does not read"


def test_every_build_names_an_existing_dockerfile_target() -> None:
    known = {(i.dockerfile, i.target) for i in IMAGES}
    for name, service in services().items():
        build = service.get("build")
        if build is None:
            continue
        path = ROOT / build["context"] / build["dockerfile"]
        docker = Dockerfile(path, build.get("args"))
        target = build.get("target", docker.default_target)
        assert (str(path.relative_to(ROOT)), target) in known, f"{name} builds an image no test checks"


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in services().items():
        if name not in ONE_SHOT:
            assert "test" in service.get("healthcheck", {}), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_healthcheck_asks_the_port_the_service_listens_on(name: str) -> None:
    env = _env(name)
    port = env.get("EI_UI_PORT") if name == "ui" else env.get("EI_HTTP_PORT")
    test = " ".join(services()[name]["healthcheck"]["test"])
    assert port and f"127.0.0.1:{port}/healthz" in test


def test_dependencies_exist_and_wait_for_health() -> None:
    for name, service in services().items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services(), f"{name} depends on unknown {dependency}"
            wanted = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert spec["condition"] == wanted, f"{name} -> {dependency}"


def test_named_volumes_are_declared() -> None:
    declared = set(compose()["volumes"])
    for name in services():
        for source in _mounts(name).values():
            if not source.startswith((".", "/", "$")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


def test_agent_and_worker_share_the_socket_and_shared_memory() -> None:
    socket_dir = "/run/edgeinspect"
    agent, worker = services()["agent"], services()["worker"]
    assert _mounts("agent")[socket_dir] == _mounts("worker")[socket_dir]
    assert (
        _env("agent")["EI_AGENT_ADDR"] == _env("worker")["EI_AGENT_ADDR"] == f"unix://{socket_dir}/agent.sock"
    )
    assert agent["ipc"] == "shareable" and worker["ipc"] == "service:agent"


def test_model_manager_and_agent_share_the_model_directory_and_keys() -> None:
    for variable in ("EI_MODEL_DIR", "EI_TRUSTED_KEYS_DIR"):
        path = _env("agent")[variable]
        assert _env("model-manager")[variable] == path
        assert _mounts("agent")[path] == _mounts("model-manager")[path]
    assert _mounts("model-manager")["/run/edgeinspect"] == _mounts("agent")["/run/edgeinspect"]


def test_uploader_syncs_to_the_minio_bucket_from_a_spool_volume() -> None:
    env = _env("uploader")
    assert env["EI_CAPTURE_URL"].startswith("s3://") and env["EI_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert _mounts("uploader")[env["EI_SPOOL_DIR"]] == "spool"
    bucket = re.search(r"local/(\S+)", " ".join(services()["minio-init"]["command"]))
    assert bucket is not None and env["EI_CAPTURE_URL"].startswith(f"s3://{bucket.group(1)}/")


def test_camera_replays_a_mounted_folder() -> None:
    source = _env("camera")["EI_SOURCE"]
    assert source.startswith("folder://")
    assert source.removeprefix("folder://") in _mounts("camera")


def test_model_manager_and_fleet_speak_on_the_same_jobs_topics() -> None:
    for variable in ("EI_MQTT_URL", "EI_JOBS_PREFIX"):
        assert _env("model-manager")[variable] == _env("fleet")[variable]


def test_ui_is_published_on_8080() -> None:
    assert any(str(port).endswith(":8080:8080") for port in services()["ui"]["ports"])


def test_mosquitto_config_is_mounted_and_listens_on_1883() -> None:
    config = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
    assert "listener 1883" in config.read_text(encoding="utf-8")
    assert _mounts("mosquitto")["/mosquitto/config/mosquitto.conf"] == "./deploy/mosquitto/mosquitto.conf"


# --- secure defaults: nothing reachable without authentication ---------------------------------------


def test_no_service_is_published_on_all_interfaces_by_default() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            host = str(port).rsplit(":", 2)[0] if str(port).count(":") >= 2 else ""
            assert host == "127.0.0.1", f"{name} publishes {port} beyond loopback by default"


def test_agent_serves_grpc_only_on_its_unix_socket() -> None:
    env = _env("agent")
    assert env["EI_AGENT_ADDR"].startswith("unix:///run/edgeinspect/")
    assert "EI_AGENT_TCP_ADDR" not in env
    assert "ports" not in services()["agent"]
    for name in ("worker", "model-manager", "ui"):
        assert _env(name)["EI_AGENT_ADDR"] == env["EI_AGENT_ADDR"]
        assert _mounts(name)["/run/edgeinspect"] == _mounts("agent")["/run/edgeinspect"]


def test_mosquitto_refuses_anonymous_clients() -> None:
    config = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    assert "allow_anonymous false" in config and "allow_anonymous true" not in config
    assert "password_file /mosquitto/auth/passwd" in config
    start = (ROOT / "deploy" / "mosquitto" / "start.sh").read_text(encoding="utf-8")
    assert "mosquitto_passwd" in start
    assert _env("mosquitto")["MQTT_PASSWORD"] == REQUIRED_SECRET
    assert "-u" in " ".join(services()["mosquitto"]["healthcheck"]["test"])


def test_every_mqtt_client_logs_in() -> None:
    for name in ("fleet", "model-manager"):
        env = _env(name)
        assert env["EI_MQTT_USERNAME"] and env["EI_MQTT_PASSWORD"] == REQUIRED_SECRET, name
    assert f":{REQUIRED_SECRET}@mosquitto:1883" in _env("worker")["EI_MQTT_URL"]


def test_ui_asks_for_a_token_and_no_secret_has_a_default() -> None:
    env = _env("ui")
    assert env["EI_UI_AUTH"] == "bearer" and env["EI_UI_TOKEN"] == REQUIRED_SECRET
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    for secret in (
        "MINIO_ROOT_PASSWORD",
        "EDGEINSPECT_MQTT_PASSWORD",
        "EDGEINSPECT_UI_TOKEN",
        "EDGEINSPECT_TRIGGER_TOKEN",
    ):
        assert f"${{{secret}:-" not in text, f"{secret} has a default value"
        assert f"${{{secret}:?" in text, f"{secret} is not required"


def test_the_camera_trigger_and_the_line_io_share_one_required_token() -> None:
    camera, line_io = _env("camera"), _env("line-io")
    assert camera["EI_TRIGGER_TOKEN"] == REQUIRED_SECRET == line_io["EI_CAMERA_TOKEN"]
    assert "camera" in camera["EI_TRIGGER_ALLOWED_HOSTS"].split(",")
    assert "EI_TRIGGER_AUTH" not in camera  # bearer, the default
    script = (ROOT / "scripts" / "compose-secrets.sh").read_text(encoding="utf-8")
    assert "EDGEINSPECT_TRIGGER_TOKEN=" in script
