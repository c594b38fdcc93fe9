"""C11 and C11-H (THEORY §6) on hand-built graphs of CNodes; F and B computed by hand.

``F(x) = 1``; layer / linear map A: ``F = ||A||_op F(in)``; activation: ``F(in)``; sum:
``sum F``; cat: ``sqrt(sum F^2)``. ``B(D) = lambda_L`` (the output sigmoid contributes 1/4);
``B(n) = sum_j B(c_j) Lip_n(c_j)``. Row: ``||dD/dW_t|| <= mu ||h|| ||delta|| <= mu F(h_{t-1})
||x|| B(z_t)``, both asserted; lhs/rhs/ratio of the outer pair at the worst input.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck.claims import c1_gradient_bound as C1
from gradcheck.claims import c11_graph_bound as C11
from gradcheck.probe.facts import LinearMapFact

from .conftest import (
    BN_NODE,
    EPS32,
    act_node,
    acts,
    assert_na,
    assert_overflow,
    by_layer,
    cat_node,
    chain_facts,
    context,
    conv,
    dense,
    dense_stack,
    facts,
    grads,
    hand_tol,
    layer_node,
    linear_node,
    norm_list,
    rel,
    result,
    sum_node,
)

XN = np.array([1.0, 2.0])


# -- the graphs ----------------------------------------------------------------------------
def chain_case():
    """x -W0-> relu -W1-> relu -W2-> reshape; ops 2, 0.5, 3. FB = (0.5*3, 2*3, 2*0.5)."""
    return (dense_stack((4, 5, 3, 1)), (2.0, 0.5, 3.0), chain_facts(3), [1.5, 6.0, 1.0])


def residual_case():
    """z0 = W0 x; out = z0 + W1 relu(z0); D = W2 out.
    F: F(z0) = 2, F(relu) = 2, F(z1) = 1, F(sum) = 3.  B: B(sum) = 3, B(z1) = 3,
    B(relu) = 1.5, B(z0) = 3 + 1.5 = 4.5.  FB = (1 * 4.5, 2 * 3, 3 * 1)."""
    layers = [dense(0, 4, 5), dense(1, 5, 5), dense(2, 5, 1)]
    g = (layer_node(0, 0, 1), act_node(1, 2), layer_node(1, 2, 3), sum_node((1, 3), 4),
         layer_node(2, 4, 5), linear_node(5, 6))
    f = facts(g, 6, 3, chain=False, skips=((1, 1),), activations=acts(1))
    return layers, (2.0, 0.5, 3.0), f, [4.5, 6.0, 3.0]


def cat_case():
    """D = W2 cat(relu(W0 x), W1 x). F(cat) = sqrt(2^2 + 0.5^2); B(z0) = B(z1) = 3.
    FB = (1 * 3, 1 * 3, sqrt(4.25) * 1)."""
    layers = [dense(0, 4, 3), dense(1, 4, 2), dense(2, 5, 1)]
    g = (layer_node(0, 0, 1), act_node(1, 2), layer_node(1, 0, 3), cat_node((2, 3), 4),
         layer_node(2, 4, 5), linear_node(5, 6))
    f = facts(g, 6, 3, chain=False, skips=((0, 1),), activations=acts(1))
    return layers, (2.0, 0.5, 3.0), f, [3.0, 3.0, math.sqrt(4.25)]


def pool_case():
    """conv 3x3 (mu 3) -> relu -> 2x2 average pool (lip 1/2) -> flatten -> dense; ops 2, 3.
    FB = (1 * 1/2 * 3, 2 * 1/2 * 1); with mu: (4.5, 1)."""
    layers = [conv(0, 1, 2, (4, 4)), dense(1, 8, 1)]
    g = (layer_node(0, 0, 1), act_node(1, 2), linear_node(2, 3, 0.5, "avg_pool2d"),
         linear_node(3, 4, 1.0, "flatten"), layer_node(1, 4, 5), linear_node(5, 6))
    f = facts(g, 6, 2, activations=acts(1),
              linear_maps=(LinearMapFact("avg_pool2d", "pool", 0.5, "dense"),))
    return layers, (2.0, 3.0), f, [1.5, 1.0]


def sigmoid_case():
    """x -W0-> relu -W1-> sigmoid -> reshape; ops 2, 3. B(z1) = 1/4: FB = (3/4, 2/4)."""
    return (dense_stack((4, 3, 1)), (2.0, 3.0), chain_facts(2, output="sigmoid"), [0.75, 0.5])


CASES = {"chain": chain_case, "residual": residual_case, "cat": cat_case, "pool": pool_case,
         "sigmoid": sigmoid_case}


def measurements(layers, ops, f, FB, a=0.8, b=0.9, c=0.7, xn=XN):
    """Middle term ``mu ||h|| ||delta|| = a b`` x the graph bound, ``||dD/dW_t|| = c`` x the
    middle term; input 1 scaled by 0.9 so that input 0 is the one worst input."""
    mu = np.array([i.mu for i in layers])
    FB = np.asarray(FB)
    spread = np.array([1.0, 0.9])
    # F(h_{t-1}) is folded into delta: mu ||h|| ||delta|| = a b (mu F B ||x||) spread
    h = a * np.ones((len(layers), 1)) * xn[None, :]
    delta = b * FB[:, None] * spread[None, :] * np.ones_like(h)
    wg = c * mu[:, None] * h * delta
    return result(layers, norm_list(ops), grads(wg, xn, h_norm=h, delta=delta), f), mu


@pytest.mark.parametrize("name", list(CASES))
def test_rhs_is_mu_F_x_B_at_the_worst_input(name):
    layers, ops, f, FB = CASES[name]()
    res, mu = measurements(layers, ops, f, FB)
    rows = by_layer(C11.check(context(res)), "C11")
    assert sorted(rows) == list(range(len(layers)))
    g = res.grads
    for t, r in rows.items():
        bound = mu[t] * FB[t] * XN
        ratios = g.weight_grad[t] / bound
        w = int(np.argmax(ratios))
        assert r["kind"] == "inequality"
        assert rel(r["rhs"], bound[w]) <= 1e-12, (name, t, r, bound)
        assert r["lhs"] == g.weight_grad[t, w]
        assert rel(r["ratio"], ratios[w]) <= 1e-12
        assert r["holds"] is True
        assert f"F B = {FB[t]:.6g}" in r["note"], r["note"]
    assert_na(C11.check(context(res)), "C11-H", "no model")


def test_residual_bound_exceeds_the_chain_product():
    """THEORY §6: C1's product is not a bound around a skip. Gradients above C1's product but
    within C11's bound: C1 is n/a (not a chain), C11 holds."""
    layers, ops, f, FB = residual_case()
    prod = [0.5 * 3.0, 2.0 * 3.0, 2.0 * 0.5]
    res, _ = measurements(layers, ops, f, FB, a=1.0, b=1.0, c=1.0)
    assert all(res.grads.weight_grad[t, 0] > prod[t] * XN[0] for t in (0, 2))
    assert_na(C1.check(context(res)), "C1", "not a chain (skip around layers 1..1)", [0, 1, 2])
    assert all(r["holds"] is True for r in by_layer(C11.check(context(res)), "C11").values())


