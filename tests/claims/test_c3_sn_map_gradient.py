"""C3a, C3b (THEORY §2): every measured row needs the model (raw-weight autograd); here only the
premise and not-applicable paths, which need none."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradcheck.claims import c3_sn_map_gradient as C3
from gradcheck.claims import check_all

from .conftest import (
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
    layers = dense_stack((4, 5, 3, 1))
    wg = np.ones((3, 2)) if wg is None else wg
    return result(layers, norm_list((1.0, 1.0, 1.0), sigma_scheme=2.0),
                  grads(wg, (1.0, 2.0)), f or chain_facts(3))


@pytest.mark.parametrize("scheme", [None, "lecun", "kaiming", "orthogonal"])
def test_not_an_sn_scheme(scheme):
    rows = C3.check(context(measured(), scheme))
    for claim in ("C3a", "C3b"):
        assert_na(rows, claim, "not an SN-family scheme", layers=[0, 1, 2])
    assert len(rows) == 6


@pytest.mark.parametrize("scheme", ["sn", "bsn", "ssn", "bssn", "sn-conv"])
def test_sn_scheme_without_a_model(scheme):
    rows = C3.check(context(measured(), scheme, scale=1.5))
    for claim in ("C3a", "C3b"):
        assert_na(rows, claim, "no model", layers=[0, 1, 2])


def test_c3_has_no_graph_premise():
    """C3 is about one layer's SN map: a graph with biases still only lacks the model."""
    f = chain_facts(3, chain=False, skips=((0, 1),), biases=(True, False, False))
    assert_na(C3.check(context(measured(f), "sn")), "C3a", "no model", layers=[0, 1, 2])


def test_overflowing_gradients_skip_c3_in_check_all():
    wg = np.ones((3, 2))
    wg[2, 0] = math.nan
    rows = check_all(context(measured(wg=wg), "sn", x=torch.ones(2, 4, dtype=torch.float64)))
    for claim in ("C3a", "C3b"):
        got = rows_of(rows, claim)
        assert len(got) == 1
        assert_overflow(got[0])
