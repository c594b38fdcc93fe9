"""THEORY C4: ``||H_{W_t} D||_op <= sup|a_L''| (mu_t ||x|| prod_{i != t} ||W_i||_op)^2``.

An instance is a random bias-free net (dense or conv, built by the C1 module's ``build``, inputs
redrawn by ``c2_equal_allocation.build_generic``) with piecewise-linear internal activations
(ReLU / leaky ReLU / identity, C4's premise), identity or sigmoid output, any scheme; it is
probed and checked by :func:`gradcheck.claims.c4_hessian_bound.check`: per layer, the Hessian
operator norm w.r.t. the EFFECTIVE weight (:func:`gradcheck.probe.hessian.weight_hessian_opnorm`)
on the check's inputs against the bound from the measured operator norms.

Identity output: the bound is 0 and the Hessian must be exactly 0 (the row is ``0 <= 0``,
ratio 1; any non-zero Hessian gives ratio inf, a violation). For SN-family nets the Hessian w.r.t.
the RAW weight through the SN map is measured on the first input and reported in the note (no
bound is claimed; it is not 0 even for identity output, as the SN map is not linear; exact
``sn-conv`` conv layers say "n/a": their second derivative is not available).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from gradcheck.claims import c4_hessian_bound as claim
from gradcheck.probe import ProbeError
from gradcheck.probe.hessian import raw_weight_hessian_opnorm
from gradcheck.schemes.registry import SCHEMES as RECORDS

from ._base import asserted, context, from_rows
from .c1_gradient_bound import SCHEMES
from .c2_equal_allocation import build_generic

CLAIMS = {c.id: c.kind for c in claim.CLAIMS}
#: activations of the model builder inside C4's premise (piecewise linear)
PIECEWISE_LINEAR = ("relu", "lrelu", "linear")
INPUTS = 2   # inputs probed (the check takes Hessians on its first C4_INPUTS of them)


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


def make_context(p: dict):
    """The probed instance as the claims' ``Context`` (with the model: C4 needs it)."""
    model, x = build_generic(p)
    return context(model, x[:INPUTS], p["scheme"], p["scale"], p["seed"])


def _raw_note(ctx, t: int, scheme: str) -> str:
    if not RECORDS[scheme].spectral:
        return ""
    try:
        h = raw_weight_hessian_opnorm(ctx.model, ctx.x[:1], t)
        return f"; raw-weight Hessian through SN map {h:.4g}"
    except ProbeError:
        return "; raw-weight Hessian n/a (exact sn-conv)"


def instance(p: dict) -> list:
    """The rows of one instance (the runner pins one thread: the nets are tiny)."""
    ctx = make_context(p)
    rows = claim.check(ctx)
    out = from_rows(rows, ctx, p)
    # the check's rows are one per layer in order: add the raw-weight Hessian to the notes
    layers = [int(r["layer"]) for r in rows if asserted(r)]
    return [replace(r, note=r.note + _raw_note(ctx, t, p["scheme"])) for r, t in zip(out, layers)]
