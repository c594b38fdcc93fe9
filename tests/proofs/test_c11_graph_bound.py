"""THEORY C11, C11-H as property tests on random residual graphs and chains, and the module.

Strategy (:func:`c11_params`, the sampler's space of ``proofs_numeric.c11_graph_bound``): dense
or conv residual nets — a stem layer, 1-3 blocks ``h + f(h)`` or with a 1x1 shortcut, ``f`` of
1-2 pre-activation layers (conv kernels 1 or 3), optional 2x2 average pooling (conv), global
sum or mean pooling (conv), a dense head, identity or sigmoid output — and the C1 module's
chains (dense or conv, flatten only); ReLU / leaky ReLU, every scheme, scale, seeds. Premises
(bias-free, supported nodes, known output, piecewise linear) hold by construction, and every
test asserts that the check applied (a row with a verdict per layer). Tolerance: the check's
own ``ctx.tol`` (``10 (L + 1) sqrt(width) eps``); C11 on a chain equals C1 to ``1e-12``.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from gradcheck.claims import c1_gradient_bound as c1
from gradcheck.claims import c11_graph_bound as claim
from gradcheck.schemes.registry import NAMES, SCHEMES
from proofs_numeric import c11_graph_bound as C11
from proofs_numeric._base import asserted
from proofs_numeric.runner import run_module

pytestmark = pytest.mark.usefixtures("single_blas_thread")
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def c11_params(draw, structure=None, conv=None, output=None):
    """Parameters of a ``proofs_numeric.c11_graph_bound`` instance (see the module docstring)."""
    conv = draw(st.booleans()) if conv is None else conv
    wide = 6 if conv else 24
    six = lambda lo, hi: st.lists(st.integers(lo, hi), min_size=6, max_size=6)  # noqa: E731
    block = st.fixed_dictionaries(dict(
        width=st.integers(1, wide), shortcut=st.booleans(), inner=st.integers(1, 2),
        kernel=st.sampled_from([1, 3]), pool=st.booleans() if conv else st.just(False)))
    return dict(
        structure=structure or draw(st.sampled_from(["residual", "chain"])), conv=conv,
        seed=draw(st.integers(0, 2**31 - 1)), in_channels=draw(st.integers(1, 3)),
        image=draw(st.integers(4, 8)), input_dim=draw(st.integers(1, 16)),
        stem_kernel=draw(st.sampled_from([1, 3])),
        blocks=draw(st.lists(block, min_size=1, max_size=3)), width=draw(st.integers(1, wide)),
        pooling=draw(st.sampled_from(["sum", "mean"])),
        activation=draw(st.sampled_from(C11.ACTIVATIONS)), slope=draw(st.floats(0.0, 1.0)),
        output=output or draw(st.sampled_from(["identity", "sigmoid"])),
        scheme=draw(st.sampled_from(NAMES)), scale=draw(st.floats(0.5, 2.0)),
        depth=draw(st.integers(1, 4)), widths=draw(six(1, 16)), kernels=draw(six(1, 4)),
        strides=draw(six(1, 2)), paddings=draw(six(0, 2)))


def _rows(ctx, claim_id, module=claim):
    rows = [r for r in module.check(ctx) if r["claim"] == claim_id]
    assert len(rows) == len(ctx.layers) and all(asserted(r) for r in rows), \
        f"{claim_id} did not apply: {[r['note'] for r in rows if not asserted(r)][:2]}"
    return rows


@settings(max_examples=60, **SETTINGS)
@given(c11_params())
def test_c11_gradient_norm_leq_graph_bound(p):
    """THEORY C11: ``||dD/dW_t||_F <= mu_t ||h_{t-1}|| ||dD/dz_t|| <= mu_t F(h_{t-1}) ||x||
    B(z_t)`` for every layer and input (both inequalities), on residual graphs and chains."""
    ctx = C11.make_context(p, hessians=False)
    rows = _rows(ctx, "C11")
    g, tol = ctx.result.grads, ctx.tol
    bound = claim.graph_bound(ctx)[:, None] * g.x_norm[None, :]
    middle = np.array([i.mu for i in ctx.layers])[:, None] * g.h_norm * g.delta
    r_outer = g.weight_grad / np.maximum(bound, 1e-300)
    r_mid = middle / np.maximum(bound, 1e-300)
    target(float(r_outer.max()), label="C11 ratio")
    target(float(r_mid.max()), label="C11 middle ratio")
    assert r_outer.max() <= 1 + tol and r_mid.max() <= 1 + tol, \
        f"C11 violated: ratios {r_outer.max()!r}, {r_mid.max()!r} (tol {tol:.2e}); {p}"
    assert np.all(g.weight_grad <= middle * (1 + tol)), f"C11 first inequality; {p}"
    bad = [r for r in rows if r["holds"] is not True]
    assert not bad, f"{bad[:2]}; {p}"


@settings(max_examples=25, **SETTINGS)
@given(c11_params(structure="residual"))
def test_c11h_hessian_leq_graph_bound(p):
    """THEORY C11-H: ``||H_{W_t} D||_op <= sup|a_L''| (mu_t F(h_{t-1}) ||x|| B(z_t) /
    lambda_L)^2`` (sigmoid output), the Hessian exactly 0 for an identity output."""
    ctx = C11.make_context(p)
    rows = _rows(ctx, "C11-H")
    if p["output"] == "sigmoid":
        target(max(r["ratio"] for r in rows), label="C11-H ratio")
    bad = [r for r in rows if r["holds"] is not True]
    assert not bad, f"{bad[:2]}; {p}"
    if p["output"] == "identity":
        assert all(r["lhs"] == 0.0 for r in rows)


@settings(max_examples=40, **SETTINGS)
@given(c11_params(structure="chain"))
def test_c11_equals_c1_on_chains(p):
    """On a chain with only flatten between the layers, C11's bound IS C1's:
    ``mu_t F(h_{t-1}) B(z_t) ||x|| = lambda_L mu_t ||x|| prod_{i != t} ||W_i||_op`` to 1e-12
    relative, every layer and input; and the module's C11-chain rows say so."""
    ctx = C11.make_context(p, hessians=False)
    assert C11.flatten_only_chain(ctx), ctx.facts.describe()
    ours = claim.graph_bound(ctx)[:, None] * ctx.result.grads.x_norm[None, :]
    theirs = c1.bound(ctx)
    rel = np.abs(ours - theirs) / theirs
    assert rel.max() <= 1e-12, f"C11 vs C1 on a chain: relative difference {rel.max():.2e}; {p}"
    c11_rows, c1_rows = _rows(ctx, "C11"), _rows(ctx, "C1", c1)
    assert [r["holds"] for r in c11_rows] == [r["holds"] for r in c1_rows]
    rows = [r for r in C11.instance(p) if r.claim == "C11-chain"]
    assert len(rows) == len(ctx.layers) and all(r.holds for r in rows)


