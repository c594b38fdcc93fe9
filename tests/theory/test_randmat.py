"""Tests for gradcheck/theory/randmat.py: THEORY C5 (Gordon bounds) and §5 (Fuss–Catalan).

Known answers (closed forms, Catalan numbers, Marchenko–Pastur), property tests of the bounds,
and Monte-Carlo comparisons whose tolerances are derived from the sample size (stated per test).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from gradcheck.theory.randmat import (
    deep_linear_moments,
    deep_linear_sq_singular_values,
    expected_gaussian_norm,
    fuss_catalan_cdf,
    fuss_catalan_curve,
    fuss_catalan_density,
    fuss_catalan_edge,
    fuss_catalan_moment,
    fuss_catalan_numeric_moment,
    fuss_catalan_sample,
    gordon_lower,
    gordon_upper,
    opnorm_finite_size,
)

pytestmark = pytest.mark.usefixtures("single_blas_thread")

EPS = float(np.finfo(np.float64).eps)
Z = 5.0   # Monte-Carlo tolerances: Z standard errors (two-sided normal tail ~6e-7)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


# -- C5: E||g_k|| and the Gordon bounds ------------------------------------------------------
@pytest.mark.parametrize("k, want", [(1, math.sqrt(2 / math.pi)), (2, math.sqrt(math.pi / 2)),
                                     (3, 2 * math.sqrt(2 / math.pi)),
                                     (4, 3 * math.sqrt(math.pi / 2) / 2)])
def test_expected_gaussian_norm_closed_forms(k, want):
    assert abs(expected_gaussian_norm(k) / want - 1) <= 10 * EPS, (k, expected_gaussian_norm(k))


def test_expected_gaussian_norm_large_k_is_stable():
    """lgamma keeps it finite where Gamma overflows (k > 343); E||g_k|| = sqrt(k - 1/2) +
    O(k^-3/2) (Wendel)."""
    for k in (400, 10**4, 10**7):
        got = expected_gaussian_norm(k)
        assert math.isfinite(got) and abs(got - math.sqrt(k - 0.5)) <= 1.0 / k ** 1.5, (k, got)


def test_expected_gaussian_norm_lgamma_and_series_branches_agree():
    """At the switch (k = 200) the lgamma branch is still accurate to ~1e-14, and on both sides
    the exact identity ``E||g_k|| E||g_{k+1}|| = k`` (from ``Gamma(x+1) = x Gamma(x)``) holds."""
    lg = math.sqrt(2.0) * math.exp(math.lgamma(201 / 2.0) - math.lgamma(200 / 2.0))
    assert abs(expected_gaussian_norm(200) / lg - 1) <= 1e-13
    for k in (1, 10, 199, 200, 201, 5000, 10**6):
        prod = expected_gaussian_norm(k) * expected_gaussian_norm(k + 1)
        assert abs(prod / k - 1) <= 100 * EPS, (k, prod / k - 1)


@settings(max_examples=200, deadline=None)
@given(k=st.integers(1, 10**6))
def test_expected_gaussian_norm_between_k_over_sqrt_k_plus_1_and_sqrt_k(k):
    """Known bounds ``k / sqrt(k + 1) <= E||g_k|| <= sqrt(k)`` (Jensen; Chu 1955)."""
    got = expected_gaussian_norm(k)
    assert k / math.sqrt(k + 1) * (1 - 10 * EPS) <= got <= math.sqrt(k) * (1 + 10 * EPS), (k, got)


@pytest.mark.parametrize("k", [1, 3, 50])
def test_expected_gaussian_norm_vs_monte_carlo(k, rng):
    """200 000 draws of ||g_k||; tolerance Z standard errors with Var||g|| = k - E||g||^2."""
    n = 200_000
    mc = np.sqrt(rng.chisquare(k, n)).mean()
    mean = expected_gaussian_norm(k)
    se = math.sqrt((k - mean ** 2) / n)
    assert abs(mc - mean) <= Z * se, f"k={k}: MC {mc} vs {mean}, {abs(mc - mean) / se:.1f} SE"


def test_expected_gaussian_norm_rejects_k_below_1():
    with pytest.raises(ValueError, match="positive"):
        expected_gaussian_norm(0)


@settings(max_examples=200, deadline=None)
@given(m=st.integers(1, 5000), n=st.integers(1, 5000), s=st.floats(1e-3, 1e3))
def test_gordon_lower_leq_upper(m, n, s):
    """The C5 sandwich is non-empty: ``max(E||g_m||, E||g_n||) <= sqrt m <= sqrt m + sqrt n``."""
    assert gordon_lower(m, n, s) <= gordon_upper(m, n, s) * (1 + 10 * EPS)
    assert gordon_lower(m, n, s) == gordon_lower(n, m, s)
    assert gordon_upper(m, n, s) == pytest.approx(s * (math.sqrt(m) + math.sqrt(n)), rel=4 * EPS)


def test_gordon_lower_is_exact_for_vectors(rng):
    """n = 1: ``||W||_op = ||column|| = s ||g_m||``, so the lower bound is E||W||_op itself."""
    m, s, n_draws = 7, 2.5, 100_000
    W = s * rng.standard_normal((n_draws, m, 1))
    ops = np.linalg.norm(W[:, :, 0], axis=1)
    se = ops.std() / math.sqrt(n_draws)
    assert abs(ops.mean() - gordon_lower(m, 1, s)) <= Z * se


@pytest.mark.parametrize("m, n", [(16, 16), (32, 96), (64, 64), (128, 32)])
def test_opnorm_finite_size_vs_monte_carlo(m, n, rng):
    """The Tracy–Widom estimate is within 1% of the mean of 64 draws (+ Z SE), below the bound."""
    R = 64
    ops = np.linalg.norm(rng.standard_normal((R, m, n)), ord=2, axis=(1, 2))
    est = opnorm_finite_size(m, n)
    tol = 0.01 * est + Z * ops.std(ddof=1) / math.sqrt(R)
    assert abs(ops.mean() - est) <= tol, \
        f"({m},{n}): MC {ops.mean():.4f} vs TW {est:.4f}, tol {tol:.4f}"
    assert est < gordon_upper(m, n)


# -- §5: Fuss–Catalan ---------------------------------------------------------------------------
def test_fuss_catalan_moment_known_values():
    assert [fuss_catalan_moment(1, k) for k in range(8)] == [1, 1, 2, 5, 14, 42, 132, 429]
    assert [fuss_catalan_moment(2, k) for k in range(6)] == [1, 1, 3, 12, 55, 273]
    assert [fuss_catalan_moment(3, k) for k in range(5)] == [1, 1, 4, 22, 140]
    assert [fuss_catalan_moment(0, k) for k in range(5)] == [1] * 5      # point mass at 1


@given(L=st.integers(0, 60))
def test_fuss_catalan_first_two_moments(L):
    assert fuss_catalan_moment(L, 1) == 1 and fuss_catalan_moment(L, 2) == L + 1


def test_fuss_catalan_edge_known_values():
    assert fuss_catalan_edge(0) == 1.0
    assert fuss_catalan_edge(1) == pytest.approx(4.0, rel=4 * EPS)
    assert fuss_catalan_edge(2) == pytest.approx(27 / 4, rel=4 * EPS)
    assert fuss_catalan_edge(3) == pytest.approx(256 / 27, rel=4 * EPS)
    assert fuss_catalan_edge(200) == pytest.approx(201 * math.e, rel=1e-2)   # ~ (L+1) e


def test_fuss_catalan_density_is_marchenko_pastur_at_depth_1():
    x = np.linspace(1e-3, 4 - 1e-3, 101)
    want = np.sqrt((4 - x) / x) / (2 * math.pi)
    np.testing.assert_allclose(fuss_catalan_density(1, x), want, rtol=1e-10, atol=0)


@pytest.mark.parametrize("L", [1, 2, 3, 5, 8])
def test_fuss_catalan_density_has_the_fuss_catalan_moments(L):
    """Gauss–Legendre quadrature of ``x^k density`` reproduces m_0..m_5 to 1e-10 relative."""
    for k in range(6):
        got = fuss_catalan_numeric_moment(L, k)
        want = fuss_catalan_moment(L, k)
        assert abs(got / want - 1) <= 1e-10, f"L={L} k={k}: {got} vs {want}"


@pytest.mark.parametrize("L", [1, 2, 4])
def test_fuss_catalan_density_curve_and_pointwise_agree(L):
    x, dens = fuss_catalan_curve(L, 200)
    assert np.all(np.diff(x) > 0) and x[0] > 0 and x[-1] < fuss_catalan_edge(L)
    assert np.all(np.isfinite(dens)) and np.all(dens > 0)
    np.testing.assert_allclose(fuss_catalan_density(L, x), dens, rtol=1e-9, atol=0)
    outside = fuss_catalan_density(L, np.array([-1.0, 0.0, fuss_catalan_edge(L), 1e3]))
    assert np.all(outside == 0)
    near0 = fuss_catalan_density(L, np.array([1e-6, 1e-8]))      # ~ x^(-L/(L+1)) blow-up
    assert near0[1] / near0[0] == pytest.approx(100 ** (L / (L + 1)), rel=0.05)


def test_fuss_catalan_density_rejects_depth_0():
    with pytest.raises(ValueError, match="L >= 1"):
        fuss_catalan_density(0, [0.5])


def test_fuss_catalan_cdf_is_marchenko_pastur_cdf_at_depth_1():
    xs = [0.1, 0.5, 1.0, 2.0, 3.5]
    want = [quad(lambda t: math.sqrt((4 - t) / t) / (2 * math.pi), 0, x)[0] for x in xs]
    np.testing.assert_allclose(fuss_catalan_cdf(1, xs), want, rtol=0, atol=1e-6)
    F = fuss_catalan_cdf(3, np.linspace(-1, 12, 500))
    assert F[0] == 0 and F[-1] == 1 and np.all(np.diff(F) >= 0)


@pytest.mark.parametrize("L", [1, 3])
def test_fuss_catalan_sample_moments(L, rng):
    """500 000 inverse-CDF draws: mean and second moment within Z SE (SE from m_2, m_4)."""
    n = 500_000
    s = fuss_catalan_sample(L, n, rng)
    m = [fuss_catalan_moment(L, k) for k in range(5)]
    se1, se2 = math.sqrt((m[2] - 1) / n), math.sqrt((m[4] - m[2] ** 2) / n)
    assert abs(s.mean() - 1) <= Z * se1, (s.mean(), se1)
    assert abs((s ** 2).mean() - m[2]) <= Z * se2, ((s ** 2).mean(), se2)
    assert s.min() >= 0 and s.max() <= fuss_catalan_edge(L)


# -- §5: finite deep linear networks ------------------------------------------------------------
def test_deep_linear_moments_known_values():
    assert deep_linear_moments(0, 10) == (1.0, 1.0, 0.0)
    _, m2, v1 = deep_linear_moments(1, 50)       # Wishart: E tr(X^2)/n = 2 + 1/n
    assert m2 == pytest.approx(2 + 1 / 50, rel=4 * EPS) and v1 == pytest.approx(2 / 50 ** 2)
    for L in (1, 3, 10):                          # n -> infinity: Fuss–Catalan m_2 = L + 1
        assert deep_linear_moments(L, 10**7)[1] == pytest.approx(L + 1, rel=1e-5)


@pytest.mark.parametrize("L, n", [(1, 4), (3, 4), (2, 6)])
def test_deep_linear_moments_exact_at_tiny_width(L, n, rng):
    """The Wick recursion against brute force: 40 000 networks of width n (where the 1/n
    corrections are large); means within Z SE (sample SE)."""
    R = 40_000
    J = np.broadcast_to(np.eye(n), (R, n, n))
    for _ in range(L):
        J = rng.standard_normal((R, n, n)) / math.sqrt(n) @ J
    A = J @ J.transpose(0, 2, 1)
    m1 = np.trace(A, axis1=1, axis2=2) / n
    m2 = np.trace(A @ A, axis1=1, axis2=2) / n
    e1, e2, v1 = deep_linear_moments(L, n)
    assert abs(m1.mean() - e1) <= Z * math.sqrt(v1 / R), (m1.mean(), v1)
    assert abs(m2.mean() - e2) <= Z * m2.std(ddof=1) / math.sqrt(R), (m2.mean(), e2)
    assert m1.var() == pytest.approx(v1, rel=0.1)     # rel. SE of a variance ~ sqrt(2/R)·kurtosis


@pytest.mark.parametrize("L", [1, 2, 4])
def test_simulated_deep_linear_net_matches_fuss_catalan(L, rng):
    """THEORY §5 on a large simulated LeCun deep linear net: width n = 256, R = 8 networks.

    m_1: E = 1 exactly; tolerance Z sqrt(Var m_1 / R) with the exact variance.
    m_2: Fuss–Catalan says L + 1; the exact finite-width mean differs by the bias
    ``deep_linear_moments - (L + 1)`` (~L^2/(2n)); tolerance |bias| + Z sample-SE.
    The spectral CDF: finite-n deviation is O(1/n) (eigenvalue rigidity; measured 1-1.3/n at
    L <= 4, n = 64 and 256); allowed 3/n.
    """
    n, R = 256, 8
    ev = [deep_linear_sq_singular_values(L, n, rng) for _ in range(R)]
    m1 = np.array([e.mean() for e in ev])
    m2 = np.array([(e ** 2).mean() for e in ev])
    _, e2, v1 = deep_linear_moments(L, n)
    assert abs(m1.mean() - 1) <= Z * math.sqrt(v1 / R), f"L={L}: mean m1 {m1.mean()}"
    tol2 = abs(e2 - (L + 1)) + Z * m2.std(ddof=1) / math.sqrt(R)
    assert abs(m2.mean() - (L + 1)) <= tol2, f"L={L}: mean m2 {m2.mean()} vs {L + 1}, tol {tol2}"
    xs = np.sort(np.concatenate(ev))
    emp = np.arange(1, xs.size + 1) / xs.size
    ks = np.max(np.abs(fuss_catalan_cdf(L, xs) - emp))
    assert ks <= 3 / n, f"L={L}: sup|F_n - F| = {ks} > {3 / n}"
