"""The classifier: ResNet18 (He et al. 2016) in plain PyTorch, wrapped to follow the model contract.

:class:`ResNet18` is the network (basic blocks, stages of 2-2-2-2, widths w-2w-4w-8w, one logit).
:class:`ContractClassifier` wraps it so that the exported graph takes ``image`` uint8 ``[N, 3, H, W]``
RGB and returns ``defect_probability`` float32 ``[N, 1]``: the cast, the scale and the manifest's
mean/std are buffers inside the graph. Training calls :meth:`ContractClassifier.logits` (a numerically
stable loss on logits); export and evaluation call ``forward`` (the probability the edge thresholds).

Import this module only where torch is wanted: it imports torch at the top.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual shortcut (1x1 projection when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: torch.Tensor = self.relu(out + self.shortcut(x))
        return result


class ResNet18(nn.Module):
    """ResNet18 with a configurable base width (64 is the paper's) and a single defect logit."""

    def __init__(self, base_width: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        widths = [base_width, base_width * 2, base_width * 4, base_width * 8]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: list[nn.Module] = []
        previous = base_width
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(previous, width, stride), BasicBlock(width, width, 1)))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(previous, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming init, and the last BN of each block at zero so every block starts as an identity."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float ``[N, 3, H, W]`` -> defect logit ``[N, 1]``."""
        features = self.pool(self.stages(self.stem(x))).flatten(1)
        logits: torch.Tensor = self.head(features)
        return logits


class ContractClassifier(nn.Module):
    """uint8 NCHW RGB in, defect probability out: normalisation folded into the graph."""

    def __init__(
        self, network: nn.Module, mean: Sequence[float], std: Sequence[float], scale: float = 1.0 / 255.0
    ) -> None:
        super().__init__()
        self.network = network
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))
        self.scale = float(scale)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Defect logits ``[N, 1]`` of uint8 pixels (for the training loss)."""
        x = (pixels.to(torch.float32) * self.scale - self.mean) / self.std
        logits: torch.Tensor = self.network(x)
        return logits

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Defect probability ``[N, 1]`` of uint8 pixels ``[N, 3, H, W]``."""
        return torch.sigmoid(self.logits(pixels))
