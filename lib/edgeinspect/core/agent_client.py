"""The typed client of the edge agent: what the worker, the model manager, the UI and tests call.

It speaks only the generated gRPC stubs (never the agent's server code, never onnxruntime), returns
plain dataclasses with numpy outputs, and turns every gRPC failure into
:class:`~edgeinspect.core.errors.AgentError` with the status name as ``code``:

    with AgentClient("unix:///run/edgeinspect/agent.sock") as agent:
        info = agent.load_version("/var/lib/edgeinspect/models/cls-7")
        agent.set_alias("defect-cls", info.name, info.version)
        result = agent.predict("defect-cls", {"image": pixels}, frame_id="f-1")
        score = float(result.outputs["defect_probability"][0, 0])

The client is thread-safe (one channel, many concurrent calls).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import grpc
import numpy as np

from edgeinspect.core.agent_tls import ClientTls
from edgeinspect.core.agent_token import with_token
from edgeinspect.core.agentapi import ext_grpc, ext_pb2, sm_grpc
from edgeinspect.core.errors import AgentError
from edgeinspect.core.package import Manifest
from edgeinspect.core.tensors import SharedTensor, dtype_of, from_tensors, to_tensor

T = TypeVar("T")
InputValue = np.ndarray | SharedTensor
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_ROLE_NAMES = {ext_pb2.PRIMARY: "primary", ext_pb2.SHADOW: "shadow"}


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: name, dtype, shape (-1 for a dynamic dimension)."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ProviderCandidate:
    """One execution provider + thread layout the agent measured on the golden input at load."""

    provider: str
    intra_op_threads: int
    inter_op_threads: int
    parallel: bool
    p50_ms: float
    p99_ms: float
    runs: int
    rejected: str
    selected: bool


@dataclass(frozen=True)
class ProviderTuning:
    """How the agent chose a version's provider and threads (``EI_PROVIDER_TUNING``)."""

    provider: str
    intra_op_threads: int
    inter_op_threads: int
    parallel: bool
    p50_ms: float
    cached: bool
    measure_ms: float
    reason: str
    candidates: tuple[ProviderCandidate, ...]


@dataclass(frozen=True)
class ModelVersionInfo:
    """A loaded version as the agent reports it (``LoadVersion``, ``ListVersions``)."""

    name: str
    version: str
    sha256: str
    task: str
    execution_provider: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    load_ms: float
    memory_bytes: int
    loaded_at_ns: int
    path: str
    manifest_json: str
    variant: str
    tuning: ProviderTuning | None = None
    variant_fallback: str = ""
    """Why the version runs fp32 although its package's default is int8; empty when it does not."""

    @property
    def ref(self) -> str:
        """``name:version``, accepted wherever a model is named."""
        return f"{self.name}:{self.version}"

    def manifest(self) -> Manifest:
        """The package manifest (preprocessing, thresholds) the agent verified when loading."""
        return Manifest.from_json_bytes(self.manifest_json.encode("utf-8"), source=f"agent:{self.ref}")


@dataclass(frozen=True)
class AliasInfo:
    """Where an alias points, and its shadow version ("" when none)."""

    alias: str
    name: str
    version: str
    shadow_version: str
    updated_at_ns: int


@dataclass(frozen=True)
class ShadowOutput:
    """The shadow version's outputs for the same inputs (returned when asked to wait for it)."""

    version: str
    outputs: dict[str, np.ndarray]
    latency_ms: float


@dataclass(frozen=True)
class PredictResult:
    """A prediction: outputs by name, the version that produced them and the model's own run time."""

    outputs: dict[str, np.ndarray]
    name: str
    version: str
    latency_ms: float
    role: str  # "primary", "shadow" or "" (a version no alias uses)
    shadow: ShadowOutput | None = None


@dataclass(frozen=True)
class PredictCall:
    """One element of :meth:`AgentClient.predict_batch`."""

    model: str
    inputs: Mapping[str, InputValue]
    frame_id: str = ""


