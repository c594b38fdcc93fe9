"""THEORY C8: strict SN shrinks more — ``sigma_R <= ||Conv_K||_op <= mu sigma_R`` (inequality).

An instance is a random Gaussian kernel ``(c_out, c_in, k_h, k_w)`` (channels 1-6, kernel 1-5
per axis), stride 1-3 and zero padding 0-2 per axis, and an input ``(c_in, H, W)`` with
``H, W`` in 1-12, resampled until C8's premise holds: some output's receptive field lies
entirely inside the input (:func:`gradcheck.theory.bounds.c8_applicable` on both axes). The
kernel is the one conv layer of a bias-free net ``conv -> flatten -> dense head`` (:func:`build`),
probed by the engine on one input of that size and checked by
:func:`gradcheck.claims.c8_strict_sn.check`. ``||Conv_K||_op`` is the engine's
(:func:`gradcheck.schemes.sigma.module_operator_norm`: dense SVD on small inputs, Lanczos
otherwise), ``mu`` the layer's patch multiplicity.

Rows (asserted): ``sigma_R <= ||Conv||_op`` and ``||Conv||_op <= mu sigma_R``; and when the
stride-1 premise :func:`gradcheck.theory.bounds.c8_r2_applicable` holds on both axes, the same
two with ``sigma_R2``. Slack (the check's): the size-based ``ctx.tol`` plus ``10 x`` the
achieved Lanczos residual (the Rayleigh quotient is accurate to about the residual); the rows
report ``ctx.tol`` and keep the check's verdict.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gradcheck.claims import c8_strict_sn as claim
from gradcheck.models import Discriminator
from gradcheck.theory.bounds import c8_applicable, c8_r2_applicable

from ._base import EPS, context, from_rows

CLAIMS = {c.id: c.kind for c in claim.CLAIMS}
__all__ = ["CLAIMS", "EPS", "applicable", "r2_applicable", "sample", "kernel", "build", "norms",
           "make_context", "instance"]


def applicable(p: dict) -> bool:
    """C8's premise on both axes (zero padding, dilation 1): what the sampler keeps."""
    return all(c8_applicable(n, k, s, q) for n, k, s, q
               in zip(p["input_hw"], p["kernel"], p["stride"], p["padding"]))


def r2_applicable(p: dict) -> bool:
    """The stride-1 premise of the ``sigma_R2`` version on both axes."""
    return all(c8_r2_applicable(n, k, s, q) for n, k, s, q
               in zip(p["input_hw"], p["kernel"], p["stride"], p["padding"]))


def sample(rng: np.random.Generator) -> dict:
    while True:
        p = dict(c_out=int(rng.integers(1, 7)), c_in=int(rng.integers(1, 7)),
                 kernel=[int(k) for k in rng.integers(1, 6, size=2)],
                 stride=[int(s) for s in rng.integers(1, 4, size=2)] if rng.random() < 0.6
                 else [1, 1],
                 padding=[int(q) for q in rng.integers(0, 3, size=2)],
                 input_hw=[int(n) for n in rng.integers(1, 13, size=2)],
                 seed=int(rng.integers(0, 2**31)))
        if applicable(p):
            return p


def kernel(p: dict) -> torch.Tensor:
    gen = torch.Generator().manual_seed(p["seed"])
    return torch.randn((p["c_out"], p["c_in"], *p["kernel"]), generator=gen, dtype=torch.float64)


def build(p: dict, w: torch.Tensor | None = None) -> tuple[nn.Module, torch.Tensor]:
    """``conv (kernel w, default :func:`kernel`) -> flatten -> dense head`` (float64, bias-free)
    and one Gaussian input ``(1, c_in, H, W)``."""
    w = kernel(p) if w is None else w
    conv = nn.Conv2d(p["c_in"], p["c_out"], tuple(p["kernel"]), stride=tuple(p["stride"]),
                     padding=tuple(p["padding"]), bias=False).double()
    gen = torch.Generator().manual_seed(p["seed"] + 1)
    x = torch.randn((1, p["c_in"], *p["input_hw"]), generator=gen, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(w)
        n_out = conv(x).numel()
    head = nn.Linear(n_out, 1, bias=False).double()
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen, dtype=torch.float64))
    return Discriminator(conv, nn.Flatten(), head), x


def make_context(p: dict, w: torch.Tensor | None = None):
    """The probed instance as the claims' ``Context`` (weights set here: no scheme)."""
    model, x = build(p, w)
    return context(model, x, None, hessians=False)


def norms(p: dict, w: torch.Tensor | None = None) -> dict:
    """``sigma_R``, ``sigma_R2``, ``op`` (with its residual) and ``mu`` of the instance's conv
    layer, as the engine measured them."""
    ctx = make_context(p, w)
    n, info = ctx.result.norms[0], ctx.layers[0]
    return dict(sigma_R=n.sigma_R, sigma_R2=n.sigma_R2, op=n.sigma_op, residual=n.op_residual,
                mu=info.mu)


def instance(p: dict) -> list:
    """The instance's rows (the runner pins one torch/BLAS thread: these problems are small)."""
    ctx = make_context(p)
    return from_rows(claim.check(ctx), ctx, p)
