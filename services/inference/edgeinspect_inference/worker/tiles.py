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
from edgeinspect.core.package import Manifest
from edgeinspect.core.postprocess import CLASSIFICATION_MEANINGS, SEGMENTATION_MEANINGS, classification_score
from edgeinspect.core.preprocess import Geometry, Preprocessed, preprocess
from edgeinspect.core.tiling import Blend, FrameTooLarge, Stitcher, Tile, TilePlan, TilingConfig, decide

from edgeinspect_inference.worker.agentcalls import AgentModelCaller
from edgeinspect_inference.worker.catalog import Target
from edgeinspect_inference.worker.judge import Answer, ModelProblem, StaleTarget
from edgeinspect_inference.worker.metrics import WorkerMetrics
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
    ) -> None:
        self._client = client
        self._caller = caller  # its error translation and line thresholds: the same, tiled or not
        self._metrics = metrics
        self.config = config
        self._batch = batch
        self._timeout_s = timeout_s

    def plan(self, target: Target, image: Image) -> TilePlan | None:
        """The tiles for this frame, None to judge it whole; ``ModelProblem`` when it is too large."""
        manifest = target.manifest
        try:
            return decide(image.shape[0], image.shape[1], manifest.input, self.config, manifest.tiling)
        except FrameTooLarge as exc:
            # the result carries what to do, too: it is what the line's operator sees
            raise ModelProblem(f"{target.alias}: {exc}", reason="frame_too_large", hint=exc.hint) from exc

    def __call__(self, target: Target, image: Image, plan: TilePlan, frame_id: str) -> Answer:
        """The alias's answer on the whole frame, from its answers on ``plan``'s tiles.

        Tiles are preprocessed, sent and folded into the frame's outputs ``batch`` at a time, so a
        frame holds one request's tiles and answers at once, plus the stitched plane.
        """
        started = time.perf_counter()
        frame = FrameOutputs(target.manifest, image.shape[0], image.shape[1], plan.blend)
        latency_ms = 0.0
        for first in range(0, len(plan.tiles), self._batch):
            tiles = plan.tiles[first : first + self._batch]
            crops = self._preprocess(target, image, tiles)
            answered = self._predict(target, [c.tensor for c in crops], f"{frame_id}#{first}")
            latency_ms += _request_latency_ms(answered)
            try:
                frame.add(tiles, crops, answered)
            except (MessageError, ImageError) as exc:
                raise ModelProblem(f"{target.alias}: {exc.message}", reason="output") from exc
        self._metrics.round_trip.labels(target.alias).observe(time.perf_counter() - started)
        try:
            verdicts = postprocess_all(
                target.manifest,
                frame.outputs(),
                _identity(image.shape[0], image.shape[1]),
                latency_ms=latency_ms,
                thresholds=self._caller.thresholds(target.manifest),
            )
        except (MessageError, ImageError) as exc:
            raise ModelProblem(f"{target.alias}: {exc.message}", reason="output") from exc
        self._metrics.model_latency.labels(target.alias, "primary").observe(latency_ms / 1000.0)
        primary, *more = verdicts
        return Answer(target.alias, primary, None, tuple(more))

    def _preprocess(self, target: Target, image: Image, tiles: Sequence[Tile]) -> list[Preprocessed]:
        try:
            return [preprocess(tile.crop(image), target.manifest.input) for tile in tiles]
        except ImageError as exc:
            raise ModelProblem(
                f"{target.alias}: cannot preprocess a tile: {exc}", reason="preprocess"
            ) from exc

    def _predict(self, target: Target, tensors: list[npt.NDArray[Any]], call_id: str) -> list[PredictResult]:
        """One request's tiles answered, all by the version the target names (else the frame is stale)."""
        name = target.manifest.input.name
        calls = [PredictCall(target.alias, {name: t}, f"{call_id}+{i}") for i, t in enumerate(tensors)]
        try:
            answered = self._client.predict_batch(calls, timeout_s=self._timeout_s)
        except AgentError as exc:
            raise self._caller.translate(target, exc) from exc
        versions = {(r.name, r.version) for r in answered}
        if versions != {(target.name, target.version)}:
            raise StaleTarget(
                f"{target.alias}: tiles were answered by {sorted(versions)}, "
                f"not all by {target.name}:{target.version}"
            )
        return answered


class FrameOutputs:
    """The outputs the model would have given for the whole frame, folded in tile by tile:
    the image output of the tile with the highest defect score, and the stitched mask plane."""

    def __init__(self, manifest: Manifest, height: int, width: int, blend: Blend) -> None:
        self._manifest = manifest
        self._best: dict[str, tuple[float, npt.NDArray[Any]]] = {}
        self._stitchers: dict[str, Stitcher] = {}
        self._missing: set[str] = set()
        for spec in manifest.outputs:
            if spec.meaning in SEGMENTATION_MEANINGS:
                self._stitchers[spec.name] = Stitcher(height, width, blend)

    def add(
        self, tiles: Sequence[Tile], crops: Sequence[Preprocessed], results: Sequence[PredictResult]
    ) -> None:
        """Fold these tiles' answers in; ``MessageError`` for a malformed output."""
        for spec in self._manifest.outputs:
            for tile, crop, result in zip(tiles, crops, results, strict=True):
                tensor = result.outputs.get(spec.name)
                if tensor is None:
                    self._missing.add(spec.name)  # postprocess names it if the task needs it
                elif spec.meaning in CLASSIFICATION_MEANINGS:
                    score = classification_score(tensor, spec.meaning)
                    if spec.name not in self._best or score > self._best[spec.name][0]:
                        self._best[spec.name] = (score, tensor)
                elif spec.name in self._stitchers:
                    self._stitchers[spec.name].add(tile, crop.geometry.to_frame(_plane(tensor)))

    def outputs(self) -> dict[str, npt.NDArray[Any]]:
        """The frame's outputs by name (an output some tile lacked is left out)."""
        found: dict[str, npt.NDArray[Any]] = {name: best for name, (_, best) in self._best.items()}
        found |= {name: s.result() for name, s in self._stitchers.items() if name not in self._missing}
        return {name: value for name, value in found.items() if name not in self._missing}


def _plane(tensor: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """One tile's ``HxW`` mask plane (model resolution) as float32."""
    plane = np.asarray(tensor)
    if plane.ndim < 2 or plane.size != plane.shape[-2] * plane.shape[-1]:
        raise MessageError(f"segmentation output must hold one HxW plane per tile, got shape {plane.shape}")
    return plane.reshape(plane.shape[-2:]).astype(np.float32, copy=False)


def _identity(height: int, width: int) -> Geometry:
    """The geometry of a plane already at the frame's resolution (the stitched mask)."""
    return Geometry(height, width, height, width, "stretch", height, width, 0, 0)


def _request_latency_ms(results: Sequence[PredictResult]) -> float:
    """The model's time for one request: tiles stacked into one run all report that run's time
    (counted once); tiles run one by one report their own (summed)."""
    latencies = {r.latency_ms for r in results}
    return float(latencies.pop()) if len(latencies) == 1 else float(sum(r.latency_ms for r in results))
