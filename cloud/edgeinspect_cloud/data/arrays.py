"""Model-ready arrays: samples pushed through THE preprocessing the edge uses, at the model's size.

Training, validation and evaluation all get their pixels from :func:`edgeinspect.core.preprocess.preprocess`
with the model's manifest ``InputSpec``, so the network learns on exactly the tensors the edge worker
will feed it (train/deploy parity). Masks follow the same geometry (:func:`resize_to_input`); after
area-averaged shrinking a mask pixel holds the FRACTION of defect pixels it covers, a soft target that
keeps thin scratches from vanishing at low resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from edgeinspect.core.package import InputSpec, Normalisation, Resize
from edgeinspect.core.preprocess import ResizeMode, preprocess, resize_to_input
from tqdm import tqdm

from edgeinspect_cloud.data.dataset import SampleFiles, read_sample

DEFAULT_MEAN = [0.5, 0.5, 0.5]
DEFAULT_STD = [0.25, 0.25, 0.25]


@dataclass(frozen=True)
class ArraySet:
    """``images`` ``NxCxHxW`` uint8 (model input), ``masks`` ``NxHxW`` float32 in [0, 1], ``labels`` bool."""

    ids: list[str]
    images: npt.NDArray[np.uint8]
    masks: npt.NDArray[np.float32]
    labels: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: npt.ArrayLike) -> ArraySet:
        """The samples at ``indices``, in that order (copies, so augmenting one never touches another)."""
        picked = np.asarray(indices, dtype=np.intp)
        return ArraySet(
            ids=[self.ids[i] for i in picked],
            images=self.images[picked].copy(),
            masks=self.masks[picked].copy(),
            labels=self.labels[picked].copy(),
        )


def input_spec(
    height: int,
    width: int,
    *,
    mode: ResizeMode = "stretch",
    mean: Sequence[float] = DEFAULT_MEAN,
    std: Sequence[float] = DEFAULT_STD,
) -> InputSpec:
    """The manifest input a model trained here takes: ``image``, uint8 NCHW RGB, normalised in-graph."""
    return InputSpec(
        name="image",
        shape=[-1, 3, height, width],
        dtype="uint8",
        colour="RGB",
        resize=Resize(height=height, width=width, mode=mode),
        normalisation=Normalisation(mean=list(mean), std=list(std)),
        normalisation_in_graph=True,
    )


def load_arrays(samples: Sequence[SampleFiles], spec: InputSpec, *, progress: bool = False) -> ArraySet:
    """Decode and preprocess ``samples`` into model-ready arrays (one sample in memory at a time)."""
    height, width = spec.resize.height, spec.resize.width
    count = len(samples)
    images = np.zeros((count, spec.channels, height, width), np.uint8)
    masks = np.zeros((count, height, width), np.float32)
    labels = np.zeros(count, bool)
    for index, files in enumerate(tqdm(samples, desc="load", unit="img", disable=not progress, leave=False)):
        sample = read_sample(files)
        prepared = preprocess(sample.image, spec)
        images[index] = prepared.tensor[0]
        plane = resize_to_input((sample.mask.astype(np.uint8) * 255)[:, :, None], prepared.geometry)
        masks[index] = plane[:, :, 0].astype(np.float32) / 255.0
        labels[index] = sample.defective
    return ArraySet([s.sample_id for s in samples], images, masks, labels)
