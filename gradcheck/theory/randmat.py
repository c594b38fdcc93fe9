"""Random-matrix facts of THEORY C5 and §5: Gaussian operator norms and the Fuss–Catalan law.

- C5 (Gordon / Bai–Yin): for ``W`` ``m x n`` with i.i.d. ``N(0, s^2)`` entries,
  ``s max(E||g_m||, E||g_n||) <= E||W||_op <= s (sqrt m + sqrt n)``
  (:func:`gordon_lower`, :func:`gordon_upper`); :func:`opnorm_finite_size` is the Tracy–Widom
  (Johnstone 2001) estimate of ``E||W||_op`` that explains why finite-size ratios sit below 1.
- §5: the squared singular values of the end-to-end Jacobian of a depth-``L`` deep linear net
  with Gaussian LeCun weights follow, as the width grows, the Fuss–Catalan law with moments
  ``binom((L+1)k, k) / (Lk + 1)`` (:func:`fuss_catalan_moment`) on ``(0, (L+1)^(L+1)/L^L]``
  (:func:`fuss_catalan_edge`). Its density comes from the parametrisation of Haagerup–Möller /
  Neuschel (:func:`fuss_catalan_curve`, :func:`fuss_catalan_density`); :func:`fuss_catalan_cdf`
  and :func:`fuss_catalan_sample` integrate it. :func:`deep_linear_sq_singular_values` simulates
  the finite-width network and :func:`deep_linear_moments` gives its exact finite-width mean
  moments (square layers), which tend to the Fuss–Catalan ones.

Everything is float64 numpy; no torch.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.polynomial.legendre import leggauss

#: Mean of the Tracy–Widom GOE (beta = 1) law, which governs the largest eigenvalue of real
#: Wishart matrices (Johnstone 2001).
TW1_MEAN = -1.2065335745820


# -- C5 ------------------------------------------------------------------------------------------
def expected_gaussian_norm(k: int) -> float:
    """``E||g_k||`` for ``g_k ~ N(0, I_k)``: ``sqrt(2) Gamma((k+1)/2) / Gamma(k/2)`` (chi mean).

    Computed stably: through ``lgamma`` for ``k < 200`` (no overflow of ``Gamma``), and for
    ``k >= 200`` by the asymptotic series of ``Gamma(x + 1/2)/Gamma(x)``, ``x = k/2``, whose
    truncation error there is below 1e-16 relative, while the difference of two ``lgamma``
    values of size ``~k log k`` would lose digits (2e-9 relative at ``k = 1e7``).
    ``k = 1``: ``sqrt(2/pi)``; ``k -> inf``: ``sqrt(k - 1/2)``.

    >>> round(expected_gaussian_norm(1), 12) == round(math.sqrt(2 / math.pi), 12)
    True
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    if k < _SERIES_FROM:
        return math.sqrt(2.0) * math.exp(math.lgamma((k + 1) / 2.0) - math.lgamma(k / 2.0))
    y = 1.0 / (k / 2.0)
    return math.sqrt(k) * (1 + y * (-1 / 8 + y * (1 / 128 + y * (5 / 1024 + y * (
        -21 / 32768 + y * (-399 / 262144))))))


_SERIES_FROM = 200


def gordon_lower(m: int, n: int, s: float = 1.0) -> float:
    """THEORY C5 lower bound ``s max(E||g_m||, E||g_n||)`` on ``E||W||_op`` (``W`` is ``m x n``).

    It holds because ``||W||_op`` is at least the norm of any column (``s g_m`` in law) and of
    any row (``s g_n``); with ``m = 1`` or ``n = 1`` it is an equality.
    """
    return s * max(expected_gaussian_norm(m), expected_gaussian_norm(n))


def gordon_upper(m: int, n: int, s: float = 1.0) -> float:
    """THEORY C5 upper bound (Gordon) ``s (sqrt m + sqrt n)`` on ``E||W||_op``; the Bai–Yin limit
    of ``||W||_op`` as ``m, n`` grow with ``m/n`` fixed."""
    return s * (math.sqrt(m) + math.sqrt(n))


def opnorm_finite_size(m: int, n: int, s: float = 1.0) -> float:
    """Tracy–Widom estimate of ``E||W||_op`` for an ``m x n`` Gaussian ``N(0, s^2)`` matrix.

    Johnstone (2001): ``lambda_max(W^T W)/s^2 ~ mu + sigma TW1`` with
    ``mu = (sqrt(m') + sqrt(n'))^2``, ``sigma = sqrt(mu) (1/sqrt(m') + 1/sqrt(n'))^(1/3)``,
    ``m' = m - 1/2``, ``n' = n - 1/2``; to first order
    ``E||W||_op ~ s [sqrt(m') + sqrt(n') + (1/2) (1/sqrt(m') + 1/sqrt(n'))^(1/3) E[TW1]]``.
    An asymptotic estimate (accurate to ~1% for ``min(m, n) >= 8``; not a bound); it is below
    :func:`gordon_upper` and quantifies THEORY C5's "finite-size values are slightly below 1".
    """
    a, b = m - 0.5, n - 0.5
    if min(a, b) <= 0:
        raise ValueError(f"opnorm_finite_size needs m, n >= 1; got m={m}, n={n}")
    ra, rb = math.sqrt(a), math.sqrt(b)
    return s * (ra + rb + 0.5 * (1 / ra + 1 / rb) ** (1 / 3) * TW1_MEAN)


