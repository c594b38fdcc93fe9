"""Cancellation factor of a chain's rounding: when THEORY's identities (C6a, C9a) compare two
mathematically proportional nets, their relative rounding errors can differ by more than a
size-based tolerance where sums nearly cancel. ``conditioning`` measures how much.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..linalg import grad
from .layers import layer_apply, record


def _worst_ratio(num: torch.Tensor, den: torch.Tensor, n_terms: int) -> float:
    """``max_b ||num_b|| / (sqrt(n_terms) ||den_b||)`` over inputs with ``den_b != 0``, or 1."""
    num = num.reshape(num.shape[0], -1).norm(dim=1)
    den = den.reshape(den.shape[0], -1).norm(dim=1)
    keep = den > 0
    if not bool(keep.any()):
        return 1.0
    return float((num[keep] / den[keep]).max()) / math.sqrt(n_terms)


def conditioning(model: nn.Module, x: torch.Tensor) -> float:
    """Cancellation factor ``K >= 1`` of a bias-free chain on inputs ``x`` (float64 rounding).

    A computed layer output ``z = W h`` has componentwise error at most ``gamma_n |W| |h|``
    (``n`` terms per sum), which reaches the next layer as ``a'(z) e``; the size-based tolerance
    assumes the typical ``|| a'(z) |W||h| || ~ sqrt(n) ||a(z)||``. Per layer and input,
    ``rho = || a'(z) |W||h| || / (sqrt(fan_in) ||a(z)||)`` (forward, ``a`` the activation after
    the layer, the output activation for the last) and, backward,
    ``|| a'(z_prev) |W|^T |delta| || / (sqrt(fan_out) ||dD/dz_prev||)``. ``K`` is the product
    over layers and both directions of ``max(1, worst-input rho)``: 1 for generic random nets
    (except the few-input scalar head), large only where a surviving output nearly cancels
    (e.g. a ReLU layer whose one positive unit is 1e5 times smaller than its terms), where the
    relative rounding errors of two mathematically proportional nets legitimately differ by
    that much. Requires elementwise activations between the probe layers (flatten allowed).
    """
    tape = record(model, x)
    L = len(tape.modules)
    post = list(tape.h[1:]) + [tape.D]                      # a(z_i), flattened for the head
    deltas = torch.autograd.grad(tape.D.sum(), tape.z, retain_graph=True, allow_unused=True)
    slopes = [torch.autograd.grad(post[i].sum(), tape.z[i], retain_graph=True)[0].detach()
              for i in range(L)]                             # a'(z_i), elementwise
    K = 1.0
    for i, (mod, w, h) in enumerate(zip(tape.modules, tape.weights, tape.h)):
        h = h.detach()
        with torch.no_grad():
            spread = layer_apply(mod, h.abs(), w.abs()) * slopes[i]
        K *= max(1.0, _worst_ratio(spread, post[i].detach(), w[0].numel()))
        if deltas[i] is None:
            continue
        d = deltas[i].detach()
        hv = torch.zeros_like(h, requires_grad=True)         # a linear map: its VJP ignores h
        (g,) = grad(layer_apply(mod, hv, w), hv, d)
        (ga,) = grad(layer_apply(mod, hv, w.abs()), hv, d.abs())
        if i > 0:                                            # through a'(z_{i-1}) to delta_{i-1}
            g = g.reshape(slopes[i - 1].shape) * slopes[i - 1]
            ga = ga.reshape(slopes[i - 1].shape) * slopes[i - 1].abs()
        K *= max(1.0, _worst_ratio(ga, g, w.shape[0] * w[0, 0].numel()))
    return K
