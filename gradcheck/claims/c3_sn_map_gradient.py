"""C3a, C3b: the gradient through the SN map to the raw weights (THEORY §2, Miyato Eq. 12)."""
from __future__ import annotations

import numpy as np
import torch

from ..theory.reparam import c3b_bound, sn_raw_gradient
from ._base import Claim, Context, failed_premise, na, row, worst_ratio

CLAIMS = (
    Claim("C3a", "identity",
          "dD/dW = (G - <G, W_bar> u v^T) / sigma(W) through W_bar = W / sigma(W)",
          ("sn_family",), needs=("model",)),
    Claim("C3b", "inequality", "||dD/dW||_F <= (||G||_F + ||G||_*) / sigma(W)",
          ("sn_family",), needs=("model",)),
)
C3A, C3B = CLAIMS
#: inputs used by the per-input raw-gradient loop
C3_INPUTS = 8


def _both(seed, t, why):
    return [na("C3a", seed, t, why), na("C3b", seed, t, why)]


def check(ctx: Context) -> list[dict]:
    from ..probe.hessian import effective_weight_grads, raw_weight_grads
    from ..schemes.spectral import scaling_of

    seed, L = ctx.seed, len(ctx.layers)
    mods: list = [None] * L
    why = failed_premise(C3A, ctx) or ("" if ctx.model is not None else "no model")
    if not why:
        from ..probe.layers import record

        mods = record(ctx.model, ctx.x[:1]).modules
        if any(scaling_of(m) is not None and scaling_of(m).mode == "power" for m in mods):
            why = "power-iteration sigma (authors' mode) is not the exact top singular value"
    if why:
        return [r for t in range(L) for r in _both(seed, t, why)]
    xs = ctx.x[:C3_INPUTS]
    raw = raw_weight_grads(ctx.model, xs)
    _, eff = effective_weight_grads(ctx.model, xs)
    tol, rows = ctx.tol, []
    for t, (info, m) in enumerate(zip(ctx.layers, mods)):
        sc = scaling_of(m)
        if sc is None or not (sc.kind == "sn" or info.kind == "linear"):
            rows += _both(seed, t, "layer divides by (sigma_R + sigma_R2)/2 or ||Conv||_op, "
                                   "not by sigma_R")
            continue
        W = m.parametrizations.weight.original.detach().double()
        G = sc.scale * eff[t].double()
        pred = sn_raw_gradient(G, W)
        meas = raw[t].double()
        err = float((meas - pred).reshape(len(xs), -1).norm(dim=1).max())
        # the scale of the terms: ||G||_F / sigma (the measured gradient can be exactly 0,
        # e.g. a 1x1 layer, where it would make the rounding of G's projection look relative)
        sigma = float(torch.linalg.matrix_norm(W.reshape(W.shape[0], -1), 2))
        ref = max(float(meas.reshape(len(xs), -1).norm(dim=1).max()),
                  float(G.reshape(len(xs), -1).norm(dim=1).max()) / sigma)
        rows.append(row("C3a", seed, t, ref + err, ref, (ref + err) / ref if ref else 1.0,
                        holds=bool(err <= tol * max(ref, 1e-300)),
                        note=f"max over {len(xs)} inputs of ||autograd - (G - <G,W_bar>uv^T)"
                             "/sigma||"))
        b = np.array([c3b_bound(G[i], W, sigma) for i in range(len(xs))])
        n = meas.reshape(len(xs), -1).norm(dim=1).numpy()
        lhs, rhs, r = worst_ratio(n, b)
        rows.append(row("C3b", seed, t, lhs, rhs, r, tol,
                        "||dD/dW_raw|| <= (||G||_F + ||G||_*)/sigma(W)"))
    return rows
