"""Classifiers with normalisation inside: inputs are images in [0, 1], N x C x H x W.

Every model is a :class:`Classifier` = ``Normalize -> features -> head`` where ``head`` is one
``nn.Linear`` (its weights re-initialised by :func:`reset_head` for full-class unlearning). Architectures (``ARCHS``):

- ``resnet18`` / ``resnet34``: CIFAR-style ResNets (3x3 stride-1 stem, no max-pool, adaptive pool);
- ``vgg16_bn``: 13 conv-BN-ReLU layers, 5 max-pools, one ``Linear(512, C)``;
- ``smallcnn``: a 0.54 M-parameter, 5-conv net for CPU runs (83 % on CIFAR-10 in 8 epochs);
- ``smallcnn16``: the same shape at half the width (0.14 M), the quick profile's model;
- ``tinycnn``: the same shape at 1/8 the width, for smoke tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std``; mean and std are buffers, saved with the weights."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    def __init__(self, normalize: Normalize, features: nn.Module, head: nn.Linear):
        super().__init__()
        self.normalize, self.features, self.head = normalize, features, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)))


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(c_in, c_out, stride),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _resnet(blocks: Sequence[int], in_channels: int) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = _conv_bn(in_channels, 64)
    c_in = 64
    for stage, n in enumerate(blocks):
        c_out = 64 * 2 ** stage
        for i in range(n):
            layers.append(BasicBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1))
            c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), c_in


def _vgg16_bn(in_channels: int) -> tuple[nn.Module, int]:
    plan = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers: list[nn.Module] = []
    c_in = in_channels
    for v in plan:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += _conv_bn(c_in, int(v))
            c_in = int(v)
    # Adaptive pooling keeps the head at Linear(512, C) for inputs larger than 32 px.
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), 512


def _small_cnn(in_channels: int, width: int) -> tuple[nn.Module, int]:
    w = [width, 2 * width, 4 * width, 4 * width, 8 * width]
    layers = (_conv_bn(in_channels, w[0]) + _conv_bn(w[0], w[1]) + [nn.MaxPool2d(2)]
              + _conv_bn(w[1], w[2]) + [nn.MaxPool2d(2)] + _conv_bn(w[2], w[3])
              + _conv_bn(w[3], w[4]) + [nn.MaxPool2d(2)])
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten()), w[4]


ARCHS = {
    "resnet18": lambda c: _resnet((2, 2, 2, 2), c),
    "resnet34": lambda c: _resnet((3, 4, 6, 3), c),
    "vgg16_bn": _vgg16_bn,
    "smallcnn": lambda c: _small_cnn(c, 32),
    "smallcnn16": lambda c: _small_cnn(c, 16),
    "tinycnn": lambda c: _small_cnn(c, 4),
}


def build_model(arch: str, num_classes: int, mean: Sequence[float], std: Sequence[float],
                seed: int | None = None) -> Classifier:
    """Build ``arch`` for ``num_classes`` outputs; ``seed`` makes the initial weights reproducible."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    if len(mean) != len(std):
        raise ValueError("mean and std need one value per input channel")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        features, dim = ARCHS[arch](len(mean))
        return Classifier(Normalize(mean, std), features, nn.Linear(dim, num_classes))


def reset_head(model: Classifier, seed: int) -> None:
    """Re-initialise the final linear layer (full-class forgetting), reproducibly under ``seed``.

    As the reference (NatMU's code): Xavier-normal weights with the ReLU gain, std =
    sqrt(2) * sqrt(2 / (fan_in + fan_out)); the trained bias is kept (only the weights are redrawn)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad():
            weight = torch.empty(model.head.weight.shape, dtype=torch.float32)  # drawn on the CPU: same on any device
            nn.init.xavier_normal_(weight, gain=nn.init.calculate_gain("relu"))
            model.head.weight.copy_(weight)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
