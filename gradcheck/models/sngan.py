"""The paper's CIFAR-10 discriminator (Miyato et al. 2018 standard CNN, as in the authors' code).

convs 3x3/s1/64, 4x4/s2/64, 3x3/s1/128, 4x4/s2/128, 3x3/s1/256, 4x4/s2/256, 3x3/s1/512 with
TensorFlow 'same' padding (1 on every side for both kernel shapes at these sizes), leaky ReLU 0.1
after every conv, dense 4*4*512 -> 1. Input 32x32x3.
"""
from __future__ import annotations

from torch import nn

from ._common import Discriminator, make_activation, make_output

#: (kernel, stride, out_channels) of the seven conv layers.
SNGAN_CONVS = ((3, 1, 64), (4, 2, 64), (3, 1, 128), (4, 2, 128), (3, 1, 256), (4, 2, 256),
               (3, 1, 512))


def sngan(activation: str = "lrelu", slope: float = 0.1, output: str = "identity",
          bias: bool = False, in_channels: int = 3, image_size: int = 32) -> Discriminator:
    """Build the paper's 8-layer CIFAR-10 discriminator (input ``(B, 3, 32, 32)``)."""
    layers: list[nn.Module] = []
    c_in, size = in_channels, image_size
    for k, s, c_out in SNGAN_CONVS:
        layers += [nn.Conv2d(c_in, c_out, k, stride=s, padding=1, bias=bias),
                   make_activation(activation, slope)]
        c_in, size = c_out, (size + 2 - k) // s + 1
    layers += [nn.Flatten(), nn.Linear(c_in * size * size, 1, bias=bias), make_output(output)]
    return Discriminator(*layers)
