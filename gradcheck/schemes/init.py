"""Weight draws for the nine scalings of THEORY §1 (the init schemes live here).

Every scheme starts from the same standard-normal draw ``Z`` per layer (layers in module
order, one ``torch.Generator`` seeded by the run's seed), so that for one seed the LeCun
network and the SN-family networks share raw directions exactly (THEORY C6a):
``W_lecun = Z / sqrt(fan_in)`` and the SN family's raw weight is that same matrix.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .registry import get as _scheme


def parametric_layers(model: nn.Module) -> list[nn.Module]:
    """Linear and Conv2d modules of ``model`` in module (definition) order."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def fan_in(weight: torch.Tensor) -> int:
    """``c_in * k_h * k_w`` (dense: in_features). Shape ``(c_out, c_in, *k)``."""
    return int(weight[0].numel())


def fan_out(weight: torch.Tensor) -> int:
    """``c_out * k_h * k_w`` (dense: out_features)."""
    return int(weight.shape[0] * weight[0, 0].numel())


def kaiming_gain(activation: str, slope: float) -> float:
    """``g = sqrt(2 / (1 + alpha^2))``.

    alpha = slope for lrelu, 0 for relu, 1 (gain 1) otherwise.
    """
    alpha = {"relu": 0.0, "lrelu": slope}.get(activation, 1.0)
    return math.sqrt(2.0 / (1.0 + alpha * alpha))


def init_std(scheme: str, weight: torch.Tensor, activation: str = "relu",
             slope: float = 0.2) -> float:
    """Per-entry std ``s`` of the Gaussian draw of ``scheme`` (raw std for the SN family)."""
    return _scheme(scheme).raw_std(fan_in(weight), fan_out(weight),
                                   kaiming_gain(activation, slope))


def semi_orthogonal(z: torch.Tensor) -> torch.Tensor:
    """(Semi-)orthogonal matrix from the Gaussian matrix ``z`` (m x n) by QR with sign fix.

    Rows are orthonormal if m <= n, columns otherwise (gain 1, THEORY §1 'orthogonal').
    """
    m, n = z.shape
    a = z.T if m < n else z
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(()))
    return q.T if m < n else q


def draw_weights(model: nn.Module, scheme: str, seed: int, activation: str = "relu",
                 slope: float = 0.2) -> None:
    """Overwrite every Linear/Conv2d weight (and bias) of ``model`` in place for ``scheme``.

    For the SN family this sets the *raw* weight ``Z / sqrt(fan_in)``; the normalisation is
    added by :func:`gradcheck.schemes.spectral.apply_spectral`. Biases, if any, are drawn
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's default) from the same generator.
    """
    rec = _scheme(scheme)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for layer in parametric_layers(model):
            w = _original(layer)
            z = torch.randn(w.shape, generator=gen, dtype=torch.float64)
            if rec.raw == "orthogonal":
                new = semi_orthogonal(z.reshape(w.shape[0], -1)).reshape(w.shape)
            else:
                new = z * init_std(scheme, w, activation, slope)
            w.copy_(new.to(w.dtype))
            if layer.bias is not None:
                bound = 1.0 / math.sqrt(fan_in(w))
                u = torch.rand(layer.bias.shape, generator=gen, dtype=torch.float64)
                layer.bias.copy_(((2 * u - 1) * bound).to(layer.bias.dtype))


def _original(layer: nn.Module) -> torch.Tensor:
    """The stored weight tensor of ``layer`` (the raw one under a parametrization)."""
    params = getattr(layer, "parametrizations", None)
    if params is not None and "weight" in params:
        return params["weight"].original
    return layer.weight
