"""Small generators matched to the built-in discriminators (the G side of the toy GANs)."""
from __future__ import annotations

import math

import torch
from torch import nn


class AppendConstant(nn.Module):
    """``(B, d) -> (B, d + 1)``: appends the column ``value`` (no parameters)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = float(value)

    def forward(self, x):  # noqa: D102
        return torch.cat([x, x.new_full((x.shape[0], 1), self.value)], 1)

    def extra_repr(self) -> str:  # noqa: D102
        return f"value={self.value:g}"


def mlp_generator(z_dim: int, width: int = 128, depth: int = 3, out_dim: int = 2,
                  lift: float = 0.0) -> nn.Module:
    """``z -> ReLU MLP -> R^out_dim`` (no output activation), for the 2-D ring/grid data.

    ``lift`` > 0 appends the constant coordinate D's inputs carry (``gradcheck.train.gan.lift``),
    as a last, parameter-free module: the state-dict keys are those of the unlifted G.
    """
    layers: list[nn.Module] = []
    n = z_dim
    for _ in range(depth - 1):
        layers += [nn.Linear(n, width), nn.ReLU()]
        n = width
    layers.append(nn.Linear(n, out_dim))
    if lift:
        layers.append(AppendConstant(lift))
    return nn.Sequential(*layers)


class ConvGenerator(nn.Module):
    """DCGAN-style: ``z -> dense 4x4xC -> (upsample x2, 3x3 conv, BN, ReLU)* -> 3x3 conv -> tanh``.

    Produces ``(B, channels, image_size, image_size)`` in [-1, 1]; ``image_size`` a power of two
    >= 4.
    """

    def __init__(self, z_dim: int, image_size: int = 32, channels: int = 3, width: int = 128):
        super().__init__()
        if image_size < 4 or 2 ** round(math.log2(image_size)) != image_size:
            raise ValueError(f"image_size must be a power of two >= 4; got {image_size}")
        self.width = width
        self.head = nn.Linear(z_dim, 4 * 4 * width)
        blocks: list[nn.Module] = []
        c, size = width, 4
        while size < image_size:
            c_next = max(c // 2, 16)
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(c, c_next, 3, padding=1), nn.BatchNorm2d(c_next), nn.ReLU()]
            c, size = c_next, size * 2
        blocks += [nn.Conv2d(c, channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    def forward(self, z):  # noqa: D102
        return self.body(self.head(z).reshape(z.shape[0], self.width, 4, 4).relu())