# -- §5: Fuss–Catalan ---------------------------------------------------------------------------
def fuss_catalan_moment(L: int, k: int) -> int:
    """``m_k = binom((L+1)k, k) / (Lk + 1)`` (an integer): ``m_0 = m_1 = 1``, ``m_2 = L + 1``.

    ``L = 1`` gives the Catalan numbers (Marchenko–Pastur, ratio 1); ``L = 0`` the point mass
    at 1.

    >>> [fuss_catalan_moment(2, k) for k in range(5)]
    [1, 1, 3, 12, 55]
    """
    if L < 0 or k < 0:
        raise ValueError(f"L and k must be >= 0; got L={L}, k={k}")
    num = math.comb((L + 1) * k, k)
    q, r = divmod(num, L * k + 1)
    assert r == 0, "Fuss-Catalan numbers are integers"
    return q


def fuss_catalan_edge(L: int) -> float:
    """Right end of the support, ``(L+1)^(L+1) / L^L`` (``L = 0``: 1; ``L = 1``: 4)."""
    if L < 0:
        raise ValueError(f"L must be >= 0; got {L}")
    if L == 0:
        return 1.0
    return math.exp((L + 1) * math.log(L + 1) - L * math.log(L))


def _x_of_phi(L: int, phi: np.ndarray) -> np.ndarray:
    s = L + 1
    return np.sin(s * phi) ** s / (np.sin(phi) * np.sin(L * phi) ** L)


def _density_of_phi(L: int, phi: np.ndarray) -> np.ndarray:
    s = L + 1
    return np.sin(phi) ** 2 * np.sin(L * phi) ** (L - 1) / (math.pi * np.sin(s * phi) ** L)


def _dx_dphi(L: int, phi: np.ndarray) -> np.ndarray:
    s = L + 1
    dlog = s * s / np.tan(s * phi) - 1 / np.tan(phi) - L * L / np.tan(L * phi)
    return _x_of_phi(L, phi) * dlog


def _check_L(L: int) -> None:
    if L < 1:
        raise ValueError(f"the Fuss-Catalan density needs depth L >= 1 (L = 0 is the point mass "
                         f"at 1); got L={L}")


