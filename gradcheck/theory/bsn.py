"""BSN / BSSN versus Xavier (THEORY C9) and the gradient-control summary of C9.

- C9a (identity, checked in ``proofs_numeric/c9_bsn.py``): dense layers have
  ``sigma_R == sigma_R2``, so BSN == SN and BSSN == SSN exactly.
- C9b (prediction): BSN's effective per-entry std ``c s / ((sigma_R + sigma_R2)/2)`` is, by C5,
  ``2c / (sqrt(c_in k^2) + sqrt(c_out) + sqrt(c_out k^2) + sqrt(c_in))`` — Xavier's
  ``sqrt(2/(fan_in + fan_out))`` times a per-layer constant (:func:`bsn_xavier_constant`), just as
  SN's is LeCun's times the shrink ``r`` of C6b.
- "BSSN gives better gradient control than SN" is reported, never asserted, as the pair
  (:func:`gradient_control`): spread ``max_l / min_l`` of per-layer gradient norms and
  ``sum_l |log chi_l|`` of the mean-field gains of C7.

Pure float functions; kernels are square (``k x k``) as in THEORY C6b.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def xavier_std(fan_in: int, fan_out: int) -> float:
    """Xavier/Glorot per-entry std ``sqrt(2 / (fan_in + fan_out))`` (THEORY §1).

    >>> xavier_std(64, 64) == 0.125
    True
    """
    if fan_in < 1 or fan_out < 1:
        raise ValueError(f"fan_in and fan_out must be >= 1; got {fan_in}, {fan_out}")
    return math.sqrt(2.0 / (fan_in + fan_out))


def bsn_divisor(c_in: int, c_out: int, k: int = 1, s: float = 1.0) -> float:
    """C5 prediction of BSN's divisor ``(sigma_R + sigma_R2)/2`` for an i.i.d. ``N(0, s^2)`` kernel
    ``(c_out, c_in, k, k)``:
    ``s (sqrt(c_in k^2) + sqrt(c_out) + sqrt(c_out k^2) + sqrt(c_in)) / 2``.
    """
    return s * (math.sqrt(c_in * k * k) + math.sqrt(c_out) + math.sqrt(c_out * k * k)
                + math.sqrt(c_in)) / 2.0


def bsn_effective_std(c_in: int, c_out: int, k: int = 1, scale: float = 1.0,
                      sigma: float | None = None, s: float = 1.0) -> float:
    """Per-entry std of BSN's (``scale = 1``) or BSSN's (``scale = c``) weight (THEORY C9b).

    The weight used is ``c W / sigma`` with ``W`` i.i.d. ``N(0, s^2)``, so its per-entry std is
    ``c s / sigma``. With ``sigma=None`` the C5 prediction :func:`bsn_divisor` is used (then the
    result does not depend on ``s``); pass the realised divisor of the raw weight and its std
    ``s`` to get the realised value.
    """
    divisor = bsn_divisor(c_in, c_out, k, s) if sigma is None else sigma
    return scale * s / divisor


def bsn_xavier_constant(c_in: int, c_out: int, k: int = 1) -> float:
    """THEORY C9b per-layer constant: predicted BSN effective std / Xavier std.

    ``= 2 sqrt((fan_in + fan_out)/2) /
    (sqrt(c_in k^2) + sqrt(c_out) + sqrt(c_out k^2) + sqrt(c_in))``
    with ``fan_in = c_in k^2``, ``fan_out = c_out k^2``. Square layers (``c_in = c_out``):
    ``k / (k + 1)`` (1/2 dense, 3/4 for 3x3, 4/5 for 4x4).

    >>> bsn_xavier_constant(64, 64, 4)
    0.8
    """
    return bsn_effective_std(c_in, c_out, k) / xavier_std(c_in * k * k, c_out * k * k)


def sn_lecun_constant(c_in: int, c_out: int, k: int = 1) -> float:
    """The SN analogue (THEORY C6b): predicted SN effective std / LeCun std ``1/sqrt(fan_in)``,
    i.e. the shrink ``r = sqrt(n)/(sqrt(n) + sqrt(c_out))``, ``n = c_in k^2``."""
    n = c_in * k * k
    return math.sqrt(n) / (math.sqrt(n) + math.sqrt(c_out))


def effective_std(weight) -> float:
    """Realised per-entry root-mean-square of a weight tensor: ``||W||_F / sqrt(numel)``."""
    w = np.asarray(weight, dtype=np.float64)
    return float(np.sqrt(np.mean(w * w)))


def gradient_control(grad_norms_per_layer: Sequence[float],
                     chi_per_layer: Sequence[float]) -> tuple[float, float]:
    """THEORY C9's two gradient-control numbers (report them; never assert either).

    Args:
        grad_norms_per_layer: ``(L,)`` per-layer gradient norms (e.g. rms ``||dD/dW_l||_F``).
        chi_per_layer: ``(L,)`` mean-field backward gains ``chi_l`` (C7).

    Returns:
        ``(max_l g_l / min_l g_l, sum_l |log chi_l|)``: 1 and 0 mean perfectly balanced layers
        and critical propagation. The spread is ``inf`` if some layer's norm is 0.
    """
    g = np.asarray(grad_norms_per_layer, dtype=np.float64)
    chi = np.asarray(chi_per_layer, dtype=np.float64)
    if g.size == 0 or chi.size == 0:
        raise ValueError("gradient_control needs at least one layer")
    if np.any(g < 0) or np.any(chi <= 0):
        raise ValueError("gradient norms must be >= 0 and gains chi > 0")
    lo = float(g.min())
    spread = float(g.max()) / lo if lo > 0 else math.inf
    return spread, float(np.sum(np.abs(np.log(chi))))


__all__ = ["xavier_std", "bsn_divisor", "bsn_effective_std", "bsn_xavier_constant",
           "sn_lecun_constant", "effective_std", "gradient_control"]
