"""THEORY C5: the operator norm of an ``m x n`` Gaussian ``N(0, s^2)`` matrix.

C5 bounds an *expectation*, ``s max(E||g_m||, E||g_n||) <= E||W||_op <= s (sqrt m + sqrt n)``,
so a finite sample cannot check it exactly. What is asserted, per instance of ``R`` draws with
Monte-Carlo mean ``M``:

- ``C5`` lower: ``gordon_lower <= M + t`` and upper: ``M - t <= gordon_upper``, with the margin
  ``t = s sqrt(2 ln(2/delta) / R)``, ``delta = 1e-6``. This margin is derived, not tuned:
  ``||W||_op`` is ``s``-Lipschitz in the standard-normal draw ``Z``, so ``M`` is
  ``s/sqrt(R)``-Lipschitz in the ``R`` draws together and by Gaussian concentration
  ``P(|M - E||W||_op| > t) <= 2 exp(-R t^2 / (2 s^2)) = delta``. If C5 is true a row fails with
  probability at most 1e-6. (For ``m = 1`` or ``n = 1`` the lower bound is an equality, so this
  is the only honest form.) Rows report ``lhs = bound`` vs ``rhs = M + t`` (lower) and
  ``lhs = M - t`` vs ``rhs = bound`` (upper).
- ``C5`` per draw (deterministic, what makes the lower bound true): ``||W||_op`` is at least the
  largest column and row norm of every draw; ``lhs`` = that norm, ``rhs = ||W||_op`` at the draw
  with the largest ratio, slack ``10 max(m, n) eps`` for the SVD.
- ``C5-ratio`` (prediction, not asserted): ``M / (s (sqrt m + sqrt n))`` — tends to 1 (Bai–Yin)
  and is below 1 at finite size; the note gives the Tracy–Widom estimate
  :func:`gradcheck.theory.randmat.opnorm_finite_size` divided by the same bound. Only for
  ``min(m, n) >= RATIO_MIN_DIM`` = 8: the limit statement says nothing about a vector (where
  the ratio is ``E||g_m|| / (sqrt m + 1)``, e.g. 0.4 for ``m = 1``).

This is the one claim whose check is an expectation over many draws, not a statement about one
probed model: :mod:`gradcheck.claims.c5_gaussian_opnorm` checks a model's layers one draw at a
time (its ``C5-ratio`` rows) and leaves C5 itself to this module. Both compare with the same
functions: Gordon's bounds of :mod:`gradcheck.theory.randmat` and the C5-ratio value
:func:`gradcheck.theory.meanfield.gaussian_opnorm` (the one the claims' rows divide by).
"""
from __future__ import annotations

import math

import numpy as np

from gradcheck.theory.meanfield import gaussian_opnorm
from gradcheck.theory.randmat import gordon_lower, gordon_upper, opnorm_finite_size

from ._base import inequality, prediction

CLAIMS = {"C5": "inequality", "C5-ratio": "prediction"}
DELTA = 1e-6          # per-row false-alarm probability of the Monte-Carlo inequality rows
EPS = float(np.finfo(np.float64).eps)
RATIO_MIN_DIM = 8


def concentration_margin(s: float, draws: int, delta: float = DELTA) -> float:
    """``t`` with ``P(|mean of draws ||W||_op - E||W||_op| > t) <= delta`` (Gaussian
    concentration of an ``s``-Lipschitz function of ``draws`` independent Gaussian matrices)."""
    return s * math.sqrt(2.0 * math.log(2.0 / delta) / draws)


def sample(rng: np.random.Generator) -> dict:
    # log-uniform sizes 1..256, so that vectors (m or n = 1), tall, wide and square all occur
    m, n = (int(round(math.exp(rng.uniform(0, math.log(256))))) for _ in range(2))
    return dict(m=m, n=n, s=float(math.exp(rng.uniform(math.log(0.01), math.log(100.0)))),
                draws=int(rng.integers(16, 49)), seed=int(rng.integers(0, 2**31)))


def draws(p: dict) -> np.ndarray:
    """``(R, m, n)`` Gaussian matrices of the instance (float64)."""
    rng = np.random.default_rng(p["seed"])
    return p["s"] * rng.standard_normal((p["draws"], p["m"], p["n"]))


def instance(p: dict) -> list:
    """The instance's rows (the runner pins one torch/BLAS thread: these problems are small)."""
    m, n, s, R = p["m"], p["n"], p["s"], p["draws"]
    W = draws(p)
    ops = np.linalg.norm(W, ord=2, axis=(1, 2))
    M, t = float(ops.mean()), concentration_margin(s, R)
    lo, hi = gordon_lower(m, n, s), gordon_upper(m, n, s)
    note = f"mean of R={R} draws, margin t={t:.3g} (delta={DELTA:g})"
    lines = np.maximum(np.linalg.norm(W, axis=1).max(axis=1), np.linalg.norm(W, axis=2).max(axis=1))
    j = int(np.argmax(lines / ops))
    rows = [
        inequality("C5", lo, M + t, 0.0, p, "lower: s max(E||g_m||, E||g_n||) <= E||W||_op; "
                   + note),
        inequality("C5", M - t, hi, 0.0, p, "upper: E||W||_op <= s(sqrt m + sqrt n); " + note),
        inequality("C5", lines[j], ops[j], 10 * max(m, n) * EPS, p,
                   "per draw: max column/row norm <= ||W||_op (worst draw)"),
    ]
    if min(m, n) >= RATIO_MIN_DIM:
        pred = gaussian_opnorm(m, n, s)
        tw = opnorm_finite_size(m, n, s) / pred
        rows.append(prediction("C5-ratio", M, pred, p, f"mean ||W||_op / s(sqrt m + sqrt n) "
                               f"over R={R}; Tracy-Widom estimate {tw:.4f}"))
    return rows
