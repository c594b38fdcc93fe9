"""C6a, C6b: SN is LeCun up to a per-layer shrink (THEORY §3)."""
from __future__ import annotations

import math

import numpy as np

from ..theory.bounds import prod_except
from ._base import Claim, Context, failed_premise, identity_ratio, na, overflow, row

CLAIMS = (
    Claim("C6a", "identity",
          "dD/dW_t(SN) = prod_{i!=t} r_hat_i dD/dW_t(LeCun), r_hat_i = s_i sqrt(fan_in_i) / "
          "sigma_i", ("sn_family", "gaussian", "chain", "supported_nodes", "bias_free",
                      "homogeneous"), needs=("lecun_twin",)),
    Claim("C6b", "prediction",
          "r ~ sqrt(n)/(sqrt(n)+sqrt(m)) (SN), BSN and SN_Conv variants, c r scaled",
          ("sn_family", "gaussian")),
)
C6A, C6B = CLAIMS


def r_hat(ctx: Context, norms) -> float:
    """THEORY C6a's measured shrink of one layer (NaN outside the SN family / when trained)."""
    rec = ctx.setting.record
    if rec is None or ctx.setting.trained:
        return math.nan
    return rec.shrink(norms.sigma_scheme, ctx.setting.scale)


def r_pred(ctx: Context, info, norms) -> tuple[float, str]:
    """THEORY C6b's predicted shrink of one layer and a note (NaN outside its premises)."""
    if failed_premise(C6B, ctx):
        return math.nan, ""
    k = int(round(math.sqrt(info.kernel[0] * info.kernel[1])))
    return ctx.setting.record.shrink_prediction(info.weight_shape[1], info.weight_shape[0], k,
                                                info.kind == "conv", ctx.setting.scale,
                                                norms.sigma_scheme)


def check(ctx: Context) -> list[dict]:
    rows = _c6a(ctx)
    why = failed_premise(C6B, ctx)
    if why:
        rows += [na("C6b", ctx.seed, t, why) for t in range(len(ctx.layers))]
    else:
        for t, (info, n) in enumerate(zip(ctx.layers, ctx.result.norms)):
            rh, (rp, note) = r_hat(ctx, n), r_pred(ctx, info, n)
            rows.append(row("C6b", ctx.seed, t, rh, rp, rh / rp,
                            note=note or "measured shrink r_hat vs C6b prediction"))
    return rows


def _c6a(ctx: Context) -> list[dict]:
    seed, res, L = ctx.seed, ctx.result, len(ctx.layers)
    why = failed_premise(C6A, ctx) or ("" if ctx.twin is not None else
                                       "LeCun twin not probed (model-level checks off)"
                                       if ctx.extra.get("model_level") is False else
                                       "no LeCun twin (model of unknown provenance)")
    if why:
        return [na("C6a", seed, t, why) for t in range(L)]
    k = ctx.c6a_k
    tol = ctx.tol * max(k, 1.0)
    r = np.array([r_hat(ctx, n) for n in res.norms])
    scale = prod_except(r)
    eps = ctx.setting.eps
    rows = []
    for t in range(L):
        ours, twin_raw = res.grads.weight_grad[t], ctx.twin.grads.weight_grad[t]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            theirs = scale[t] * twin_raw
            twin_expected = ours / scale[t]            # what the twin should have measured
        # float32 underflow/overflow on one side of the identity is a measurement, not a
        # violation: values outside the dtype's normal range, or zero against non-zero
        # the dtype's smallest normal and largest finite values (eps identifies the dtype)
        tiny, huge = (2.2e-308, 1.7e308) if eps < 1e-10 else (1.2e-38, 3.4e38)
        # zero against non-zero is out of range only where the non-zero side could have
        # underflowed (below tiny / eps); anywhere else it is a real mismatch
        # (a side measured 0 where the identity expects a value the dtype cannot resolve)
        small = lambda a, tiny=tiny: (a != 0) & (np.abs(a) < tiny / eps)  # noqa: E731
        out_of_range = ((ours == 0) & small(theirs)) | ((twin_raw == 0) & small(twin_expected))
        out_of_range |= ((twin_raw != 0) & (np.abs(twin_raw) < tiny)) | (np.abs(theirs) > huge)
        over = overflow("C6a", seed, t, np.where(out_of_range | ~np.isfinite(theirs), np.inf,
                                                 ours))
        if over:
            rows.append(over)
            continue
        lhs, rhs, ratio = identity_ratio(ours, theirs)
        rows.append(row("C6a", seed, t, lhs, rhs, ratio, tol,
                        f"dD/dW(SN) = prod_(i!=t) r_hat_i dD/dW(LeCun); tol x cancellation "
                        f"factor {k:.3g}"))
    return rows
