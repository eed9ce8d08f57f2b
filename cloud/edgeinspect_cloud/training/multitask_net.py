"""The multi-task network: one shared encoder, a segmentation head, a classifier that reads its features.

One pass per frame answers both questions a line asks (is this part defective, and where), instead
of a ResNet18 and a U-Net each encoding the same frame. The design follows the mixed-supervision
networks that lead on KolektorSDD2 (Bozic et al. 2021): the segmentation head is trained on the
masks, and the classification head decides from the *segmentation* features and the mask itself, so
the image label and the masks teach one representation.

:class:`MultiTaskNet` (plain PyTorch, no torchvision), built from a
:class:`~edgeinspect_cloud.training.multitask_arch.MultiTaskArch` (the ``baseline`` preset, width
``w``, is described here; the others change the stem stride, the number of stages, the block, the
skips):

- encoder: a stride-2 stem and three 2-convolution stages, strides 2, 4, 8, 16 with ``w, 2w, 4w, 8w``
  channels;
- segmentation head: a light U-Net decoder back to the stem's stride (skip connections from the
  encoder), a 1x1 convolution to mask logits, bilinear upsampling to the input size;
- classification head: the stride-4 decoder features and the (pooled) mask logits go through two
  strided convolutions; global average and max pooling of those AND of the mask logits feed one
  linear layer: a defect covering a handful of pixels survives max pooling, not averaging alone.

The input is padded to a multiple of the total stride inside the graph and the mask cropped back, so
any size works (232x640 included). :class:`ContractMultiTask` wraps it to the model contract: uint8
NCHW RGB in, ``defect_probability [N, 1]`` and ``mask_probability [N, 1, H, W]`` out, normalisation
in the graph.

Import this module only where torch is wanted: it imports torch at the top.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgeinspect_cloud.training.mirrored_views import merge_views, stack_views
from edgeinspect_cloud.training.multitask_arch import MultiTaskArch
from edgeinspect_cloud.training.resnet import UInt8Contract

STRIDE = 16
"""The baseline encoder's total stride (other recipes: :attr:`MultiTaskArch.stride`)."""


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (optionally strided), batch norm, ReLU: the plain building block."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SeparableBNReLU(nn.Sequential):
    """Depthwise 3x3 (optionally strided) + pointwise 1x1, each with batch norm and ReLU.

    About ``9 / out + 1 / 9`` of a plain 3x3 layer's multiply-adds: the cheap block of mobile networks.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def _block(arch: MultiTaskArch) -> Callable[..., nn.Module]:
    """The recipe's building block: ``block(in_channels, out_channels, stride=1)``."""
    return SeparableBNReLU if arch.block == "separable" else ConvBNReLU


