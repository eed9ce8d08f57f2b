"""Every bad request gets the right gRPC status and a message saying what was expected, while another
client keeps getting results from the same agent."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.agentapi import sm_grpc, sm_pb2
from edgeinspect.core.errors import AgentError
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.tensors import SharedTensor, to_tensor

from tests.fixtures.agent import AgentServer
from tests.helpers.models import classifier_onnx, image

MAX_MESSAGE_BYTES = 1 << 20


class Bystander:
    """A client predicting in a loop on its own channel; counts successes and keeps any failure."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client
        self.served = 0
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.client.predict("defect-cls", {"image": image(level=235)})
                assert result.outputs["defect_probability"][0, 0] > 0.5
                self.served += 1
            except BaseException as exc:  # collected and asserted on by the test
                self.failures.append(exc)

    def __enter__(self) -> Bystander:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def agent(agent_factory: Callable[..., AgentServer]) -> AgentServer:
    server = agent_factory(max_message_bytes=MAX_MESSAGE_BYTES)
    client = server.client()
    client.load_version(str(server.package("cls", "1")))
    client.set_alias("defect-cls", "cls", "1")
    return server


@pytest.fixture
def bystander(agent: AgentServer) -> Iterator[Bystander]:
    with Bystander(agent.client()) as running:
        assert wait_until(lambda: running.served > 0, timeout=20)
        yield running
    assert running.failures == []


def _refused(call: Callable[[], object], code: str, *fragments: str) -> None:
    with pytest.raises(AgentError) as raised:
        call()
    assert raised.value.code == code, raised.value
    for fragment in fragments:
        assert fragment in raised.value.message


def test_wrong_shape_and_dtype_are_invalid_argument(agent: AgentServer, bystander: Bystander) -> None:
    client = agent.client()
    _refused(
        lambda: client.predict("defect-cls", {"image": image(32, 32)}),
        "INVALID_ARGUMENT",
        "expected shape [-1, 3, 64, 64]",
        "got [1, 3, 32, 32]",
    )
    _refused(
        lambda: client.predict("defect-cls", {"image": image().astype(np.float32)}),
        "INVALID_ARGUMENT",
        "expected dtype uint8, got float32",
    )
    _refused(lambda: client.predict("defect-cls", {"pixels": image()}), "INVALID_ARGUMENT", "['image']")
    served = bystander.served
    assert wait_until(lambda: bystander.served > served, timeout=20)


def test_wrong_byte_length_is_invalid_argument_on_the_compat_api(
    agent: AgentServer, bystander: Bystander
) -> None:
    tensor = to_tensor("image", image())
    tensor.byte_data = tensor.byte_data[:-3]
    with grpc.insecure_channel(agent.addr) as channel:
        stub = sm_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(sm_pb2.PredictRequest(name="defect-cls", tensors=[tensor]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expected 12288 bytes" in (raised.value.details() or "")
    assert "got 12285" in (raised.value.details() or "")


def test_unknown_and_unloaded_models_are_not_found(agent: AgentServer, bystander: Bystander) -> None:
    client = agent.client()
    _refused(lambda: client.predict("no-such-model", {"image": image()}), "NOT_FOUND", "no-such-model")
    client.load_version(str(agent.package("cls", "2", knob=2)))
    client.predict("cls:2", {"image": image()})
    client.unload_version("cls", "2")
    _refused(lambda: client.predict("cls:2", {"image": image()}), "NOT_FOUND", "cls:2")
    _refused(lambda: client.unload_version("cls", "2"), "NOT_FOUND")


def test_an_oversized_message_is_resource_exhausted(agent: AgentServer, bystander: Bystander) -> None:
    big = np.zeros((1, 3, 640, 640), dtype=np.uint8)  # 1.2 MB > 1 MiB limit
    _refused(lambda: agent.client().predict("defect-cls", {"image": big}), "RESOURCE_EXHAUSTED")


def test_a_missing_shared_memory_segment_is_invalid_argument(
    agent: AgentServer, bystander: Bystander
) -> None:
    ghost = SharedTensor(uuid.uuid4().int & (2**63 - 1), 0, np.dtype(np.uint8), (1, 3, 64, 64))
    _refused(
        lambda: agent.client().predict("defect-cls", {"image": ghost}), "INVALID_ARGUMENT", "does not exist"
    )


def test_bad_loads_and_unloads_are_refused_with_their_codes(
    agent: AgentServer, bystander: Bystander, tmp_path: Path
) -> None:
    client = agent.client()
    _refused(lambda: client.load_version(str(tmp_path / "missing")), "NOT_FOUND", "does not exist")
    _refused(lambda: client.load_version(str(agent.package("cls", "1"))), "ALREADY_EXISTS", "cls:1")
    tampered = shutil.copytree(agent.package_dir("cls", "5"), tmp_path / "tampered")
    (tampered / "model.onnx").write_bytes(classifier_onnx(knob=7))
    _refused(lambda: client.load_version(str(tampered)), "FAILED_PRECONDITION", "sha256")
    _refused(lambda: client.unload_version("cls", "1"), "FAILED_PRECONDITION", "defect-cls")
    _refused(lambda: client.set_alias("Bad Alias", "cls", "1"), "INVALID_ARGUMENT", "Bad Alias")
    assert [v.ref for v in client.list_versions()] == ["cls:1"]


def test_errors_are_counted_per_model_and_code(agent: AgentServer) -> None:
    client = agent.client()
    for _ in range(2):
        with pytest.raises(AgentError):
            client.predict("defect-cls", {"image": image(8, 8)})
    stats = client.stats("cls")[0]
    assert stats.errors == 2
    _refused(lambda: client.stats("nothing"), "NOT_FOUND")
