"""Mean-field predictions of THEORY C6b and C7 (per-layer vanishing and the SN shrink).

Layer index ``l = 0..L-1`` in forward order; ``h_l`` is layer l's input, ``z_l`` its output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def gauss_mean(f, q: float) -> float:
    """``E[f(z)]`` for ``z ~ N(0, q)`` by adaptive quadrature on ``[-12 sd, 12 sd]``.

    (A fixed Gauss-Hermite rule scaled by ``sqrt(q)`` under-resolves tanh's and sigmoid's
    unit-width features once ``q`` is large: +3% at q = 9, +161% at q = 100.)
    """
    from scipy.integrate import quad  # here: scipy.integrate costs 0.25 s of start-up

    sd = math.sqrt(max(q, 0.0))
    if sd == 0.0:
        return float(f(np.zeros(1))[0])
    g = lambda z: float(f(np.array([z]))[0]) * math.exp(-0.5 * (z / sd) ** 2)  # noqa: E731
    lim = 12.0 * sd
    val, _ = quad(g, -lim, lim, points=[-1.0, 0.0, 1.0] if lim > 1 else None, limit=400,
                  epsabs=1e-13, epsrel=1e-10)
    return val / (sd * math.sqrt(2 * math.pi))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def kappas(activation: str, slope: float, q: float) -> tuple[float, float]:
    """(forward ``E[a(z)^2]/E[z^2]``, backward ``E[a'(z)^2]``) for ``z ~ N(0, q)``.

    Equal for the piecewise-linear activations: ``(1 + alpha^2)/2`` (lrelu), 1/2 (relu), 1
    (linear). tanh by quadrature of the variance map.
    """
    if activation == "relu":
        return 0.5, 0.5
    if activation == "lrelu":
        k = (1 + slope * slope) / 2
        return k, k
    if activation == "linear":
        return 1.0, 1.0
    if activation == "tanh":
        if q <= 0:
            return 1.0, 1.0
        return gauss_mean(lambda z: np.tanh(z) ** 2, q) / q, \
            gauss_mean(lambda z: (1 - np.tanh(z) ** 2) ** 2, q)
    raise ValueError(f"unknown activation {activation!r}")


def output_d(output: str, q: float) -> float:
    """``d_L = E[a_L'(z_L)^2]`` for ``z_L ~ N(0, q)``."""
    if output == "identity":
        return 1.0
    return gauss_mean(lambda z: (_sigmoid(z) * (1 - _sigmoid(z))) ** 2, q)


@dataclass(frozen=True)
class MeanField:
    """C7 predictions per layer (arrays of length L)."""

    q: np.ndarray            # second moment per element of h_l (layer input)
    d: np.ndarray            # second moment per element of delta_l = dD/dz_l
    # backward gain delta_l -> delta_{l-1}: kappa_{l-1} v_l f_l (chi_0: v_0 f_0)
    chi: np.ndarray
    weight_grad_sq: np.ndarray   # E||dD/dW_l||_F^2 ~ N_l fan_in_l d_l q_l
    act_grad_sq: np.ndarray      # E||dD/dh_l||^2 ~ numel(h_l) v_l f_l d_l


def predict(v, fan_in, f, n_out, n_in, q0: float, activation: str, slope: float,
            output: str) -> MeanField:
    """THEORY C7 for a chain of L layers.

    Args:
        v: per-entry variance of the weight actually used, per layer.
        fan_in: ``c_in k_h k_w``; f: ``c_out k_h k_w / (s_h s_w)`` (dense: out_features).
        n_out: ``N_l`` output elements; n_in: ``numel(h_l)`` input elements.
        q0: ``mean(x^2)``. activation, slope: internal activation; output: ``a_L``.
    """
    L = len(v)
    q, pre = np.zeros(L), np.zeros(L)
    kf, kb = np.ones(L), np.ones(L)         # kappa of the activation after layer l (l < L-1)
    q[0] = q0
    for i in range(L):
        pre[i] = v[i] * fan_in[i] * q[i]
        if i < L - 1:
            kf[i], kb[i] = kappas(activation, slope, pre[i])
            q[i + 1] = kf[i] * pre[i]
    d = np.zeros(L)
    d[L - 1] = output_d(output, pre[L - 1])
    chi = np.zeros(L)
    for i in range(L - 1, -1, -1):
        chi[i] = (kb[i - 1] if i > 0 else 1.0) * v[i] * f[i]
        if i > 0:
            d[i - 1] = chi[i] * d[i]
    v, fan_in, f = map(np.asarray, (v, fan_in, f))
    return MeanField(q=q, d=d, chi=chi,
                     weight_grad_sq=np.asarray(n_out) * fan_in * d * q,
                     act_grad_sq=np.asarray(n_in) * v * f * d)


def _axis_pairs(size: int, kernel: int, stride: int, padding: int, dilation: int) -> tuple:
    """(valid (output, tap) pairs, outputs) along one axis under zero padding."""
    n_out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    pairs = sum(1 for j in range(max(n_out, 0)) for t in range(kernel)
                if 0 <= j * stride - padding + t * dilation < size)
    return pairs, max(n_out, 0)


def effective_fans(c_in: int, c_out: int, input_hw, kernel, stride, padding,
                   dilation=(1, 1)) -> tuple[float, float]:
    """Zero-padding-aware ``(fan_in, f)`` of a conv layer: averages over positions.

    ``fan_in_eff = c_in * mean over outputs of the taps that land inside the input`` and
    ``f_eff = c_out * mean over input pixels of the (output, tap) pairs that read it``. Interior
    values are THEORY C7's ``c_in k_h k_w`` and ``c_out k_h k_w / (s_h s_w)``; on small feature
    maps the borders lower both, which the stated C7 ignores (our refinement, reported beside
    it, never in its place).
    """
    (ph, nh), (pw, nw) = (_axis_pairs(input_hw[0], kernel[0], stride[0], padding[0], dilation[0]),
                          _axis_pairs(input_hw[1], kernel[1], stride[1], padding[1], dilation[1]))
    fan_in = c_in * (ph / nh) * (pw / nw) if nh and nw else 0.0
    f = c_out * (ph / input_hw[0]) * (pw / input_hw[1])
    return fan_in, f


def gaussian_opnorm(m: int, n: int, s: float = 1.0) -> float:
    """THEORY C5: the Bai-Yin / Gordon value ``s (sqrt m + sqrt n)`` of ``E||W||_op``."""
    return s * (math.sqrt(m) + math.sqrt(n))


def shrink_prediction(kind: str, c_in: int, c_out: int, k: int = 1, scale: float = 1.0,
                      s_sqrt_n_over_op: float | None = None) -> float:
    """THEORY C6b: predicted per-layer shrink ``r`` for a divisor ``kind`` (dense: ``k = 1``).

    ``kind`` is the divisor (``sn``: ``sqrt(n)/(sqrt(n) + sqrt(m))`` with ``n = c_in k^2``,
    ``m = c_out``; ``bsn``: ``2 sqrt(n) / (sqrt(c_in k^2) + sqrt(c_out) + sqrt(c_out k^2) +
    sqrt(c_in))``; ``sn-conv``: ``s sqrt(n)/||Conv||_op``, passed as ``s_sqrt_n_over_op``), times
    ``scale`` (the ``c`` of SSN / BSSN; pass 1 for the unscaled schemes).
    """
    n = c_in * k * k
    if kind == "sn":
        r = math.sqrt(n) / (math.sqrt(n) + math.sqrt(c_out))
    elif kind == "bsn":
        r = 2 * math.sqrt(n) / (math.sqrt(c_in * k * k) + math.sqrt(c_out)
                                + math.sqrt(c_out * k * k) + math.sqrt(c_in))
    elif kind == "sn-conv":
        if s_sqrt_n_over_op is None:
            return math.nan
        r = s_sqrt_n_over_op
    else:
        return math.nan
    return r * scale