def test_on_a_chain_c11_is_c1():
    """F(h_{t-1}) B(z_t) = lambda_L prod_{i != t} ||W_i||_op (mu for conv), to 1e-12 relative."""
    rng = np.random.default_rng(5)
    for layers, out in [(dense_stack((4, 5, 3, 6, 1)), "identity"),
                        ([conv(0, 2, 3, (5, 5)), conv(1, 3, 2, (5, 5), stride=2),
                          dense(2, 18, 4), dense(3, 4, 1)], "sigmoid")]:
        L = len(layers)
        ops = rng.uniform(0.1, 5.0, L)
        lam = 0.25 if out == "sigmoid" else 1.0
        xn = rng.uniform(0.5, 3.0, 4)
        wg = rng.uniform(0.0, 1e-3, (L, 4))
        res = result(layers, norm_list(ops), grads(wg, xn, h_norm=np.ones((L, 4)),
                                                   delta=wg), chain_facts(L, output=out))
        c11 = by_layer(C11.check(context(res)), "C11")
        c1 = by_layer(C1.check(context(res)), "C1")
        for t in range(L):
            others = math.prod(ops[i] for i in range(L) if i != t)
            w = int(np.argmax(wg[t] / xn))
            want = lam * layers[t].mu * xn[w] * others
            assert rel(c11[t]["rhs"], want) <= 1e-12, (t, c11[t], want)
            assert rel(c11[t]["rhs"], c1[t]["rhs"]) <= 1e-12


def test_pooling_norm_tightens_the_bound():
    layers, ops, f, FB = pool_case()
    res, mu = measurements(layers, ops, f, FB)
    c1 = by_layer(C1.check(context(res)), "C1")
    c11 = by_layer(C11.check(context(res)), "C11")
    assert mu[0] == 3.0
    assert rel(c1[0]["rhs"], 3.0 * 3.0 * XN[0]) <= 1e-12            # C1: mu * ||W_1|| ||x||
    assert rel(c11[0]["rhs"], 4.5 * XN[0]) <= 1e-12 and rel(c11[1]["rhs"], 1.0 * XN[0]) <= 1e-12


