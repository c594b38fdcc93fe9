"""THEORY C4: ``||H_{W_t} D||_op <= sup|a_L''| (mu_t ||x|| prod_{i != t} ||W_i||_op)^2``.

An instance is a random bias-free net (dense or conv, built by the C1 module's ``build``, inputs
redrawn by ``c2_equal_allocation.build_generic``) with piecewise-linear internal activations
(ReLU / leaky ReLU / identity, C4's premise), identity or sigmoid output, any scheme. For each
layer and each of the first ``INPUTS`` inputs, lhs = the Hessian operator norm w.r.t. the
EFFECTIVE weight (:func:`gradcheck.probe.hessian.weight_hessian_opnorm`), rhs =
:func:`c4_bound` from the measured operator norms; one row per layer at its worst input.

Identity output: the bound is 0 and the Hessian must be exactly 0 (the row is ``0 <= 0``,
ratio 1; any non-zero Hessian gives ratio inf, a violation). For SN-family nets the Hessian w.r.t.
the RAW weight through the SN map is measured on the first input and reported in the note (no
bound is claimed; it is not 0 even for identity output, as the SN map is not linear; exact
``sn-conv`` conv layers say "n/a": their second derivative is not available).
"""
from __future__ import annotations

import numpy as np
import torch

from gradcheck.probe import ProbeError, ProbeOptions, probe
from gradcheck.probe.hessian import raw_weight_hessian_opnorm, weight_hessian_opnorm
from gradcheck.schemes import SPECTRAL_SCHEMES
from gradcheck.theory.bounds import inequality_tol
from gradcheck.theory.reparam import c4_bound

from ._base import inequality
from .c1_gradient_bound import SCHEMES
from .c2_equal_allocation import build_generic

CLAIMS = {"C4": "inequality"}
PIECEWISE_LINEAR = ("relu", "lrelu", "linear")
INPUTS = 2   # inputs per layer that get a Hessian


def sample(rng: np.random.Generator) -> dict:
    return dict(
        conv=bool(rng.random() < 0.5), depth=int(rng.integers(1, 5)),
        seed=int(rng.integers(0, 2**31)),
        widths=[int(w) for w in rng.integers(1, 17, size=6)],
        kernels=[int(k) for k in rng.integers(1, 5, size=6)],
        strides=[int(s) for s in rng.integers(1, 4, size=6)],
        paddings=[int(p) for p in rng.integers(0, 3, size=6)],
        image=int(rng.integers(5, 10)),
        activation=str(rng.choice(PIECEWISE_LINEAR)), slope=float(rng.uniform(0, 1)),
        output=str(rng.choice(["identity", "sigmoid"])), scheme=str(rng.choice(SCHEMES)),
        scale=float(rng.uniform(0.5, 2.0)))


def _raw_note(model, x1, t: int, scheme: str) -> str:
    if scheme not in SPECTRAL_SCHEMES:
        return ""
    try:
        return f"; raw-weight Hessian through SN map {raw_weight_hessian_opnorm(model, x1, t):.4g}"
    except ProbeError:
        return "; raw-weight Hessian n/a (exact sn-conv)"


def instance(p: dict) -> list:
    """The rows of one instance (the runner pins one thread: the nets are tiny)."""
    model, x = build_generic(p)
    x = x[:INPUTS]
    res = probe(model, x, ProbeOptions(spectra=False))
    L = len(res.layers)
    ops = np.array([n.sigma_op for n in res.norms])
    eps = float(torch.finfo(torch.float64).eps)
    out = []
    for t, info in enumerate(res.layers):
        n = int(np.prod(info.weight_shape))
        width = max(int(np.prod(info.input_shape)), int(np.prod(info.output_shape)), n)
        tol = inequality_tol(eps, L, width)
        lhs = np.array([weight_hessian_opnorm(model, x[b:b + 1], t) for b in range(len(x))])
        rhs = c4_bound(p["output"], info.mu, res.grads.x_norm, ops, t)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(rhs > 0, lhs / rhs, np.where(lhs > 0, np.inf, 0.0))
        j = int(np.argmax(ratio))
        note = f"layer {t} ({info.kind}, n = {n})"
        if p["output"] == "identity":
            note += ": identity output, Hessian exactly 0"
        out.append(inequality("C4", lhs[j], rhs[j], tol, p,
                              note + _raw_note(model, x[:1], t, p["scheme"])))
    return out
