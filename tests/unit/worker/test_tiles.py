"""Tiles' answers folded into one frame's outputs (``worker.tiles.FrameOutputs``), whatever the meaning."""

from __future__ import annotations

import numpy as np
import pytest
from edgeinspect.core.agent_client import PredictResult
from edgeinspect.core.errors import MessageError
from edgeinspect.core.package import OutputSpec
from edgeinspect.core.preprocess import preprocess
from edgeinspect.core.tiling import tile_grid
from edgeinspect_inference.worker.tiles import FrameOutputs

from tests.helpers.manifests import manifest


def _answer(outputs: dict[str, np.ndarray]) -> PredictResult:
    return PredictResult(outputs=outputs, name="m", version="1", latency_ms=1.0, role="primary")


def test_the_image_output_is_the_highest_tiles_and_logit_masks_stitch_in_logit_space() -> None:
    spec = manifest(
        "multitask",
        height=8,
        width=8,
        outputs=[
            OutputSpec(name="cls", meaning="class_logits", shape=[1, 2]),
            OutputSpec(name="seg", meaning="mask_logit", shape=[1, 1, 8, 8]),
        ],
    )
    tiles = tile_grid(8, 20, 8, 8, 0.25)
    image = np.zeros((8, 20, 3), np.uint8)
    crops = [preprocess(t.crop(image), spec.input) for t in tiles]
    answers = []
    for index, _ in enumerate(tiles):
        mask = np.full((1, 1, 8, 8), -5.0, np.float32)
        if index == 1:
            mask[0, 0, 2, 3] = 4.0
        logits = np.array([[2.0, -2.0 + index]], np.float32)  # tile 2 is the most defective
        answers.append(_answer({"cls": logits, "seg": mask}))
    frame = FrameOutputs(spec, 8, 20, "max")
    frame.add(tiles, crops, answers)
    outputs = frame.outputs()
    assert np.array_equal(outputs["cls"], answers[2].outputs["cls"])
    plane = outputs["seg"]
    assert plane.shape == (8, 20) and plane.max() == 4.0
    assert np.argwhere(plane > 0).tolist() == [[2, tiles[1].left + 3]]


def test_a_tile_missing_an_output_leaves_it_out_and_a_bad_plane_is_a_message_error() -> None:
    spec = manifest("segmentation", height=8, width=8, output="seg")
    tiles = tile_grid(8, 16, 8, 8, 0.0)
    crops = [preprocess(t.crop(np.zeros((8, 16, 3), np.uint8)), spec.input) for t in tiles]
    frame = FrameOutputs(spec, 8, 16, "max")
    frame.add(tiles, crops, [_answer({"seg": np.zeros((1, 1, 8, 8), np.float32)}), _answer({})])
    assert "seg" not in frame.outputs()  # postprocess then names the output the model did not give
    with pytest.raises(MessageError, match="one HxW plane"):
        FrameOutputs(spec, 8, 16, "max").add(tiles[:1], crops[:1], [_answer({"seg": np.zeros((2, 1, 8, 8))})])
