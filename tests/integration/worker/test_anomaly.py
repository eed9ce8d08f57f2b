"""A good-parts-only model, trained for real on good frames, served by the real agent and judged by the
real worker: a verdict and a mask, through the segmenter's alias and the normal path.

The line's good parts are dark, noisy frames; the model is the quick anomaly profile at 64x64, fitted
on two dozen of them (seconds). A frame with a bright patch must come back ``defect`` with a mask on
the patch; a fresh good frame ``ok`` without one.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from edgeinspect.core import images
from edgeinspect_cloud.training.anomaly import train_anomaly
from edgeinspect_cloud.training.config import default_config

from tests.helpers.trained import package_result
from tests.integration.worker.conftest import FRAME_SIZE, PATCH, LineKit

DARK, BRIGHT, NOISE = 40, 235, 10


def good_frame(seed: int) -> np.ndarray:
    """A good part of this line: dark, with seeded sensor noise."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-NOISE, NOISE + 1, size=(FRAME_SIZE, FRAME_SIZE, 1))
    return np.clip(DARK + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)


def patched_frame(seed: int) -> np.ndarray:
    pixels = good_frame(seed)
    y0, y1, x0, x1 = PATCH
    pixels[y0:y1, x0:x1] = BRIGHT
    return pixels


def good_only_dataset(root: Path, count: int = 24) -> Path:
    """``root/train`` of ``count`` good frames with empty masks (the dataset layout every trainer reads)."""
    folder = root / "train"
    folder.mkdir(parents=True)
    for index in range(count):
        cv2.imwrite(str(folder / f"{10000 + index}.png"), good_frame(index))
        cv2.imwrite(str(folder / f"{10000 + index}_GT.png"), np.zeros((FRAME_SIZE, FRAME_SIZE), np.uint8))
    return root


def anomaly_package(line: LineKit, work: Path) -> Path:
    """Train the anomaly model on good frames only and package it signed with the agent's trusted key."""
    config = default_config("anomaly", quick=True).with_overrides(height=64, img_width=64, progress=False)
    result = train_anomaly(good_only_dataset(work / "line"), work / "run", config)
    return package_result(result, "defect-anomaly", work, line.agent.keys.private_key)


def test_an_anomaly_model_trained_on_good_frames_flags_a_patch_with_a_mask(
    line: LineKit, tmp_path: Path
) -> None:
    package = anomaly_package(line, tmp_path)
    client = line.agent_client()
    info = client.load_version(str(package))
    client.set_alias("defect-seg", info.name, info.version)  # the model manager's alias for the task
    with line.worker():
        line.send("good", good_frame(1000))
        line.send("patch", patched_frame(1001))
        results = {r.frame_id: r for r in line.wait_results(2)}
    assert line.pending() == 0

    good, patch = results["good"], results["patch"]
    for result in (good, patch):
        (prediction,) = result.predictions
        assert (prediction.model, prediction.version, prediction.task) == (
            "defect-anomaly",
            "1",
            "segmentation",
        )
        assert prediction.threshold == 0.5
        assert "defect-cls" in result.error  # no classifier on this line: said, not failed
    assert good.verdict == "ok" and good.mask is None
    assert good.predictions[0].score < 0.5

    assert patch.verdict == "defect"
    (flagged,) = patch.predictions
    assert flagged.score >= 0.5 and flagged.defect_area_px > 0
    assert patch.mask is not None
    mask = images.decode_mask(patch.mask)
    assert mask.shape == (FRAME_SIZE, FRAME_SIZE)
    y0, y1, x0, x1 = PATCH
    assert mask[y0:y1, x0:x1].all()  # the whole patch is in the mask
    # the map is coarse (stride-4 features, light flattened over 17 model pixels, a 64-pixel input
    # for a 128-pixel frame), so the mask is a blob around the patch, centred on it
    rows, cols = np.nonzero(mask)
    assert y0 <= rows.mean() < y1 and x0 <= cols.mean() < x1, f"mask box {flagged.bbox}, patch {PATCH}"
    assert not mask[-16:, :].any()  # far from the patch stays clear
    assert flagged.bbox is not None
    bx0, by0, bx1, by1 = flagged.bbox
    assert bx0 < x1 and x0 < bx1 and by0 < y1 and y0 < by1  # the box overlaps the patch
