"""Tests for gradcheck/theory/meanfield.py (THEORY C6b, C7): closed forms, quadrature vs Monte
Carlo (sample sizes stated), the recursions on chains with known answers, and the C6b reference
values of THEORY for the CIFAR-10 discriminator (derived from its shapes)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck.models import SNGAN_CONVS
from gradcheck.theory.meanfield import (
    gauss_mean,
    gaussian_opnorm,
    kappas,
    output_d,
    predict,
    shrink_prediction,
)
from gradcheck.theory.randmat import gordon_upper

pytestmark = pytest.mark.usefixtures("single_blas_thread")

EPS = float(np.finfo(np.float64).eps)
Z = 5.0     # Monte-Carlo tolerance in standard errors


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


# -- quadrature and kappas ----------------------------------------------------------------------
@pytest.mark.parametrize("q", [1e-3, 0.5, 1.0, 7.0])
def test_gauss_mean_exact_on_polynomials(q):
    """Gaussian moments E[z^2] = q, E[z^4] = 3 q^2, E[z^3] = 0, E[1] = 1 to ~1e-14."""
    assert gauss_mean(lambda z: z ** 2, q) == pytest.approx(q, rel=100 * EPS)
    assert gauss_mean(lambda z: z ** 4, q) == pytest.approx(3 * q * q, rel=100 * EPS)
    assert gauss_mean(lambda z: z ** 3, q) == pytest.approx(0.0, abs=100 * EPS * q ** 1.5)
    assert gauss_mean(lambda z: np.ones_like(z), q) == pytest.approx(1.0, rel=100 * EPS)


def test_kappas_closed_forms():
    assert kappas("relu", 0.3, 2.0) == (0.5, 0.5)
    assert kappas("linear", 0.3, 2.0) == (1.0, 1.0)
    assert kappas("lrelu", 0.2, 2.0) == pytest.approx(((1 + 0.04) / 2,) * 2, rel=4 * EPS)
    with pytest.raises(ValueError, match="unknown activation"):
        kappas("gelu", 0.0, 1.0)


@settings(max_examples=50, deadline=None)
@given(slope=st.floats(0.0, 1.0), q=st.floats(1e-3, 1e3))
def test_kappas_piecewise_linear_match_their_definition(slope, q):
    """E[a(z)^2]/E[z^2] and E[a'(z)^2] by quadrature (a' = 1 or slope) equal (1+slope^2)/2."""
    fwd, bwd = kappas("lrelu", slope, q)
    a = lambda z: np.where(z > 0, z, slope * z)                       # noqa: E731
    # a'(z)^2 jumps at 0, which is a node of the symmetric rule: give it the mean of both sides
    da2 = lambda z: np.where(z > 0, 1.0, np.where(z < 0, slope * slope,  # noqa: E731
                                                  (1 + slope * slope) / 2))
    assert gauss_mean(lambda z: a(z) ** 2, q) / q == pytest.approx(fwd, rel=1e-12)
    assert gauss_mean(da2, q) == pytest.approx(bwd, rel=1e-12)
    assert fwd == bwd == pytest.approx((1 + slope * slope) / 2, rel=4 * EPS)


@pytest.mark.parametrize("q", [0.05, 1.0, 4.0])
def test_kappas_tanh_quadrature_vs_monte_carlo(q, rng):
    """400 000 samples of z ~ N(0, q); tolerance Z sample-SE (plus the quadrature's 1e-10)."""
    n = 400_000
    z = math.sqrt(q) * rng.standard_normal(n)
    fwd, bwd = kappas("tanh", 0.0, q)
    t2, d2 = np.tanh(z) ** 2 / q, (1 - np.tanh(z) ** 2) ** 2
    assert abs(t2.mean() - fwd) <= Z * t2.std() / math.sqrt(n), (q, t2.mean(), fwd)
    assert abs(d2.mean() - bwd) <= Z * d2.std() / math.sqrt(n), (q, d2.mean(), bwd)


def test_kappas_tanh_limits():
    """Small q: tanh ~ identity (both gains -> 1, first correction -2q); large q: saturation."""
    f, b = kappas("tanh", 0.0, 1e-6)
    assert f == pytest.approx(1 - 2e-6, rel=1e-8) and b == pytest.approx(1 - 2e-6, rel=1e-8)
    assert kappas("tanh", 0.0, 0.0) == (1.0, 1.0)
    f, _ = kappas("tanh", 0.0, 100.0)
    assert f < 0.011                                # E[tanh^2] <= 1, so fwd <= 1/q
    assert kappas("tanh", 0.0, 1.0)[0] > kappas("tanh", 0.0, 2.0)[0]     # monotone in q


def _tanh_gains_by_adaptive_quadrature(q):
    from scipy.integrate import quad

    pdf = lambda z: math.exp(-z * z / (2 * q)) / math.sqrt(2 * math.pi * q)   # noqa: E731
    lim = 12 * math.sqrt(q)
    fwd = quad(lambda z: math.tanh(z) ** 2 * pdf(z), -lim, lim, points=[0], limit=500)[0] / q
    bwd = quad(lambda z: (1 - math.tanh(z) ** 2) ** 2 * pdf(z), -lim, lim, points=[0],
               limit=500)[0]
    return fwd, bwd


def test_kappas_tanh_accurate_at_moderate_q():
    """tanh gains against an independent adaptive quadrature, q = 0.1 to 2, to 1e-4."""
    for q in (0.1, 0.5, 1.0, 2.0):
        got, want = kappas("tanh", 0.0, q), _tanh_gains_by_adaptive_quadrature(q)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=0, err_msg=f"q={q}")


