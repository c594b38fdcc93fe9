"""C7 (THEORY §3, prediction) on hand-built measurements, predictions written out by hand.

``q_0 = mean(x^2)``, ``q_l = kappa v_l fan_in_l q_{l-1}``; ``d_L = E[a_L'(z_L)^2]``,
``d_{l-1} = kappa v_l f_l d_l``; ``E||dD/dW_l||_F^2 ~ N_l fan_in_l d_l q_{l-1}``.
The row: rms over inputs of ``||dD/dW_l||_F`` vs ``sqrt`` of the prediction.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradcheck.claims import c7_meanfield as C7
from gradcheck.claims import check_all
from gradcheck.probe.facts import ActivationFact
from gradcheck.theory.meanfield import MeanField

from .conftest import (
    BN_NODE,
    assert_na,
    assert_no_verdict,
    assert_overflow,
    by_layer,
    chain_facts,
    context,
    dense_stack,
    grads,
    norms,
    result,
    rows_of,
)

LAYERS = dense_stack((4, 6, 5, 1))                       # fan_in 4, 6, 5; f = 6, 5, 1
X = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]], dtype=torch.float64)  # q0 = 4
XN = X.norm(dim=1).numpy()
WG = np.array([[2.0, 2.0], [1.0, 3.0], [math.sqrt(5), math.sqrt(5)]])   # rms 2, sqrt 5, sqrt 5


def measured(f=None, wg=WG, frob=(1.0, 1.0, 1.0), sigma_scheme=math.nan):
    ns = [norms(1.0, frobenius=fr, sigma_scheme=sigma_scheme) for fr in frob]
    return result(LAYERS, ns, grads(wg, XN), f or chain_facts(3))


def sigmoid_d(q: float) -> float:
    """E[sigma'(z)^2], z ~ N(0, q), by a fine trapezoid rule (independent of the module)."""
    z = np.linspace(-14, 14, 400_001) * math.sqrt(q)
    s = 1 / (1 + np.exp(-z))
    w = np.exp(-z * z / (2 * q)) / math.sqrt(2 * math.pi * q)
    return float(np.trapezoid((s * (1 - s)) ** 2 * w, z))


def check_ratios(rows, pred_sq):
    rows = by_layer(rows, "C7")
    meas = np.sqrt(np.mean(WG ** 2, axis=1))
    for t in range(3):
        r = rows[t]
        assert r["kind"] == "prediction" and r["holds"] == ""
        assert r["lhs"] == pytest.approx(meas[t], rel=1e-14)
        assert r["rhs"] == pytest.approx(math.sqrt(pred_sq[t]), rel=1e-9)
        assert r["ratio"] == pytest.approx(meas[t] / math.sqrt(pred_sq[t]), rel=1e-9)


def test_relu_lecun_by_hand():
    # v = 1/4, 1/6, 1/5; kappa 1/2: q = 4, 2, 1; d = 1/24, 1/10, 1 -> 6*4/24*4, 5*6/10*2, 5*1*1
    check_ratios(C7.check(context(measured(), "lecun", x=X)), [4.0, 6.0, 5.0])


def test_linear_unknown_provenance_uses_realised_variance():
    # no activations -> 'linear', kappa 1; scheme None: v = ||W||_F^2 / numel = 6/24, 5/30, 1/5
    f = chain_facts(3, activation="linear")
    res = measured(f, frob=(math.sqrt(6), math.sqrt(5), 1.0))
    # q = 4, 4, 4; d = 1/6, 1/5, 1 -> 6*4*4/6, 5*6*4/5, 1*5*4
    check_ratios(C7.check(context(res, None, x=X)), [16.0, 24.0, 20.0])


def test_sn_variance_is_c2_over_fan_in_sigma2():
    # v = c^2 / (fan_in sigma^2) with c = 2, sigma = 2: v = 1/fan_in -> the LeCun numbers
    res = measured(sigma_scheme=2.0)
    check_ratios(C7.check(context(res, "ssn", scale=2.0, x=X)), [4.0, 6.0, 5.0])


def test_sigmoid_output():
    d_L = sigmoid_d(1.0)                                 # pre-activation second moment q = 1
    res = measured(chain_facts(3, output="sigmoid"))
    check_ratios(C7.check(context(res, "lecun", x=X)), [4.0 * d_L, 6.0 * d_L, 5.0 * d_L])


def test_supplied_mean_field_is_used():
    mf = MeanField(q=np.ones(3), d=np.ones(3), chi=np.ones(3),
                   weight_grad_sq=np.array([1.0, 4.0, 16.0]), act_grad_sq=np.ones(3))
    rows = by_layer(C7.check(context(measured(), "lecun", extra={"mean_field": mf})), "C7")
    assert [rows[t]["rhs"] for t in range(3)] == [1.0, 2.0, 4.0]


MIXED = (ActivationFact("relu", 0.0, False, "1"), ActivationFact("tanh", 0.0, False, "3"))


@pytest.mark.parametrize("f, reason", [
    (chain_facts(3, chain=False, skips=((1, 2),)), "not a chain (skip around layers 1..2)"),
    (chain_facts(3, unsupported=BN_NODE), "unsupported node " + BN_NODE),
    (chain_facts(3, activations=MIXED), "no mean-field prediction for mixed or unidentified "
                                        "activations"),
    (chain_facts(3, output="tanh"), "output activation tanh is neither identity nor sigmoid"),
], ids=["skip", "batchnorm", "mixed", "tanh-output"])
def test_not_applicable(f, reason):
    rows = C7.check(context(measured(f), "lecun", x=X))
    assert_na(rows, "C7", reason, layers=[0, 1, 2])


def test_overflow():
    wg = WG.copy()
    wg[2, 1] = math.inf
    rows = by_layer(C7.check(context(measured(wg=wg), "lecun", x=X)), "C7")
    assert_overflow(rows[2], 1)
    assert rows[0]["ratio"] == pytest.approx(1.0)


def test_biases_make_c7_not_applicable():
    """THEORY §0: 'The theory is bias-free ... such rows are reported as not applicable'. The
    C7 recursion q_l = kappa v fan_in q_{l-1} has no bias term, so on a model with non-zero
    biases its prediction is not the theory's: it must be n/a, not a measured/predicted ratio."""
    rows = C7.check(context(measured(chain_facts(3, biases=(True, True, True))), "lecun", x=X))
    assert_no_verdict(rows, "C7")
    assert_na(rows, "C7", "non-zero biases on layer(s) 0, 1, 2 (theory is bias-free)",
              layers=[0, 1, 2])


def test_no_inputs_in_the_context_does_not_crash():
    """Context.x defaults to None and C7 declares no 'needs'; q_0 = mean(x^2) is also
    mean_b ||x_b||^2 / numel(x_b) from the measured x_norm. check (and check_all) must not
    raise AttributeError on a hand-built / loaded ProbeResult without the inputs."""
    ctx = context(measured(), "lecun")
    rows = C7.check(ctx)
    assert_no_verdict(rows, "C7")
    rows = check_all(ctx)
    assert rows_of(rows, "C7")
