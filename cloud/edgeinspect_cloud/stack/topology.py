"""The local stack's topology: the same processes as docker-compose.yml, as local processes.

Redis on a free port, an MQTT broker (mosquitto when installed, else the embedded amqtt broker),
object storage in a local folder (``file://``), the fleet jobs service, one agent, and per line a
camera and an inference worker, the model manager, the uploader and the UI.
"""

from __future__ import annotations

import shutil
import socket
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from edgeinspect.core.webguard import is_loopback

from edgeinspect_cloud.stack.supervisor import ProcessSpec

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@dataclass
class LineConfig:
    """One production line: its id and the camera source it replays or reads."""

    line: str
    source: str
    fps: float = 5.0
    loop: bool = True


@dataclass
class StackConfig:
    """Everything ``edgeinspect up`` needs; ports default to free ones, except the UI's 8080."""

    state_dir: Path
    lines: list[LineConfig]
    thing: str = "edge-1"
    thing_groups: list[str] = field(default_factory=list)
    jobs_prefix: str = "ei"
    ui_port: int = 8080
    trusted_keys_dir: Path | None = None
    redis_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    fleet_db: str = ""
    log_level: str = "INFO"
    verbose: bool = False
    bucket_max_mb: int = 1024
    """The local folder object store's size rule (oldest objects go first), like a bucket lifecycle."""
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis_port}/0"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.mqtt_port}"

    @property
    def agent_addr(self) -> str:
        return f"unix://{self.state_dir / 'run' / 'agent.sock'}"

    @property
    def log_dir(self) -> Path:
        """Each process's bounded log file (``<name>.log`` plus one ``.1`` backup)."""
        return self.state_dir / "logs"

    @property
    def storage_dir(self) -> Path:
        return self.state_dir / "bucket"

    @property
    def model_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def keys_dir(self) -> Path:
        return self.trusted_keys_dir or (self.state_dir / "keys" / "trusted")


def _python_tool(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def _script(name: str) -> list[str]:
    """A console script of this environment (beside the running interpreter)."""
    candidate = Path(sys.executable).with_name(name)
    return [str(candidate)] if candidate.exists() else [name]


def redis_spec(cfg: StackConfig) -> ProcessSpec:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `sudo apt-get install -y redis-server`")
    data = cfg.state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--port",
        str(cfg.redis_port),
        "--bind",
        LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data),
    ]
    return ProcessSpec("redis", argv, ready=lambda: port_open(cfg.redis_port))


