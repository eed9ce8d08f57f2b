"""One alias, one frame, through the agent: Predict, then judge the answer with the answering version.

The agent answers with the version that actually ran (an alias may move between our catalog read and
the call: a hot swap). The answer is judged with *that* version's manifest; when that version needs
different preprocessing than the tensor we sent, :class:`StaleTarget` makes the judge preprocess
again and retry, so a swap never produces a wrong score or an error result.

Agent failures map to what the frame needs: UNAVAILABLE / DEADLINE_EXCEEDED / CANCELLED ->
:class:`AgentUnavailable` (retry the frame later); NOT_FOUND / FAILED_PRECONDITION -> the alias is
gone (:class:`ModelMissing`); INVALID_ARGUMENT -> our tensor no longer fits (:class:`StaleTarget`);
anything else -> :class:`ModelProblem` with the agent's message, which ends up in the result.
"""

from __future__ import annotations

import time

from edgeinspect.core.agent_client import AgentClient, PredictResult
from edgeinspect.core.errors import AgentError, EdgeInspectError, MessageError
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
from edgeinspect_inference.worker.shm import ShmInputs

_TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"})
_MISSING = frozenset({"NOT_FOUND", "FAILED_PRECONDITION"})


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
    ) -> None:
        self._client = client
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
            raise self._translate(target, exc) from exc
        self._metrics.round_trip.labels(target.alias).observe(time.perf_counter() - started)
        answered = self._answering_manifest(target, response)
        try:
            primary, *more = postprocess_all(
                answered,
                response.outputs,
                pre.geometry,
                latency_ms=response.latency_ms,
                thresholds=self._thresholds(answered),
            )
            shadow = self._shadow(target, answered, response, pre)
        except MessageError as exc:
            raise ModelProblem(f"{target.alias}: {exc}", reason="output") from exc
        self._metrics.model_latency.labels(target.alias, "primary").observe(response.latency_ms / 1000.0)
        return Answer(target.alias, primary, shadow, tuple(more))

    def _predict(self, target: Target, pre: Preprocessed, frame_id: str) -> PredictResult:
        """Predict with the input in shared memory when possible; bytes if the agent cannot map it."""
        wait_shadow = bool(target.shadow_version)  # only while a shadow is being evaluated
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
            thresholds=self._thresholds(manifest),
        )

    def _thresholds(self, manifest: Manifest) -> Thresholds | None:
        """The line's thresholds for this version (None: the manifest's own)."""
        return None if self._overrides is None else self._overrides.thresholds(manifest)[0]

    def _translate(self, target: Target, exc: AgentError) -> EdgeInspectError:
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