def _stem(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Stride 2: a 3x3 convolution; stride 4: a 4x4 patchify convolution (a quarter of the pixels)."""
    if stride == 2:
        return ConvBNReLU(in_channels, out_channels, 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 4, 4, 0, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


INPUT_NORM_EPS = 0.05
"""Floor of a channel's spread in :func:`standardise_per_image` (normalised units): a flat channel
(a saturated or blank frame) is not amplified into noise."""


def standardise_per_image(x: torch.Tensor) -> torch.Tensor:
    """Each image's channels to zero mean, unit spread: colour casts and exposure cancel out."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    spread = torch.sqrt(((x - mean) ** 2).mean(dim=(2, 3), keepdim=True) + INPUT_NORM_EPS**2)
    return (x - mean) / spread


def encode(encoder: nn.ModuleList, arch: MultiTaskArch, x: torch.Tensor) -> list[torch.Tensor]:
    """Every encoder level's output, shallowest first: the recipe's input normalisation, the input
    padded to the network's stride, then the stages (the decoder's skips; the anomaly model's features)."""
    if arch.input_norm == "image":
        x = standardise_per_image(x)
    pad_h, pad_w = (-x.shape[-2]) % arch.stride, (-x.shape[-1]) % arch.stride
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    levels = []
    for stage in encoder:
        x = stage(x)
        levels.append(x)
    return levels


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` upsampled (nearest) to ``like``'s height and width: a skip connection's partner."""
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class MultiTaskNet(nn.Module):
    """Shared encoder, segmentation decoder, classification head on the segmentation features.

    ``arch`` is a :class:`MultiTaskArch` (or a width: the baseline recipe at that width). The
    baseline's parameter names are those of the network as first shipped, so its checkpoints load.
    """

    def __init__(self, arch: MultiTaskArch | int = 8, in_channels: int = 3) -> None:
        super().__init__()
        if isinstance(arch, int):
            arch = MultiTaskArch(width=arch)
        self.arch = arch
        w = arch.width or 8
        block = _block(arch)
        widths = [w * 2**i for i in range(arch.stages + 1)]
        self.strides = [arch.stem * 2**i for i in range(arch.stages + 1)]
        stages: list[nn.Module] = [_stem(in_channels, w, arch.stem)]
        for i in range(1, arch.stages + 1):
            stages.append(nn.Sequential(block(widths[i - 1], widths[i], 2), block(widths[i], widths[i])))
        self.encoder = nn.ModuleList(stages)
        for i in range(arch.stages - 1, -1, -1):  # decode{stride}: deepest first, as first shipped
            skip = widths[i] if arch.skips else 0
            setattr(self, f"decode{self.strides[i]}", block(widths[i + 1] + skip, widths[i]))
        self.mask_head = nn.Conv2d(w, 1, 1)
        cls_in = widths[1] if arch.stages >= 1 else w
        self.cls_features = nn.Sequential(ConvBNReLU(cls_in + 1, 4 * w, 2), ConvBNReLU(4 * w, 8 * w, 2))
        self.cls_head = nn.Linear(2 * 8 * w + 2, 1)
        assert self.mask_head.bias is not None
        nn.init.constant_(self.mask_head.bias, -4.0)  # start near "no defect": under 1% of pixels are

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float ``[N, C, H, W]`` -> (defect logit ``[N, 1]``, mask logits ``[N, 1, H, W]``)."""
        height, width = x.shape[-2], x.shape[-1]
        skips = encode(self.encoder, self.arch, x)
        decoded = skips[-1]
        levels = []
        for i in range(len(skips) - 2, -1, -1):
            up = _up(decoded, skips[i])
            joined = torch.cat([up, skips[i]], dim=1) if self.arch.skips else up
            decoded = getattr(self, f"decode{self.strides[i]}")(joined)
            levels.append(decoded)
        mask_low = self.mask_head(decoded)  # at the stem's stride
        second = levels[-2] if len(levels) >= 2 else skips[1]  # the level one below the stem's
        features = self.cls_features(torch.cat([second, F.max_pool2d(mask_low, 2)], dim=1))
        pooled = [
            F.adaptive_avg_pool2d(features, 1).flatten(1),
            F.adaptive_max_pool2d(features, 1).flatten(1),
            F.adaptive_avg_pool2d(mask_low, 1).flatten(1),
            F.adaptive_max_pool2d(mask_low, 1).flatten(1),
        ]
        logit: torch.Tensor = self.cls_head(torch.cat(pooled, dim=1))
        mask = F.interpolate(
            mask_low, scale_factor=float(self.arch.stem), mode="bilinear", align_corners=False
        )
        return logit, mask[..., :height, :width]


class ContractMultiTask(UInt8Contract):
    """uint8 NCHW RGB in; (``defect_probability [N, 1]``, ``mask_probability [N, 1, H, W]``) out."""

    def logits(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(defect logit, mask logits) of uint8 pixels: what the loss takes (numerically stable)."""
        result: tuple[torch.Tensor, torch.Tensor] = self.network(self.normalise(pixels))
        return result

    @property
    def views(self) -> str:
        """The recipe's mirrored views (``none``, ``h`` or ``hv``)."""
        network = self.network
        assert isinstance(network, MultiTaskNet)
        return network.arch.views

    def single_view(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(defect probability, per-pixel defect probability) of the frames as they are."""
        logit, mask = self.logits(pixels)
        return torch.sigmoid(logit), torch.sigmoid(mask)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities the edge thresholds: the mean over the recipe's mirrored views."""
        if self.views == "none":
            return self.single_view(pixels)
        scores, masks = self.single_view(stack_views(pixels, self.views))
        return merge_views(scores, masks, self.views)