@dataclass(frozen=True)
class ModelStats:
    """Counters of one loaded version since it was loaded (latency percentiles over a recent window).

    The fields are ``GetModelStats``'s message, name for name: the agent builds this record and sends
    it with :meth:`to_proto`, the client reads it back with :meth:`from_proto`.
    """

    name: str
    version: str
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    in_flight: int
    shadow_compared: int
    shadow_agreed: int
    shadow_mean_abs_score_delta: float

    @property
    def shadow_agreement_rate(self) -> float:
        """Share of compared samples whose shadow verdict matched the primary's (1.0 when none yet)."""
        return self.shadow_agreed / self.shadow_compared if self.shadow_compared else 1.0

    @classmethod
    def from_proto(cls, message: Any) -> ModelStats:
        return cls(**{field.name: getattr(message, field.name) for field in fields(cls)})

    def to_proto(self) -> ext_pb2.ModelStats:
        return ext_pb2.ModelStats(**asdict(self))


@dataclass(frozen=True)
class HealthInfo:
    serving: bool
    models_loaded: int
    execution_providers: tuple[str, ...]


def _tensor_infos(specs: Any) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo(s.name, dtype_of(s.data_type), tuple(s.shape)) for s in specs)


def _version_info(m: Any) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=m.name,
        version=m.version,
        sha256=m.sha256,
        task=m.task,
        execution_provider=m.execution_provider,
        inputs=_tensor_infos(m.inputs),
        outputs=_tensor_infos(m.outputs),
        load_ms=m.load_ms,
        memory_bytes=m.memory_bytes,
        loaded_at_ns=m.loaded_at_ns,
        path=m.path,
        manifest_json=m.manifest_json,
        variant=m.variant,
        tuning=_tuning(m.tuning) if m.HasField("tuning") else None,
        variant_fallback=m.variant_fallback,
    )


def _tuning(t: Any) -> ProviderTuning:
    return ProviderTuning(
        t.provider, t.intra_op_threads, t.inter_op_threads, t.parallel, t.p50_ms, t.cached,
        t.measure_ms, t.reason,
        tuple(
            ProviderCandidate(
                c.provider, c.intra_op_threads, c.inter_op_threads, c.parallel, c.p50_ms, c.p99_ms,
                c.runs, c.rejected, c.selected,
            )
            for c in t.candidates
        ),
    )  # fmt: skip


def _alias_info(a: Any) -> AliasInfo:
    return AliasInfo(a.alias, a.name, a.version, a.shadow_version, a.updated_at_ns)


def _result(r: Any) -> PredictResult:
    shadow = None
    if r.HasField("shadow"):
        shadow = ShadowOutput(r.shadow.version, from_tensors(r.shadow.tensors), r.shadow.latency_ms)
    role = _ROLE_NAMES.get(r.role, "")
    return PredictResult(from_tensors(r.tensors), r.name, r.version, r.latency_ms, role, shadow)


def _request(call: PredictCall, wait_shadow: bool) -> ext_pb2.PredictRequest:
    tensors = [to_tensor(name, value) for name, value in call.inputs.items()]
    return ext_pb2.PredictRequest(
        model=call.model, tensors=tensors, frame_id=call.frame_id, wait_shadow=wait_shadow
    )


