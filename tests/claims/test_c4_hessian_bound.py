"""C4 (THEORY §2): the Hessian needs the model; here only the premise / not-applicable paths."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradcheck.claims import c4_hessian_bound as C4
from gradcheck.claims import check_all

from .conftest import (
    BN_NODE,
    assert_na,
    assert_overflow,
    chain_facts,
    context,
    dense_stack,
    grads,
    norm_list,
    result,
    rows_of,
)


def measured(f=None, wg=None):
    wg = np.ones((3, 2)) if wg is None else wg
    return result(dense_stack((4, 5, 3, 1)), norm_list((2.0, 0.5, 3.0)), grads(wg, (1.0, 2.0)),
                  f or chain_facts(3))


@pytest.mark.parametrize("f, reason", [
    (chain_facts(3), "no model"),
    (chain_facts(3, output="sigmoid"), "no model"),
    (chain_facts(3, activation="lrelu", slope=0.1), "no model"),
    (chain_facts(3, chain=False, skips=((1, 2),)), "not a chain (skip around layers 1..2)"),
    (chain_facts(3, unsupported=BN_NODE), "unsupported node " + BN_NODE),
    (chain_facts(3, biases=(True, True, False)),
     "non-zero biases on layer(s) 0, 1 (theory is bias-free)"),
    (chain_facts(3, output="tanh"), "output activation tanh is neither identity nor sigmoid"),
    (chain_facts(3, activation="tanh"), "activation tanh is not piecewise linear"),
], ids=["no-model", "sigmoid-no-model", "lrelu-no-model", "skip", "batchnorm", "bias",
        "tanh-output", "tanh"])
def test_not_applicable(f, reason):
    rows = C4.check(context(measured(f), "sn"))
    assert_na(rows, "C4", reason, layers=[0, 1, 2])
    assert len(rows) == 3


def test_premise_reason_wins_over_missing_model():
    rows = C4.check(context(measured(chain_facts(3, activation="tanh")), None))
    assert_na(rows, "C4", "activation tanh is not piecewise linear", layers=[0, 1, 2])


def test_overflowing_gradients_skip_c4_in_check_all():
    wg = np.ones((3, 2))
    wg[1, 1] = math.inf
    rows = check_all(context(measured(wg=wg), x=torch.ones(2, 4, dtype=torch.float64)))
    got = rows_of(rows, "C4")
    assert len(got) == 1
    assert_overflow(got[0])
