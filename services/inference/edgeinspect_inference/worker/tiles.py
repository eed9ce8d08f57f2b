"""Large frames through the agent as overlapping tiles, answered as if the model had seen the frame.

:class:`TiledCaller` is the judge's path for a frame that :func:`edgeinspect.core.tiling.decide`
says to tile: every tile is cut from the decoded frame, preprocessed exactly as a whole frame would
be (:func:`~edgeinspect.core.preprocess.preprocess` with the manifest's input), and sent to the
agent ``batch`` tiles per ``PredictBatch`` (the agent stacks them into one run when the model has a
dynamic batch axis). The answers become the outputs of ONE frame, which then go through the usual
:func:`~.postprocess.postprocess_all` with an identity geometry, so thresholds, line overrides,
logits and multi-task models are judged by the very code that judges an untiled frame:

- a classifier's (or multi-task model's) image output is that of the tile with the highest defect
  score: the frame's score is the maximum over tiles;
- a segmenter's mask output is the tiles' planes, mapped back to tile size and stitched at the
  frame's resolution (:class:`~edgeinspect.core.tiling.Stitcher`): score, mask, defect area and box
  come out in full-frame pixels.

A tiled frame is judged by the primary only: the shadow comparison runs on untiled frames. If the
alias moves to another version while the tiles of one frame are answered, the answers are mixed, so
the frame is retried (:class:`~.judge.StaleTarget`) instead of judged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from edgeinspect.core.agent_client import AgentClient, PredictCall, PredictResult
from edgeinspect.core.errors import AgentError, ImageError, MessageError
from edgeinspect.core.package import Manifest, Thresholds
from edgeinspect.core.postprocess import CLASSIFICATION_MEANINGS, SEGMENTATION_MEANINGS, classification_score
from edgeinspect.core.preprocess import Geometry, Preprocessed, preprocess
from edgeinspect.core.tiling import FrameTooLarge, Stitcher, TilePlan, TilingConfig, decide

from edgeinspect_inference.worker.agentcalls import AgentModelCaller
from edgeinspect_inference.worker.catalog import Target
from edgeinspect_inference.worker.judge import Answer, ModelProblem, StaleTarget
from edgeinspect_inference.worker.metrics import WorkerMetrics
from edgeinspect_inference.worker.overrides import ThresholdOverrides
from edgeinspect_inference.worker.postprocess import postprocess_all

Image = npt.NDArray[np.uint8]


class TiledCaller:
    """Judges one alias on one large frame, tile by tile (see the module docstring)."""

    def __init__(
        self,
        client: AgentClient,
        caller: AgentModelCaller,
        metrics: WorkerMetrics,
        config: TilingConfig,
        *,
        batch: int = 8,
        timeout_s: float = 10.0,
        overrides: ThresholdOverrides | None = None,
    ) -> None:
        self._client = client
        self._caller = caller  # its error translation: one meaning for an agent error, tiled or not
        self._metrics = metrics
        self.config = config
        self._batch = batch
        self._timeout_s = timeout_s
        self._overrides = overrides

    def plan(self, target: Target, image: Image) -> TilePlan | None:
        """The tiles for this frame, None to judge it whole; ``ModelProblem`` when it is too large."""
        manifest = target.manifest
        try:
            return decide(image.shape[0], image.shape[1], manifest.input, self.config, manifest.tiling)
        except FrameTooLarge as exc:
            # the result carries what to do, too: it is what the line's operator sees
            raise ModelProblem(f"{target.alias}: {exc}", reason="frame_too_large", hint=exc.hint) from exc

    def __call__(self, target: Target, image: Image, plan: TilePlan, frame_id: str) -> Answer:
        """The alias's answer on the whole frame, from its answers on ``plan``'s tiles."""
        started = time.perf_counter()
        try:
            crops = [preprocess(tile.crop(image), target.manifest.input) for tile in plan.tiles]
        except ImageError as exc:
            raise ModelProblem(
                f"{target.alias}: cannot preprocess a tile: {exc}", reason="preprocess"
            ) from exc
        results, latency_ms = self._predict_tiles(target, [p.tensor for p in crops], frame_id)
        self._metrics.round_trip.labels(target.alias).observe(time.perf_counter() - started)
        try:
            outputs = self._frame_outputs(target.manifest, plan, crops, results, image.shape[:2])
            verdicts = postprocess_all(
                target.manifest,
                outputs,
                _identity(image.shape[0], image.shape[1]),
                latency_ms=latency_ms,
                thresholds=self._thresholds(target.manifest),
            )
        except (MessageError, ImageError) as exc:
            raise ModelProblem(f"{target.alias}: {exc.message}", reason="output") from exc
        self._metrics.model_latency.labels(target.alias, "primary").observe(latency_ms / 1000.0)
        primary, *more = verdicts
        return Answer(target.alias, primary, None, tuple(more))

    def _predict_tiles(
        self, target: Target, tensors: list[npt.NDArray[Any]], frame_id: str
    ) -> tuple[list[PredictResult], float]:
        """Every tile's answer, ``batch`` tiles per request, all from the version the target names;
        and the model's own time over all requests."""
        name = target.manifest.input.name
        results: list[PredictResult] = []
        latency_ms = 0.0
        for first in range(0, len(tensors), self._batch):
            chunk = tensors[first : first + self._batch]
            calls = [
                PredictCall(target.alias, {name: t}, f"{frame_id}#{first + i}") for i, t in enumerate(chunk)
            ]
            try:
                answered = self._client.predict_batch(calls, timeout_s=self._timeout_s)
            except AgentError as exc:
                raise self._caller._translate(target, exc) from exc
            results += answered
            latency_ms += _request_latency_ms(answered)
        versions = {(r.name, r.version) for r in results}
        if versions != {(target.name, target.version)}:
            raise StaleTarget(
                f"{target.alias}: tiles were answered by {sorted(versions)}, "
                f"not all by {target.name}:{target.version}"
            )
        return results, latency_ms

    def _frame_outputs(
        self,
        manifest: Manifest,
        plan: TilePlan,
        crops: Sequence[Preprocessed],
        results: Sequence[PredictResult],
        frame_shape: tuple[int, ...],
    ) -> dict[str, npt.NDArray[Any]]:
        """The outputs the model would have given for the whole frame: best tile's score, stitched mask."""
        outputs: dict[str, npt.NDArray[Any]] = {}
        for spec in manifest.outputs:
            tensors = [r.outputs.get(spec.name) for r in results]
            if any(t is None for t in tensors):
                continue  # postprocess names the missing output if the task needs it
            present: list[npt.NDArray[Any]] = [t for t in tensors if t is not None]
            if spec.meaning in CLASSIFICATION_MEANINGS:
                scores = [classification_score(t, spec.meaning) for t in present]
                outputs[spec.name] = present[int(np.argmax(scores))]
            elif spec.meaning in SEGMENTATION_MEANINGS:
                outputs[spec.name] = stitch(plan, crops, present, frame_shape)
        return outputs

    def _thresholds(self, manifest: Manifest) -> Thresholds | None:
        return None if self._overrides is None else self._overrides.thresholds(manifest)[0]