# Regression: the fixed 81-point Gauss-Hermite rule was off by +3% (q=9) to +161% (q=100)
# for tanh; gauss_mean is now adaptive.
@pytest.mark.parametrize("q", [9.0, 25.0, 100.0])
def test_kappas_tanh_accurate_at_large_q(q):
    got, want = kappas("tanh", 0.0, q), _tanh_gains_by_adaptive_quadrature(q)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=0, err_msg=f"q={q}")


# Regression: the same bug gave output_d(sigmoid) +35% at q=100.
@pytest.mark.parametrize("q", [25.0, 100.0])
def test_output_d_sigmoid_accurate_at_large_q(q):
    from scipy.integrate import quad

    sg = lambda z: 1 / (1 + math.exp(-z))                                       # noqa: E731
    pdf = lambda z: math.exp(-z * z / (2 * q)) / math.sqrt(2 * math.pi * q)     # noqa: E731
    lim = 12 * math.sqrt(q)
    want = quad(lambda z: (sg(z) * (1 - sg(z))) ** 2 * pdf(z), -lim, lim, points=[0],
                limit=500)[0]
    assert output_d("sigmoid", q) == pytest.approx(want, rel=1e-4)


def test_output_d(rng):
    assert output_d("identity", 3.0) == 1.0
    assert output_d("sigmoid", 1e-12) == pytest.approx(1 / 16, rel=1e-9)   # sigma'(0)^2
    n, q = 400_000, 2.0
    z = math.sqrt(q) * rng.standard_normal(n)
    s = 1 / (1 + np.exp(-z))
    d = (s * (1 - s)) ** 2
    assert abs(d.mean() - output_d("sigmoid", q)) <= Z * d.std() / math.sqrt(n)


# -- predict: chains with known answers -----------------------------------------------------------
def _square_chain(L, n, v, activation="relu", slope=0.2, output="identity", q0=1.0):
    return predict([v] * (L - 1) + [v], [n] * L, [n] * (L - 1) + [1], [n] * (L - 1) + [1],
                   [n] * L, q0, activation, slope, output)


def test_predict_lecun_linear_is_norm_preserving():
    mf = _square_chain(6, 100, 1 / 100, "linear", q0=2.0)
    np.testing.assert_allclose(mf.q, 2.0, rtol=10 * EPS)
    np.testing.assert_allclose(mf.chi[1:-1], 1.0, rtol=10 * EPS)
    np.testing.assert_allclose(mf.weight_grad_sq, 100 * 2.0, rtol=100 * EPS)   # ||delta||^2 = 1


@pytest.mark.parametrize("scheme, v, chi", [("lecun", 1 / 64, 0.5), ("kaiming", 2 / 64, 1.0),
                                            ("sn", 1 / (64 * 4.0), 0.125)])
