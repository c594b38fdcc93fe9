"""Plain convolutional discriminator of any depth: 3x3 convs, stride 2 every k layers,
dense head."""
from __future__ import annotations

from torch import nn

from ._common import Discriminator, make_activation, make_output


def conv_stack(depth: int, channels: int, image_size: int, in_channels: int = 3,
               stride_every: int = 0, activation: str = "lrelu", slope: float = 0.1,
               output: str = "identity", bias: bool = False) -> Discriminator:
    """Build ``depth - 1`` conv layers (3x3, zero padding 1) and a dense head to 1.

    Args:
        depth: total number of parametric layers L (>= 2): ``depth - 1`` convs + dense head.
        channels: output channels of every conv layer.
        image_size: input height = width.
        in_channels: input channels.
        stride_every: every ``stride_every``-th conv has stride 2 (0: all stride 1).
        activation, slope, output, bias: as in :func:`gradcheck.models.mlp.mlp`.

    Returns:
        A ``Discriminator`` mapping ``(B, in_channels, image_size, image_size)`` to ``(B,)``.
    """
    layers: list[nn.Module] = []
    c_in, size = in_channels, image_size
    for i in range(depth - 1):
        stride = 2 if stride_every and (i + 1) % stride_every == 0 and size >= 2 else 1
        layers += [nn.Conv2d(c_in, channels, 3, stride=stride, padding=1, bias=bias),
                   make_activation(activation, slope)]
        c_in, size = channels, (size + 2 - 3) // stride + 1
    layers += [nn.Flatten(), nn.Linear(c_in * size * size, 1, bias=bias), make_output(output)]
    return Discriminator(*layers)
