"""C11, C11-H: the gradient and Hessian bounds on any graph of supported nodes (THEORY §6).

The graph is the one recorded by the tracer (:mod:`gradcheck.probe.trace`, a
``TorchFunctionMode``: it sees the tensors each call really used, in-place calls included, which
neither ``torch.fx`` nor the autograd graph keeps). ``F`` and ``B`` come from
:mod:`gradcheck.theory.graph` with the layers' measured operator norms and the exact operator
norms of the pooling maps (:mod:`gradcheck.probe.facts`). Both inequalities of C11 are checked:
``||dD/dW_t||_F <= mu_t ||h_{t-1}(x)|| ||dD/dz_t(x)||`` (the measured middle term) and the middle
term ``<= mu_t F(h_{t-1}) ||x|| B(z_t)``.
"""
from __future__ import annotations

import numpy as np

from ..theory.bounds import SUP_SECOND
from ..theory.graph import layer_bounds
from ._base import (
    Claim,
    Context,
    failed_premise,
    hessian_rows,
    inequality_holds,
    na,
    overflow,
    row,
    worst_ratio,
)

_GRAPH = ("supported_nodes", "bias_free", "known_output")

CLAIMS = (
    Claim("C11", "inequality",
          "||dD/dW_t||_F <= mu_t ||h_{t-1}|| ||dD/dz_t|| <= mu_t F(h_{t-1}) ||x|| B(z_t) on any "
          "graph of supported nodes", _GRAPH),
    Claim("C11-H", "inequality",
          "||H_{W_t} D||_op <= sup|a_L''| (mu_t F(h_{t-1}) ||x|| B(z_t) / lambda_L)^2",
          _GRAPH + ("piecewise_linear",), needs=("model",)),
)
C11, C11_H = CLAIMS
#: inputs used by the C11-H Hessians
C11H_INPUTS = 1


def graph_bound(ctx: Context) -> np.ndarray:
    """``mu_t F(h_{t-1}) B(z_t)`` per layer (multiply by ``||x||`` for C11's bound), ``(L,)``."""
    op = [n.sigma_op for n in ctx.result.norms]
    fb = layer_bounds(ctx.facts.graph, op, ctx.facts.out_value)
    return np.array([info.mu * f * b for info, (f, b) in zip(ctx.layers, fb)])


def check(ctx: Context) -> list[dict]:
    g, seed, tol = ctx.result.grads, ctx.seed, ctx.tol
    L = len(ctx.layers)
    why = failed_premise(C11, ctx)
    if why:
        rows = [na("C11", seed, t, why) for t in range(L)]
        return rows + [na("C11-H", seed, t, why) for t in range(L)]
    gb = graph_bound(ctx)
    rows = []
    for t, info in enumerate(ctx.layers):
        over = overflow("C11", seed, t, g.weight_grad[t])
        if over:
            rows.append(over)
            continue
        middle = info.mu * g.h_norm[t] * g.delta[t]
        bound = gb[t] * g.x_norm
        _, _, r1 = worst_ratio(g.weight_grad[t], middle)
        _, _, r2 = worst_ratio(middle, bound)
        lhs, rhs, r = worst_ratio(g.weight_grad[t], bound)
        rows.append(row("C11", seed, t, lhs, rhs, r, holds=inequality_holds(r1, tol)
                        and inequality_holds(r2, tol),
                        note=f"worst of {len(g.x_norm)} inputs: ||dD/dW||/(mu ||h|| ||dD/dz||) "
                             f"{r1:.4g}, (mu ||h|| ||dD/dz||)/(mu F B ||x||) {r2:.4g}; "
                             f"F B = {gb[t] / info.mu:.6g}"))
    return rows + _hessian(ctx, gb)


def _hessian(ctx: Context, gb: np.ndarray) -> list[dict]:
    xn, out, lam = ctx.result.grads.x_norm, ctx.facts.output, ctx.lam

    def bound(t: int, n: int) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return SUP_SECOND[out] * (gb[t] * xn[:n] / lam) ** 2
    return hessian_rows(ctx, C11_H, C11H_INPUTS, bound)