@pytest.mark.parametrize("conv", [False, True], ids=["dense", "conv"])
def test_c1_is_not_applicable_on_a_residual_net(conv):
    """C1's premise is a chain: on a residual net the C1 (and C1-SN) rows say "not applicable:
    not a chain (skip around layers ...)" and never carry a verdict (its product is no bound
    there); C11 gives the verdicts instead."""
    p = dict(C11.sample(np.random.default_rng(0)), structure="residual", conv=conv, scheme="sn",
             blocks=[dict(width=4, shortcut=False, inner=2, kernel=3, pool=False)], width=4)
    ctx = C11.make_context(p, hessians=False)
    assert not ctx.facts.chain
    rows = [r for r in c1.check(ctx) if r["claim"] in ("C1", "C1-SN")]
    assert rows and {r["claim"] for r in rows} == {"C1", "C1-SN"}
    for r in rows:
        assert r["holds"] == "" and not asserted(r), r
        assert r["note"].startswith("not applicable: not a chain (skip around layers "), r
    assert all(r["holds"] is True for r in _rows(ctx, "C11"))
    assert not [r for r in C11.instance(p) if r.claim.startswith("C1") and
                not r.claim.startswith("C11")]


@pytest.mark.parametrize("blocks", [1, 2, 3])
@pytest.mark.parametrize("output", ["identity", "sigmoid"])
def test_identity_skips_double_the_bound_under_sn(blocks, output):
    """Known answer (THEORY §6): every layer at spectral norm 1 (dense SN) and ``blocks``
    identity-skip blocks ``h + W act(h)``: ``F`` doubles at each block, so the head's bound is
    ``lambda_L 2^blocks`` (SN's depth-independence does not carry over to residual nets)."""
    p = dict(C11.sample(np.random.default_rng(1)), structure="residual", conv=False,
             scheme="sn", output=output, width=7, input_dim=5,
             blocks=[dict(width=7, shortcut=False, inner=1, kernel=1, pool=False)] * blocks)
    ctx = C11.make_context(p, hessians=False)
    lam = 0.25 if output == "sigmoid" else 1.0
    gb = claim.graph_bound(ctx)
    assert gb[-1] == pytest.approx(lam * 2.0 ** blocks, rel=1e-12)
    assert gb[0] == pytest.approx(lam * 2.0 ** blocks, rel=1e-12)   # the stem: B doubles too
    assert all(r["holds"] is True for r in _rows(ctx, "C11"))


def test_module_rows_are_the_claims_check():
    """One check, many callers: the module's C11 / C11-H rows are the asserted rows of
    ``claims.c11_graph_bound.check`` (same lhs, rhs, verdict), one per layer each."""
    rng = np.random.default_rng(7)
    for _ in range(4):
        p = C11.sample(rng)
        ctx = C11.make_context(p)
        want = [r for r in claim.check(ctx) if asserted(r)]
        got = [r for r in C11.instance(p) if r.claim != "C11-chain"]
        assert len(want) == 2 * len(ctx.layers)
        assert [(r.claim, r.lhs, r.rhs, r.holds) for r in got] == \
            [(r["claim"], r["lhs"], r["rhs"], r["holds"]) for r in want]


def test_sample_covers_the_space():
    rng = np.random.default_rng(2)
    ps = [C11.sample(rng) for _ in range(300)]
    assert {p["structure"] for p in ps} == {"residual", "chain"}
    assert {p["conv"] for p in ps} == {True, False}
    assert {p["scheme"] for p in ps} == set(NAMES)
    assert {p["pooling"] for p in ps} == {"sum", "mean"}
    assert {p["output"] for p in ps} == {"identity", "sigmoid"}
    assert {len(p["blocks"]) for p in ps} == {1, 2, 3}
    blocks = [b for p in ps for b in p["blocks"]]
    assert {b["shortcut"] for b in blocks} == {True, False} and any(b["pool"] for b in blocks)
    assert any(SCHEMES[p["scheme"]].takes_scale for p in ps)


def test_runner_integration():
    rows, _, done = run_module(C11, instances=6, budget_s=20.0)
    assert done == 6 and {r.claim for r in rows} <= set(C11.CLAIMS)
    assert {"C11", "C11-H"} <= {r.claim for r in rows}
    assert all(r.kind == C11.CLAIMS[r.claim] for r in rows)
    assert all(r.holds is True for r in rows)
