"""C1, C1-SN, C1a: the gradient upper bound on a chain (THEORY §2)."""
from __future__ import annotations

import numpy as np

from ..theory.bounds import c1_bound, c1_sn_bound
from ._base import Claim, Context, failed_premise, identity_ratio, na, overflow, row, worst_ratio

_CHAIN = ("chain", "supported_nodes", "bias_free", "known_output", "maps_norm_le_1")

CLAIMS = (
    Claim("C1", "inequality",
          "||dD/dW_t||_F <= lambda_L mu_t ||x|| prod_{i!=t} ||W_i||_op for every layer and input",
          _CHAIN),
    Claim("C1-SN", "inequality",
          "every dense layer at spectral norm 1: ||dD/dW_t||_F <= lambda_L ||x||",
          _CHAIN + ("unit_norm_dense",)),
    Claim("C1a", "identity", "dense layer, one input: ||dD/dW_t||_F = ||delta_t|| ||h_{t-1}||"),
)
C1, C1_SN, C1A = CLAIMS


def bound(ctx: Context) -> np.ndarray:
    """C1's right-hand side per (layer, input), ``(L, B)``."""
    res = ctx.result
    op = np.array([n.sigma_op for n in res.norms])
    mu = np.array([i.mu for i in res.layers])
    return c1_bound(res.grads.x_norm, op, mu, ctx.lam)


def check(ctx: Context) -> list[dict]:
    """C1, C1-SN and C1a rows on every layer (not applicable where a premise fails)."""
    g, seed, tol = ctx.result.grads, ctx.seed, ctx.tol
    why = failed_premise(C1, ctx)
    rhs_all = bound(ctx)
    sn_why = failed_premise(C1_SN, ctx)
    sn_rhs = c1_sn_bound(g.x_norm, len(ctx.layers), ctx.lam)
    rows: list[dict] = []
    for t, info in enumerate(ctx.layers):
        over = overflow("C1", seed, t, g.weight_grad[t])
        if why:
            rows.append(na("C1", seed, t, why))
        elif over:
            rows.append(over)
        else:
            lhs, rhs, r = worst_ratio(g.weight_grad[t], rhs_all[t])
            rows.append(row("C1", seed, t, lhs, rhs, r, tol,
                            f"worst of {len(g.x_norm)} inputs; tol {tol:.1e}"))
        if sn_why:
            rows.append(na("C1-SN", seed, t, sn_why))
        elif over:
            rows.append(dict(over, claim="C1-SN"))
        else:
            lhs, rhs, r = worst_ratio(g.weight_grad[t], sn_rhs[t])
            rows.append(row("C1-SN", seed, t, lhs, rhs, r, tol,
                            "bound lambda_L*||x||, depth-independent"))
        vjp_over = overflow("C1a", seed, t, g.weight_grad_vjp[t]) \
            if g.weight_grad_vjp is not None else None
        if info.kind != "linear":
            rows.append(na("C1a", seed, t, "conv layer (gradient is not rank one)"))
        elif vjp_over:
            rows.append(vjp_over)
        elif over:
            rows.append(dict(over, claim="C1a", kind="identity"))
        else:
            # the vjp of the layer map (an independent computation), where it was measured
            vjp = g.weight_grad_vjp[t] if g.weight_grad_vjp is not None else g.weight_grad[t]
            n = len(vjp)
            lhs, rhs, r = identity_ratio(vjp, g.delta[t, :n] * g.h_norm[t, :n])
            rows.append(row("C1a", seed, t, lhs, rhs, r, tol,
                            f"||dD/dW|| (vjp, {n} inputs) = ||delta|| ||h||"))
    return rows
