"""Checks that need the model itself, not only its probe measurements: C2a, C2b, C3a, C3b,
C4, C5, C6b, C9a, C9b (THEORY §2, §3). Rows have the checks-table columns of
:mod:`gradcheck.verify`; network-level rows use ``layer = -1``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .probe import ProbeResult
from .schemes import SPECTRAL_SCHEMES
from .theory.bounds import chain_tol
from .theory.claims import applies
from .theory.meanfield import gaussian_opnorm
from .theory.randmat import gordon_lower, gordon_upper
from .theory.reparam import c2b_lhs, c2b_rhs, c3b_bound, c4_bound, sn_raw_gradient
from .verify import Setting, _identity_ratio, _na, _row, _worst_ratio, r_hat, shrink_pred

#: inputs used by the per-input model checks (C3 loops over inputs; C4 builds Hessians)
C3_INPUTS, C4_INPUTS = 8, 1


def _tol(result: ProbeResult, setting: Setting) -> float:
    return chain_tol(result.layers, setting.eps)


def _ok(claim, setting, result):
    return applies(claim, setting.scheme, setting.activation, setting.output, setting.bias,
                   [i.kind for i in result.layers])


def c2(model: nn.Module, x: torch.Tensor, result: ProbeResult, setting: Setting, seed: int):
    """C2b per seed (AM-GM on the measured operator norms) and C2a on a rescaled copy."""
    from .probe.hessian import effective_weight_grads
    from .reference import materialize

    tol, rows = _tol(result, setting), []
    s = np.array([n.sigma_op for n in result.norms])
    with np.errstate(over="ignore", invalid="ignore"):
        lhs, rhs = c2b_lhs(result.grads.x_norm, s), c2b_rhs(result.grads.x_norm, s)
    if not (np.isfinite(lhs).all() and np.isfinite(rhs).all()):
        rows.append(_row("C2b", "inequality", seed, -1, math.inf, math.nan, math.nan, "",
                         "overflow: the Lipschitz product exceeds float64 (explosion)"))
    else:
        a, b, r = _worst_ratio(rhs, lhs)         # rhs <= lhs: ratio rhs/lhs <= 1
        rows.append(_row("C2b", "inequality", seed, -1, a, b, r, bool(r <= 1 + tol),
                         "whole network: L ||x||^2 C^(2-2/L) <= ||x||^2 C^2 sum s_t^-2"))
    ok, why = _ok("C2a", setting, result)
    L = len(result.layers)
    if not ok:
        return rows + [_na("C2a", "identity", seed, t, why) for t in range(L)]
    try:
        plain = materialize(model)
    except ValueError as e:
        return rows + [_na("C2a", "identity", seed, t, f"model cannot be copied: {e}")
                       for t in range(L)]
    rng = np.random.default_rng([seed, 2])
    c = np.exp(rng.normal(0.0, 0.3, L))
    c /= np.exp(np.mean(np.log(c)))             # prod c_i = 1
    D0, g0 = effective_weight_grads(plain, x.double())
    layers = [m for m in plain.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for m, ci in zip(layers, c):
            m.weight.mul_(float(ci))
    D1, g1 = effective_weight_grads(plain, x.double())
    for t in range(L):
        n0 = g0[t].reshape(len(x), -1).norm(dim=1).numpy() / c[t]
        n1 = g1[t].reshape(len(x), -1).norm(dim=1).numpy()
        lhs_, rhs_, ratio = _identity_ratio(n1, n0)
        rows.append(_row("C2a", "identity", seed, t, lhs_, rhs_, ratio,
                         bool(abs(ratio - 1) <= tol),
                         f"c_t = {c[t]:.4f}, prod c = 1: ||dD/dW_t|| divided by c_t"))
    dD = float((D1 - D0).abs().max() / D0.abs().max().clamp_min(1e-300))
    rows.append(_row("C2a", "identity", seed, -1, 1 + dD, 1.0, 1 + dD, bool(dD <= tol),
                     "D unchanged under the rescaling (lhs - 1 = max relative change)"))
    return rows


def c3(model: nn.Module, x: torch.Tensor, result: ProbeResult, setting: Setting, seed: int):
    """C3a/C3b on the SN layers that divide by the exact sigma_R (exact mode)."""
    from .probe.hessian import effective_weight_grads, raw_weight_grads
    from .schemes.spectral import scaling_of

    L = len(result.layers)
    ok, why = _ok("C3a", setting, result)
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if ok and any(scaling_of(m) is not None and scaling_of(m).mode == "power" for m in layers):
        ok, why = False, "power-iteration sigma (authors' mode) is not the exact top singular value"
    if not ok:
        return [_na(c, k, seed, t, why) for t in range(L) for c, k in
                (("C3a", "identity"), ("C3b", "inequality"))]
    xs = x[:C3_INPUTS]
    raw = raw_weight_grads(model, xs)
    _, eff = effective_weight_grads(model, xs)
    tol, rows = _tol(result, setting), []
    for t, (info, m) in enumerate(zip(result.layers, layers)):
        sc = scaling_of(m)
        plain_sigma = sc is not None and (sc.kind == "sn" or info.kind == "linear")
        if not plain_sigma:
            for c, k in (("C3a", "identity"), ("C3b", "inequality")):
                rows.append(_na(c, k, seed, t, "layer divides by (sigma_R + sigma_R2)/2 or "
                                               "||Conv||_op, not by sigma_R"))
            continue
        W = m.parametrizations.weight.original.detach().double()
        G = sc.scale * eff[t].double()
        pred = sn_raw_gradient(G, W)
        meas = raw[t].double()
        err = float((meas - pred).reshape(len(xs), -1).norm(dim=1).max())
        ref = float(meas.reshape(len(xs), -1).norm(dim=1).max())
        rows.append(_row("C3a", "identity", seed, t, ref + err, ref, (ref + err) / ref
                         if ref else 1.0, bool(err <= tol * max(ref, 1e-300)),
                         f"max over {len(xs)} inputs of ||autograd - (G - <G,W_bar>uv^T)/sigma||"))
        b = np.array([c3b_bound(G[i], W) for i in range(len(xs))])
        n = meas.reshape(len(xs), -1).norm(dim=1).numpy()
        lhs, rhs, r = _worst_ratio(n, b)
        rows.append(_row("C3b", "inequality", seed, t, lhs, rhs, r, bool(r <= 1 + tol),
                         "||dD/dW_raw|| <= (||G||_F + ||G||_*)/sigma(W)"))
    return rows


def c4(model: nn.Module, x: torch.Tensor, result: ProbeResult, setting: Setting, seed: int):
    """C4 on the first input(s): Hessian of D w.r.t. each effective weight vs its bound."""
    from .probe.hessian import weight_hessian_opnorm

    L = len(result.layers)
    ok, why = _ok("C4", setting, result)
    if not ok:
        return [_na("C4", "inequality", seed, t, why) for t in range(L)]
    ops = [n.sigma_op for n in result.norms]
    tol, rows = _tol(result, setting), []
    for t, info in enumerate(result.layers):
        h = np.array([weight_hessian_opnorm(model, x[i:i + 1], t) for i in range(C4_INPUTS)])
        b = np.array([float(c4_bound(setting.output, info.mu, float(result.grads.x_norm[i]),
                                     ops, t)) for i in range(C4_INPUTS)])
        if setting.output == "identity":
            rows.append(_row("C4", "inequality", seed, t, float(h.max()), 0.0,
                             1.0 if h.max() == 0 else math.inf, bool(h.max() == 0),
                             "identity output: the Hessian is exactly 0"))
        else:
            lhs, rhs, r = _worst_ratio(h, b)
            rows.append(_row("C4", "inequality", seed, t, lhs, rhs, r, bool(r <= 1 + tol),
                             f"||H_W D||_op on {C4_INPUTS} input(s), sigmoid output"))
    return rows


def predictions(result: ProbeResult, setting: Setting, seed: int):
    """C5 ratio, C6b shrink and C9a/C9b rows per layer."""
    from .theory.bsn import bsn_xavier_constant, xavier_std

    rows, tol = [], _tol(result, setting)
    gaussian = setting.scheme not in (None, "orthogonal") and not setting.trained
    for t, (info, n) in enumerate(zip(result.layers, result.norms)):
        m, fan_in = info.weight_shape[0], info.fan_in
        if gaussian:
            s = _raw_std(setting, info)
            pred = gaussian_opnorm(m, fan_in, s)
            rows.append(_row("C5-ratio", "prediction", seed, t, n.raw_sigma_R, pred,
                             n.raw_sigma_R / pred, "",
                             f"raw sigma_R / s(sqrt m + sqrt n); Gordon bounds on E: "
                             f"[{gordon_lower(m, fan_in, s):.4g}, {gordon_upper(m, fan_in, s):.4g}]"))
        if setting.scheme in SPECTRAL_SCHEMES and not setting.trained:
            rh, rp = r_hat(setting, info, n), shrink_pred(setting, info, n)
            if math.isnan(rp):
                rows.append(_na("C6b", "prediction", seed, t, "strict SN on a conv layer: no "
                                "closed-form shrink (s sqrt(n)/||Conv||_op is r_hat itself)"))
            else:
                rows.append(_row("C6b", "prediction", seed, t, rh, rp, rh / rp, "",
                                 "measured shrink r_hat vs C6b prediction"))
        if info.kind == "linear":
            _, _, r = _identity_ratio(np.array([n.sigma_R]), np.array([n.sigma_R2]))
            rows.append(_row("C9a", "identity", seed, t, n.sigma_R, n.sigma_R2, r,
                             bool(abs(r - 1) <= tol), "dense: sigma_R == sigma_R2"))
        if setting.scheme in ("bsn", "bssn") and not setting.trained:
            k = int(round(math.sqrt(info.kernel[0] * info.kernel[1])))
            eff = n.frobenius / math.sqrt(math.prod(info.weight_shape))
            meas = eff / xavier_std(fan_in, info.fan_out)
            c = setting.scale if setting.scheme == "bssn" else 1.0
            pred = c * bsn_xavier_constant(info.weight_shape[1], m, k)
            rows.append(_row("C9b", "prediction", seed, t, meas, pred, meas / pred, "",
                             "BSN effective std / Xavier std vs its predicted constant"))
    return rows


def _raw_std(setting: Setting, info) -> float:
    """Std of the Gaussian raw draw behind a layer (SN family: LeCun raw weights)."""
    from .schemes import init_std

    return init_std(setting.scheme, torch.empty(info.weight_shape), setting.activation,
                    setting.slope)


def model_checks(model: nn.Module, x: torch.Tensor, result: ProbeResult, setting: Setting,
                 seed: int) -> list[dict]:
    """C2a, C2b, C3a, C3b, C4, C5-ratio, C6b, C9a, C9b rows for one seed (eval mode)."""
    if not np.isfinite(result.grads.weight_grad).all():
        note = "overflow: non-finite gradients (explosion in this dtype); model checks skipped"
        return [_row(c, k, seed, -1, math.inf, math.nan, math.nan, "", note) for c, k in
                (("C2a", "identity"), ("C2b", "inequality"), ("C3a", "identity"),
                 ("C3b", "inequality"), ("C4", "inequality"))] + predictions(result, setting,
                                                                             seed)
    was = model.training
    model.eval()
    try:
        return (c2(model, x, result, setting, seed) + c3(model, x, result, setting, seed)
                + c4(model, x, result, setting, seed) + predictions(result, setting, seed))
    finally:
        model.train(was)
