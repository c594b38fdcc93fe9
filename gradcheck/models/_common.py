"""Activation factories shared by the built-in discriminators."""
from __future__ import annotations

from torch import nn

from ..archs import ACTIVATIONS, OUTPUTS


def make_activation(name: str, slope: float = 0.2) -> nn.Module:
    """Return the internal activation module for ``name`` (see THEORY §0)."""
    if name == "relu":
        return nn.ReLU()
    if name == "lrelu":
        return nn.LeakyReLU(negative_slope=slope)
    if name == "tanh":
        return nn.Tanh()
    if name == "linear":
        return nn.Identity()
    raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {name!r}")


def make_output(name: str) -> nn.Module:
    """Return the output activation ``a_L`` (identity for hinge/WGAN, sigmoid)."""
    if name == "identity":
        return nn.Identity()
    if name == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {name!r}")


class Discriminator(nn.Sequential):
    """A sequential discriminator whose output is one scalar per input, shape ``(B,)``.

    The built-in models are flat ``nn.Sequential`` stacks of Linear/Conv2d layers, elementwise
    activations and ``nn.Flatten``, so brute-force oracles can split them at every layer.
    """

    def forward(self, x):  # noqa: D102 - documented on the class
        return super().forward(x).reshape(x.shape[0])
