"""C7: mean-field gradient propagation across depth (THEORY §3)."""
from __future__ import annotations

import math

import numpy as np

from ..schemes import kaiming_gain
from ..theory.meanfield import MeanField, effective_fans, predict
from ._base import Claim, Context, failed_premise, na, overflow, row

CLAIMS = (
    Claim("C7", "prediction",
          "E||dD/dW_l||_F^2 ~ N_l fan_in_l d_l q_{l-1} (mean field)",
          ("chain", "supported_nodes", "bias_free", "mean_field")),
)
C7, = CLAIMS


def weight_variance(ctx: Context, info, norms) -> float:
    """``v_l``: per-entry variance of the weight actually used (THEORY C7)."""
    rec = ctx.setting.record
    if ctx.setting.trained or rec is None:     # realised per-entry variance of the used weight
        return norms.frobenius ** 2 / math.prod(info.weight_shape)
    gain = kaiming_gain(ctx.activation, ctx.slope)
    return rec.weight_variance(info.weight_shape, info.fan_in, info.fan_out, gain,
                               norms.sigma_scheme, ctx.setting.scale)


def q0(ctx: Context) -> float:
    """``q_0 = mean(x^2)`` per entry, from the measured input norms."""
    g = ctx.result.grads
    return float(np.mean(g.x_norm ** 2)) / math.prod(ctx.layers[0].input_shape)


def mean_field(ctx: Context, q0: float, padding_aware: bool = False
               ) -> tuple[np.ndarray, MeanField]:
    """(v, C7 predictions); NaN predictions where C7's premises fail."""
    res = ctx.result
    v = np.array([weight_variance(ctx, i, n) for i, n in zip(res.layers, res.norms)])
    if failed_premise(C7, ctx):
        nan = np.full(len(v), np.nan)
        return v, MeanField(q=nan, d=nan, chi=nan, weight_grad_sq=nan, act_grad_sq=nan)
    fans, fs = [], []
    for i in res.layers:
        if padding_aware and i.kind == "conv":
            a, b = effective_fans(i.weight_shape[1], i.weight_shape[0], i.input_shape[1:],
                                  i.kernel, i.stride, i.padding, i.dilation)
        else:
            a = i.fan_in
            b = i.weight_shape[0] * i.kernel[0] * i.kernel[1] / (i.stride[0] * i.stride[1])
        fans.append(a)
        fs.append(b)
    mf = predict(v, fans, fs, [i.n_out for i in res.layers],
                 [math.prod(i.input_shape) for i in res.layers], q0, ctx.activation,
                 ctx.slope, ctx.output)
    return v, mf


def check(ctx: Context) -> list[dict]:
    res, seed = ctx.result, ctx.seed
    why = failed_premise(C7, ctx)
    mf = ctx.extra.get("mean_field")
    if mf is None and not why:
        mf = mean_field(ctx, q0(ctx))[1]
    rows = []
    for t in range(len(res.layers)):
        if why:
            rows.append(na("C7", seed, t, why))
            continue
        over = overflow("C7", seed, t, res.grads.weight_grad[t])
        if over:
            rows.append(over)
            continue
        meas = math.sqrt(float(np.mean(res.grads.weight_grad[t] ** 2)))
        pred = math.sqrt(mf.weight_grad_sq[t])
        rows.append(row("C7", seed, t, meas, pred, meas / pred if pred > 0 else math.nan,
                        note=f"rms ||dD/dW|| over {res.grads.weight_grad.shape[1]} inputs vs "
                             "sqrt(N fan_in d q)"))
    return rows
