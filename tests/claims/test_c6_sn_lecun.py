"""C6a (identity) and C6b (prediction), THEORY §3.

C6a written out: ``dD/dW_t(SN) = prod_{i != t} r_hat_i dD/dW_t(LeCun)`` with
``r_hat_i = c s_i sqrt(fan_in_i) / sigma_scheme_i = c / sigma_scheme_i`` (LeCun raw draw,
``s = 1/sqrt(fan_in)``). C6b: ``r = c sqrt(n)/(sqrt(n) + sqrt(m))`` (SN, n = c_in k^2, m = c_out),
``c 2 sqrt(n)/(sqrt(c_in k^2) + sqrt(c_out) + sqrt(c_out k^2) + sqrt(c_in))`` (BSN), and for SN_Conv
on a conv layer ``s sqrt(n)/||Conv||_op`` (= r_hat).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck.claims import c6_sn_lecun as C6

from .conftest import (
    BN_NODE,
    EPS32,
    assert_na,
    assert_no_verdict,
    assert_overflow,
    by_layer,
    chain_facts,
    context,
    conv,
    dense,
    dense_stack,
    grads,
    hand_tol,
    norms,
    result,
    rows_of,
)

LAYERS = dense_stack((4, 5, 3, 1))
SIGMA = (2.0, 4.0, 5.0)
THEIRS = np.array([[1.0, 3.0], [0.5, 2.0], [4.0, 0.25]])   # the LeCun twin's ||dD/dW_t||
XN = (1.0, 2.0)


def pair(ours, f=None, sigma=SIGMA, theirs=THEIRS):
    ns = [norms(1.0, sigma_scheme=s) for s in sigma]
    f = f or chain_facts(3)
    res = result(LAYERS, ns, grads(ours, XN), f)
    twin = result(LAYERS, [norms(s) for s in sigma], grads(theirs, XN), f)
    return res, twin


def scale_by_hand(c=1.0):
    r = [c / s for s in SIGMA]                              # 0.5, 0.25, 0.2 (c = 1)
    return np.array([r[1] * r[2], r[0] * r[2], r[0] * r[1]])


# -- C6a ------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme, c", [("sn", 1.0), ("bsn", 1.0), ("ssn", 2.0), ("bssn", 1.7)])
def test_c6a_identity_holds(scheme, c):
    P = scale_by_hand(c)
    res, twin = pair(P[:, None] * THEIRS)
    rows = by_layer(C6.check(context(res, scheme, scale=c, twin=twin)), "C6a")
    assert sorted(rows) == [0, 1, 2]
    for t in range(3):
        assert rows[t]["kind"] == "identity" and rows[t]["holds"] is True
        assert rows[t]["ratio"] == pytest.approx(1.0, abs=1e-15)


def test_c6a_scale_values():
    assert np.allclose(scale_by_hand(), [0.05, 0.1, 0.125], rtol=1e-15)
    assert np.allclose(scale_by_hand(2.0), [0.2, 0.4, 0.5], rtol=1e-15)


def test_c6a_broken_by_construction():
    P = scale_by_hand()
    ours = P[:, None] * THEIRS
    ours[1, 1] *= 1.1
    rows = by_layer(C6.check(context(pair(ours)[0], "sn", twin=pair(ours)[1])), "C6a")
    assert rows[1]["holds"] is False
    assert rows[1]["ratio"] == pytest.approx(1.1, rel=1e-14)
    assert rows[1]["lhs"] == ours[1, 1]
    assert rows[1]["rhs"] == pytest.approx(0.1 * 2.0, rel=1e-15)
    assert rows[0]["holds"] is True and rows[2]["holds"] is True


def test_c6a_tolerance_scaled_by_cancellation_factor():
    tol = hand_tol(LAYERS, EPS32)
    P = scale_by_hand()
    for factor, k, want in [(1 + tol / 2, 1.0, True), (1 + 2 * tol, 1.0, False),
                            (1 + 50 * tol, 100.0, True), (1 + 200 * tol, 100.0, False),
                            (1 + tol / 2, 0.01, True), (1 + 2 * tol, 0.01, False)]:
        ours = P[:, None] * THEIRS
        ours[2, 0] *= factor
        res, twin = pair(ours)
        row = by_layer(C6.check(context(res, "sn", eps=EPS32, twin=twin, c6a_k=k)), "C6a")[2]
        assert row["holds"] is want, (factor, k, tol, row)


@pytest.mark.parametrize("kw, twin, reason", [
    (dict(), False, "no LeCun twin (model of unknown provenance)"),
    (dict(trained=True), True, "trained weights are no longer the scheme's Gaussian draw"),
    (dict(f=chain_facts(3, activation="tanh")), True,
     "activation tanh is not positively homogeneous"),
    (dict(f=chain_facts(3, output="sigmoid")), True,
     "output activation sigmoid is not homogeneous"),
    (dict(f=chain_facts(3, chain=False, skips=((0, 2),))), True,
     "not a chain (skip around layers 0..2)"),
    (dict(f=chain_facts(3, biases=(True, False, False))), True,
     "non-zero biases on layer(s) 0 (theory is bias-free)"),
    (dict(f=chain_facts(3, unsupported=BN_NODE)), True, "unsupported node " + BN_NODE),
], ids=["no-twin", "trained", "tanh", "sigmoid", "skip", "bias", "batchnorm"])
def test_c6a_not_applicable(kw, twin, reason):
    ours = 10 * THEIRS                                      # far from the identity
    res, tw = pair(ours, kw.get("f"))
    rows = C6.check(context(res, "sn", trained=kw.get("trained", False),
                            twin=tw if twin else None))
    assert_na(rows, "C6a", reason, layers=[0, 1, 2])


@pytest.mark.parametrize("bad_ours, bad_theirs", [(math.inf, None), (math.nan, None),
                                                   (None, math.inf), (None, math.nan)])
def test_c6a_overflow(bad_ours, bad_theirs):
    P = scale_by_hand()
    ours, theirs = P[:, None] * THEIRS, THEIRS.copy()
    if bad_ours is not None:
        ours[0, 1] = bad_ours
    if bad_theirs is not None:
        theirs[0, 1] = bad_theirs
    res, twin = pair(ours, theirs=theirs)
    rows = by_layer(C6.check(context(res, "sn", twin=twin)), "C6a")
    assert_overflow(rows[0], 1)
    assert rows[1]["holds"] is True and rows[2]["holds"] is True


def test_c6a_float32_underflow_is_a_measurement():
    """One side below float32's normal range (and the other 0): an overflow note, no verdict."""
    P = scale_by_hand()
    theirs = THEIRS.copy()
    theirs[1, 0] = 1e-39 / P[1]                              # scaled: 1e-39 < 1.2e-38
    ours = P[:, None] * theirs
    ours[1, 0] = 0.0
    res, twin = pair(ours, theirs=theirs)
    row = by_layer(C6.check(context(res, "sn", eps=EPS32, twin=twin)), "C6a")[1]
    assert_overflow(row, 1)


