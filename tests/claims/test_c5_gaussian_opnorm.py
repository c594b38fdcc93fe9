"""C5-ratio (THEORY §3, prediction): raw ``sigma_R / (s (sqrt m + sqrt n))`` per layer, with the
Gordon bounds ``s max(E||g_m||, E||g_n||)`` and ``s (sqrt m + sqrt n)`` in the note."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck.claims import c5_gaussian_opnorm as C5

from .conftest import (
    assert_na,
    assert_no_verdict,
    by_layer,
    chain_facts,
    context,
    conv,
    dense,
    grads,
    norms,
    result,
    rows_of,
)


def chi_mean(k: int) -> float:
    """E||g_k|| = sqrt(2) Gamma((k+1)/2) / Gamma(k/2)."""
    return math.sqrt(2) * math.exp(math.lgamma((k + 1) / 2) - math.lgamma(k / 2))


def measured(layers, raw_sigmas, f=None, sigma_scheme=math.nan):
    ns = [norms(1.0, raw_sigma_R=r, sigma_scheme=sigma_scheme) for r in raw_sigmas]
    return result(layers, ns, grads(np.ones((len(layers), 1)), (1.0,)),
                  f or chain_facts(len(layers)))


LAYERS = [dense(0, 9, 4), conv(1, 2, 3, (5, 5)), dense(2, 75, 1)]


@pytest.mark.parametrize("scheme, f, stds", [
    ("lecun", chain_facts(3), [1 / 3, 1 / math.sqrt(18), 1 / math.sqrt(75)]),
    ("kaiming", chain_facts(3, activation="lrelu", slope=0.2),
     [math.sqrt(2 / 1.04) / 3, math.sqrt(2 / 1.04) / math.sqrt(18),
      math.sqrt(2 / 1.04) / math.sqrt(75)]),
    ("kaiming", chain_facts(3, activation="relu"),
     [math.sqrt(2) / 3, math.sqrt(2) / math.sqrt(18), math.sqrt(2) / math.sqrt(75)]),
    ("xavier", chain_facts(3), [math.sqrt(2 / 13), math.sqrt(2 / 45), math.sqrt(2 / 76)]),
    ("sn", chain_facts(3), [1 / 3, 1 / math.sqrt(18), 1 / math.sqrt(75)]),
    ("bssn", chain_facts(3), [1 / 3, 1 / math.sqrt(18), 1 / math.sqrt(75)]),
])
def test_ratio_by_hand(scheme, f, stds):
    raw = [2.0, 1.5, 0.9]
    mn = [(4, 9), (3, 18), (1, 75)]                     # (c_out, fan_in)
    rows = by_layer(C5.check(context(measured(LAYERS, raw, f), scheme, scale=1.7)), "C5-ratio")
    assert sorted(rows) == [0, 1, 2]
    for t, ((m, n), s) in enumerate(zip(mn, stds)):
        pred = s * (math.sqrt(m) + math.sqrt(n))
        r = rows[t]
        assert r["kind"] == "prediction" and r["holds"] == ""
        assert r["lhs"] == raw[t]
        assert r["rhs"] == pytest.approx(pred, rel=1e-14)
        assert r["ratio"] == pytest.approx(raw[t] / pred, rel=1e-14)
        lo, hi = s * max(chi_mean(m), chi_mean(n)), pred
        assert r["note"].endswith(f"[{lo:.4g}, {hi:.4g}]"), (r["note"], lo, hi)


def test_c5_inequality_is_never_emitted_per_seed():
    rows = C5.check(context(measured(LAYERS, [2.0, 1.5, 0.9]), "lecun"))
    assert rows_of(rows, "C5") == []


@pytest.mark.parametrize("scheme, trained, reason", [
    (None, False, "weights of unknown provenance"),
    ("orthogonal", False, "orthogonal weights are not Gaussian"),
    ("sn", True, "trained weights are no longer the scheme's Gaussian draw"),
])
def test_no_prediction_outside_the_premise(scheme, trained, reason):
    rows = C5.check(context(measured(LAYERS, [2.0, 1.5, 0.9]), scheme, trained=trained))
    assert_no_verdict(rows, "C5-ratio")
    assert_na(rows, "C5-ratio", reason)                  # every row present is n/a


def test_premise_failure_is_reported():
    """THEORY §0 / claims._base: a failing premise is reported as n/a rows with the reason."""
    for scheme, trained, reason in [
            (None, False, "weights of unknown provenance"),
            ("orthogonal", False, "orthogonal weights are not Gaussian"),
            ("sn", True, "trained weights are no longer the scheme's Gaussian draw")]:
        rows = C5.check(context(measured(LAYERS, [2.0, 1.5, 0.9]), scheme, trained=trained))
        assert_na(rows, "C5-ratio", reason, layers=[0, 1, 2])


def test_overflowing_gradients_do_not_touch_c5():
    res = measured(LAYERS, [2.0, 1.5, 0.9])
    bad = result(res.layers, res.norms, grads(np.full((3, 1), math.inf), (1.0,)), res.facts)
    assert C5.check(context(bad, "lecun")) == C5.check(context(res, "lecun"))
