"""The classifier: ResNet18 (He et al. 2016) in plain PyTorch, wrapped to follow the model contract.

:class:`ResNet18` is the network (basic blocks, stages of 2-2-2-2, widths w-2w-4w-8w, one logit),
with a coarse defect-map head used for deep supervision during training.
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
    """ResNet18 with a configurable base width (64 is the paper's) and a single defect logit.

    Two additions for defect detection, both outside the residual trunk:

    - a *defect map* head on the stride-8 features (stage 2), trained against the masks during
      training (deep supervision, as the mixed-supervision networks of Bozic et al. 2021): with a few
      hundred defective images, an image label alone does not teach a network from scratch WHERE
      to look, a coarse mask does;
    - the classification head pools the last feature map by average AND maximum and also reads the
      defect map's average and maximum: a defect may cover a handful of cells, which averaging alone
      dilutes with the good surface around it.

    The exported graph still returns only the defect logit (the map is an internal signal).
    """

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
        self.stages = nn.ModuleList(stages)
        self.defect_map = nn.Sequential(
            nn.Conv2d(widths[1], widths[1], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(widths[1], 1, 1),
        )
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(2 * previous + 2, 1)
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

    def forward_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float ``[N, 3, H, W]`` -> (defect logit ``[N, 1]``, map logits ``[N, 1, H/8, W/8]``)."""
        x = self.stages[1](self.stages[0](self.stem(x)))
        defect_map: torch.Tensor = self.defect_map(x)
        maps = self.stages[3](self.stages[2](x))
        pooled = [
            self.avg_pool(maps),
            self.max_pool(maps),
            self.avg_pool(defect_map),
            self.max_pool(defect_map),
        ]
        logits: torch.Tensor = self.head(torch.cat(pooled, dim=1).flatten(1))
        return logits, defect_map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float ``[N, 3, H, W]`` -> defect logit ``[N, 1]``."""
        return self.forward_with_map(x)[0]


class UInt8Contract(nn.Module):
    """Base of the contract wrappers: uint8 NCHW RGB in, the manifest's normalisation as graph buffers."""

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

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 pixels -> the network's float input (the manifest's normalisation)."""
        return (pixels.to(torch.float32) * self.scale - self.mean) / self.std


class ContractClassifier(UInt8Contract):
    """uint8 NCHW RGB in, defect probability out: normalisation folded into the graph."""

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Defect logits ``[N, 1]`` of uint8 pixels."""
        logits: torch.Tensor = self.network(self.normalise(pixels))
        return logits

    def training_outputs(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(defect logits, defect-map logits or ``None`` when the network has no map) for the loss."""
        x = self.normalise(pixels)
        if isinstance(self.network, ResNet18):
            return self.network.forward_with_map(x)
        logits: torch.Tensor = self.network(x)
        return logits, None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Defect probability ``[N, 1]`` of uint8 pixels ``[N, 3, H, W]``."""
        return torch.sigmoid(self.logits(pixels))
