"""Tests for proofs_numeric/c5_gaussian_opnorm.py (THEORY C5).

The per-draw inequality (``||W||_op >=`` every column and row norm) is deterministic and is a
property test; the bounds on ``E||W||_op`` are checked on a Monte-Carlo mean with the Gaussian-
concentration margin the module documents (false-alarm probability <= 1e-6 per row); the
``C5-ratio`` prediction is a statistical test with the sample size stated.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck.theory.randmat import gordon_lower, gordon_upper, opnorm_finite_size
from proofs_numeric import c5_gaussian_opnorm as c5
from proofs_numeric.runner import run_module

pytestmark = pytest.mark.usefixtures("single_blas_thread")


def _params(m, n, s, draws, seed):
    return dict(m=m, n=n, s=s, draws=draws, seed=seed)


def _explain(rows):
    return "; ".join(f"{r.note}: lhs={r.lhs!r} rhs={r.rhs!r} ratio={r.ratio!r} tol={r.tol:.1e}"
                     for r in rows if r.holds is False)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 64), n=st.integers(1, 64), s=st.floats(1e-3, 1e3),
       draws=st.integers(4, 32), seed=st.integers(0, 2**31 - 1))
def test_c5_bounds_hold(m, n, s, draws, seed):
    """All C5 rows hold: the deterministic per-draw row always, the two Monte-Carlo rows with
    the concentration margin (each fails with probability <= 1e-6 if C5 is true)."""
    p = _params(m, n, s, draws, seed)
    rows = c5.instance(p)
    assert {r.claim for r in rows} == ({"C5", "C5-ratio"} if min(m, n) >= 8 else {"C5"})
    assert all(r.holds is not False for r in rows), f"{p}: {_explain(rows)}"


@pytest.mark.parametrize("m, n", [(1, 1), (1, 40), (40, 1)])
def test_vectors_are_the_equality_case(m, n):
    """m = 1 or n = 1: ``||W||_op`` IS a row/column norm (per-draw ratio 1) and the lower bound
    is E||W||_op itself; the concentration margin is what keeps the check honest there."""
    rows = c5.instance(_params(m, n, 3.0, 32, 5))
    per_draw = [r for r in rows if r.note.startswith("per draw")][0]
    assert abs(per_draw.ratio - 1) <= per_draw.tol
    lower = [r for r in rows if r.note.startswith("lower")][0]
    assert lower.holds and lower.lhs == gordon_lower(m, n, 3.0)


def test_concentration_margin():
    """t = s sqrt(2 ln(2/delta)/R): 2 exp(-R t^2 / (2 s^2)) = delta."""
    for s, R in [(1.0, 16), (0.3, 48)]:
        t = c5.concentration_margin(s, R)
        assert 2 * math.exp(-R * t * t / (2 * s * s)) == pytest.approx(c5.DELTA, rel=1e-9)


def test_sample_covers_vectors_squares_and_both_orientations():
    rng = np.random.default_rng(0)
    ps = [c5.sample(rng) for _ in range(300)]
    assert any(p["m"] == 1 or p["n"] == 1 for p in ps)
    assert any(p["m"] > 2 * p["n"] for p in ps) and any(p["n"] > 2 * p["m"] for p in ps)
    assert all(1 <= p["m"] <= 256 and 1 <= p["n"] <= 256 and p["s"] > 0 for p in ps)


@pytest.mark.parametrize("m, n", [(64, 64), (128, 128), (256, 64), (64, 512)])
def test_c5_ratio_below_one_and_tending_to_one(m, n):
    """C5-ratio on R = 32 draws: mean ||W||_op / (s(sqrt m + sqrt n)) equals the Tracy–Widom
    value within 0.5% (its accuracy) + 5 SE (sample SE of the 32 draws, ~0.35/(sqrt(R)(sqrt m +
    sqrt n)): the tolerance shrinks with size), and is below 1 ("finite-size values are
    slightly below 1")."""
    R, s = 32, 0.7
    p = _params(m, n, s, R, 1234)
    row = [r for r in c5.instance(p) if r.claim == "C5-ratio"][0]
    ops = np.linalg.norm(c5.draws(p), ord=2, axis=(1, 2)) / gordon_upper(m, n, s)
    assert row.ratio == pytest.approx(ops.mean(), rel=1e-12)
    tw = opnorm_finite_size(m, n) / gordon_upper(m, n)
    se = ops.std(ddof=1) / math.sqrt(R)
    assert abs(row.ratio - tw) <= 0.005 + 5 * se, f"({m},{n}): ratio {row.ratio}, TW {tw}, se {se}"
    assert row.ratio < 1, f"({m},{n}): ratio {row.ratio} (TW {tw}, se {se})"


def test_tw_deficit_shrinks_with_size():
    ratios = [opnorm_finite_size(n, n) / gordon_upper(n, n) for n in (16, 64, 256, 1024, 4096)]
    assert all(a < b < 1 for a, b in zip(ratios, ratios[1:]))
    assert 1 - ratios[-1] < 0.005


def test_runner_integration():
    rows, seconds, done = run_module(c5, instances=4, budget_s=5.0)
    assert done == 4 and seconds < 5.0
    assert {r.claim for r in rows} <= set(c5.CLAIMS)
    assert all(r.kind == c5.CLAIMS[r.claim] for r in rows)
    assert all(r.holds is not False for r in rows)


@pytest.mark.parametrize("scheme", ["lecun", "xavier", "kaiming", "sn"])
def test_claims_c5_ratio_rows_divide_by_the_same_value(scheme):
    """The claims' per-layer C5-ratio row (one draw of a probed model) compares the raw
    ``sigma_R`` with the same ``s (sqrt m + sqrt n)`` as this module's Monte-Carlo row, ``s`` the
    scheme's raw std (``claims.c5_gaussian_opnorm.raw_std``)."""
    import torch
    from torch import nn

    from gradcheck.claims import c5_gaussian_opnorm as claim
    from gradcheck.models import Discriminator
    from gradcheck.schemes import apply_scheme
    from gradcheck.theory.meanfield import gaussian_opnorm
    from proofs_numeric._base import context

    m, n = 24, 40
    model = Discriminator(nn.Linear(n, m, bias=False), nn.ReLU(), nn.Linear(m, 1, bias=False))
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    apply_scheme(model.double(), scheme, x, seed=3)
    ctx = context(model, x, scheme)
    row = [r for r in claim.check(ctx) if r["layer"] == 0][0]
    s = claim.raw_std(ctx, ctx.layers[0])
    assert row["claim"] == "C5-ratio" and row["rhs"] == gaussian_opnorm(m, n, s) == \
        pytest.approx(gordon_upper(m, n, s), rel=1e-15)
    raw = model[0].parametrizations.weight.original if hasattr(model[0], "parametrizations") \
        else model[0].weight
    assert row["lhs"] == pytest.approx(float(torch.linalg.matrix_norm(raw.detach(), 2)),
                                       rel=1e-13)
