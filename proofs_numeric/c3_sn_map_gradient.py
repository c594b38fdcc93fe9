"""THEORY C3a, C3b: the gradient through the SN map ``W -> c W / sigma(W)`` to the raw weight.

An instance is a random bias-free SN-family net (dense or conv, any internal activation, identity
or sigmoid output; built by the C1 module's ``build``, inputs redrawn by
``c2_equal_allocation.build_generic``, exact sigma), probed and checked by
:func:`gradcheck.claims.c3_sn_map_gradient.check`: C3a (autograd through the parametrization
against Miyato's formula, per input) and C3b (``||dD/dW||_F <= (||G||_F + ||G||_*) / sigma(W)``
at the worst input) on every layer whose divisor is ``sigma_R`` (every layer of ``sn`` /
``ssn`` nets, the dense layers of the others; the check says "not applicable" for the rest
and those rows are dropped).

One more row per dense layer, THEORY C3b's one-input corollary (not drawn by the claims check):
``||dD/dW||_F <= 2 ||G||_F / sigma(W) <= 2 c (C1's bound) / sigma(W)``, with C1's bound from
:func:`gradcheck.claims.c1_gradient_bound.bound` (``2 lambda_L ||x|| / sigma(W)`` under SN on
an all-dense net).
"""
from __future__ import annotations

import numpy as np

from gradcheck.claims import c1_gradient_bound as c1
from gradcheck.claims import c3_sn_map_gradient as claim
from gradcheck.probe.hessian import raw_weight_grads
from gradcheck.schemes.registry import SCHEMES as RECORDS
from gradcheck.schemes.registry import SPECTRAL_SCHEMES

from ._base import asserted, context, from_rows, inequality, layer_label
from .c2_equal_allocation import build_generic

CLAIMS = {c.id: c.kind for c in claim.CLAIMS}
#: the SN family of the registry (C3's premise)
SN_SCHEMES = SPECTRAL_SCHEMES


def sample(rng: np.random.Generator) -> dict:
    return dict(
        conv=bool(rng.random() < 0.5), depth=int(rng.integers(1, 5)),
        seed=int(rng.integers(0, 2**31)),
        widths=[int(w) for w in rng.integers(1, 25, size=6)],
        kernels=[int(k) for k in rng.integers(1, 5, size=6)],
        strides=[int(s) for s in rng.integers(1, 4, size=6)],
        paddings=[int(p) for p in rng.integers(0, 3, size=6)],
        image=int(rng.integers(5, 11)),
        activation=str(rng.choice(["relu", "lrelu", "tanh", "linear"])),
        slope=float(rng.uniform(0, 1)), output=str(rng.choice(["identity", "sigmoid"])),
        scheme=str(rng.choice(SN_SCHEMES)), scale=float(rng.uniform(0.5, 2.0)))


def make_context(p: dict):
    """The probed instance as the claims' ``Context`` (with the model: C3 needs it)."""
    model, x = build_generic(p)
    return context(model, x, p["scheme"], p["scale"], p["seed"])


def dense_corollary(ctx, rows: list[dict], p: dict) -> list:
    """C3b's one-input corollary on the dense layers where the C3b check applied."""
    layers = sorted({int(r["layer"]) for r in rows if r["claim"] == "C3b" and asserted(r)
                     and ctx.layers[int(r["layer"])].kind == "linear"})
    if not layers:
        return []
    xs = ctx.x[:claim.C3_INPUTS]
    raw = raw_weight_grads(ctx.model, xs)
    bound = c1.bound(ctx)[:, :len(xs)]
    c = RECORDS[p["scheme"]].c(p["scale"])
    out = []
    for t in layers:
        sigma = ctx.result.norms[t].raw_sigma_R
        lhs = raw[t].reshape(len(xs), -1).norm(dim=1).numpy()
        rhs = 2.0 * c * bound[t] / sigma
        j = int(np.argmax(lhs / np.maximum(rhs, 1e-300)))
        per_x = bound[t, j] / ctx.result.grads.x_norm[j]
        out.append(inequality("C3b", lhs[j], rhs[j], ctx.tol, p,
                              f"{layer_label(ctx, t)}: dense corollary 2 c (C1 bound) / sigma "
                              f"(c = {c:.4g}; C1 bound / ||x|| = {per_x:.4g})"))
    return out


def instance(p: dict) -> list:
    """The rows of one instance (the runner pins one thread: the nets are tiny)."""
    ctx = make_context(p)
    rows = claim.check(ctx)
    return from_rows(rows, ctx, p) + dense_corollary(ctx, rows, p)
