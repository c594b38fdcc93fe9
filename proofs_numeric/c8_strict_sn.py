"""THEORY C8: strict SN shrinks more — ``sigma_R <= ||Conv_K||_op <= mu sigma_R`` (inequality).

An instance is a random Gaussian kernel ``(c_out, c_in, k_h, k_w)`` (channels 1-6, kernel 1-5
per axis), stride 1-3 and zero padding 0-2 per axis, and an input ``(c_in, H, W)`` with
``H, W`` in 1-12, resampled until C8's premise holds: some output's receptive field lies
entirely inside the input (:func:`gradcheck.theory.bounds.c8_applicable` on both axes).
``||Conv_K||_op`` comes from :func:`gradcheck.schemes.sigma.conv_operator_norm` (dense SVD on
small inputs, Lanczos otherwise), ``mu = sqrt(ceil(k_h/s_h) ceil(k_w/s_w))``.

Rows (asserted): ``sigma_R <= ||Conv||_op`` and ``||Conv||_op <= mu sigma_R``; and when the
stride-1 premise :func:`gradcheck.theory.bounds.c8_r2_applicable` holds on both axes, the same
two with ``sigma_R2``. Slack: ``10 (n_in + n_out) eps`` for the SVDs plus ``10 x`` the achieved
Lanczos residual (the Rayleigh quotient is accurate to about the residual).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from gradcheck.schemes.sigma import conv_operator_norm, sigma_R, sigma_R2
from gradcheck.theory.bounds import c8_applicable, c8_r2_applicable, patch_multiplicity

from ._base import inequality

CLAIMS = {"C8": "inequality"}
EPS = float(torch.finfo(torch.float64).eps)


def applicable(p: dict) -> bool:
    """C8's premise on both axes (zero padding, dilation 1)."""
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


def norms(p: dict, w: torch.Tensor | None = None) -> dict:
    """``sigma_R``, ``sigma_R2``, ``op`` (with its residual) and ``mu`` of the instance."""
    w = kernel(p) if w is None else w
    op = conv_operator_norm(w, (p["c_in"], *p["input_hw"]), p["stride"], p["padding"])
    return dict(sigma_R=float(sigma_R(w)), sigma_R2=float(sigma_R2(w)), op=op.sigma,
                residual=op.residual, mu=patch_multiplicity(tuple(p["kernel"]), tuple(p["stride"])))


def instance(p: dict) -> list:
    """The instance's rows (the runner pins one torch/BLAS thread: these problems are small)."""
    n = norms(p)
    size_in = p["c_in"] * math.prod(p["input_hw"])
    tol = 10 * (size_in + p["c_out"] * p["c_in"] * math.prod(p["kernel"])) * EPS \
        + 10 * max(n["residual"], 0.0)
    out = [inequality("C8", n["sigma_R"], n["op"], tol, p, "sigma_R <= ||Conv||_op"),
           inequality("C8", n["op"], n["mu"] * n["sigma_R"], tol, p,
                      f"||Conv||_op <= mu sigma_R (mu={n['mu']:.4g})")]
    if r2_applicable(p):
        out += [inequality("C8", n["sigma_R2"], n["op"], tol, p,
                           "sigma_R2 <= ||Conv||_op (stride 1)"),
                inequality("C8", n["op"], n["mu"] * n["sigma_R2"], tol, p,
                           f"||Conv||_op <= mu sigma_R2 (stride 1, mu={n['mu']:.4g})")]
    return out
