"""The multi-task network: one shared encoder, a segmentation head, a classifier that reads its features.

One pass per frame answers both questions a line asks (is this part defective, and where), instead
of a ResNet18 and a U-Net each encoding the same frame. The design follows the mixed-supervision
networks that lead on KolektorSDD2 (Bozic et al. 2021): the segmentation head is trained on the
masks, and the classification head decides from the *segmentation* features and the mask itself, so
the image label and the masks teach one representation.

:class:`MultiTaskNet` (plain PyTorch, no torchvision), width ``w``:

- encoder: four 2-convolution stages at strides 2, 4, 8, 16 with ``w, 2w, 4w, 8w`` channels;
- segmentation head: a light U-Net decoder back to stride 2 (skip connections from the encoder),
  a 1x1 convolution to mask logits, bilinear upsampling to the input size;
- classification head: the stride-4 decoder features and the (pooled) mask logits go through two
  strided convolutions; global average and max pooling of those AND of the mask logits feed one
  linear layer: a defect covering a handful of pixels survives max pooling, not averaging alone.

The input is padded to a multiple of 16 inside the graph and the mask cropped back, so any size works
(232x640 included). :class:`ContractMultiTask` wraps it to the model contract: uint8 NCHW RGB in,
``defect_probability [N, 1]`` and ``mask_probability [N, 1, H, W]`` out, normalisation in the graph.

Import this module only where torch is wanted: it imports torch at the top.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeinspect_cloud.training.resnet import UInt8Contract

STRIDE = 16
"""The encoder's total stride: inputs are padded to a multiple of it inside the graph."""


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (optionally strided), batch norm, ReLU: the one building block of the network."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        ConvBNReLU(in_channels, out_channels, stride), ConvBNReLU(out_channels, out_channels)
    )


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` upsampled (nearest) to ``like``'s height and width: a skip connection's partner."""
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class MultiTaskNet(nn.Module):
    """Shared encoder, segmentation decoder, classification head on the segmentation features."""

    def __init__(self, base_width: int = 8, in_channels: int = 3) -> None:
        super().__init__()
        w = base_width
        self.encoder = nn.ModuleList(
            [
                ConvBNReLU(in_channels, w, 2),  # stride 2
                _stage(w, 2 * w, 2),  # stride 4
                _stage(2 * w, 4 * w, 2),  # stride 8
                _stage(4 * w, 8 * w, 2),  # stride 16
            ]
        )
        self.decode8 = ConvBNReLU(8 * w + 4 * w, 4 * w)
        self.decode4 = ConvBNReLU(4 * w + 2 * w, 2 * w)
        self.decode2 = ConvBNReLU(2 * w + w, w)
        self.mask_head = nn.Conv2d(w, 1, 1)
        self.cls_features = nn.Sequential(ConvBNReLU(2 * w + 1, 4 * w, 2), ConvBNReLU(4 * w, 8 * w, 2))
        self.cls_head = nn.Linear(2 * 8 * w + 2, 1)
        assert self.mask_head.bias is not None
        nn.init.constant_(self.mask_head.bias, -4.0)  # start near "no defect": under 1% of pixels are

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float ``[N, C, H, W]`` -> (defect logit ``[N, 1]``, mask logits ``[N, 1, H, W]``)."""
        height, width = x.shape[-2], x.shape[-1]
        pad_h, pad_w = (-height) % STRIDE, (-width) % STRIDE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        s2, s4, s8, s16 = skips
        d8 = self.decode8(torch.cat([_up(s16, s8), s8], dim=1))
        d4 = self.decode4(torch.cat([_up(d8, s4), s4], dim=1))
        d2 = self.decode2(torch.cat([_up(d4, s2), s2], dim=1))
        mask2 = self.mask_head(d2)
        features = self.cls_features(torch.cat([d4, F.max_pool2d(mask2, 2)], dim=1))
        pooled = [
            F.adaptive_avg_pool2d(features, 1).flatten(1),
            F.adaptive_max_pool2d(features, 1).flatten(1),
            F.adaptive_avg_pool2d(mask2, 1).flatten(1),
            F.adaptive_max_pool2d(mask2, 1).flatten(1),
        ]
        logit: torch.Tensor = self.cls_head(torch.cat(pooled, dim=1))
        mask = F.interpolate(mask2, scale_factor=2.0, mode="bilinear", align_corners=False)
        return logit, mask[..., :height, :width]


class ContractMultiTask(UInt8Contract):
    """uint8 NCHW RGB in; (``defect_probability [N, 1]``, ``mask_probability [N, 1, H, W]``) out."""

    def logits(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(defect logit, mask logits) of uint8 pixels: what the loss takes (numerically stable)."""
        result: tuple[torch.Tensor, torch.Tensor] = self.network(self.normalise(pixels))
        return result

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities the edge thresholds: (defect probability, per-pixel defect probability)."""
        logit, mask = self.logits(pixels)
        return torch.sigmoid(logit), torch.sigmoid(mask)
