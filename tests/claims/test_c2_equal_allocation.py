"""C2a (premise / not-applicable paths only: its check needs a model) and C2b (THEORY §2).

C2b written out: ``lhs = ||x||^2 C^2 sum_t s_t^-2``, ``rhs = L ||x||^2 C^(2-2/L)``,
``C = prod s_t``; the row reports the smaller side first (``lhs`` column =
``L ||x||^2 C^(2-2/L)``), ratio <= 1.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradcheck.claims import c2_equal_allocation as C2
from gradcheck.claims import check_all

from .conftest import (
    BN_NODE,
    EPS32,
    assert_na,
    assert_overflow,
    chain_facts,
    context,
    dense_stack,
    grads,
    hand_tol,
    norm_list,
    result,
    rows_of,
)

WIDTHS = (4, 5, 3, 1)


def measured(ops, f=None, xn=(1.0,), wg=None):
    layers = dense_stack(WIDTHS[:len(ops) + 1] if len(ops) <= 3 else [4] * len(ops) + [1])
    xn = np.asarray(xn, dtype=float)
    wg = np.ones((len(ops), xn.size)) if wg is None else wg
    return result(layers, norm_list(ops), grads(wg, xn), f or chain_facts(len(ops)))


def c2b_row(rows):
    got = rows_of(rows, "C2b")
    assert len(got) == 1 and got[0]["layer"] == -1, got
    return got[0]


# -- C2b -----------------------------------------------------------------------------------
def test_c2b_values_by_hand():
    s = (2.0, 0.5, 4.0)                       # C = 4, sum s^-2 = 1/4 + 4 + 1/16 = 4.3125
    big = 3.0 ** 2 * 16 * 4.3125              # ||x|| = 3
    small = 3 * 3.0 ** 2 * 4.0 ** (2 - 2 / 3)
    row = c2b_row(C2.check(context(measured(s, xn=(3.0,)))))
    assert row["kind"] == "inequality"
    assert row["lhs"] == pytest.approx(small, rel=1e-14)
    assert row["rhs"] == pytest.approx(big, rel=1e-14)
    assert row["ratio"] == pytest.approx(small / big, rel=1e-14)
    assert row["holds"] is True


def test_c2b_equal_allocation_is_equality_within_tol():
    """All s_t equal: AM-GM is an equality; ratio 1 up to rounding, verdict holds."""
    res = measured((2.0, 2.0, 2.0), xn=(1.0, 0.7))
    tol = hand_tol(res.layers, 2.220446049250313e-16)
    row = c2b_row(C2.check(context(res)))
    assert abs(row["ratio"] - 1) <= tol and row["holds"] is True


@pytest.mark.parametrize("s, ratio", [
    ((0.0, 3.0), 0.0),          # C = 0: rhs 2 ||x||^2 0^1 = 0 < lhs ||x||^2 9
    ((0.0, 0.0), 0.0),          # 0 <= 0 (0/0 counts as ratio 0)
    ((5.0,), 1.0),              # L = 1: both sides ||x||^2
])
def test_c2b_degenerate(s, ratio):
    row = c2b_row(C2.check(context(measured(s, xn=(2.0,)))))
    assert row["ratio"] == pytest.approx(ratio, abs=1e-15) and row["holds"] is True


def test_c2b_tolerance_is_the_derived_one(monkeypatch):
    """C2b cannot be broken by consistent numbers; its verdict still uses ctx.tol: with the
    sides forced 1 + tol/2 and 1 + 2 tol apart the verdict flips exactly there."""
    res = measured((2.0, 0.5, 4.0), xn=(1.0,))
    tol = hand_tol(res.layers, EPS32)
    for factor, want in [(1 + tol / 2, True), (1 + 2 * tol, False)]:
        monkeypatch.setattr(C2, "c2b_lhs", lambda x, s: np.asarray(x, float) ** 2 * 10.0)
        monkeypatch.setattr(C2, "c2b_rhs", lambda x, s, f=factor:
                            np.asarray(x, float) ** 2 * 10.0 * f)
        row = c2b_row(C2.check(context(res, eps=EPS32)))
        assert row["ratio"] == pytest.approx(factor, rel=1e-12)
        assert row["holds"] is want, (factor, tol, row)


def test_c2b_overflow_of_the_product():
    row = c2b_row(C2.check(context(measured((1e200, 1e200, 1e200)))))
    assert_overflow(row)


def test_c2b_not_a_chain():
    f = chain_facts(3, chain=False, skips=((0, 1),))
    rows = C2.check(context(measured((2.0, 0.5, 4.0), f)))
    assert_na(rows, "C2b", "not a chain (skip around layers 0..1)", layers=[-1])
    assert_na(rows, "C2a", "not a chain (skip around layers 0..1)", layers=[0, 1, 2])


# -- C2a (model needed: only the not-applicable paths) --------------------------------------
@pytest.mark.parametrize("f, reason", [
    (chain_facts(3), "no model"),
    (chain_facts(3, activation="tanh"), "activation tanh is not positively homogeneous"),
    (chain_facts(3, output="sigmoid"), "output activation sigmoid is not homogeneous"),
    (chain_facts(3, biases=(False, False, True)),
     "non-zero biases on layer(s) 2 (theory is bias-free)"),
    (chain_facts(3, unsupported=BN_NODE), "unsupported node " + BN_NODE),
], ids=["no-model", "tanh", "sigmoid-output", "bias", "batchnorm"])
def test_c2a_not_applicable(f, reason):
    rows = C2.check(context(measured((2.0, 0.5, 4.0), f), "sn"))
    assert_na(rows, "C2a", reason, layers=[0, 1, 2])


def test_lrelu_and_linear_are_homogeneous():
    for f in (chain_facts(3, activation="lrelu", slope=0.2), chain_facts(3, activation="linear")):
        assert_na(C2.check(context(measured((1.0, 1.0, 1.0), f))), "C2a", "no model", [0, 1, 2])


def test_overflowing_gradients_skip_c2_in_check_all():
    wg = np.ones((3, 2))
    wg[0, 1] = math.inf
    x = torch.ones(2, 4, dtype=torch.float64)           # C7 reads mean(x^2) (see test_c7)
    rows = check_all(context(measured((2.0, 0.5, 4.0), xn=(1.0, 2.0), wg=wg), x=x))
    got = rows_of(rows, "C2a")                  # re-measures on the model: skipped, overflow
    assert len(got) == 1, got
    assert_overflow(got[0])
    # C2b reads only the (finite) operator norms and input norms: still checked
    assert [r["holds"] for r in rows_of(rows, "C2b")] == [True]
