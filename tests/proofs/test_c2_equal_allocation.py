"""THEORY C2a (identity) and C2b (inequality) on random nets, and the ``proofs_numeric`` module.

Property tests (hypothesis, float64) over dense and conv nets: depth 1-6, widths 1-32 (conv
channels 1-8), kernels 1-5, strides 1-3, paddings 0-2, every scheme, random seeds, and layer
scales ``c_i`` in [1/4, 4] (optionally rescaled to ``prod c_i = 1``). C2a's premise (bias-free,
ReLU / leaky ReLU / identity, identity output) is built into the strategy; a negative control
shows that tanh or a sigmoid output breaks it.

Tolerance: ``inequality_tol(eps, L, width) = 10 (L + 1) sqrt(width) eps`` relative (the C1
module's), absolute that times the largest entry compared (entries that are 0 up to round-off).
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import EPS, assert_rel_close
from conftest import net_params as shared_net_params
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck.claims import c2_equal_allocation as claim
from gradcheck.probe import ProbeOptions, probe
from gradcheck.probe.hessian import effective_weight_grads
from gradcheck.reference import materialize
from gradcheck.schemes.registry import NAMES as SCHEMES
from gradcheck.schemes.registry import SCHEMES as RECORDS
from gradcheck.theory.bounds import inequality_tol
from gradcheck.theory.reparam import c2b_lhs, c2b_rhs, scaled_gradient_factors
from proofs_numeric import c2_equal_allocation as C2
from proofs_numeric._base import asserted
from proofs_numeric.c2_equal_allocation import build_generic

pytestmark = pytest.mark.usefixtures("single_blas_thread")


net_params = shared_net_params(activations=C2.HOMOGENEOUS, outputs=("identity",), schemes=SCHEMES)


def scales():
    return st.lists(st.floats(0.25, 4.0), min_size=C2.MAX_LAYERS, max_size=C2.MAX_LAYERS)


def _tol(model, x) -> tuple[float, int]:
    res = probe(model, x, ProbeOptions(spectra=False))
    width = max(max(int(np.prod(i.input_shape)), int(np.prod(i.output_shape)))
                for i in res.layers)
    return inequality_tol(EPS, len(res.layers), width), len(res.layers)


def _check_scaling(p: dict, c_all, unit: bool) -> None:
    model, x = build_generic(p)
    tol, L = _tol(model, x)
    c = C2.layer_scales(dict(c=c_all, unit_product=unit), L)
    D_fac, g_fac = scaled_gradient_factors(c)
    D0, G0 = effective_weight_grads(materialize(model), x)
    D1, G1 = effective_weight_grads(C2.scaled_copy(model, c), x)
    spec = f"{p}, c = {c.tolist()}"
    want = (D_fac * D0).numpy()
    assert_rel_close(D1.numpy(), want, rtol=tol, atol=tol * np.abs(want).max(),
                     what=f"C2a: D scales by prod c ({spec})")
    for t in range(L):
        want = (g_fac[t] * G0[t]).numpy()
        assert_rel_close(G1[t].numpy(), want, rtol=tol, atol=tol * np.abs(want).max(),
                         what=f"C2a: layer {t} dD/dW scales by prod_(i!=t) c_i ({spec})")


@settings(max_examples=60, deadline=None)
@given(net_params(), scales(), st.booleans())
def test_c2a_scaling_layers_scales_output_and_gradients(p, c, unit):
    """THEORY C2a: ``W_i -> c_i W_i`` multiplies ``D`` by ``prod c_i`` and ``dD/dW_t`` by
    ``prod_{i != t} c_i`` (per input, the whole tensors)."""
    _check_scaling(p, c, unit)


@settings(max_examples=30, deadline=None)
@given(net_params(), scales())
def test_c2a_unit_product_leaves_output_and_divides_gradient(p, c):
    """With ``prod c_i = 1``: ``D`` unchanged, ``||dD/dW_t||`` divided by ``c_t``."""
    model, x = build_generic(p)
    tol, L = _tol(model, x)
    cs = C2.layer_scales(dict(c=c, unit_product=True), L)
    D0, G0 = effective_weight_grads(materialize(model), x)
    D1, G1 = effective_weight_grads(C2.scaled_copy(model, cs), x)
    assert_rel_close(D1.numpy(), D0.numpy(), rtol=tol, atol=tol * float(D0.abs().max()),
                     what=f"C2a: D unchanged ({p}, c = {cs.tolist()})")
    for t in range(L):
        want = G0[t].reshape(len(x), -1).norm(dim=1).numpy() / cs[t]
        got = G1[t].reshape(len(x), -1).norm(dim=1).numpy()
        assert_rel_close(got, want, rtol=tol, atol=tol * want.max(),
                         what=f"C2a: layer {t} ||dD/dW|| / c_t ({p}, c = {cs.tolist()})")


@pytest.mark.parametrize("activation,output", [("tanh", "identity"), ("relu", "sigmoid")])
def test_c2a_fails_outside_its_premise(activation, output):
    """Negative control: tanh internal activations or a sigmoid output are not homogeneous;
    scaling two layers by 2 does not multiply D by 4 (off by far more than round-off)."""
    p = dict(conv=False, depth=3, seed=5, widths=[6, 7, 5, 1, 1, 1], kernels=[1] * 6,
             strides=[1] * 6, paddings=[0] * 6, image=6, activation=activation, slope=0.2,
             output=output, scheme="lecun", scale=1.0)
    model, x = build_generic(p)
    c = np.array([2.0, 2.0, 1.0])
    D0, _ = effective_weight_grads(materialize(model), x)
    D1, _ = effective_weight_grads(C2.scaled_copy(model, c), x)
    rel = float((D1 - 4.0 * D0).norm() / (4.0 * D0).norm())
    assert rel > 1e-3, f"{activation}/{output}: D1 = 4 D0 up to {rel:.3g} relative"


@settings(max_examples=40, deadline=None)
@given(net_params(activations=("relu", "lrelu", "tanh", "linear"),
                  outputs=("identity", "sigmoid")))
def test_c2b_measured_allocation_leq_summed_c1_bounds(p):
    """THEORY C2b on each net's measured operator norms ``s_t``: AM-GM side ``<=`` summed squared
    C1 bounds; equality when the same ``C`` is allocated equally."""
    model, x = build_generic(p)
    res = probe(model, x, ProbeOptions(spectra=False))
    s = np.array([n.sigma_op for n in res.norms])
    L = len(s)
    tol = inequality_tol(EPS, L, 1)
    lo, hi = c2b_rhs(res.grads.x_norm, s), c2b_lhs(res.grads.x_norm, s)
    assert np.all(lo <= hi * (1 + tol)), f"C2b violated: s = {s}, ratios {lo / hi}"
    eq = np.full(L, float(np.prod(s)) ** (1.0 / L))
    assert_rel_close(c2b_rhs(res.grads.x_norm, eq), c2b_lhs(res.grads.x_norm, eq), rtol=tol,
                     what=f"C2b equality at equal allocation (C = {np.prod(s):.4g}, L = {L})")


@pytest.mark.parametrize("scheme", [n for n, s in RECORDS.items() if s.unit_norm])
def test_c2b_sn_is_the_equal_allocation_with_c_one(scheme):
    """Dense SN: every ``s_t = 1`` (C = 1), so both sides are ``L ||x||^2``."""
    p = dict(conv=False, depth=4, seed=2, widths=[9, 7, 5, 8, 1, 1], kernels=[1] * 6,
             strides=[1] * 6, paddings=[0] * 6, image=6, activation="relu", slope=0.2,
             output="identity", scheme=scheme, scale=1.0)
    model, x = build_generic(p)
    res = probe(model, x, ProbeOptions(spectra=False))
    s = np.array([n.sigma_op for n in res.norms])
    tol = inequality_tol(EPS, 4, 9)
    assert_rel_close(s, np.ones(4), rtol=tol, what="SN operator norms")
    assert_rel_close(c2b_lhs(res.grads.x_norm, s), 4 * res.grads.x_norm ** 2, rtol=tol,
                     what="C2b lhs under SN")
    assert_rel_close(c2b_rhs(res.grads.x_norm, s), 4 * res.grads.x_norm ** 2, rtol=tol,
                     what="C2b rhs under SN")


@pytest.mark.parametrize("seed", range(6))
def test_module_instances_hold(seed):
    """``proofs_numeric.c2_equal_allocation``: every row of a few sampled instances holds, with
    the claims and kinds it declares; the equal-allocation C2b row has ratio 1."""
    rng = np.random.default_rng([seed, 2])
    rows = C2.instance(C2.sample(rng))
    assert {r.claim for r in rows} == set(C2.CLAIMS)
    for r in rows:
        assert r.kind == C2.CLAIMS[r.claim]
        assert r.holds, f"{r.claim} {r.note}: ratio {r.ratio!r}, tol {r.tol!r}, {r.params}"
    eq = [r for r in rows if "equal allocation" in r.note]
    assert len(eq) == 1 and abs(eq[0].ratio - 1) <= eq[0].tol


def test_module_runs_the_claims_check():
    """One check, many callers: the module's first rows are the asserted rows of
    ``claims.c2_equal_allocation.check`` (C2b on the measured norms, C2a with prod c = 1), with
    their verdicts; the sampled-scaling and equal-allocation rows follow."""
    p = C2.sample(np.random.default_rng([3, 2]))
    ctx = C2.make_context(p)
    want = [r for r in claim.check(ctx) if asserted(r)]
    got = C2.instance(p)
    assert {r["claim"] for r in want} == {"C2a", "C2b"}
    assert [(r.claim, r.lhs, r.rhs, r.holds) for r in got[:len(want)]] == \
        [(r["claim"], r["lhs"], r["rhs"], r["holds"]) for r in want]
