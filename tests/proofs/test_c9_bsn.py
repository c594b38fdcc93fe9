"""Tests for proofs_numeric/c9_bsn.py (THEORY C9).

C9a (identity) as a property test over random dense nets; a negative control on conv layers
(where BSN and SN differ); C9b (prediction) as a statistical test at width >= 128 over 8 seeds;
the gradient-control numbers are computed and reported, never asserted against each other.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradcheck.schemes.sigma import sigma_R, sigma_R2
from gradcheck.theory.randmat import gordon_upper, opnorm_finite_size
from proofs_numeric import c9_bsn as c9
from proofs_numeric.runner import run_module

pytestmark = pytest.mark.usefixtures("single_blas_thread")


def _p(**kw):
    p = dict(depth=3, widths=[10, 16, 1, 1, 1, 1], activation="relu", slope=0.2,
             output="identity", scheme="bsn", scale=1.0, seed=0, channels=[8, 16],
             kernels=[3])
    p.update(kw)
    return p


@st.composite
def c9_params(draw):
    """Dense nets of depth 1-6, widths 1-64, any activation and output, bsn or bssn; a short
    conv chain (channels 1-32, kernels 1-5) for the C9b rows."""
    n_conv = draw(st.integers(1, 3))
    return dict(
        depth=draw(st.integers(1, 6)),
        widths=draw(st.lists(st.integers(1, 64), min_size=6, max_size=6)),
        activation=draw(st.sampled_from(c9.ACTIVATIONS)), slope=draw(st.floats(0.0, 1.0)),
        output=draw(st.sampled_from(["identity", "sigmoid"])),
        scheme=draw(st.sampled_from(sorted(c9.PAIRS))), scale=draw(st.floats(0.25, 4.0)),
        seed=draw(st.integers(0, 2**31 - 1)),
        channels=draw(st.lists(st.integers(1, 32), min_size=n_conv + 1, max_size=n_conv + 1)),
        kernels=draw(st.lists(st.integers(1, 5), min_size=n_conv, max_size=n_conv)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c9_params())
def test_c9a_bsn_equals_sn_on_dense_nets(p):
    """THEORY C9a: sigma_R2 = sigma_R for every dense layer, and the BSN (BSSN) net's weight
    gradients and outputs equal the SN (SSN) net's, for any activation and output."""
    rows = c9.instance(p)
    c9a = [r for r in rows if r.claim == "C9a"]
    assert len(c9a) == 2 * p["depth"] + 1
    bad = [f"{r.note}: lhs={r.lhs!r} rhs={r.rhs!r} ratio={r.ratio!r} tol={r.tol:.1e}"
           for r in c9a if not r.holds]
    assert not bad, f"{p}: {bad}"
    assert all(r.kind == "prediction" and r.holds is None for r in rows if r.claim == "C9b")


def test_c9a_does_not_extend_to_conv_layers():
    """Negative control: for a 3x3 conv kernel with c_in != c_out the two reshapes differ, so
    BSN's divisor is not SN's (ratio far outside any rounding tolerance)."""
    w = torch.randn(16, 4, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(float(sigma_R2(w)) / float(sigma_R(w)) - 1) > 0.1
    w1 = w[:, :, :1, :1]                                   # 1x1 conv: the reshapes transpose
    assert float(sigma_R2(w1)) == pytest.approx(float(sigma_R(w1)), rel=1e-13)


@pytest.mark.parametrize("scheme", ["bsn", "bssn"])
@pytest.mark.parametrize("shape", [(128, 128, 3), (64, 128, 4), (32, 128, 4)],
                         ids=lambda s: "x".join(map(str, s)))
def test_c9b_bsn_std_tracks_xavier_times_constant(scheme, shape):
    """THEORY C9b on one conv layer ``(c_in, c_out, k)``, 8 seeds: measured (BSN std / Xavier
    std) / (c x constant) has mean in ``[1 - t, tw + 0.005 + t]``, ``tw`` the C5-bound /
    Tracy–Widom ratio of BSN's divisor (finite-size sigma is below the C5 value), ``t`` 5
    sample-SE of the 8 ratios (~0.25/(sqrt(c_out) + sqrt(c_in k^2)): shrinks with width)."""
    c_in, c_out, k = shape
    ratios = []
    for seed in range(8):
        rows = c9.instance(_p(scheme=scheme, scale=1.4, seed=seed, channels=[c_in, c_out],
                              kernels=[k], depth=1, widths=[2] * 6))
        (row,) = [r for r in rows if r.claim == "C9b"]
        ratios.append(row.ratio)
    mean = float(np.mean(ratios))
    tw = (gordon_upper(c_out, c_in * k * k) + gordon_upper(c_in, c_out * k * k)) / \
         (opnorm_finite_size(c_out, c_in * k * k) + opnorm_finite_size(c_in, c_out * k * k))
    t = 5 * float(np.std(ratios, ddof=1)) / math.sqrt(len(ratios))
    assert 1 - t <= mean <= tw + 0.005 + t, f"{scheme} {shape}: mean {mean:.4f}, tw {tw:.4f}, " \
                                             f"t {t:.4f}, ratios {np.round(ratios, 4)}"


def test_gradient_control_note_is_reported():
    rows = c9.instance(_p(channels=[3, 16, 32, 32], kernels=[3, 4, 3], scheme="bssn", scale=1.5))
    notes = [r.note for r in rows if r.claim == "C9b"]
    assert len(notes) == 3 and all("sum|log chi| bssn" in n and "vs ssn" in n for n in notes)


def test_runner_integration():
    rows, _, done = run_module(c9, instances=4, budget_s=10.0)
    assert done == 4 and {r.claim for r in rows} == set(c9.CLAIMS)
    assert all(r.kind == c9.CLAIMS[r.claim] for r in rows)
    assert all(r.holds is not False for r in rows)


def test_module_rows_are_the_claims_check():
    """One check, many callers: the C9a sigma rows are the rows of ``claims.c9_bsn.check`` on the
    dense BSN net, the C9b rows its predictions on the conv chain's conv layers (same lhs, rhs,
    verdict)."""
    from gradcheck.claims import c9_bsn as claim
    from proofs_numeric._base import context

    p = _p(channels=[3, 16, 32], kernels=[3, 2], scheme="bssn", scale=1.3)
    bsn, _, x = c9.dense_pair(p)
    dense = claim.check(context(bsn, x, p["scheme"], p["scale"], p["seed"]))
    conv_model, cx = c9.conv_chain(p, p["scheme"])
    conv = claim.check(context(conv_model, cx, p["scheme"], p["scale"], p["seed"]))
    rows = c9.instance(p)
    assert [(r.lhs, r.rhs, r.holds) for r in rows[:p["depth"]]] == \
        [(r["lhs"], r["rhs"], r["holds"]) for r in dense if r["claim"] == "C9a"]
    assert [(r.lhs, r.rhs) for r in rows if r.claim == "C9b"] == \
        [(r["lhs"], r["rhs"]) for r in conv if r["claim"] == "C9b"][:2]
    assert not [r for r in conv if r["claim"] == "C9a"]      # no dense layer in the chain
