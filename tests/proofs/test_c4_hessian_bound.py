"""THEORY C4 (inequality) on random piecewise-linear nets, and the ``proofs_numeric`` module.

Property tests (hypothesis, float64) over dense and conv nets: depth 1-6, widths 1-32 (conv
channels 1-8), kernels 1-5, strides 1-3, paddings 0-2, activations relu / lrelu / linear (C4's
premise; tanh is a negative control), sigmoid or identity output, every scheme, scale, seeds.
Layers above ``EXACT_MAX`` weights take the Lanczos path.

Tolerance: ``inequality_tol(eps, L, max(width, n))`` relative, ``n`` the Hessian size (its
``eigvalsh``/Lanczos error is ``~ n eps ||H||``); Lanczos at ``tol = 1e-10`` only ever lowers lhs.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import EPS, assert_rel_close
from conftest import net_params as shared_net_params
from hypothesis import given, settings, target
from torch import nn

from gradcheck.claims import c4_hessian_bound as claim
from gradcheck.models import Discriminator
from gradcheck.probe import ProbeOptions, probe
from gradcheck.probe.hessian import weight_hessian_opnorm
from gradcheck.schemes.registry import NAMES as SCHEMES
from gradcheck.theory.bounds import inequality_tol
from gradcheck.theory.reparam import c4_bound
from proofs_numeric import c4_hessian_bound as C4
from proofs_numeric._base import asserted, context
from proofs_numeric.c2_equal_allocation import build_generic

pytestmark = pytest.mark.usefixtures("single_blas_thread")
INPUTS = 2


net_params = shared_net_params(activations=C4.PIECEWISE_LINEAR, outputs=("sigmoid",),
                              schemes=SCHEMES)


def _measure(p):
    model, x = build_generic(p)
    x = x[:INPUTS]
    res = probe(model, x, ProbeOptions(spectra=False))
    ops = np.array([n.sigma_op for n in res.norms])
    return model, x, res, ops


@settings(max_examples=40, deadline=None)
@given(net_params())
def test_c4_hessian_opnorm_leq_bound(p):
    """THEORY C4: ``||H_{W_t} D||_op <= sup|a_L''| (mu_t ||x|| prod_{i != t} ||W_i||_op)^2`` for
    every layer and input, sigmoid output."""
    model, x, res, ops = _measure(p)
    L = len(res.layers)
    for t, info in enumerate(res.layers):
        n = int(np.prod(info.weight_shape))
        tol = inequality_tol(EPS, L, max(int(np.prod(info.input_shape)),
                                         int(np.prod(info.output_shape)), n))
        for b in range(len(x)):
            lhs = weight_hessian_opnorm(model, x[b:b + 1], t)
            rhs = float(c4_bound("sigmoid", info.mu, res.grads.x_norm[b], ops, t))
            target(lhs / rhs if rhs > 0 else 0.0, label=f"C4 ratio, layer {t}, input {b}")
            assert lhs <= rhs * (1 + tol), (
                f"C4 violated on layer {t} ({info.kind}, n={n}, mu={info.mu:.3g}) input {b}: "
                f"{lhs!r} > {rhs!r} (ratio {lhs / rhs!r}, tol {tol:.3g}); ops {ops}; {p}")


@settings(max_examples=25, deadline=None)
@given(net_params(outputs=("identity",)))
def test_c4_identity_output_hessian_is_exactly_zero(p):
    """THEORY C4, identity output: the bound is 0 and the Hessian is exactly 0 (z_L is locally
    linear in W_t); dense and Lanczos paths alike."""
    model, x, res, ops = _measure(p)
    for t, info in enumerate(res.layers):
        assert float(c4_bound("identity", info.mu, res.grads.x_norm[0], ops, t)) == 0.0
        assert weight_hessian_opnorm(model, x[:1], t) == 0.0, f"layer {t}; {p}"


def test_c4_is_attained_by_one_sigmoid_unit():
    """Known answer, the bound is tight: ``D = sigmoid(w.x)`` with ``w.x = ln(2 + sqrt 3)``,
    where ``|sigma''| = 1 / (6 sqrt 3)``: ``||H|| = ||x||^2 / (6 sqrt 3)`` = the bound."""
    x = torch.tensor([[0.3, -1.2, 2.0, 0.7]], dtype=torch.float64)
    model = Discriminator(nn.Linear(4, 1, bias=False), nn.Sigmoid()).double()
    with torch.no_grad():
        model[0].weight.copy_(x * math.log(2 + math.sqrt(3)) / float(x.norm()) ** 2)
    lhs = weight_hessian_opnorm(model, x, 0)
    w_norm = float(model[0].weight.detach().norm())
    rhs = float(c4_bound("sigmoid", 1.0, float(x.norm()), [w_norm], 0))
    assert_rel_close(lhs, rhs, rtol=inequality_tol(EPS, 1, 4), what="C4 tight case")


def test_c4_premise_needs_piecewise_linear_activations():
    """Negative control outside the premise: with tanh, ``z_L`` is curved in ``W_t`` and the
    Hessian of an identity-output net is not 0, while C4's bound (0) would claim it is."""
    p = dict(conv=False, depth=3, seed=4, widths=[5, 6, 4, 1, 1, 1], kernels=[1] * 6,
             strides=[1] * 6, paddings=[0] * 6, image=6, activation="tanh", slope=0.2,
             output="identity", scheme="lecun", scale=1.0)
    model, x = build_generic(p)
    assert weight_hessian_opnorm(model, x[:1], 0) > 1e-3
    rows = claim.check(context(model, x, "lecun", 1.0, 4))
    assert rows and all(not asserted(r) and r["note"] == "not applicable: activation tanh is "
                        "not piecewise linear" for r in rows), rows


@pytest.mark.parametrize("seed", range(5))
def test_module_instances_hold(seed):
    """``proofs_numeric.c4_hessian_bound``: every row of a few sampled instances holds; identity
    rows are ``0 <= 0`` (ratio 1), sigmoid rows have ``0 <= lhs``."""
    p = C4.sample(np.random.default_rng([seed, 4]))
    rows = C4.instance(p)
    assert rows and {r.claim for r in rows} == {"C4"}
    for r in rows:
        assert r.kind == "inequality" and r.holds, f"{r.note}: ratio {r.ratio!r}, {r.params}"
        if p["output"] == "identity":
            assert r.lhs == 0.0 and r.rhs == 0.0 and r.ratio == 1.0


@pytest.mark.parametrize("seed", range(2))
def test_module_rows_are_the_claims_check(seed):
    """One check, many callers: the module's rows are the rows of
    ``claims.c4_hessian_bound.check`` (same lhs, rhs, verdict), one per layer."""
    p = C4.sample(np.random.default_rng([seed, 4]))
    ctx = C4.make_context(p)
    want = [r for r in claim.check(ctx) if asserted(r)]
    got = C4.instance(p)
    assert len(want) == len(ctx.layers)
    assert [(r.claim, r.lhs, r.rhs, r.holds) for r in got] == \
        [(r["claim"], r["lhs"], r["rhs"], r["holds"]) for r in want]
