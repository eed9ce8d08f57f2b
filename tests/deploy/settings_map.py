"""Which settings class reads the environment of which container, for the compose and chart tests.

Deployment files that set an ``EI_`` variable no settings class has are the drift these tests exist
to catch: the service silently ignores unknown keys (several share one environment in a pod).
"""

from __future__ import annotations

from edgeinspect_camera.settings import CameraSettings
from edgeinspect_cloud.fleet.settings import FleetSettings
from edgeinspect_inference.agent.settings import AgentSettings
from edgeinspect_inference.worker.settings import WorkerSettings
from edgeinspect_line_io.settings import LineIoSettings
from edgeinspect_model_manager.settings import ModelManagerSettings
from edgeinspect_ui.settings import UiSettings
from edgeinspect_uploader.settings import UploaderSettings
from pydantic_settings import BaseSettings

SETTINGS: dict[str, type[BaseSettings]] = {
    "camera": CameraSettings,
    "agent": AgentSettings,
    "worker": WorkerSettings,
    "model-manager": ModelManagerSettings,
    "uploader": UploaderSettings,
    "ui": UiSettings,
    "line-io": LineIoSettings,
    "fleet": FleetSettings,
}


def variables(service: str) -> set[str]:
    """The ``EI_`` variables a service's settings class reads."""
    return {f"EI_{name.upper()}" for name in SETTINGS[service].model_fields}
