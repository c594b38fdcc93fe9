"""Fully connected discriminator ``D(x) = a_L(W_L a(... a(W_1 x)))`` (THEORY §0, Eq. 1)."""
from __future__ import annotations

from torch import nn

from ._common import Discriminator, make_activation, make_output


def mlp(depth: int, width: int, input_dim: int, activation: str = "relu", slope: float = 0.2,
        output: str = "identity", bias: bool = False) -> Discriminator:
    """Build a depth-``depth`` MLP discriminator.

    Args:
        depth: number of Linear layers L (>= 1); the last maps ``width -> 1``.
        width: hidden width (every hidden layer is ``width x width`` except the first).
        input_dim: size of the input vector.
        activation: internal activation, one of relu, lrelu, tanh, linear.
        slope: leaky-ReLU negative slope (used only for lrelu).
        output: output activation, identity or sigmoid.
        bias: add biases (off by default: the theory is bias-free).

    Returns:
        A ``Discriminator`` mapping ``(B, input_dim)`` to ``(B,)``.
    """
    layers: list[nn.Module] = []
    fan_in = input_dim
    for _ in range(depth - 1):
        layers += [nn.Linear(fan_in, width, bias=bias), make_activation(activation, slope)]
        fan_in = width
    layers += [nn.Linear(fan_in, 1, bias=bias), make_output(output)]
    return Discriminator(*layers)
