"""SNGAN-style ResNet discriminator (Miyato et al. 2018, CIFAR-10 ResNet D; as in mimicry).

Structure, with ``a`` the internal activation, ``pool`` ``avg_pool2d(kernel 2, stride 2)`` and
every conv 3x3 with zero padding 1 unless marked 1x1 (all ``channels`` wide):

- block 1, the *optimised* block: ``pool(c2(a(c1(x)))) + c_sc(pool(x))`` (1x1 shortcut);
- blocks 2..: ``r(h) + s(h)`` with residual ``r = [pool] c2 a c1 a`` and shortcut
  ``s = [pool] c_sc`` (1x1) on a downsampling block, ``s = identity`` otherwise;
- head: ``out(Linear(channels, 1)(sum_{H,W} a(h)))`` (global *sum* pooling), shape ``(B,)``.

Downsampling rule: block 1 always halves the size; block 2 halves it too when the result is
still at least 4x4; blocks 3.. keep the size. The image size must therefore be a multiple of 4
and at least 8 (every pooling then halves exactly). SNGAN-32 (4 blocks at 32x32): 32 -> 16 -> 8 ->
8 -> 8, the same as the paper's; the default probe size 16 gives 16 -> 8 -> 4 -> 4 -> 4.
Linear/Conv2d modules appear in module order ``c1, c2[, c_sc]`` per block, then the head.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..archs import resnet_downsamples
from ._common import make_activation, make_output


class ResBlock(nn.Module):
    """One residual block; ``first`` is the optimised first block (no leading activation).

    Args:
        c_in: input channels.
        c_out: output channels.
        downsample: end the residual (and the shortcut) with a 2x2 average pooling.
        first: optimised block: residual ``pool c2 a c1``, shortcut ``c_sc pool``.
        activation, slope, bias: as in :func:`resnet`.
    """

    def __init__(self, c_in: int, c_out: int, downsample: bool, first: bool, activation: str,
                 slope: float, bias: bool):
        super().__init__()
        self.downsample, self.first = downsample or first, first
        self.act1 = None if first else make_activation(activation, slope)
        self.c1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)
        self.act2 = make_activation(activation, slope)
        self.c2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias)
        learnable = first or self.downsample or c_in != c_out
        self.c_sc = nn.Conv2d(c_in, c_out, 1, bias=bias) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - see the class
        h = self.c2(self.act2(self.c1(x if self.act1 is None else self.act1(x))))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.first:
            return h + self.c_sc(F.avg_pool2d(x, 2))
        s = x if self.c_sc is None else self.c_sc(x)
        return h + (F.avg_pool2d(s, 2) if self.downsample else s)


class ResNetDiscriminator(nn.Module):
    """The ResNet discriminator of :func:`resnet`, mapping ``(B, C, S, S)`` to ``(B,)``."""

    def __init__(self, blocks: int, channels: int, image_size: int, in_channels: int,
                 activation: str, slope: float, output: str, bias: bool):
        super().__init__()
        downs = resnet_downsamples(blocks, image_size)
        self.blocks = nn.ModuleList(
            ResBlock(in_channels if i == 0 else channels, channels, d, i == 0, activation,
                     slope, bias) for i, d in enumerate(downs))
        self.act = make_activation(activation, slope)
        self.head = nn.Linear(channels, 1, bias=bias)
        self.out = make_output(output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - see the class
        h = x
        for block in self.blocks:
            h = block(h)
        return self.out(self.head(self.act(h).sum(dim=(2, 3)))).reshape(x.shape[0])


def resnet(blocks: int = 4, channels: int = 128, image_size: int = 32, in_channels: int = 3,
           activation: str = "relu", slope: float = 0.1, output: str = "identity",
           bias: bool = False) -> ResNetDiscriminator:
    """Build the SNGAN-style ResNet discriminator (module docstring: structure and rule).

    Args:
        blocks: number of residual blocks (>= 1), the first being the optimised block.
        channels: channels of every block (SNGAN-32: 128).
        image_size: input height = width (a multiple of 4, >= 8).
        in_channels: input channels.
        activation: internal activation, one of relu, lrelu, tanh, linear (not in place).
        slope: leaky-ReLU negative slope (used only for lrelu).
        output: output activation, identity or sigmoid.
        bias: add biases to every conv and the head (off by default: the theory is bias-free).

    Returns:
        A module mapping ``(B, in_channels, image_size, image_size)`` to ``(B,)``.

    Raises:
        ValueError: bad ``blocks`` or ``image_size`` (see :func:`resnet_downsamples`).
    """
    return ResNetDiscriminator(blocks, channels, image_size, in_channels, activation, slope,
                               output, bias)
