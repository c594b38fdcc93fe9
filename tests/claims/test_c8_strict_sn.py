"""C8 (THEORY §3): ``sigma_R <= ||Conv||_op <= mu sigma_R`` (and with sigma_R2 at stride 1), slack
``tol + 10 op_residual``; dense layers give no C8 rows."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck.claims import c8_strict_sn as C8

from .conftest import (
    EPS32,
    assert_na,
    chain_facts,
    context,
    conv,
    dense,
    grads,
    hand_tol,
    norms,
    result,
    rows_of,
)


def c8(layer, n, eps=2.220446049250313e-16, wg=None):
    layers = [layer, dense(1, math.prod(layer.output_shape), 1)]
    res = result(layers, [n, norms(1.0)], grads(np.ones((2, 1)) if wg is None else wg, (1.0,)),
                 chain_facts(2))
    return rows_of(C8.check(context(res, eps=eps)), "C8"), hand_tol(layers, eps)


CONV = conv(0, 2, 3, (5, 5))                      # k 3, stride 1, pad 1: mu = 3


def test_four_rows_at_stride_one():
    rows, _ = c8(CONV, norms(2.0, sigma_R=1.0, sigma_R2=1.2))
    assert CONV.mu == 3.0
    got = [(r["lhs"], r["rhs"], r["ratio"], r["holds"]) for r in rows]
    assert got == [(1.0, 2.0, 0.5, True), (2.0, 3.0, pytest.approx(2 / 3), True),
                   (1.2, 2.0, pytest.approx(0.6), True),
                   (2.0, pytest.approx(3.6), pytest.approx(2 / 3.6), True)]
    assert [r["note"] for r in rows] == [
        "sigma_R <= ||Conv||_op", "||Conv||_op <= mu sigma_R (mu=3.000)",
        "sigma_R2 <= ||Conv||_op (stride 1)", "||Conv||_op <= mu sigma_R2 (mu=3.000) (stride 1)"]
    assert all(r["kind"] == "inequality" and r["layer"] == 0 for r in rows)


def test_stride_two_has_no_sigma_r2_rows():
    layer = conv(0, 2, 3, (5, 5), stride=2)       # mu = sqrt(ceil(3/2)^2) = 2
    assert layer.mu == 2.0
    rows, _ = c8(layer, norms(1.5, sigma_R=1.0, sigma_R2=0.1))
    assert len(rows) == 2
    assert rows[1]["rhs"] == 2.0 and rows[1]["ratio"] == 0.75


def test_lower_bound_broken():
    rows, _ = c8(CONV, norms(0.8, sigma_R=1.0, sigma_R2=0.5))
    assert rows[0]["holds"] is False and rows[0]["ratio"] == pytest.approx(1.25, rel=1e-15)
    assert rows[2]["holds"] is True


def test_upper_bound_broken():
    rows, _ = c8(CONV, norms(3.3, sigma_R=1.0, sigma_R2=2.0))
    assert rows[1]["holds"] is False and rows[1]["ratio"] == pytest.approx(1.1, rel=1e-15)
    assert rows[3]["holds"] is True                    # 3.3 <= 3 * 2


def test_tolerance_and_residual_slack():
    _, tol = c8(CONV, norms(1.0), eps=EPS32)
    for factor, resid, want in [(1 + tol / 2, 0.0, True), (1 + 2 * tol, 0.0, False),
                                (1.009, 1e-3, True), (1.011, 1e-3, False)]:
        # lower bound: sigma_R / ||Conv|| = factor; slack = tol + 10 * residual
        n = norms(1.0, sigma_R=factor, sigma_R2=0.5, op_residual=resid)
        rows, _ = c8(CONV, n, eps=EPS32)
        assert rows[0]["ratio"] == pytest.approx(factor, rel=1e-14)
        assert rows[0]["holds"] is want, (factor, resid, tol, rows[0])


def test_not_applicable_paths():
    rows, _ = c8(conv(0, 2, 3, (5, 5), padding_mode="circular"), norms(2.0, sigma_R=1.0))
    assert_na(rows, "C8", "padding mode circular", layers=[0])
    rows, _ = c8(conv(0, 2, 3, (2, 2)), norms(2.0, sigma_R=1.0))   # 3x3 on 2x2: no interior
    assert_na(rows, "C8", "no output's receptive field lies inside the input", layers=[0])


def test_dense_layers_only():
    res = result([dense(0, 4, 3), dense(1, 3, 1)], [norms(2.0), norms(0.5)],
                 grads(np.ones((2, 1)), (1.0,)), chain_facts(2))
    assert C8.check(context(res, "sn")) == []


def test_gradients_are_not_read():
    n = norms(2.0, sigma_R=1.0, sigma_R2=1.2)
    assert c8(CONV, n, wg=np.full((2, 1), math.inf))[0] == c8(CONV, n)[0]


def test_all_zero_kernel():
    """A conv layer whose effective kernel is all zero (a zero-initialised / dead layer; the
    probe accepts it, only non-finite weights are refused): 0 <= 0 <= 0 holds, or is n/a — the
    check must not raise ZeroDivisionError."""
    rows, _ = c8(CONV, norms(0.0, sigma_R=0.0, sigma_R2=0.0))
    assert not [r for r in rows if r["holds"] is False]