def stitch(
    plan: TilePlan,
    crops: Sequence[Preprocessed],
    planes: Sequence[npt.NDArray[Any]],
    frame_shape: tuple[int, ...],
) -> npt.NDArray[np.float32]:
    """The tiles' mask planes (model resolution) back at tile size, stitched into one frame plane."""
    stitcher = Stitcher(int(frame_shape[0]), int(frame_shape[1]), plan.blend)
    for tile, crop, tensor in zip(plan.tiles, crops, planes, strict=True):
        plane = np.asarray(tensor)
        if plane.ndim < 2 or plane.size != plane.shape[-2] * plane.shape[-1]:
            raise MessageError(f"segmentation output must hold one HxW plane per tile, got {plane.shape}")
        stitcher.add(tile, crop.geometry.to_frame(plane.reshape(plane.shape[-2:]).astype(np.float32)))
    return stitcher.result()


def _identity(height: int, width: int) -> Geometry:
    """The geometry of a plane already at the frame's resolution (the stitched mask)."""
    return Geometry(height, width, height, width, "stretch", height, width, 0, 0)


def _request_latency_ms(results: Sequence[PredictResult]) -> float:
    """The model's time for one request: tiles stacked into one run all report that run's time
    (counted once); tiles run one by one report their own (summed)."""
    latencies = {r.latency_ms for r in results}
    return float(latencies.pop()) if len(latencies) == 1 else float(sum(r.latency_ms for r in results))