def fuss_catalan_curve(L: int, n_points: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """``(x, density)`` along the exact parametrisation, for plotting, ``x`` ascending.

    With ``s = L + 1`` and ``0 < phi < pi/s`` (Haagerup–Möller 2012; Neuschel 2014):
    ``x(phi) = sin(s phi)^s / (sin(phi) sin(L phi)^L)`` (decreasing from the edge to 0) and
    ``density(x(phi)) = sin(phi)^2 sin(L phi)^(L-1) / (pi sin(s phi)^L)``. ``L = 1`` is
    Marchenko–Pastur ``sqrt((4 - x)/x) / (2 pi)``. The density blows up like ``x^(-L/(L+1))``
    at 0 and vanishes like a square root at the edge.
    """
    _check_L(L)
    phi = np.linspace(0, math.pi / (L + 1), n_points + 2)[1:-1][::-1]
    return _x_of_phi(L, phi), _density_of_phi(L, phi)


def _phi_of_x(L: int, x: np.ndarray, iterations: int = 80) -> np.ndarray:
    """Invert the decreasing ``x(phi)`` on ``(0, pi/(L+1))`` by bisection (vectorised)."""
    lo = np.zeros_like(x)
    hi = np.full_like(x, math.pi / (L + 1))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = _x_of_phi(L, mid) > x          # x(mid) too large -> the root is at larger phi
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return 0.5 * (lo + hi)


def fuss_catalan_density(L: int, x) -> np.ndarray:
    """Density of the Fuss–Catalan law of depth ``L`` at ``x`` (0 outside ``(0, edge)``)."""
    _check_L(L)
    x = np.asarray(x, dtype=np.float64)
    inside = (x > 0) & (x < fuss_catalan_edge(L))
    out = np.zeros_like(x)
    if np.any(inside):
        out[inside] = _density_of_phi(L, _phi_of_x(L, x[inside]))
    return out


def _phi_quadrature(L: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``phi`` and weights ``w`` with ``E[f(X)] = sum w f(x(phi))`` (Gauss–Legendre).

    The measure in ``phi`` has the smooth weight ``density(x(phi)) |x'(phi)|``, so the rule is
    exact to near machine precision for moderate ``n``.
    """
    t, w = leggauss(n)
    half = math.pi / (2 * (L + 1))
    phi = half * (t + 1)
    return phi, half * w * _density_of_phi(L, phi) * -_dx_dphi(L, phi)


def fuss_catalan_numeric_moment(L: int, k: int, n: int = 200) -> float:
    """``E[X^k]`` by quadrature of the density (checks the density against
    :func:`fuss_catalan_moment`)."""
    _check_L(L)
    phi, w = _phi_quadrature(L, n)
    return float(np.sum(w * _x_of_phi(L, phi) ** k))


def fuss_catalan_cdf(L: int, x, n_grid: int = 4096) -> np.ndarray:
    """``P(X <= x)``, by trapezoidal integration in ``phi`` on ``n_grid`` points (error ~1e-7)."""
    _check_L(L)
    grid_x, grid_F = _cdf_table(L, n_grid)
    return np.interp(np.asarray(x, dtype=np.float64), grid_x, grid_F, left=0.0, right=1.0)


def _cdf_table(L: int, n_grid: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, F(x))`` on a grid, ``x`` ascending from 0 to the edge."""
    phi = np.linspace(0, math.pi / (L + 1), n_grid + 1)
    inner = phi[1:-1]
    g = np.concatenate([[0.0], _density_of_phi(L, inner) * -_dx_dphi(L, inner), [0.0]])
    # g is smooth on [0, pi/s]; its end values are limits, filled in by linear extrapolation.
    g[0], g[-1] = 2 * g[1] - g[2], 2 * g[-2] - g[-3]
    mass_from_edge = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(phi))])
    F = 1.0 - mass_from_edge / mass_from_edge[-1]          # F(x(phi)), x decreasing in phi
    x = np.concatenate([[fuss_catalan_edge(L)], _x_of_phi(L, inner), [0.0]])
    return x[::-1], F[::-1]


def fuss_catalan_sample(L: int, size: int, rng: np.random.Generator,
                        n_grid: int = 4096) -> np.ndarray:
    """``size`` i.i.d. draws of the Fuss–Catalan law of depth ``L`` (inverse CDF)."""
    grid_x, grid_F = _cdf_table(L, n_grid)
    return np.interp(rng.random(size), grid_F, grid_x)


# -- §5: the finite deep linear network ---------------------------------------------------------
def deep_linear_sq_singular_values(L: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Squared singular values ``(n,)`` of ``J = W_L ... W_1``, ``W_i`` i.i.d. ``N(0, 1/n)``.

    This is the input-output Jacobian of a depth-``L``, width-``n`` bias-free linear net with
    Gaussian LeCun weights (THEORY §5). ``L = 0`` is the identity.
    """
    J = np.eye(n)
    for _ in range(L):
        J = (rng.standard_normal((n, n)) / math.sqrt(n)) @ J
    return np.linalg.svd(J, compute_uv=False) ** 2


def deep_linear_moments(L: int, n: int) -> tuple[float, float, float]:
    """Exact ``(E m_1, E m_2, Var m_1)`` at finite width ``n``, for
    :func:`deep_linear_sq_singular_values`.

    ``m_k = tr((J J^T)^k) / n``. With ``A = J_{L-1} J_{L-1}^T`` and ``W ~ N(0, 1/n)``, Wick's
    theorem gives ``E[tr(W A W^T)^2 | A] = (tr A)^2/n + (1 + 1/n) tr A^2`` and
    ``Var[tr(W A W^T)/n | A] = 2 tr(A^2) / n^3``, hence the recursions
    ``E m_1 = 1``, ``E m_2(L) = 1 + Var m_1(L-1) + (1 + 1/n) E m_2(L-1)``,
    ``Var m_1(L) = Var m_1(L-1) + 2 E m_2(L-1) / n^2``, from ``m_2(0) = 1``, ``Var m_1(0) = 0``.
    As ``n -> inf``, ``E m_2 -> L + 1`` (Fuss–Catalan).
    """
    m2, v1 = 1.0, 0.0
    for _ in range(L):
        m2, v1 = 1.0 + v1 + (1.0 + 1.0 / n) * m2, v1 + 2.0 * m2 / n ** 2
    return 1.0, m2, v1


__all__ = ["TW1_MEAN", "expected_gaussian_norm", "gordon_lower", "gordon_upper",
           "opnorm_finite_size", "fuss_catalan_moment", "fuss_catalan_edge",
           "fuss_catalan_curve", "fuss_catalan_density", "fuss_catalan_numeric_moment",
           "fuss_catalan_cdf", "fuss_catalan_sample", "deep_linear_sq_singular_values",
           "deep_linear_moments"]