# -- C6b ------------------------------------------------------------------------------------
C6B_LAYERS = [dense(0, 9, 4), conv(1, 2, 3, (5, 5)), dense(2, 75, 1)]
SN = [3 / 5, math.sqrt(18) / (math.sqrt(18) + math.sqrt(3)), math.sqrt(75) / (math.sqrt(75) + 1)]
BSN_CONV = 2 * math.sqrt(18) / (math.sqrt(18) + math.sqrt(3) + math.sqrt(27) + math.sqrt(2))


def c6b_rows(scheme, c=1.0, sigma=(2.5, 2.0, 8.0), trained=False):
    ns = [norms(1.0, sigma_scheme=s) for s in sigma]
    res = result(C6B_LAYERS, ns, grads(np.ones((3, 1)), (1.0,)), chain_facts(3))
    return C6.check(context(res, scheme, scale=c, trained=trained))


@pytest.mark.parametrize("scheme, c, pred", [
    ("sn", 1.0, SN),
    ("ssn", 2.0, [2 * p for p in SN]),
    ("bsn", 1.0, [SN[0], BSN_CONV, SN[2]]),                # dense BSN == SN
    ("bssn", 1.5, [1.5 * SN[0], 1.5 * BSN_CONV, 1.5 * SN[2]]),
    ("sn-conv", 1.0, [SN[0], 1 / 2.0, SN[2]]),             # conv: s sqrt(n)/||Conv|| = r_hat
])
def test_c6b_prediction_by_hand(scheme, c, pred):
    sigma = (2.5, 2.0, 8.0)
    rows = by_layer(c6b_rows(scheme, c, sigma), "C6b")
    assert sorted(rows) == [0, 1, 2]
    for t in range(3):
        r_hat = c / sigma[t]
        assert rows[t]["kind"] == "prediction" and rows[t]["holds"] == ""
        assert rows[t]["lhs"] == pytest.approx(r_hat, rel=1e-15)
        assert rows[t]["rhs"] == pytest.approx(pred[t], rel=1e-14)
        assert rows[t]["ratio"] == pytest.approx(r_hat / pred[t], rel=1e-14)
    if scheme == "sn-conv":
        assert rows[1]["note"].startswith("SN_Conv")


def test_c6b_square_dense_layer_is_one_half():
    ns = [norms(1.0, sigma_scheme=2.0)]
    res = result([dense(0, 16, 16)], ns, grads(np.ones((1, 1)), (1.0,)), chain_facts(1))
    row = rows_of(C6.check(context(res, "sn")), "C6b")[0]
    assert row["rhs"] == 0.5 and row["ratio"] == 1.0


def test_no_c6_verdicts_outside_the_premises():
    for scheme, trained in [(None, False), ("lecun", False), ("orthogonal", False),
                            ("sn", True)]:
        rows = c6b_rows(scheme, trained=trained)
        assert_no_verdict(rows, "C6a")
        assert_no_verdict(rows, "C6b")
        assert not [r for r in rows if r["claim"] in ("C6a", "C6b")
                    and not r["note"].startswith("not applicable")], (scheme, rows)


def test_c6_premise_failure_is_reported():
    """THEORY §0 / claims._base: a failing premise yields n/a rows naming it — here C6a and
    C6b on a model of unknown provenance (scheme None) and on trained SN weights."""
    for scheme, trained, reason in [(None, False, "not an SN-family scheme"),
                                    ("sn", True, "trained weights are no longer the scheme's "
                                                 "Gaussian draw")]:
        rows = c6b_rows(scheme, trained=trained)
        assert_na(rows, "C6b", reason, layers=[0, 1, 2])
        if scheme is None:
            assert_na(rows, "C6a", reason, layers=[0, 1, 2])


def test_c6a_zero_against_a_resolvable_value_is_a_violation_not_overflow():
    """float64: our gradient 0 where the identity expects 0.2 (twin measured 2.0 x 0.1) is a
    real mismatch (holds False); only a zero where the expected value is below what the dtype
    resolves counts as out of range."""
    P = scale_by_hand()
    ours = P[:, None] * THEIRS
    ours[1, 1] = 0.0
    res, twin = pair(P[:, None] * THEIRS)
    res = type(res)(**{**res.__dict__, "grads": type(res.grads)(
        **{**res.grads.__dict__, "weight_grad": ours})})
    row = by_layer(C6.check(context(res, "sn", twin=twin)), "C6a")[1]
    assert row["holds"] is False and not row["note"].startswith("overflow"), row
