"""C2a, C2b: rescaling layers, and equal allocation of the Lipschitz product (THEORY §2)."""
from __future__ import annotations

import math

import numpy as np

from ..theory.reparam import c2b_lhs, c2b_rhs
from ._base import Claim, Context, failed_premise, identity_ratio, na, row, worst_ratio

CLAIMS = (
    Claim("C2a", "identity",
          "scaling layer i by c_i > 0 with prod c_i = 1 leaves D unchanged and divides dD/dW_t "
          "by c_t", ("chain", "supported_nodes", "bias_free", "homogeneous"), needs=("model",)),
    Claim("C2b", "inequality",
          "||x||^2 C^2 sum_t s_t^-2 >= L ||x||^2 C^(2-2/L) with C = prod s_t (AM-GM)",
          ("chain",)),
)
C2A, C2B = CLAIMS


def check(ctx: Context) -> list[dict]:
    return _c2b(ctx) + _c2a(ctx)


def _c2b(ctx: Context) -> list[dict]:
    seed, res = ctx.seed, ctx.result
    why = failed_premise(C2B, ctx)
    if why:
        return [na("C2b", seed, -1, why)]
    s = np.array([n.sigma_op for n in res.norms])
    with np.errstate(over="ignore", invalid="ignore"):
        lhs, rhs = c2b_lhs(res.grads.x_norm, s), c2b_rhs(res.grads.x_norm, s)
    if not (np.isfinite(lhs).all() and np.isfinite(rhs).all()):
        return [row("C2b", seed, -1, math.inf, math.nan, math.nan,
                    note="overflow: the Lipschitz product exceeds float64 (explosion)")]
    a, b, r = worst_ratio(rhs, lhs)              # rhs <= lhs: ratio rhs/lhs <= 1
    return [row("C2b", seed, -1, a, b, r, ctx.tol,
                "whole network: L ||x||^2 C^(2-2/L) <= ||x||^2 C^2 sum s_t^-2")]


#: C2a compares the rescaled and the original net on the first inputs only (each comparison is
#: four passes over the batch; at depth 50, width 1024 and batch 256 all of them took 40 s)
C2A_INPUTS = 64


def _c2a(ctx: Context) -> list[dict]:
    import torch
    from torch import nn

    from ..probe.hessian import effective_weight_grad_norms
    from ..reference import materialize

    seed, L, tol = ctx.seed, len(ctx.layers), ctx.tol
    why = failed_premise(C2A, ctx) or ("" if ctx.model is not None else "no model")
    if why:
        return [na("C2a", seed, t, why) for t in range(L)]
    try:
        plain = materialize(ctx.model)
    except ValueError as e:
        return [na("C2a", seed, t, f"model cannot be copied: {e}") for t in range(L)]
    from ..probe.conditioning import conditioning

    try:       # rounding amplification where sums nearly cancel (as C6a): tol x K
        k = max(conditioning(plain, ctx.x[:C2A_INPUTS].double()), 1.0)
    except (RuntimeError, ValueError):
        k = 1.0
    tol = tol * k
    x = ctx.x[:C2A_INPUTS]
    rng = np.random.default_rng([seed, 2])
    c = np.exp(rng.normal(0.0, 0.3, L))
    c /= np.exp(np.mean(np.log(c)))             # prod c_i = 1
    D0, g0 = effective_weight_grad_norms(plain, x.double())
    layers = [m for m in plain.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for m, ci in zip(layers, c):
            m.weight.mul_(float(ci))
    D1, g1 = effective_weight_grad_norms(plain, x.double())
    rows = []
    for t in range(L):
        n0, n1 = g0[t] / c[t], g1[t]
        lhs, rhs, ratio = identity_ratio(n1, n0)
        rows.append(row("C2a", seed, t, lhs, rhs, ratio, tol,
                        f"c_t = {c[t]:.4f}, prod c = 1: ||dD/dW_t|| divided by c_t; tol x "
                        f"cancellation factor {k:.3g}"))
    dD = float((D1 - D0).abs().max() / D0.abs().max().clamp_min(1e-300))
    rows.append(row("C2a", seed, -1, 1 + dD, 1.0, 1 + dD, holds=bool(dD <= tol),
                    note="D unchanged under the rescaling (lhs - 1 = max relative change)"))
    return rows
