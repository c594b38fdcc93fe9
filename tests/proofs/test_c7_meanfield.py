"""Tests for proofs_numeric/c7_meanfield.py (THEORY C7, a prediction).

A known answer (orthogonal linear nets: the prediction is exact for every draw), then
statistical tests: the per-layer ratio measured rms ||dD/dW_l|| / predicted, averaged over 8
seeds (8 weight draws x 32 inputs each), must lie in ``1 +- tol(width)`` with
``tol = 0.3 sqrt(128 / width)`` — 0.3 at width 128, 0.21 at 256. (Per-seed spread measured at
depth 6, width 128: std 0.03-0.19 depending on the activation; finite-width bias up to +0.12
for ReLU.)
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from proofs_numeric import c7_meanfield as c7
from proofs_numeric.runner import run_module

pytestmark = pytest.mark.usefixtures("single_blas_thread")

SEEDS = range(8)


def _p(**kw):
    p = dict(depth=6, width=128, input_dim=128, seed=0, activation="relu", slope=0.2,
             output="identity", scheme="lecun", scale=1.0)
    p.update(kw)
    return p


def tol(width: int) -> float:
    return 0.3 * math.sqrt(128 / width)


def mean_ratios(**kw) -> np.ndarray:
    """(L,) per-layer mean over SEEDS of measured / predicted."""
    return np.mean([np.divide(*c7.measured_and_predicted(_p(seed=s, **kw))) for s in SEEDS],
                   axis=0)


@pytest.mark.parametrize("input_dim", [32, 128])
def test_orthogonal_linear_prediction_is_exact(input_dim):
    """Semi-orthogonal weights (input_dim <= width) preserve every norm, so measured and
    predicted agree to rounding for one draw: ratio 1 within 1e-10 at every layer."""
    meas, pred = c7.measured_and_predicted(_p(scheme="orthogonal", activation="linear",
                                              input_dim=input_dim, depth=5))
    np.testing.assert_allclose(meas / pred, 1.0, rtol=0, atol=1e-10)


def test_rows_are_predictions_with_finite_ratios():
    rows = c7.instance(_p(depth=3, width=64, input_dim=20, scheme="bssn", scale=1.3,
                          activation="tanh", output="sigmoid"))
    assert len(rows) == 3 and all(r.kind == "prediction" and r.holds is None for r in rows)
    assert all(math.isfinite(r.ratio) and r.ratio > 0 for r in rows)


@pytest.mark.parametrize("activation", ["relu", "lrelu", "tanh", "linear"])
@pytest.mark.parametrize("scheme", ["lecun", "kaiming", "sn", "bssn"])
def test_c7_ratio_near_one_at_width_128(scheme, activation):
    """Depth 6, width 128, 8 seeds: every layer's mean ratio in [0.7, 1.3]."""
    r = mean_ratios(scheme=scheme, activation=activation, scale=1.5,
                    output="sigmoid" if activation == "tanh" else "identity")
    t = tol(128)
    assert np.all(np.abs(r - 1) <= t), \
        f"{scheme}/{activation}: mean ratios {np.round(r, 3)}, tol {t:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("scheme, activation", [("xavier", "relu"), ("orthogonal", "tanh"),
                                                ("ssn", "lrelu"), ("bsn", "tanh")])
def test_c7_ratio_near_one_at_width_256(scheme, activation):
    """Depth 8, width 256, 8 seeds: every layer's mean ratio within 0.21 of 1."""
    r = mean_ratios(scheme=scheme, activation=activation, width=256, input_dim=256, depth=8,
                    scale=1.2)
    t = tol(256)
    assert np.all(np.abs(r - 1) <= t), \
        f"{scheme}/{activation}: mean ratios {np.round(r, 3)}, tol {t:.3f}"


def test_runner_integration():
    rows, _, done = run_module(c7, instances=3, budget_s=10.0)
    assert done == 3 and {r.claim for r in rows} == {"C7"}
    assert all(r.kind == "prediction" and r.holds is None for r in rows)
