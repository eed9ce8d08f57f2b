"""One alias, one frame, through the agent: Predict, then judge the answer with the answering version.

The agent answers with the version that actually ran (an alias may move between our catalog read and
the call: a hot swap). The answer is judged with *that* version's manifest; when that version needs
different preprocessing than the tensor we sent, :class:`StaleTarget` makes the judge preprocess
again and retry, so a swap never produces a wrong score or an error result.

Agent failures map to what the frame needs: UNAVAILABLE / DEADLINE_EXCEEDED / CANCELLED ->
:class:`AgentUnavailable` (retry the frame later); NOT_FOUND / FAILED_PRECONDITION -> the alias is
gone (:class:`ModelMissing`); INVALID_ARGUMENT -> our tensor no longer fits (:class:`StaleTarget`);
anything else -> :class:`ModelProblem` with the agent's message, which ends up in the result.

Transport: the fast path (:class:`FastPath`, a unix socket with the input in a sealed memfd the agent
reads in place) when the agent serves one, else gRPC. A fast-path transport failure (or no free
fast-path connection) sends that call by gRPC and keeps the fast path off for ``retry_s``; the
agent's own refusals carry the same codes on both paths, so the mapping above does not care which
one answered. A fast-path timeout is DEADLINE_EXCEEDED (the frame is retried later, as on gRPC:
a slow agent is not asked twice).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from edgeinspect.core.agent_client import AgentClient, PredictResult, ShadowOutput
from edgeinspect.core.errors import AgentError, EdgeInspectError, MessageError
from edgeinspect.core.fastpath import FastPathClient
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Manifest, Thresholds
from edgeinspect.core.preprocess import Preprocessed

from edgeinspect_inference.worker.catalog import ModelCatalog, Target
from edgeinspect_inference.worker.judge import (
    AgentUnavailable,
    Answer,
    ModelMissing,
    ModelProblem,
    StaleTarget,
)
from edgeinspect_inference.worker.metrics import WorkerMetrics
from edgeinspect_inference.worker.overrides import ThresholdOverrides
from edgeinspect_inference.worker.postprocess import ModelVerdict, postprocess, postprocess_all
from edgeinspect_inference.worker.shm import FastSlots, ShmInputs

log = get_logger(__name__)
_TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"})
_MISSING = frozenset({"NOT_FOUND", "FAILED_PRECONDITION"})
_FAST_FALLBACK = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED"})
"""Fast-path answers that send the call by gRPC instead: not reachable, or out of connections."""


class FastPath:
    """The fast path and whether to use it now: on while it works, off for ``retry_s`` after a failure."""

    def __init__(
        self,
        client: FastPathClient,
        slots: FastSlots,
        *,
        retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._slots = slots
        self._retry_s = retry_s
        self._clock = clock
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._announced = False

    def usable(self) -> bool:
        """Not in a back-off, and the agent's fast socket exists (an agent without one: gRPC)."""
        return self._clock() >= self._down_until and self.client.available()

    def predict(
        self, model: str, input_name: str, tensor: npt.NDArray[np.generic], frame_id: str, wait_shadow: bool
    ) -> PredictResult:
        """One call; ``AgentError`` ``UNAVAILABLE`` on a transport failure (the caller uses gRPC)."""
        with self._slots.lease(tensor) as (ref, output):
            answer = self.client.predict(
                model, {input_name: ref}, frame_id, wait_shadow=wait_shadow, output=output
            )
        if not self._announced:
            self._announced = True
            log.info("fast_path_in_use", socket=str(self.client.path))
        shadow = None
        if answer.shadow is not None:
            shadow = ShadowOutput(answer.shadow[0], answer.shadow[2], answer.shadow[1])
        return PredictResult(
            answer.outputs, answer.name, answer.version, answer.latency_ms, answer.role, shadow
        )

    def down(self, reason: str) -> None:
        """Use gRPC for ``retry_s`` (logged when the fast path goes from working to not)."""
        with self._lock:
            if self._clock() >= self._down_until:
                log.warning("fast_path_unavailable", reason=reason, grpc_for_s=self._retry_s)
            self._down_until = self._clock() + self._retry_s
            self._announced = False

    def close(self) -> None:
        self.client.close()
        self._slots.close()


