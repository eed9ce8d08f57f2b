"""Shadow runs: a candidate version sees the primary's inputs on its own threads and is only compared.

The shadow is submitted after the primary has answered (its inputs copied first, since shared memory
may be rewritten by then), on a bounded executor: when shadows fall behind, new ones are skipped and
counted instead of queueing without limit or slowing the primary.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Manifest

from edgeinspect_inference.agent.errors import status_name
from edgeinspect_inference.agent.loader import LoadedModel
from edgeinspect_inference.agent.stats import AgentMetrics

log = get_logger(__name__)


def image_scores(manifest: Manifest, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """One image score per sample, as ``docs/model-contract.md`` defines it.

    Classification: the defect probability; segmentation: the maximum pixel probability. Logit
    outputs go through a sigmoid first, so scores are always comparable with ``thresholds.image``.
    """
    spec = manifest.outputs[0]
    values = np.asarray(outputs[spec.name], dtype=np.float64)
    batch = values.shape[0] if values.ndim else 1
    scores = values.reshape(batch, -1).max(axis=1)
    if spec.meaning.endswith("_logit"):
        scores = 1.0 / (1.0 + np.exp(-scores))
    return scores


def verdicts(manifest: Manifest, scores: np.ndarray) -> np.ndarray:
    """``True`` (defect) where a score reaches the manifest's image threshold."""
    return scores >= manifest.thresholds.image


@dataclass(frozen=True)
class ShadowOutcome:
    """What the shadow version said about the same inputs."""

    version: str
    outputs: dict[str, np.ndarray]
    latency_ms: float


class ShadowRunner:
    """Runs shadow versions off the request path and records how often they agree with the primary."""

    def __init__(self, metrics: AgentMetrics, threads: int = 1, max_pending: int = 8) -> None:
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shadow")
        self._max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()

    def submit(
        self,
        alias: str,
        primary: LoadedModel,
        shadow: LoadedModel,
        feeds: Mapping[str, np.ndarray],
        primary_outputs: Mapping[str, np.ndarray],
    ) -> Future[ShadowOutcome] | None:
        """Queue one shadow run, or return ``None`` (and count a skip) when too many are pending."""
        with self._lock:
            if self._pending >= self._max_pending:
                self._metrics.shadow_skipped.labels(alias).inc()
                return None
            self._pending += 1
        copies = {name: np.array(array) for name, array in feeds.items()}
        try:
            return self._executor.submit(self._run, alias, primary, shadow, copies, dict(primary_outputs))
        except RuntimeError:  # executor shut down: the agent is stopping, shadows are optional
            self._done()
            return None

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1

    def _run(
        self,
        alias: str,
        primary: LoadedModel,
        shadow: LoadedModel,
        feeds: dict[str, np.ndarray],
        primary_outputs: dict[str, np.ndarray],
    ) -> ShadowOutcome:
        try:
            shadow.stats.begin()
            started = time.perf_counter()
            try:
                outputs = shadow.session.run(feeds)
            except Exception as exc:
                shadow.stats.end(None, status_name(exc))
                log.warning("shadow_failed", alias=alias, version=shadow.version, error=str(exc))
                raise
            latency_ms = (time.perf_counter() - started) * 1000.0
            shadow.stats.end(latency_ms)
            self._compare(alias, primary, shadow, primary_outputs, outputs)
            return ShadowOutcome(shadow.version, outputs, latency_ms)
        finally:
            self._done()

    def _compare(
        self,
        alias: str,
        primary: LoadedModel,
        shadow: LoadedModel,
        primary_outputs: Mapping[str, np.ndarray],
        shadow_outputs: Mapping[str, np.ndarray],
    ) -> None:
        primary_scores = image_scores(primary.manifest, primary_outputs)
        shadow_scores = image_scores(shadow.manifest, shadow_outputs)
        agreed = int(
            np.sum(verdicts(primary.manifest, primary_scores) == verdicts(shadow.manifest, shadow_scores))
        )
        compared = int(primary_scores.shape[0])
        shadow.stats.record_shadow(compared, agreed, float(np.abs(primary_scores - shadow_scores).sum()))
        self._metrics.shadow_compared.labels(alias, shadow.version).inc(compared)
        self._metrics.shadow_agreed.labels(alias, shadow.version).inc(agreed)

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
