"""Provider choice, the error -> status table, settings parsing and the capture store's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from edgeinspect.core.errors import ConfigError, EdgeInspectError, PackageError
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.tensors import TensorError
from edgeinspect_inference.agent import errors
from edgeinspect_inference.agent.capture import CaptureRequest, CaptureStore, as_hwc_image
from edgeinspect_inference.agent.providers import resolve, short_name
from edgeinspect_inference.agent.server import unix_socket_path
from edgeinspect_inference.agent.settings import AgentSettings

GPU_BOX = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_providers_follow_the_configured_order_and_cpu_is_always_last() -> None:
    assert [p.name for p in resolve(["cuda", "tensorrt", "cpu"], lambda: GPU_BOX)] == [
        "cuda",
        "tensorrt",
        "cpu",
    ]
    assert [p.name for p in resolve(["openvino", "cuda"], lambda: GPU_BOX)] == ["cuda", "cpu"]
    assert [
        p.name for p in resolve(["tensorrt", "cuda", "openvino", "cpu"], lambda: ["CPUExecutionProvider"])
    ] == ["cpu"]
    assert short_name("OpenVINOExecutionProvider") == "openvino"


def test_an_unknown_provider_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"EI_EXECUTION_PROVIDERS.*tpu"):
        resolve(["tpu", "cpu"], lambda: GPU_BOX)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.ModelNotFoundError("x"), "NOT_FOUND"),
        (errors.NotFoundPathError("x"), "NOT_FOUND"),
        (errors.ModelExistsError("x"), "ALREADY_EXISTS"),
        (errors.CaptureExistsError("x"), "ALREADY_EXISTS"),
        (errors.InvalidInputError("x"), "INVALID_ARGUMENT"),
        (TensorError("x"), "INVALID_ARGUMENT"),
        (errors.ModelInUseError("x"), "FAILED_PRECONDITION"),
        (PackageError("x"), "FAILED_PRECONDITION"),
        (errors.ModelLoadError("x"), "FAILED_PRECONDITION"),
        (errors.OverloadedError("x"), "RESOURCE_EXHAUSTED"),
        (errors.InferenceError("x"), "INTERNAL"),
        (EdgeInspectError("x"), "INTERNAL"),
        (RuntimeError("x"), "INTERNAL"),
    ],
)
def test_every_domain_error_has_one_status(error: BaseException, code: str) -> None:
    assert errors.status_name(error) == code


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EI_AGENT_ADDR", "unix:///tmp/x/agent.sock")
    monkeypatch.setenv("EI_EXECUTION_PROVIDERS", '["CUDA", "cpu"]')
    monkeypatch.setenv("EI_MAX_MESSAGE_BYTES", "2048")
    settings = AgentSettings.load()
    assert settings.execution_providers == ["cuda", "cpu"]
    assert settings.max_message_bytes == 2048
    assert str(unix_socket_path(settings.agent_addr)) == "/tmp/x/agent.sock"
    assert unix_socket_path("unix:/run/a.sock") is not None and unix_socket_path("127.0.0.1:5") is None
    monkeypatch.setenv("EI_MAX_MESSAGE_BYTES", "12")
    with pytest.raises(ConfigError, match="EI_MAX_MESSAGE_BYTES"):
        AgentSettings.load()


def test_images_are_recognised_in_nchw_nhwc_and_hwc() -> None:
    nchw = np.zeros((1, 3, 4, 5), np.uint8)
    assert as_hwc_image(nchw).shape == (4, 5, 3)  # type: ignore[union-attr]
    assert as_hwc_image(np.zeros((1, 4, 5, 3), np.uint8)).shape == (4, 5, 3)  # type: ignore[union-attr]
    assert as_hwc_image(np.zeros((4, 5, 3), np.uint8)).shape == (4, 5, 3)  # type: ignore[union-attr]
    assert as_hwc_image(np.zeros((2, 3, 4, 5), np.uint8)) is None
    assert as_hwc_image(np.zeros((1, 3, 4, 5), np.float32)) is not None  # raw pixels, as stock clients send
    assert as_hwc_image(np.full((1, 3, 4, 5), 0.5, np.float32) * 600) is None  # out of 0..255
    assert as_hwc_image(np.full((1, 3, 4, 5), np.nan, np.float32)) is None
    assert as_hwc_image(np.zeros((1, 3, 4, 5), np.int16)) is None


def _capture(capture_id: str) -> CaptureRequest:
    return CaptureRequest(capture_id, "cls", {"image": np.zeros((1, 3, 4, 4), np.uint8)}, {})


def test_captures_track_status_and_refuse_reused_or_empty_ids() -> None:
    store = CaptureStore(None, lambda _name: None, "line-1", max_ids=2)
    store.submit(_capture("a"))
    assert store.status("a") in ("IN_PROGRESS", "FAILURE")
    assert wait_until(lambda: store.status("a") == "FAILURE", timeout=10)  # no Redis configured
    with pytest.raises(errors.CaptureExistsError):
        store.submit(_capture("a"))
    with pytest.raises(errors.InvalidInputError):
        store.submit(_capture(""))
    store.submit(_capture("b"))
    store.submit(_capture("c"))
    assert store.status("a") is None and store.status("unknown") is None  # oldest forgotten
    store.close()