class AgentModelCaller:
    """The :class:`~edgeinspect_inference.worker.judge.ModelCaller` over an :class:`AgentClient`."""

    def __init__(
        self,
        client: AgentClient,
        catalog: ModelCatalog,
        metrics: WorkerMetrics,
        *,
        timeout_s: float = 10.0,
        shm: ShmInputs | None = None,
        overrides: ThresholdOverrides | None = None,
        fast: FastPath | None = None,
    ) -> None:
        self._client = client
        self._fast = fast
        self._overrides = overrides
        self._catalog = catalog
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._shm = shm or ShmInputs(0, enabled=False)

    def __call__(self, target: Target, pre: Preprocessed, frame_id: str) -> Answer:
        started = time.perf_counter()
        try:
            response = self._predict(target, pre, frame_id)
        except AgentError as exc:
            raise self.translate(target, exc) from exc
        self._metrics.round_trip.labels(target.alias).observe(time.perf_counter() - started)
        answered = self._answering_manifest(target, response)
        try:
            primary, *more = postprocess_all(
                answered,
                response.outputs,
                pre.geometry,
                latency_ms=response.latency_ms,
                thresholds=self.thresholds(answered),
            )
            shadow = self._shadow(target, answered, response, pre)
        except MessageError as exc:
            raise ModelProblem(f"{target.alias}: {exc}", reason="output") from exc
        self._metrics.model_latency.labels(target.alias, "primary").observe(response.latency_ms / 1000.0)
        return Answer(target.alias, primary, shadow, tuple(more))

    def _predict(self, target: Target, pre: Preprocessed, frame_id: str) -> PredictResult:
        """Predict by the fast path when the agent serves one; else gRPC with the input in shared memory
        when possible, bytes if the agent cannot map it."""
        wait_shadow = bool(target.shadow_version)  # only while a shadow is being evaluated
        if self._fast is not None and self._fast.usable():
            try:
                result = self._fast.predict(
                    target.alias, target.manifest.input.name, pre.tensor, frame_id, wait_shadow
                )
                self._metrics.agent_calls.labels("fast").inc()
                return result
            except AgentError as exc:
                if exc.code not in _FAST_FALLBACK:
                    raise
                self._fast.down(exc.message)
        self._metrics.agent_calls.labels("grpc").inc()
        try:
            with self._shm.lease(pre.tensor) as value:
                inputs = {target.manifest.input.name: value}
                return self._client.predict(
                    target.alias, inputs, frame_id, wait_shadow=wait_shadow, timeout_s=self._timeout_s
                )
        except AgentError as exc:
            if not (self._shm.enabled and exc.code == "INVALID_ARGUMENT" and "shared memory" in exc.message):
                raise
            self._shm.disable(exc.message)
        inputs = {target.manifest.input.name: pre.tensor}
        return self._client.predict(
            target.alias, inputs, frame_id, wait_shadow=wait_shadow, timeout_s=self._timeout_s
        )

    def _answering_manifest(self, target: Target, response: PredictResult) -> Manifest:
        if (response.name, response.version) == (target.name, target.version):
            return target.manifest
        self._catalog.refresh(force=False)  # the alias moved: learn where it points now
        answered = self._catalog.manifest(response.name, response.version)
        if answered is None:
            raise ModelProblem(
                f"{target.alias} was answered by {response.name}:{response.version}, "
                "whose manifest the agent does not list",
                reason="catalog",
                hint="the version was unloaded during the call; the next frame uses the current one",
            )
        if answered.input != target.manifest.input:
            raise StaleTarget(
                f"{target.alias} moved to {response.name}:{response.version}, which needs other preprocessing"
            )
        return answered

    def _shadow(
        self, target: Target, primary: Manifest, response: PredictResult, pre: Preprocessed
    ) -> ModelVerdict | None:
        """The shadow's verdict on the same input (no mask: it never decides, only compares)."""
        shadow = response.shadow
        if shadow is None:
            return None
        manifest = self._catalog.manifest(primary.name, shadow.version)
        if manifest is None:
            return None
        self._metrics.model_latency.labels(target.alias, "shadow").observe(shadow.latency_ms / 1000.0)
        return postprocess(
            manifest,
            shadow.outputs,
            pre.geometry,
            latency_ms=shadow.latency_ms,
            role="shadow",
            want_mask=False,
            thresholds=self.thresholds(manifest),
        )

    def thresholds(self, manifest: Manifest) -> Thresholds | None:
        """The line's thresholds for this version (None: the manifest's own)."""
        return None if self._overrides is None else self._overrides.thresholds(manifest)[0]

    def translate(self, target: Target, exc: AgentError) -> EdgeInspectError:
        """What an agent error means for the frame (the module docstring's table); the tiled path
        uses it too, so an error means the same whether the frame was tiled or not."""
        if exc.code in _TRANSIENT:
            return AgentUnavailable(f"agent call for {target.alias} failed: {exc}", hint=exc.hint)
        if exc.code in _MISSING:
            self._catalog.refresh(force=True)
            return ModelMissing(f"{target.alias}: {exc}")
        if exc.code == "INVALID_ARGUMENT":
            self._catalog.refresh(force=True)
            fresh = self._catalog.target(target.alias)
            if fresh is not None and fresh.manifest.input != target.manifest.input:
                return StaleTarget(f"{target.alias} now needs other preprocessing ({exc.message})")
        return ModelProblem(f"{target.alias}: agent refused the request: {exc}", reason="agent")
