"""Run an ONNX model on decoded frames exactly as the edge does: preprocess, ONNX Runtime, postprocess.

This is the only way evaluation computes a model's answers, whether the model came out of training a
minute ago or out of a signed package: the frame goes through :func:`edgeinspect.core.preprocess.preprocess`
with the spec's ``input``, the model runs in ONNX Runtime on the CPU provider, and the output becomes a
score (and a frame-resolution mask) through :mod:`edgeinspect.core.postprocess`, the functions the edge
worker applies. What evaluation measures is then what the device will do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from edgeinspect.core.errors import MessageError
from edgeinspect.core.package import TWO_OUTPUT_TASKS
from edgeinspect.core.postprocess import (
    classification_score,
    mask_plane,
    mask_probabilities,
    segmentation_score_and_mask,
)
from edgeinspect.core.preprocess import Geometry, preprocess

from edgeinspect_cloud.errors import EvaluationError
from edgeinspect_cloud.evaluation.spec import ModelSpec


@dataclass(frozen=True)
class FramePrediction:
    """A model's answer for one frame: image score, and per-pixel probabilities at frame resolution.

    ``probabilities`` is ``None`` for a classifier. Thresholding it with ``p >= thresholds.pixel`` gives
    the very mask the edge worker reports (nearest-neighbour mapping commutes with the threshold).
    """

    score: float
    probabilities: npt.NDArray[np.float32] | None = None
    mask_score: float | None = None
    """A multi-task model's segmentation score (the mask's maximum); ``score`` is its classifier's."""


class OnnxModel:
    """An ONNX model and its spec, run the edge's way; ``predict`` takes decoded ``HxWxC`` uint8 frames."""

    def __init__(self, model_path: str | Path, spec: ModelSpec, *, threads: int = 2) -> None:
        self.path = Path(model_path)
        self.spec = spec
        self.answer = spec.answer
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable graphs
            raise EvaluationError(
                f"ONNX Runtime cannot load {self.path}: {exc}", hint="check that the file is an ONNX model"
            ) from exc
        names = [i.name for i in self.session.get_inputs()]
        if spec.input.name not in names:
            raise EvaluationError(
                f"{self.path.name} has inputs {names}, not {spec.input.name!r} as the spec says",
                hint="the model and its spec disagree; re-export or fix the spec",
            )

    def run(self, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The raw answer tensor for a model-ready batch (``NxCxHxW`` in the spec's dtype)."""
        outputs = self.session.run([self.answer.name], {self.spec.input.name: batch})
        result: npt.NDArray[Any] = np.asarray(outputs[0])
        return result

    def run_both(self, batch: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any] | None]:
        """(answer tensor, mask tensor or ``None``): a multi-task model's two outputs from ONE run."""
        mask = self.spec.mask_output
        if self.spec.task not in TWO_OUTPUT_TASKS or mask is None:
            return self.run(batch), None
        score, plane = self.session.run([self.answer.name, mask.name], {self.spec.input.name: batch})
        return np.asarray(score), np.asarray(plane)

    def predict(
        self, frames: Sequence[npt.NDArray[np.uint8]], *, with_masks: bool = True
    ) -> list[FramePrediction]:
        """Score decoded frames (run together as one batch; each keeps its own geometry)."""
        if not frames:
            return []
        prepared = [preprocess(frame, self.spec.input) for frame in frames]
        batch = np.concatenate([p.tensor for p in prepared], axis=0)
        output, masks = self.run_both(batch)
        if output.shape[0] != len(frames):
            raise EvaluationError(
                f"model returned a batch of {output.shape[0]} for {len(frames)} frames",
                hint="export the model with a dynamic batch dimension",
            )
        try:
            if masks is not None:
                return [
                    self._judge_both(output[i : i + 1], masks[i : i + 1], p.geometry, with_masks)
                    for i, p in enumerate(prepared)
                ]
            return [self._judge(output[i : i + 1], p.geometry, with_masks) for i, p in enumerate(prepared)]
        except MessageError as exc:
            raise EvaluationError(
                f"{self.path.name}: {exc.message}", hint=exc.hint or "check the model"
            ) from exc

    def _judge(self, tensor: npt.NDArray[Any], geometry: Geometry, with_masks: bool) -> FramePrediction:
        meaning = self.answer.meaning
        if self.spec.task == "classification":
            return FramePrediction(classification_score(tensor, meaning))
        plane = mask_probabilities(mask_plane(tensor), meaning)
        score, _ = segmentation_score_and_mask(tensor, meaning, 0.5)  # the maximum over the model's canvas
        return FramePrediction(score, geometry.to_frame(plane) if with_masks else None)

    def _judge_both(
        self, tensor: npt.NDArray[Any], mask: npt.NDArray[Any], geometry: Geometry, with_masks: bool
    ) -> FramePrediction:
        """A multi-task model: the classifier's score, the mask and the mask's own (segmentation) score."""
        spec = self.spec.mask_output
        assert spec is not None
        plane = mask_probabilities(mask_plane(mask), spec.meaning)
        mask_score, _ = segmentation_score_and_mask(mask, spec.meaning, 0.5)
        return FramePrediction(
            classification_score(tensor, self.answer.meaning),
            geometry.to_frame(plane) if with_masks else None,
            mask_score,
        )