class AgentClient:
    """Typed calls to the agent at ``addr`` (``unix:///path.sock`` or ``host:port``)."""

    def __init__(
        self,
        addr: str,
        *,
        timeout_s: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        token: str = "",
        tls: ClientTls | None = None,
    ) -> None:
        """``token``: the agent's ``EI_AGENT_TOKEN``, sent with every call (needed over TCP when set).
        ``tls``: verify the agent's certificate on a TCP address (``edgeinspect.core.agent_tls``); a
        unix socket is always plain."""
        self.addr = addr
        self.timeout_s = timeout_s
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if tls is not None and not addr.startswith("unix:"):
            channel = grpc.secure_channel(addr, tls.credentials(), options=options + tls.options())
        else:
            channel = grpc.insecure_channel(addr, options=options)
        self._channel = with_token(channel, token)
        self.compat = sm_grpc.AgentStub(self._channel)  # type: ignore[no-untyped-call]
        """The raw ``AWS.SageMaker.Edge.Agent`` stub, for callers that need the original API."""
        self.extension = ext_grpc.AgentStub(self._channel)  # type: ignore[no-untyped-call]
        """The raw ``edgeinspect.agent.v1.Agent`` stub."""

    def _call(self, method: Callable[..., T], request: Any, timeout_s: float | None = None) -> T:
        try:
            return method(request, timeout=timeout_s or self.timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = exc.details() if hasattr(exc, "details") else str(exc)
            hint = (
                f"is the agent running and listening on {self.addr}?"
                if code == grpc.StatusCode.UNAVAILABLE
                else ""
            )
            raise AgentError(code.name, details or code.name, hint=hint) from None

    # ---- versions and aliases -------------------------------------------------------------------

    def load_version(self, url: str, variant: str = "", *, warmup: bool = True) -> ModelVersionInfo:
        """Verify and load a package folder or ``.tar.gz`` (``variant``: "" = the agent's EI_PRECISION,
        by default the package's default precision; "fp32" or "int8": exactly that file)."""
        request = ext_pb2.LoadVersionRequest(url=url, variant=variant, warmup=warmup)
        return _version_info(self._call(self.extension.LoadVersion, request))

    def unload_version(self, name: str, version: str) -> None:
        """Unload one version (refused with FAILED_PRECONDITION while an alias uses it)."""
        self._call(self.extension.UnloadVersion, ext_pb2.UnloadVersionRequest(name=name, version=version))

    def list_versions(self) -> list[ModelVersionInfo]:
        response = self._call(self.extension.ListVersions, ext_pb2.ListVersionsRequest())
        return [_version_info(m) for m in response.versions]

    def set_alias(self, alias: str, name: str, version: str) -> AliasInfo:
        """Point ``alias`` at ``name:version`` atomically: in-flight requests finish on the old version."""
        request = ext_pb2.SetAliasRequest(alias=alias, name=name, version=version)
        return _alias_info(self._call(self.extension.SetAlias, request))

    def set_shadow(self, alias: str, version: str) -> AliasInfo:
        """Attach ``version`` (of the alias's model) as its shadow; ``""`` detaches it."""
        request = ext_pb2.SetShadowRequest(alias=alias, version=version)
        return _alias_info(self._call(self.extension.SetShadow, request))

    def list_aliases(self) -> list[AliasInfo]:
        response = self._call(self.extension.ListAliases, ext_pb2.ListAliasesRequest())
        return [_alias_info(a) for a in response.aliases]

    # ---- predictions ----------------------------------------------------------------------------

    def predict(
        self,
        model: str,
        inputs: Mapping[str, InputValue],
        frame_id: str = "",
        *,
        wait_shadow: bool = False,
        timeout_s: float | None = None,
    ) -> PredictResult:
        """Run ``model`` (alias, name or name:version) on ``inputs`` (arrays, or :class:`SharedTensor` refs).

        ``wait_shadow`` waits for the alias's shadow (if any) and returns its outputs in ``shadow``.
        """
        request = _request(PredictCall(model, inputs, frame_id), wait_shadow)
        return _result(self._call(self.extension.Predict, request, timeout_s))

    def predict_batch(
        self, calls: Sequence[PredictCall], *, wait_shadow: bool = False, timeout_s: float | None = None
    ) -> list[PredictResult]:
        """Many predictions in one call; those for the same version run as one batch. Results in order."""
        request = ext_pb2.PredictBatchRequest(requests=[_request(call, wait_shadow) for call in calls])
        response = self._call(self.extension.PredictBatch, request, timeout_s)
        return [_result(r) for r in response.responses]

    # ---- observation ----------------------------------------------------------------------------

    def stats(self, name: str = "") -> list[ModelStats]:
        """Per-version counters (every version, or those of model ``name``)."""
        response = self._call(self.extension.GetModelStats, ext_pb2.GetModelStatsRequest(name=name))
        return [ModelStats.from_proto(s) for s in response.stats]

    def health(self, timeout_s: float | None = None) -> HealthInfo:
        response = self._call(self.extension.Health, ext_pb2.HealthRequest(), timeout_s)
        return HealthInfo(response.serving, response.models_loaded, tuple(response.execution_providers))

    def wait_ready(self, timeout_s: float = 30.0) -> HealthInfo:
        """Poll until the agent answers and serves; ``AgentError`` (UNAVAILABLE) after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                info = self.health(timeout_s=1.0)
                if info.serving:
                    return info
            except AgentError as exc:
                if time.monotonic() >= deadline:
                    raise AgentError(
                        "UNAVAILABLE", f"agent at {self.addr} not ready after {timeout_s}s"
                    ) from exc
            if time.monotonic() >= deadline:
                raise AgentError("UNAVAILABLE", f"agent at {self.addr} answers but is not serving")
            time.sleep(0.05)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
