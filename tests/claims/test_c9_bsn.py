"""C9a (identity: dense sigma_R == sigma_R2) and C9b (prediction: BSN effective std / Xavier std
vs ``c 2 sqrt((fan_in + fan_out)/2)
/ (sqrt(c_in k^2) + sqrt(c_out) + sqrt(c_out k^2) + sqrt(c_in))``), THEORY §3."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck.claims import c9_bsn as C9

from .conftest import (
    EPS32,
    assert_na,
    assert_no_verdict,
    by_layer,
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

LAYERS = [dense(0, 9, 4), conv(1, 2, 3, (5, 5)), dense(2, 75, 1)]


def measured(ns, layers=LAYERS, wg=None):
    wg = np.ones((len(layers), 1)) if wg is None else wg
    return result(layers, ns, grads(wg, (1.0,)), chain_facts(len(layers)))


# -- C9a ------------------------------------------------------------------------------------
def test_c9a_dense_rows_only():
    ns = [norms(1.0, sigma_R=1.5, sigma_R2=1.5), norms(2.0, sigma_R=1.0, sigma_R2=3.0),
          norms(0.7)]
    rows = by_layer(C9.check(context(measured(ns))), "C9a")
    assert sorted(rows) == [0, 2]                       # the conv layer has no C9a row
    assert rows[0]["kind"] == "identity" and rows[0]["holds"] is True
    assert rows[0]["ratio"] == 1.0


def test_c9a_broken_and_tolerance():
    tol = hand_tol(LAYERS, EPS32)
    for factor, want in [(1.01, False), (1 + tol / 2, True), (1 - tol / 2, True),
                         (1 + 2 * tol, False), (1 - 2 * tol, False)]:
        ns = [norms(1.0, sigma_R=2.0 * factor, sigma_R2=2.0), norms(1.0), norms(1.0)]
        row = by_layer(C9.check(context(measured(ns), eps=EPS32)), "C9a")[0]
        assert row["ratio"] == pytest.approx(factor, rel=1e-14)
        assert row["holds"] is want, (factor, tol, row)


# -- C9b ------------------------------------------------------------------------------------
def const(c_in, c_out, k):
    fan_in, fan_out = c_in * k * k, c_out * k * k
    return 2 * math.sqrt((fan_in + fan_out) / 2) / (
        math.sqrt(c_in * k * k) + math.sqrt(c_out) + math.sqrt(c_out * k * k) + math.sqrt(c_in))


@pytest.mark.parametrize("scheme, c", [("bsn", 1.0), ("bssn", 1.7)])
def test_c9b_by_hand(scheme, c):
    frob = (1.2, 0.9, 0.6)
    ns = [norms(1.0, frobenius=f, sigma_scheme=2.0) for f in frob]
    rows = by_layer(C9.check(context(measured(ns), scheme, scale=c)), "C9b")
    geo = [(9, 4, 1, 36, 9, 4), (2, 3, 3, 54, 18, 27), (75, 1, 1, 75, 75, 1)]
    for t, (c_in, c_out, k, numel, fan_in, fan_out) in enumerate(geo):
        meas = frob[t] / math.sqrt(numel) / math.sqrt(2 / (fan_in + fan_out))
        pred = c * const(c_in, c_out, k)
        r = rows[t]
        assert r["kind"] == "prediction" and r["holds"] == ""
        assert r["lhs"] == pytest.approx(meas, rel=1e-14)
        assert r["rhs"] == pytest.approx(pred, rel=1e-14)
        assert r["ratio"] == pytest.approx(meas / pred, rel=1e-14)


def test_c9b_square_layers_k_over_k_plus_1():
    assert const(64, 64, 4) == pytest.approx(0.8) and const(8, 8, 1) == pytest.approx(0.5)


@pytest.mark.parametrize("scheme, trained", [("sn", False), ("lecun", False), (None, False),
                                             ("bsn", True)])
def test_no_c9b_verdict_outside_bsn(scheme, trained):
    rows = C9.check(context(measured([norms(1.0)] * 3), scheme, trained=trained))
    assert_no_verdict(rows, "C9b")
    assert [r for r in rows_of(rows, "C9b") if not r["note"].startswith("not applicable")] \
        == []


def test_c9b_premise_failure_is_reported():
    """THEORY §0 / claims._base: C9b's premises (sn_family, gaussian) fail on a model of
    unknown provenance and on trained BSN weights: n/a rows naming the premise."""
    for scheme, trained, reason in [(None, False, "not an SN-family scheme"),
                                    ("bsn", True, "trained weights are no longer the "
                                                  "scheme's Gaussian draw")]:
        rows = C9.check(context(measured([norms(1.0)] * 3), scheme, trained=trained))
        assert_na(rows, "C9b", reason, layers=[0, 1, 2])


def test_gradients_are_not_read():
    ns = [norms(1.0, frobenius=1.0, sigma_scheme=2.0)] * 3
    a = C9.check(context(measured(ns, wg=np.full((3, 1), math.nan)), "bsn"))
    assert a == C9.check(context(measured(ns), "bsn"))
