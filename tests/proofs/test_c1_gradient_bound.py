"""THEORY C1, C1a, C1-SN as property tests (hypothesis, float64) and the proofs_numeric module.

Strategies: dense and conv nets, depth 1-6, widths 1-32 (conv channels 1-8), kernels 1-5,
strides 1-3, paddings 0-2, every activation, identity and sigmoid output, every scheme, scale,
seeds. Premise (assumed by construction): bias-free. Tolerance: ``inequality_tol`` =
``10 (L + 1) sqrt(width) eps`` relative (rounding of L products/reductions of length <= width).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import EPS, net_params
from hypothesis import given, settings, target
from hypothesis import strategies as st

from gradcheck.claims import c1_gradient_bound as claim
from gradcheck.probe import ProbeOptions, probe
from gradcheck.schemes.registry import SCHEMES
from gradcheck.theory.bounds import chain_tol, lambda_L
from proofs_numeric import c1_gradient_bound as C1
from proofs_numeric._base import asserted, context

pytestmark = pytest.mark.usefixtures("single_blas_thread")
nets = net_params()


def _measure(p):
    model, x = C1.build(p)
    res = probe(model, x, ProbeOptions(spectra=False))
    return res, chain_tol(res.layers, EPS)


@settings(max_examples=40, deadline=None)
@given(nets())
def test_gradient_norm_leq_bound(p):
    """C1: ||dD/dW_t||_F <= lambda_L mu_t ||x|| prod_{i != t} ||W_i||_op, every layer and input
    (rhs: the claims module's ``bound(ctx)``); the claims check agrees on every row."""
    ctx = C1.make_context(p)
    tol, g = ctx.tol, ctx.result.grads
    bound = claim.bound(ctx)
    ratio = g.weight_grad / np.maximum(bound, 1e-300)
    target(float(ratio.max()), label="C1 ratio")
    t, b = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    assert ratio.max() <= 1 + tol, (f"C1 violated at layer {t}, input {b}: ratio "
                                    f"{ratio.max()!r} > 1 + {tol:.2e}; params {p}")
    rows = [r for r in claim.check(ctx) if r["claim"] == "C1"]
    assert len(rows) == len(ctx.layers) and all(r["holds"] is True for r in rows), rows


@settings(max_examples=30, deadline=None)
@given(nets(conv=False))
def test_dense_gradient_is_rank_one(p):
    """C1a: for one input to a dense layer ||dD/dW_t||_F = ||delta_t|| ||h_{t-1}||."""
    res, tol = _measure(p)
    g = res.grads
    rhs = g.delta * g.h_norm
    err = np.abs(g.weight_grad - rhs) / np.maximum(rhs, 1e-300)
    err = np.where(rhs == 0, np.abs(g.weight_grad), err)
    assert err.max() <= tol, f"C1a: worst relative error {err.max():.2e} > {tol:.2e}; {p}"


@settings(max_examples=30, deadline=None)
@given(nets(conv=False, schemes=tuple(n for n, s in SCHEMES.items() if s.unit_norm)))
def test_sn_bound_is_input_norm(p):
    """C1-SN: every dense layer at spectral norm 1 -> ||dD/dW_t|| <= lambda_L ||x||."""
    res, tol = _measure(p)
    ops = np.array([n.sigma_op for n in res.norms])
    np.testing.assert_allclose(ops, 1.0, rtol=tol, atol=0)
    g = res.grads
    ratio = g.weight_grad / (lambda_L(p["output"]) * g.x_norm[None, :])
    assert ratio.max() <= 1 + tol, f"C1-SN ratio {ratio.max()!r}; {p}"


def test_c1_is_tight_for_one_dense_layer():
    """Known answer: D = w^T x has dD/dw = x, so the bound ||x|| is attained (ratio 1)."""
    p = dict(C1.sample(np.random.default_rng(0)), conv=False, depth=1, scheme="sn",
             output="identity")
    res, tol = _measure(p)
    np.testing.assert_allclose(res.grads.weight_grad[0], res.grads.x_norm, rtol=tol)


def test_module_rows_hold():
    rng = np.random.default_rng(5)
    rows = [r for _ in range(10) for r in C1.instance(C1.sample(rng))]
    assert {r.claim for r in rows} >= {"C1", "C1a"}
    bad = [r for r in rows if r.holds is False]
    assert not bad, bad[:3]


def test_module_rows_are_the_claims_check():
    """The module's rows are exactly the asserted rows of ``claims.c1_gradient_bound.check``
    (same lhs, rhs, verdict): one check, many callers. Every sampled chain gets a C1 row per
    layer; C1-SN rows exist for the unit-norm schemes on dense chains."""
    rng = np.random.default_rng(3)
    seen_sn = False
    for _ in range(8):
        p = C1.sample(rng)
        ctx = C1.make_context(p)
        want = [r for r in claim.check(ctx) if asserted(r)]
        got = C1.instance(p)
        assert [(r.claim, r.lhs, r.rhs, r.holds) for r in got] == \
            [(r["claim"], r["lhs"], r["rhs"], r["holds"]) for r in want]
        assert sum(r.claim == "C1" for r in got) == len(ctx.layers)
        seen_sn |= any(r.claim == "C1-SN" for r in got)
        if SCHEMES[p["scheme"]].unit_norm and not p["conv"]:
            assert sum(r.claim == "C1-SN" for r in got) == len(ctx.layers)
    assert seen_sn


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 3),
       st.integers(0, 2), st.integers(8, 20))
def test_conv_factor_mu_is_needed_and_sufficient(c_in, c_out, k, s, pad, size):
    """C1's conv factor on its near-worst case: one linear conv layer, an all-ones input and a
    uniform dense head. Then dD/dK sums each tap over ~N positions and ||dD/dK|| / (||x||
    ||head||) -> mu as the image grows (every interior pixel lies in ceil(k/s)^2 patches), so
    the inequality must hold with mu and is nearly tight: without mu it fails for k > s."""
    from hypothesis import assume
    from torch import nn

    from gradcheck.models import Discriminator

    assume(size + 2 * pad >= k)
    conv = nn.Conv2d(c_in, c_out, k, stride=s, padding=pad, bias=False)
    n_out = (size + 2 * pad - k) // s + 1
    head = nn.Linear(c_out * n_out * n_out, 1, bias=False)
    model = Discriminator(conv, nn.Identity(), nn.Flatten(), head).double()
    with torch.no_grad():
        conv.weight.normal_(generator=torch.Generator().manual_seed(k * 31 + s))
        head.weight.fill_(1.0 / math.sqrt(head.weight.numel()))
    x = torch.ones(1, c_in, size, size, dtype=torch.float64)
    ctx = context(model, x, None)          # weights set by hand: unknown provenance
    bound = claim.bound(ctx)
    ratio = float(ctx.result.grads.weight_grad[0, 0] / bound[0, 0])
    target(ratio, label="conv C1 ratio")
    assert ratio <= 1 + ctx.tol, f"C1 conv layer: ratio {ratio!r} > 1 + {ctx.tol:.1e}"
