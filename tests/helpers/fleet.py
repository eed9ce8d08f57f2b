"""The real fleet jobs service for a test: in a thread of the test process, or as ``edgeinspect fleet serve``.

Both run the same code against the test's broker, with the test's topic root as jobs prefix and state
root, and a database URL of the test's choosing; the in-process one lets a test read the service's
metrics, the subprocess one proves the console command (signals, health endpoints).

    with FleetThread(db_url, mqtt_broker.url, mqtt_topic_root) as fleet:
        fleet.store.jobs.create_job("j1", doc, ["line-3"])
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from edgeinspect.core.lifecycle import wait_until
from edgeinspect_cloud.fleet import FleetStore
from edgeinspect_cloud.fleet.service import FleetService
from edgeinspect_cloud.fleet.settings import FleetSettings
from prometheus_client import CollectorRegistry

POLL_S = 0.1


def fleet_settings(db_url: str, broker_url: str, root: str, **extra: Any) -> FleetSettings:
    """Settings for a test: its broker, its topic root for jobs and state, a fast poll."""
    return FleetSettings(
        fleet_db=db_url,
        mqtt_url=broker_url,
        mqtt_client_id=f"fleet-{uuid.uuid4().hex[:8]}",
        jobs_prefix=root,
        state_topic_root=root,
        fleet_poll_interval_s=POLL_S,
        **extra,
    )


class FleetThread:
    """``FleetService.run`` on a thread; ``store`` is a second connection for the test's own reads/writes."""

    def __init__(self, db_url: str, broker_url: str, root: str, **extra: Any) -> None:
        self.settings = fleet_settings(db_url, broker_url, root, **extra)
        self.registry = CollectorRegistry()
        self.service = FleetService(self.settings, FleetStore.open(db_url), self.registry)
        self.store = FleetStore.open(db_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.service.run, args=(self._stop,), name="fleet", daemon=True
        )

    def __enter__(self) -> FleetThread:
        self._thread.start()
        assert wait_until(lambda: self.service.mqtt.is_connected, 15), "the fleet service did not connect"
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=20)
        self.store.close()

    def metric(self, name: str, **labels: str) -> float:
        return float(self.registry.get_sample_value(name, labels) or 0.0)


def fleet_env(db_url: str, broker_url: str, root: str, http_port: int, **extra: str) -> dict[str, str]:
    """The environment of ``edgeinspect fleet serve`` (no EI_ variable of the caller leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update(
        {
            "EI_FLEET_DB": db_url,
            "EI_MQTT_URL": broker_url,
            "EI_MQTT_CLIENT_ID": f"fleet-{uuid.uuid4().hex[:8]}",
            "EI_JOBS_PREFIX": root,
            "EI_STATE_TOPIC_ROOT": root,
            "EI_FLEET_POLL_INTERVAL_S": str(POLL_S),
            "EI_HTTP_HOST": "127.0.0.1",
            "EI_HTTP_PORT": str(http_port),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


def start_fleet_process(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m edgeinspect_cloud.cli fleet serve`` with ``env``, its output in ``log_path``."""
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "edgeinspect_cloud.cli", "fleet", "serve"], env=env, stdout=log, stderr=log
        )
    finally:
        log.close()
