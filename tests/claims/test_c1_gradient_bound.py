"""C1, C1-SN, C1a (THEORY §2) on hand-built measurements.

Bound written out from THEORY: ``||dD/dW_t||_F <= lambda_L mu_t ||x|| prod_{i != t} ||W_i||_op``;
C1-SN: ``<= lambda_L ||x||``; C1a: ``||dD/dW_t||_F = ||delta_t|| ||h_{t-1}||`` (dense).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck.claims import c1_gradient_bound as C1
from gradcheck.probe.facts import LinearMapFact

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
    norm_list,
    result,
    rows_of,
)

WIDTHS = (4, 5, 3, 1)
OPS = (2.0, 0.5, 3.0)
XN = np.array([1.0, 2.0])
# prod_{i != t} ||W_i||_op by hand: (0.5*3, 2*3, 2*0.5)
OTHERS = np.array([1.5, 6.0, 1.0])


def bound_by_hand(lam=1.0, mu=(1.0, 1.0, 1.0), others=OTHERS, xn=XN):
    return lam * np.asarray(mu)[:, None] * np.asarray(others)[:, None] * xn[None, :]


def measured(wg, f=None, ops=OPS, layers=None, xn=XN, **kw):
    layers = layers or dense_stack(WIDTHS)
    f = f or chain_facts(len(layers))
    return result(layers, norm_list(ops), grads(wg, xn, **kw), f)


# -- premises --------------------------------------------------------------------------------
@pytest.mark.parametrize("f, reason", [
    (chain_facts(3, chain=False, skips=((1, 2),)), "not a chain (skip around layers 1..2)"),
    (chain_facts(3, biases=(True, False, True)),
     "non-zero biases on layer(s) 0, 2 (theory is bias-free)"),
    (chain_facts(3, unsupported=BN_NODE), "unsupported node " + BN_NODE),
    (chain_facts(3, output="tanh"), "output activation tanh is neither identity nor sigmoid"),
    (chain_facts(3, output=None), "output activation unidentified is neither identity nor "
                                  "sigmoid"),
    (chain_facts(3, linear_maps=(LinearMapFact("sum", "pool", 4.0, "exact"),)),
     "parameter-free map(s) with operator norm > 1: sum at 'pool' (4)"),
], ids=["skip", "bias", "batchnorm", "tanh-output", "no-output", "expansive-map"])
def test_failed_premise_gives_only_na_rows(f, reason):
    """Even a gradient 10x over the bound gives no C1 / C1-SN verdict outside the premises."""
    res = measured(10 * bound_by_hand(), f)
    rows = C1.check(context(res, "sn"))
    assert_na(rows, "C1", reason, layers=[0, 1, 2])
    assert_na(rows, "C1-SN", reason, layers=[0, 1, 2])


def test_premises_are_checked_in_order():
    f = chain_facts(3, chain=False, skips=((0, 1),), biases=(True, True, True), output="tanh")
    rows = C1.check(context(measured(bound_by_hand(), f)))
    assert_na(rows, "C1", "not a chain (skip around layers 0..1)", layers=[0, 1, 2])
    f = chain_facts(3, biases=(True, True, True), output="tanh")
    rows = C1.check(context(measured(bound_by_hand(), f)))
    assert_na(rows, "C1", "non-zero biases on layer(s) 0, 1, 2 (theory is bias-free)",
              layers=[0, 1, 2])


def test_c1a_needs_no_chain():
    """C1a (rank-one dense gradient) has no premises: it is checked on a graph too."""
    f = chain_facts(3, chain=False, skips=((1, 2),))
    rows = C1.check(context(measured(0.5 * bound_by_hand(), f)))
    c1a = by_layer(rows, "C1a")
    assert sorted(c1a) == [0, 1, 2] and all(r["holds"] is True for r in c1a.values())


# -- the bound ---------------------------------------------------------------------------------
def test_bound_rows_are_the_worst_input():
    wg = bound_by_hand() * np.array([[0.5, 0.25], [0.1, 0.9], [1.0, 0.3]])
    rows = by_layer(C1.check(context(measured(wg))), "C1")
    for t, (b, r) in enumerate([(0, 0.5), (1, 0.9), (0, 1.0)]):
        row = rows[t]
        assert row["kind"] == "inequality"
        assert row["lhs"] == pytest.approx(wg[t, b], rel=1e-15)
        assert row["rhs"] == pytest.approx(OTHERS[t] * XN[b], rel=1e-15)
        assert row["ratio"] == pytest.approx(r, rel=1e-14)
        assert row["holds"] is True                       # ratio <= 1 (layer 2: equality)


def test_bound_broken_by_construction():
    wg = 0.5 * bound_by_hand()
    wg[1, 1] = 1.25 * OTHERS[1] * XN[1]                  # 15.0 > 12.0
    row = by_layer(C1.check(context(measured(wg))), "C1")[1]
    assert row["holds"] is False
    assert row["lhs"] == 15.0 and row["rhs"] == pytest.approx(12.0, rel=1e-15)
    assert row["ratio"] == pytest.approx(1.25, rel=1e-15)


def test_tolerance_straddles_equality():
    layers = dense_stack(WIDTHS)
    tol = hand_tol(layers, EPS32)                        # 10 * 4 * sqrt(5) * eps32
    assert tol == pytest.approx(10 * 4 * math.sqrt(5) * EPS32, rel=1e-15)
    for factor, want in [(1 + tol / 2, True), (1 + 2 * tol, False), (1 - tol, True)]:
        wg = 0.5 * bound_by_hand()
        wg[2, 0] = factor * OTHERS[2] * XN[0]
        ctx = context(measured(wg), eps=EPS32)
        assert ctx.tol == pytest.approx(tol, rel=1e-12)
        row = by_layer(C1.check(ctx), "C1")[2]
        assert row["ratio"] == pytest.approx(factor, rel=1e-12)
        assert row["holds"] is want, (factor, tol, row)


def test_sigmoid_output_uses_lambda_quarter():
    f = chain_facts(3, output="sigmoid")
    wg = 0.3 * bound_by_hand() * np.array([1.0, 0.9])  # <= 1 * bound, but 1.2 x (1/4) bound
    rows = by_layer(C1.check(context(measured(wg, f))), "C1")
    for t in range(3):
        assert rows[t]["rhs"] == pytest.approx(0.25 * OTHERS[t] * XN[0], rel=1e-15)
        assert rows[t]["ratio"] == pytest.approx(1.2, rel=1e-14)
        assert rows[t]["holds"] is False


def test_conv_layer_factor_mu():
    """3x3 kernel, stride 1, zero padding 1 on 5x5: mu = sqrt(ceil(3/1) ceil(3/1)) = 3."""
    layers = [conv(0, 2, 3, (5, 5)), dense(1, 75, 4), dense(2, 4, 1)]
    assert layers[0].mu == 3.0
    ops = (2.0, 0.5, 3.0)
    f = chain_facts(3)
    wg = 0.5 * bound_by_hand()
    wg[0] = 2.5 * OTHERS[0] * XN                        # over the dense bound, under 3x it
    rows = C1.check(context(result(layers, norm_list(ops), grads(wg, XN), f)))
    row = by_layer(rows, "C1")[0]
    assert row["rhs"] == pytest.approx(3.0 * OTHERS[0] * XN[0], rel=1e-15)
    assert row["ratio"] == pytest.approx(2.5 / 3.0, rel=1e-14) and row["holds"] is True
    assert by_layer(rows, "C1a")[0]["note"] == "not applicable: conv layer (gradient is not " \
                                             "rank one)"
    assert by_layer(rows, "C1a")[0]["holds"] == ""
    wg[0] = 3.3 * OTHERS[0] * XN
    row = by_layer(C1.check(context(result(layers, norm_list(ops), grads(wg, XN), f))),
                   "C1")[0]
    assert row["holds"] is False and row["ratio"] == pytest.approx(1.1, rel=1e-14)


# -- C1-SN -------------------------------------------------------------------------------------
def test_c1_sn_bound_is_lambda_x():
    wg = np.array([[1.0, 2.0], [0.5, 2.2], [0.2, 0.4]])  # layer 1, input 1: 2.2 > ||x|| = 2
    res = measured(wg, ops=(1.0, 1.0, 1.0))
    rows = by_layer(C1.check(context(res, "sn")), "C1-SN")
    assert rows[0]["holds"] is True and rows[0]["ratio"] == pytest.approx(1.0, rel=1e-15)
    assert rows[1]["holds"] is False and rows[1]["ratio"] == pytest.approx(1.1, rel=1e-15)
    assert rows[1]["rhs"] == 2.0
    assert rows[2]["holds"] is True and rows[2]["ratio"] == pytest.approx(0.2, rel=1e-15)
    sig = by_layer(C1.check(context(measured(wg, chain_facts(3, output="sigmoid"),
                                             ops=(1.0, 1.0, 1.0)), "bsn")), "C1-SN")
    assert sig[0]["ratio"] == pytest.approx(4.0) and sig[0]["holds"] is False   # 1 / (||x|| / 4)


def test_c1_sn_not_applicable_with_a_conv_layer():
    layers = [conv(0, 2, 3, (5, 5)), dense(1, 75, 4), dense(2, 4, 1)]
    rows = C1.check(context(result(layers, norm_list((1.0, 1.0, 1.0)),
                                   grads(bound_by_hand(), XN), chain_facts(3)), "sn"))
    assert_na(rows, "C1-SN", "conv layers: SN_w operator norms can exceed 1 (C8); see C1",
              layers=[0, 1, 2])


def test_c1_sn_premise_failure_is_reported():
    """THEORY §0: a claim whose premise fails is REPORTED "not applicable" with the reason
    (``_base`` docstring: 'a claim whose premise fails yields not-applicable rows')."""
    for scheme, scale in [("lecun", 1.0), ("ssn", 1.7), (None, 1.0)]:
        rows = C1.check(context(measured(bound_by_hand()), scheme, scale=scale))
        assert_no_verdict(rows, "C1-SN")
        assert_na(rows, "C1-SN", "layers are not at spectral norm 1 (measured ||W_0||_op = 2, "
                  "and 2 more)", layers=[0, 1, 2])


def test_c1_sn_premise_is_measured_not_assumed_from_the_scheme_name():
    """THEORY §0: premises are measured; 'a model outside a premise can never produce a
    violated verdict'. Setting('sn') but measured ||W_i||_op = 2 (e.g. authors' one-step
    power-iteration sigma, or a mislabelled model): C1 holds, C1-SN's premise
    ('every dense layer at spectral norm 1') does not, so no C1-SN violation may appear."""
    ops = (2.0, 2.0, 2.0)
    wg = 3.0 * np.ones((3, 1))                           # C1 bound: 4 ||x|| = 4
    res = measured(wg, ops=ops, xn=np.array([1.0]))
    rows = C1.check(context(res, "sn"))
    assert all(r["holds"] is True for r in rows_of(rows, "C1"))
    bad = [r for r in rows_of(rows, "C1-SN") if r["holds"] is False]
    assert not bad, f"C1-SN 'violated' on layers whose measured sigma_op is 2: {bad}"


# -- C1a ---------------------------------------------------------------------------------------
def test_c1a_identity():
    wg = 0.5 * bound_by_hand()
    h = np.array([[1.0, 2.0], [3.0, 0.5], [2.0, 4.0]])
    delta = wg / h
    delta[1, 0] *= 1.01                                 # ||dD/dW|| = ||delta|| ||h|| / 1.01
    rows = by_layer(C1.check(context(measured(wg, h_norm=h, delta=delta))), "C1a")
    assert rows[0]["holds"] is True and rows[0]["ratio"] == pytest.approx(1.0, rel=1e-15)
    assert rows[1]["kind"] == "identity" and rows[1]["holds"] is False
    assert rows[1]["ratio"] == pytest.approx(1 / 1.01, rel=1e-14)
    assert rows[1]["lhs"] == wg[1, 0] and rows[1]["rhs"] == pytest.approx(delta[1, 0] * h[1, 0])


def test_c1a_tolerance_and_zero():
    layers = dense_stack(WIDTHS)
    tol = hand_tol(layers, EPS32)
    for factor, want in [(1 - tol / 2, True), (1 + tol / 2, True), (1 - 2 * tol, False),
                         (1 + 2 * tol, False)]:
        wg = 0.5 * bound_by_hand()
        h = np.ones((3, 2))
        delta = wg.copy()
        delta[2, 1] = wg[2, 1] / factor
        row = by_layer(C1.check(context(measured(wg, h_norm=h, delta=delta), eps=EPS32)),
                       "C1a")[2]
        assert row["holds"] is want, (factor, tol, row)
    wg = np.zeros((3, 2))                               # 0 == 0 counts as equality
    row = by_layer(C1.check(context(measured(wg))), "C1a")[0]
    assert row["holds"] is True and row["ratio"] == 1.0


# -- overflow ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.inf, math.nan, -math.inf])
def test_overflow_is_a_note_never_a_violation(bad):
    wg = 0.5 * bound_by_hand(others=np.ones(3))
    wg[1, 0] = bad
    rows = C1.check(context(measured(wg, ops=(1.0, 1.0, 1.0)), "sn"))   # C1-SN's premise holds
    for claim in ("C1", "C1-SN", "C1a"):
        r = by_layer(rows, claim)
        assert_overflow(r[1], 1)
        assert r[1]["kind"] == ("identity" if claim == "C1a" else "inequality")
    assert by_layer(rows, "C1")[0]["holds"] is True      # other layers are still checked
    assert not [r for r in rows if r["holds"] is False]


def test_na_wins_over_overflow():
    wg = np.full((3, 2), math.inf)
    rows = C1.check(context(measured(wg, chain_facts(3, biases=(False, True, False)))))
    assert_na(rows, "C1", "non-zero biases on layer(s) 1 (theory is bias-free)", [0, 1, 2])