# -- both inequalities are asserted ---------------------------------------------------------
def test_middle_above_the_graph_bound_is_a_violation():
    layers, ops, f, FB = chain_case()
    res, _ = measurements(layers, ops, f, FB, a=1.0, b=1.2, c=0.4)   # mu h delta = 1.2 bound
    r = by_layer(C11.check(context(res)), "C11")[1]
    assert r["holds"] is False
    assert r["ratio"] == pytest.approx(0.48, rel=1e-14)              # the outer ratio is < 1
    assert "(mu ||h|| ||dD/dz||)/(mu F B ||x||) 1.2" in r["note"]


def test_gradient_above_the_measured_middle_is_a_violation():
    layers, ops, f, FB = chain_case()
    res, _ = measurements(layers, ops, f, FB, a=0.5, b=0.5, c=2.0)   # wg = 2 mu h delta
    r = by_layer(C11.check(context(res)), "C11")[2]
    assert r["holds"] is False and r["ratio"] == pytest.approx(0.5, rel=1e-14)
    assert "||dD/dW||/(mu ||h|| ||dD/dz||) 2" in r["note"]


def test_broken_outer_bound():
    layers, ops, f, FB = residual_case()
    res, _ = measurements(layers, ops, f, FB, a=1.0, b=1.1, c=1.0)
    r = by_layer(C11.check(context(res)), "C11")[0]
    assert r["holds"] is False and r["ratio"] == pytest.approx(1.1, rel=1e-14)
    assert rel(r["rhs"], 4.5 * XN[0]) <= 1e-12


def test_tolerance_straddles_equality():
    layers, ops, f, FB = cat_case()
    tol = hand_tol(layers, EPS32)
    for c, want in [(1 + tol / 2, True), (1 + 2 * tol, False)]:
        res, _ = measurements(layers, ops, f, FB, a=0.5, b=0.5, c=c)
        ctx = context(res, eps=EPS32)
        assert ctx.tol == pytest.approx(tol, rel=1e-12)
        r = by_layer(C11.check(ctx), "C11")[1]
        assert r["holds"] is want, (c, tol, r)
    for b, want in [(1 + tol / 2, True), (1 + 2 * tol, False)]:
        res, _ = measurements(layers, ops, f, FB, a=1.0, b=b, c=1.0)
        r = by_layer(C11.check(context(res, eps=EPS32)), "C11")[2]
        assert r["holds"] is want, (b, tol, r)


# -- premises, overflow, C11-H ---------------------------------------------------------------
@pytest.mark.parametrize("kw, reason", [
    (dict(unsupported=BN_NODE), "unsupported node " + BN_NODE),
    (dict(biases=(False, True, False)), "non-zero biases on layer(s) 1 (theory is bias-free)"),
    (dict(output="tanh"), "output activation tanh is neither identity nor sigmoid"),
], ids=["batchnorm", "bias", "tanh-output"])
def test_not_applicable(kw, reason):
    layers, ops, f, FB = residual_case()
    f = facts(f.graph, f.out_value, 3, chain=False, skips=f.skips, activations=f.activations,
              **{"output": "identity", **kw})
    res, _ = measurements(layers, ops, f, FB, a=1.0, b=5.0, c=1.0)   # 5x over: still n/a
    rows = C11.check(context(res, "sn"))
    assert_na(rows, "C11", reason, layers=[0, 1, 2])
    assert_na(rows, "C11-H", reason, layers=[0, 1, 2])


def test_c11h_needs_piecewise_linear_activations():
    layers, ops, _, FB = chain_case()
    f = chain_facts(3, activation="tanh")
    res, _ = measurements(layers, ops, f, FB)
    rows = C11.check(context(res))
    assert all(r["holds"] is True for r in by_layer(rows, "C11").values())
    assert_na(rows, "C11-H", "activation tanh is not piecewise linear", layers=[0, 1, 2])


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_overflow(bad):
    layers, ops, f, FB = residual_case()
    res, _ = measurements(layers, ops, f, FB)
    wg = res.grads.weight_grad.copy()
    wg[1, 0] = bad
    res = result(layers, norm_list(ops), grads(wg, XN, h_norm=res.grads.h_norm,
                                               delta=res.grads.delta), f)
    rows = by_layer(C11.check(context(res)), "C11")
    assert_overflow(rows[1], 1)
    assert rows[0]["holds"] is True and rows[2]["holds"] is True
