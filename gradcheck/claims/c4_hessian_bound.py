"""C4: the Hessian bound on a piecewise-linear chain (THEORY §2)."""
from __future__ import annotations

import numpy as np

from ..theory.reparam import c4_bound
from ._base import Claim, Context, hessian_rows

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
    ops = [n.sigma_op for n in ctx.result.norms]
    xn, out = ctx.result.grads.x_norm, ctx.facts.output

    def bound(t: int, n: int) -> np.ndarray:
        return np.array([float(c4_bound(out, ctx.layers[t].mu, float(xn[i]), ops, t))
                         for i in range(n)])
    return hessian_rows(ctx, C4, C4_INPUTS, bound)
