"""Measurements + theory -> the layers table and the checks table.

The checks table has one row per (claim, seed, layer[, note]) with the fixed columns
``claim, kind, seed, layer, lhs, rhs, ratio, holds, note``. ``holds`` is True/False for
asserted kinds (inequality, identity) where the claim applies, and empty for predictions and for
rows that do not apply (their note says why). For inequalities ``ratio = lhs/rhs`` at the worst
input; for identities ``ratio = lhs/rhs`` at the input farthest from 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .probe import ProbeResult
from .schemes import SPECTRAL_SCHEMES, kaiming_gain
from .theory.claims import applies
from .theory.bounds import (c1_bound, c1_sn_bound, c8_applicable, c8_r2_applicable,
                            chain_tol, lambda_L, prod_except)
from .theory.meanfield import MeanField, effective_fans, predict, shrink_prediction

CHECK_COLUMNS = ["claim", "kind", "seed", "layer", "lhs", "rhs", "ratio", "holds", "note"]


@dataclass(frozen=True)
class Setting:
    """What the theory needs to know beyond the measurements."""

    scheme: str | None        # None for a model of unknown provenance
    scale: float
    activation: str
    slope: float
    output: str
    bias: bool
    eps: float                # machine epsilon of the probe dtype
    trained: bool = False     # weights moved by training: no longer the scheme's Gaussians
    c1_premise: str = ""      # why C1's premise (|a'| <= 1) fails on this model, if it does


def _row(claim, kind, seed, layer, lhs, rhs, ratio, holds, note=""):
    return dict(claim=claim, kind=kind, seed=seed, layer=layer, lhs=float(lhs), rhs=float(rhs),
                ratio=float(ratio), holds=holds, note=note)


def _na(claim, kind, seed, layer, why):
    return _row(claim, kind, seed, layer, math.nan, math.nan, math.nan, "", "not applicable: " + why)


def _overflow(claim, kind, seed, layer, values) -> dict | None:
    """A row saying the measurement overflowed (float32 explosion), or None if all finite."""
    bad = int((~np.isfinite(values)).sum())
    if not bad:
        return None
    return _row(claim, kind, seed, layer, math.inf, math.nan, math.nan, "",
                f"overflow: {bad} per-input values outside this dtype's range (explosion "
                "or vanishing)")


def _worst_ratio(lhs: np.ndarray, rhs: np.ndarray) -> tuple[float, float, float]:
    """(lhs, rhs, lhs/rhs) at the input with the largest ratio; 0/0 counts as ratio 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(rhs > 0, lhs / rhs, np.where(lhs > 0, np.inf, 0.0))
    j = int(np.argmax(r))
    return lhs[j], rhs[j], r[j]