def mqtt_spec(cfg: StackConfig) -> ProcessSpec:
    """Mosquitto when installed; otherwise the embedded Python broker (amqtt)."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    conf = cfg.state_dir / "mosquitto.conf"
    if binary is not None:
        persistence = cfg.state_dir / "mosquitto"
        persistence.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            f"listener {cfg.mqtt_port} {LOOPBACK}\nallow_anonymous true\npersistence true\n"
            f"persistence_location {persistence}/\nuser root\n"
        )
        return ProcessSpec("mqtt", [binary, "-c", str(conf)], ready=lambda: port_open(cfg.mqtt_port))
    amqtt = Path(sys.executable).with_name("amqtt")
    if not amqtt.exists():
        raise RuntimeError(
            "no MQTT broker: install mosquitto (`sudo apt-get install -y mosquitto`) or `pip install amqtt`"
        )
    conf = cfg.state_dir / "amqtt.yaml"
    conf.write_text(
        f"listeners:\n  default:\n    type: tcp\n    bind: {LOOPBACK}:{cfg.mqtt_port}\n"
        "auth:\n  allow-anonymous: true\n"
    )
    return ProcessSpec("mqtt", [str(amqtt), "-c", str(conf)], ready=lambda: port_open(cfg.mqtt_port))


def common_env(cfg: StackConfig) -> dict[str, str]:
    return {
        "EI_REDIS_URL": cfg.redis_url,
        "EI_MQTT_URL": cfg.mqtt_url,
        "EI_AGENT_ADDR": cfg.agent_addr,
        "EI_MODEL_DIR": str(cfg.model_dir),
        "EI_TRUSTED_KEYS_DIR": str(cfg.keys_dir),
        "EI_THING_NAME": cfg.thing,
        "EI_JOBS_PREFIX": cfg.jobs_prefix,
        "EI_LOG_LEVEL": cfg.log_level,
        **cfg.extra_env,
    }


def service_specs(cfg: StackConfig) -> list[ProcessSpec]:
    """Every edgeinspect process, in start order (dependencies first)."""
    env = common_env(cfg)
    for folder in (
        cfg.model_dir,
        cfg.keys_dir,
        cfg.storage_dir,
        cfg.state_dir / "run",
        cfg.state_dir / "spool",
    ):
        folder.mkdir(parents=True, exist_ok=True)
    specs: list[ProcessSpec] = []

    fleet_port = free_port()
    fleet_db = cfg.fleet_db or f"sqlite:///{cfg.state_dir / 'fleet.sqlite3'}"
    specs.append(
        ProcessSpec(
            "fleet",
            [*_script("edgeinspect"), "fleet", "serve"],
            env={
                **env,
                "EI_FLEET_DB": fleet_db,
                "EI_HTTP_PORT": str(fleet_port),
                "EI_FLEET_GROUPS": ";".join(f"{g}={cfg.thing}" for g in cfg.thing_groups),
            },
            ready=lambda: http_ok(f"http://{LOOPBACK}:{fleet_port}/readyz"),
        )
    )

    agent_port = free_port()
    agent_sock = cfg.state_dir / "run" / "agent.sock"
    specs.append(
        ProcessSpec(
            "agent",
            _script("edgeinspect-agent"),
            env={**env, "EI_HTTP_PORT": str(agent_port)},
            ready=lambda: agent_sock.exists() and http_ok(f"http://{LOOPBACK}:{agent_port}/healthz"),
        )
    )

    mm_port = free_port()
    specs.append(
        ProcessSpec(
            "model-manager",
            _script("edgeinspect-model-manager"),
            env={**env, "EI_HTTP_PORT": str(mm_port)},
            ready=lambda: http_ok(f"http://{LOOPBACK}:{mm_port}/healthz"),
        )
    )

    for line in cfg.lines:
        specs.extend(_line_specs(cfg, env, line))

    up_port = free_port()
    specs.append(
        ProcessSpec(
            "uploader",
            _script("edgeinspect-uploader"),
            env={
                **env,
                "EI_HTTP_PORT": str(up_port),
                "EI_CAPTURE_URL": f"file://{cfg.storage_dir}/captures",
                "EI_SPOOL_DIR": str(cfg.state_dir / "spool"),
            },
            ready=lambda: http_ok(f"http://{LOOPBACK}:{up_port}/healthz"),
        )
    )

    specs.append(
        ProcessSpec(
            "ui",
            _script("edgeinspect-ui"),
            env={
                **env,
                "EI_UI_PORT": str(cfg.ui_port),
                "EI_HTTP_HOST": LOOPBACK,
                # the local stack's page stays open, which the UI allows on loopback only
                "EI_UI_AUTH": "none",
                "EI_UI_LINES": ",".join(line.line for line in cfg.lines),
            },
            ready=lambda: http_ok(f"http://{LOOPBACK}:{cfg.ui_port}/healthz"),
        )
    )
    return specs


def _line_specs(cfg: StackConfig, env: dict[str, str], line: LineConfig) -> list[ProcessSpec]:
    worker_port, camera_port = free_port(), free_port()
    return [
        ProcessSpec(
            f"worker:{line.line}",
            _script("edgeinspect-inference"),
            env={**env, "EI_LINE": line.line, "EI_HTTP_PORT": str(worker_port)},
            ready=lambda: http_ok(f"http://{LOOPBACK}:{worker_port}/healthz"),
        ),
        ProcessSpec(
            f"camera:{line.line}",
            _script("edgeinspect-camera"),
            env={
                **env,
                "EI_LINE": line.line,
                "EI_HTTP_PORT": str(camera_port),
                "EI_SOURCE": line.source,
                "EI_FPS": str(line.fps),
                "EI_LOOP": "true" if line.loop else "false",
                **_trigger_auth(line.source),
            },
            ready=lambda: http_ok(f"http://{LOOPBACK}:{camera_port}/healthz"),
        ),
    ]


def _trigger_auth(source: str) -> dict[str, str]:
    """A trigger on loopback stays open on the local stack (the UI's rule); any other keeps its token."""
    if source.startswith("http://") and is_loopback(urlsplit(source).hostname or ""):
        return {"EI_TRIGGER_AUTH": "none"}
    return {}