def test_predict_relu_gain_per_layer(scheme, v, chi):
    """THEORY C7: chi = kappa v f; square dense ReLU: LeCun 1/2 (vanishing as 2^-depth),
    Kaiming 1 (critical), SN (asymptotic sigma = 2 sqrt(n) s) 1/8 = kappa/4."""
    L, n = 8, 64
    mf = _square_chain(L, n, v)
    np.testing.assert_allclose(mf.chi[1:-1], chi, rtol=10 * EPS, err_msg=scheme)
    ratios = mf.d[:-2] / mf.d[1:-1]                       # d_{l-1} / d_l along the square part
    np.testing.assert_allclose(ratios, chi, rtol=10 * EPS, err_msg=scheme)
    want = [mf.q[i] * n * mf.d[i] * (n if i < L - 1 else 1) for i in range(L)]
    np.testing.assert_allclose(mf.weight_grad_sq, want, rtol=10 * EPS, err_msg=scheme)
    np.testing.assert_allclose(mf.act_grad_sq, n * np.array([v] * L)
                               * np.array([n] * (L - 1) + [1]) * mf.d, rtol=10 * EPS)


def test_predict_sigmoid_output_uses_output_d():
    mf = _square_chain(3, 50, 1 / 50, "relu", output="sigmoid", q0=1.5)
    pre_last = (1 / 50) * 50 * mf.q[-1]
    assert mf.d[-1] == pytest.approx(output_d("sigmoid", pre_last), rel=10 * EPS)


# -- C5 / C6b -------------------------------------------------------------------------------------
def test_gaussian_opnorm_is_gordon_upper():
    for m, n, s in [(1, 1, 1.0), (64, 27, 0.3), (512, 4096, 2.0)]:
        assert gaussian_opnorm(m, n, s) == gordon_upper(m, n, s)


def cifar_shapes():
    """(c_in, c_out, k) of the 8 layers of the CIFAR-10 discriminator (gradcheck.models.sngan)."""
    shapes, c_in = [], 3
    for k, _, c_out in SNGAN_CONVS:
        shapes.append((c_in, c_out, k))
        c_in = c_out
    return shapes + [(512 * 4 * 4, 1, 1)]        # dense head 8192 -> 1


def test_shrink_prediction_cifar10_reference_values():
    """THEORY C6b: 0.394, 0.800, 0.680, 0.800, 0.680, 0.800, 0.680, 0.989, product ~0.063."""
    got = [shrink_prediction("sn", c_in, c_out, k) for c_in, c_out, k in cifar_shapes()]
    want = [0.394, 0.800, 0.680, 0.800, 0.680, 0.800, 0.680, 0.989]
    np.testing.assert_allclose(got, want, rtol=0, atol=5e-4)     # THEORY rounds to 3 digits
    assert math.prod(got) == pytest.approx(0.063, abs=5e-4)


@given(n=st.integers(1, 10**6), c=st.floats(0.1, 10.0))
def test_shrink_prediction_square_dense_is_half(n, c):
    assert shrink_prediction("sn", n, n) == pytest.approx(0.5, rel=4 * EPS)
    assert shrink_prediction("bsn", n, n) == pytest.approx(0.5, rel=4 * EPS)   # C9a: BSN == SN
    assert shrink_prediction("sn", n, n, scale=c) == pytest.approx(c / 2, rel=4 * EPS)
    assert shrink_prediction("bsn", n, n, scale=c) == pytest.approx(c / 2, rel=4 * EPS)


@settings(max_examples=100, deadline=None)
@given(c_in=st.integers(1, 1024), c_out=st.integers(1, 1024), k=st.integers(1, 7))
def test_shrink_prediction_is_sqrt_n_over_c5_value(c_in, c_out, k):
    """sn: s sqrt(n) / (C5 value of sigma_R); bsn: the same with the mean of both reshapes."""
    n = c_in * k * k
    assert shrink_prediction("sn", c_in, c_out, k) == pytest.approx(
        math.sqrt(n) / gordon_upper(c_out, n), rel=10 * EPS)
    bsn_sigma = (gordon_upper(c_out, n) + gordon_upper(c_in, c_out * k * k)) / 2
    assert shrink_prediction("bsn", c_in, c_out, k) == pytest.approx(
        math.sqrt(n) / bsn_sigma, rel=10 * EPS)
    assert 0 < shrink_prediction("sn", c_in, c_out, k) < 1


def test_shrink_prediction_sn_conv_and_other_schemes():
    assert shrink_prediction("sn-conv", 64, 64, 3, s_sqrt_n_over_op=0.3) == 0.3
    assert math.isnan(shrink_prediction("sn-conv", 64, 64, 3))
    assert math.isnan(shrink_prediction("lecun", 64, 64, 3))