def _identity_ratio(lhs: np.ndarray, rhs: np.ndarray) -> tuple[float, float, float]:
    """(lhs, rhs, lhs/rhs) at the input farthest from equality; 0 == 0 counts as ratio 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(rhs != 0, lhs / rhs, np.where(lhs == 0, 1.0, np.inf))
    j = int(np.argmax(np.abs(r - 1)))
    return lhs[j], rhs[j], r[j]


def weight_variance(setting: Setting, info, norms) -> float:
    """``v_l``: per-entry variance of the weight actually used (THEORY C7)."""
    n_in, n_out, m = info.fan_in, info.fan_out, info.weight_shape[0]
    s = setting.scheme
    if setting.trained or s is None:     # realised per-entry variance of the used weight
        return norms.frobenius ** 2 / math.prod(info.weight_shape)
    if s == "lecun":
        return 1.0 / n_in
    if s == "xavier":
        return 2.0 / (n_in + n_out)
    if s == "kaiming":
        return kaiming_gain(setting.activation, setting.slope) ** 2 / n_in
    if s == "orthogonal":
        return min(m, n_in) / (m * n_in)
    if s in SPECTRAL_SCHEMES:        # c^2 s^2 / sigma^2 with raw std s = 1/sqrt(fan_in)
        c = setting.scale if s in ("ssn", "bssn") else 1.0
        return c * c / (n_in * norms.sigma_scheme ** 2)
    raise ValueError(f"unknown scheme {s!r}")


def mean_field(result: ProbeResult, setting: Setting, q0: float,
               padding_aware: bool = False) -> tuple[np.ndarray, MeanField]:
    """(v, C7 predictions) for a probed chain; ``padding_aware`` uses :func:`effective_fans`."""
    v = np.array([weight_variance(setting, i, n) for i, n in zip(result.layers, result.norms)])
    if setting.activation not in ("relu", "lrelu", "tanh", "linear") or \
            setting.output not in ("identity", "sigmoid"):
        nan = np.full(len(v), np.nan)         # no mean-field theory for an unknown activation
        return v, MeanField(q=nan, d=nan, chi=nan, weight_grad_sq=nan, act_grad_sq=nan)
    fans, fs = [], []
    for i in result.layers:
        if padding_aware and i.kind == "conv":
            a, b = effective_fans(i.weight_shape[1], i.weight_shape[0], i.input_shape[1:],
                                  i.kernel, i.stride, i.padding, i.dilation)
        else:
            a = i.fan_in
            b = i.weight_shape[0] * i.kernel[0] * i.kernel[1] / (i.stride[0] * i.stride[1])
        fans.append(a)
        fs.append(b)
    mf = predict(v, fans, fs, [i.n_out for i in result.layers],
                 [math.prod(i.input_shape) for i in result.layers], q0, setting.activation,
                 setting.slope, setting.output)
    return v, mf


def r_hat(setting: Setting, info, norms) -> float:
    """THEORY C6a: ``r_hat = c s sqrt(fan_in) / sigma_scheme`` (raw std ``s = 1/sqrt(fan_in)``)."""
    if setting.scheme not in SPECTRAL_SCHEMES or setting.trained:
        return math.nan
    c = setting.scale if setting.scheme in ("ssn", "bssn") else 1.0
    return c / norms.sigma_scheme


def _applies(claim: str, setting: Setting, result: ProbeResult) -> tuple[bool, str]:
    return applies(claim, setting.scheme, setting.activation, setting.output, setting.bias,
                   [i.kind for i in result.layers])


def checks(result: ProbeResult, setting: Setting, seed: int, mf: MeanField,
           twin: ProbeResult | None = None, c6a_k: float = 1.0) -> list[dict]:
    """All checks of one seed: C1, C1-SN, C1a, C6a, C7, C8 (applicability from the registry)."""
    L, g = len(result.layers), result.grads
    tol = chain_tol(result.layers, setting.eps)
    lam = lambda_L(setting.output) if setting.output in ("identity", "sigmoid") else 1.0
    op = np.array([n.sigma_op for n in result.norms])
    mu = np.array([i.mu for i in result.layers])
    bound = c1_bound(g.x_norm, op, mu, lam)
    sn_bound = c1_sn_bound(g.x_norm, L, lam)
    c1_ok, c1_why = _applies("C1", setting, result)
    sn_ok, sn_why = _applies("C1-SN", setting, result)
    if setting.c1_premise:
        c1_ok, c1_why, sn_ok, sn_why = False, setting.c1_premise, False, setting.c1_premise
    show_sn = setting.scheme in ("sn", "bsn", "sn-conv")   # C1-SN rows for unit-norm schemes
    rows: list[dict] = []
    for t, info in enumerate(result.layers):
        over = _overflow("C1", "inequality", seed, t, g.weight_grad[t])
        if not c1_ok:
            rows.append(_na("C1", "inequality", seed, t, c1_why))
        elif over:
            rows.append(over)
        else:
            lhs, rhs, r = _worst_ratio(g.weight_grad[t], bound[t])
            rows.append(_row("C1", "inequality", seed, t, lhs, rhs, r, bool(r <= 1 + tol),
                             f"worst of {len(g.x_norm)} inputs; tol {tol:.1e}"))
        if show_sn and not sn_ok:
            rows.append(_na("C1-SN", "inequality", seed, t, sn_why))
        elif show_sn and over:
            rows.append(dict(over, claim="C1-SN"))
        elif show_sn:
            lhs, rhs, r = _worst_ratio(g.weight_grad[t], sn_bound[t])
            rows.append(_row("C1-SN", "inequality", seed, t, lhs, rhs, r, bool(r <= 1 + tol),
                             "bound lambda_L*||x||, depth-independent"))
        if info.kind != "linear":
            rows.append(_na("C1a", "identity", seed, t, "conv layer (gradient is not rank one)"))
        elif over:
            rows.append(dict(over, claim="C1a", kind="identity"))
        else:
            lhs, rhs, r = _identity_ratio(g.weight_grad[t], g.delta[t] * g.h_norm[t])
            rows.append(_row("C1a", "identity", seed, t, lhs, rhs, r,
                             bool(abs(r - 1) <= tol), "||dD/dW|| = ||delta|| ||h||"))
    rows += _c6a(result, setting, seed, twin, tol * max(c6a_k, 1.0), c6a_k)
    rows += _c7(result, seed, mf)
    rows += _c8(result, seed, tol)
    return rows


def _c6a(result, setting, seed, twin, tol, k: float = 1.0) -> list[dict]:
    if setting.scheme not in SPECTRAL_SCHEMES:
        return []
    ok, why = _applies("C6a", setting, result)
    if ok and setting.trained:
        ok, why = False, "trained weights: no Gaussian LeCun twin"
    elif ok and twin is None:
        ok, why = False, "no LeCun twin (model of unknown provenance)"
    if not ok:
        return [_na("C6a", "identity", seed, t, why) for t in range(len(result.layers))]
    r = np.array([r_hat(setting, i, n) for i, n in zip(result.layers, result.norms)])
    scale = prod_except(r)
    rows = []
    for t in range(len(result.layers)):
        ours = result.grads.weight_grad[t]
        with np.errstate(over="ignore", invalid="ignore"):
            theirs = scale[t] * twin.grads.weight_grad[t]
        # float32 underflow/overflow on one side of the identity is a measurement, not a
        # violation: values outside the dtype's normal range, or zero against non-zero
        tiny = setting.eps * 1e-30 if setting.eps < 1e-10 else 1.2e-38
        out_of_range = (ours == 0) != (theirs == 0)
        out_of_range |= ((np.abs(theirs) < tiny) & (theirs != 0)) | (np.abs(theirs) > 3e38)
        over = _overflow("C6a", "identity", seed, t,
                         np.where(out_of_range | ~np.isfinite(theirs), np.inf, ours))
        if over:
            rows.append(over)
            continue
        lhs, rhs, ratio = _identity_ratio(ours, theirs)
        rows.append(_row("C6a", "identity", seed, t, lhs, rhs, ratio,
                         bool(abs(ratio - 1) <= tol),
                         f"dD/dW(SN) = prod_(i!=t) r_hat_i dD/dW(LeCun); tol x cancellation "
                         f"factor {k:.3g}"))
    return rows


def _c7(result, seed, mf) -> list[dict]:
    rows = []
    for t in range(len(result.layers)):
        over = _overflow("C7", "prediction", seed, t, result.grads.weight_grad[t])
        if over:
            rows.append(over)
            continue
        if not np.isfinite(mf.weight_grad_sq[t]):
            rows.append(_na("C7", "prediction", seed, t, "no mean-field prediction for an "
                                                          "unidentified activation"))
            continue
        meas = math.sqrt(float(np.mean(result.grads.weight_grad[t] ** 2)))
        pred = math.sqrt(mf.weight_grad_sq[t])
        rows.append(_row("C7", "prediction", seed, t, meas, pred,
                         meas / pred if pred > 0 else math.nan, "",
                         f"rms ||dD/dW|| over {result.grads.weight_grad.shape[1]} inputs vs "
                         "sqrt(N fan_in d q)"))
    return rows


def _c8(result, seed, tol) -> list[dict]:
    rows = []
    for t, (info, n) in enumerate(zip(result.layers, result.norms)):
        if info.kind != "conv":
            continue
        H, W = info.input_shape[1:]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = info.kernel, info.stride, info.padding, \
            info.dilation
        if info.padding_mode != "zeros":
            rows.append(_na("C8", "inequality", seed, t, f"padding mode {info.padding_mode}"))
            continue
        if not (c8_applicable(H, kh, sh, ph, dh) and c8_applicable(W, kw, sw, pw, dw)):
            rows.append(_na("C8", "inequality", seed, t, "no output's receptive field lies "
                                                         "inside the input"))
            continue
        slack = tol + 10 * max(n.op_residual, 0.0)
        rows.append(_row("C8", "inequality", seed, t, n.sigma_R, n.sigma_op,
                         n.sigma_R / n.sigma_op, bool(n.sigma_R <= n.sigma_op * (1 + slack)),
                         "sigma_R <= ||Conv||_op"))
        rows.append(_row("C8", "inequality", seed, t, n.sigma_op, info.mu * n.sigma_R,
                         n.sigma_op / (info.mu * n.sigma_R),
                         bool(n.sigma_op <= info.mu * n.sigma_R * (1 + slack)),
                         f"||Conv||_op <= mu sigma_R (mu={info.mu:.3f})"))
        if c8_r2_applicable(H, kh, sh, ph, dh) and c8_r2_applicable(W, kw, sw, pw, dw):
            rows.append(_row("C8", "inequality", seed, t, n.sigma_R2, n.sigma_op,
                             n.sigma_R2 / n.sigma_op,
                             bool(n.sigma_R2 <= n.sigma_op * (1 + slack)),
                             "sigma_R2 <= ||Conv||_op (stride 1)"))
            rows.append(_row("C8", "inequality", seed, t, n.sigma_op, info.mu * n.sigma_R2,
                             n.sigma_op / (info.mu * n.sigma_R2),
                             bool(n.sigma_op <= info.mu * n.sigma_R2 * (1 + slack)),
                             "||Conv||_op <= mu sigma_R2 (stride 1)"))
    return rows


def shrink_pred(setting: Setting, info, norms) -> float:
    """THEORY C6b predicted shrink ``r`` of a layer (NaN outside the SN family)."""
    if setting.scheme not in SPECTRAL_SCHEMES or setting.trained:
        return math.nan
    k = math.sqrt(info.kernel[0] * info.kernel[1])
    if setting.scheme == "sn-conv":
        # C6b's SN_Conv 'prediction' s sqrt(n)/||Conv||_op is the realised shrink itself (no
        # closed form for a conv operator); dense layers: ||W||_op = sigma_R, SN's formula
        return math.nan if info.kind == "conv" else shrink_prediction(
            "sn", info.weight_shape[1], info.weight_shape[0], 1.0)
    return shrink_prediction(setting.scheme, info.weight_shape[1], info.weight_shape[0], k,
                             setting.scale)
