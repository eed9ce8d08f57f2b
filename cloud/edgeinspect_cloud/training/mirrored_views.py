"""Mirrored views: the multi-task graph answers for a frame and its mirror images, and averages them.

A defect is a defect in a mirror, and so is a good surface; a network that has learnt both only
approximately (any network trained on a few thousand frames) makes different mistakes on the mirrored
frame, so the mean of the views ranks parts better than any one view (test-time augmentation).
Measured on the held-out surfaces with the two 4,800-frame *after* models of ``bench.heldout`` (seeds
0 and 1; fp32; image AP on the mixed held-out set, 300 frames):

- one view: 0.913 / 0.933 (spangle, the worst surface, 0.773 / 0.790);
- ``h`` (the frame and its left-right mirror, 2 passes): 0.932 / 0.939 (spangle 0.821 / 0.805);
- ``hv`` (also the upside-down mirror and both, 4 passes): 0.939 / 0.941 (spangle 0.846 / 0.834);
  shifting the frame by half the encoder's stride (8 pixels) as further views added nothing;
- averaging the two seeds' networks instead (2 passes): 0.931; both seeds with ``hv``: 0.944.

The views run as one batch through the network inside the ONNX graph, so the edge sees one model with
the contract's two outputs and pays the passes in inference time only. On the 2-core box the default
profile's network (320x112, width 12, int8) sustained 77 / 65 / 53 frames/s with ``none`` / ``h`` /
``hv`` through the worker and the agent (``bench.throughput``), five times a line's 10 frames/s even
with four views, so the default recipe ships ``hv`` (cloud/README.md, "Mirrored views").
Training never sees the views: the loss and the per-epoch validation run the single view, so a
recipe with views trains exactly the weights of the same recipe without them.
"""

from __future__ import annotations

import torch

VIEW_FLIPS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": ((),),
    "h": ((), (-1,)),
    "hv": ((), (-1,), (-2,), (-2, -1)),
}
"""The flipped axes of each view (NCHW: -1 left-right, -2 upside-down), per ``MultiTaskArch.views``."""


def _flip(tensor: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    return tensor.flip(axes) if axes else tensor


def stack_views(pixels: torch.Tensor, views: str) -> torch.Tensor:
    """``[N, C, H, W]`` -> ``[V*N, C, H, W]``: every view of the batch, view by view."""
    return torch.cat([_flip(pixels, axes) for axes in VIEW_FLIPS[views]], dim=0)


def merge_views(scores: torch.Tensor, masks: torch.Tensor, views: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean over the views of ``[V*N, 1]`` scores and ``[V*N, 1, H, W]`` masks, masks flipped back.

    A reshape with ``-1`` keeps the batch size symbolic in the exported graph (a split by sizes
    would freeze the batch the exporter traced).
    """
    flips = VIEW_FLIPS[views]
    score = scores.reshape(len(flips), -1, *scores.shape[1:]).mean(dim=0)
    per_view = masks.reshape(len(flips), -1, *masks.shape[1:]).unbind(0)
    mask = torch.stack([_flip(m, axes) for m, axes in zip(per_view, flips, strict=True)]).mean(dim=0)
    return score, mask
