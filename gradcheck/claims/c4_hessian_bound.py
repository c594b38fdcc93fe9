"""C4: the Hessian bound on a piecewise-linear chain (THEORY §2)."""
from __future__ import annotations

import math

import numpy as np

from ..theory.reparam import c4_bound
from ._base import Claim, Context, failed_premise, hessians, na, row, worst_ratio

CLAIMS = (
    Claim("C4", "inequality",
          "||H_{W_t} D||_op <= sup|a_L''| (mu_t ||x|| prod_{i!=t} ||W_i||_op)^2; 0 for "
          "identity output",
          ("chain", "supported_nodes", "bias_free", "known_output", "piecewise_linear"),
          needs=("model",)),
)
C4, = CLAIMS
#: inputs that get a Hessian
C4_INPUTS = 1


def check(ctx: Context) -> list[dict]:
    from ..probe.layers import ProbeError

    seed, L = ctx.seed, len(ctx.layers)
    why = failed_premise(C4, ctx) or ("" if ctx.model is not None else "no model")
    if not why:
        try:
            H = hessians(ctx, C4_INPUTS)
        except ProbeError as e:
            why = f"Hessian not measurable: {e}"
    if why:
        return [na("C4", seed, t, why) for t in range(L)]
    ops = [n.sigma_op for n in ctx.result.norms]
    out, rows = ctx.facts.output, []
    n_in = H.shape[1]
    for t, info in enumerate(ctx.layers):
        h = H[t]
        b = np.array([float(c4_bound(out, info.mu, float(ctx.result.grads.x_norm[i]), ops, t))
                      for i in range(n_in)])
        if out == "identity":
            rows.append(row("C4", seed, t, float(h.max()), 0.0,
                            1.0 if h.max() == 0 else math.inf, holds=bool(h.max() == 0),
                            note="identity output: the Hessian is exactly 0"))
        else:
            lhs, rhs, r = worst_ratio(h, b)
            rows.append(row("C4", seed, t, lhs, rhs, r, ctx.tol,
                            f"||H_W D||_op on {n_in} input(s), sigmoid output"))
    return rows
