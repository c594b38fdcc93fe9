"""Tests for proofs_numeric/c8_strict_sn.py (THEORY C8, an inequality).

Property test over kernels, strides, paddings and input sizes with C8's premise assumed; known
answers where the bounds are attained (1x1 kernels, stride >= kernel, the all-ones kernel);
edge cases where the premise fails and the lower bound does too (the premise is needed).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gradcheck.claims import c8_strict_sn as claim
from proofs_numeric import c8_strict_sn as c8
from proofs_numeric._base import asserted
from proofs_numeric.runner import run_module

pytestmark = pytest.mark.usefixtures("single_blas_thread")


def _p(c_out=2, c_in=3, kernel=(3, 3), stride=(1, 1), padding=(1, 1), input_hw=(6, 6), seed=0):
    return dict(c_out=c_out, c_in=c_in, kernel=list(kernel), stride=list(stride),
                padding=list(padding), input_hw=list(input_hw), seed=seed)


def _failures(rows):
    return [f"{r.note}: lhs={r.lhs!r} rhs={r.rhs!r} ratio={r.ratio!r} tol={r.tol:.1e}"
            for r in rows if not r.holds]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(c_out=st.integers(1, 4), c_in=st.integers(1, 4), kh=st.integers(1, 5), kw=st.integers(1, 5),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       h=st.integers(1, 10), w=st.integers(1, 10), seed=st.integers(0, 2**31 - 1))
def test_opnorm_between_sigma_R_and_mu_sigma_R(c_out, c_in, kh, kw, sh, sw, ph, pw, h, w, seed):
    """THEORY C8: sigma_R <= ||Conv||_op <= mu sigma_R (and with sigma_R2 for stride 1)."""
    p = _p(c_out, c_in, (kh, kw), (sh, sw), (ph, pw), (h, w), seed)
    assume(all((n + 2 * q - k) // s + 1 >= 1 for n, k, s, q in zip((h, w), (kh, kw), (sh, sw),
                                                                  (ph, pw))))
    assume(c8.applicable(p))
    rows = c8.instance(p)
    assert len(rows) == (4 if c8.r2_applicable(p) else 2)
    assert not _failures(rows), f"{p}: {_failures(rows)}"


def test_one_by_one_kernel_is_the_equality_case():
    """1x1 kernel, stride 1: the conv is W applied per pixel: op = sigma_R = sigma_R2, mu = 1."""
    rows = c8.instance(_p(c_out=4, c_in=3, kernel=(1, 1), padding=(0, 0), input_hw=(5, 4)))
    assert len(rows) == 4 and not _failures(rows)
    for r in rows:
        assert abs(r.ratio - 1) <= r.tol, (r.note, r.ratio)


def test_stride_at_least_kernel_is_the_equality_case():
    """k = 2, stride 3: patches do not overlap, the map is block diagonal: op = sigma_R, mu = 1."""
    rows = c8.instance(_p(kernel=(2, 2), stride=(3, 3), padding=(0, 0), input_hw=(8, 7)))
    assert len(rows) == 2
    for r in rows:
        assert abs(r.ratio - 1) <= r.tol, (r.note, r.ratio)


def test_upper_bound_is_nearly_attained_by_the_all_ones_kernel():
    """One channel, all-ones k x k kernel, stride 1: sigma_R = k, mu = k, and the constant
    input gives ||Conv|| -> k^2 as the input grows (boundary effect ~ k/H)."""
    p = _p(c_out=1, c_in=1, kernel=(3, 3), padding=(0, 0), input_hw=(40, 40))
    n = c8.norms(p, torch.ones(1, 1, 3, 3, dtype=torch.float64))
    assert n["sigma_R"] == pytest.approx(3.0, rel=1e-14) and n["mu"] == 3.0
    assert 0.99 <= n["op"] / (n["mu"] * n["sigma_R"]) <= 1 + 1e-12


def test_lower_bound_fails_without_the_premise():
    """Counterexample outside the premise: a 3x3 kernel with padding 1 on a 1x1 input sees only
    its centre tap, so ||Conv||_op = ||K[:, :, 1, 1]|| < sigma_R. c8_applicable must say no."""
    p = _p(c_out=3, c_in=2, kernel=(3, 3), padding=(1, 1), input_hw=(1, 1))
    assert not c8.applicable(p)
    n = c8.norms(p)
    centre = float(torch.linalg.matrix_norm(c8.kernel(p)[:, :, 1, 1], ord=2))
    assert n["op"] == pytest.approx(centre, rel=1e-12) and n["op"] < n["sigma_R"]
    rows = claim.check(c8.make_context(p))
    assert rows and all(not asserted(r) and r["note"] == "not applicable: no output's receptive "
                        "field lies inside the input" for r in rows), rows
    assert c8.instance(p) == []


def test_sample_respects_the_premise():
    rng = np.random.default_rng(3)
    ps = [c8.sample(rng) for _ in range(200)]
    assert all(c8.applicable(p) for p in ps)
    assert any(c8.r2_applicable(p) for p in ps) and not all(c8.r2_applicable(p) for p in ps)
    assert any(max(p["stride"]) > 1 for p in ps)


@pytest.mark.slow
def test_cifar10_strict_sn_extra_shrink():
    """THEORY C8's per-layer ||Conv||/sigma_R for the CIFAR-10 discriminator at init (reported
    there as ~2.22, 1.21, 1.67, 1.19, 1.61, 1.15, 1.48): each in [1, mu], and within 10% of
    THEORY's values for this seed (they depend on the draw)."""
    from gradcheck.models import SNGAN_CONVS
    theory = [2.22, 1.21, 1.67, 1.19, 1.61, 1.15, 1.48]
    c_in, size, got = 3, 32, []
    for j, (k, s, c_out) in enumerate(SNGAN_CONVS):
        p = _p(c_out=c_out, c_in=c_in, kernel=(k, k), stride=(s, s), input_hw=(size, size),
               seed=j)
        n = c8.norms(p)
        got.append(n["op"] / n["sigma_R"])
        assert 1 <= got[-1] <= n["mu"] * (1 + 1e-9)
        c_in, size = c_out, (size + 2 - k) // s + 1
    np.testing.assert_allclose(got, theory, rtol=0.1)
    assert math.prod(1 / g for g in got) == pytest.approx(1 / 16, rel=0.3)


def test_runner_integration():
    rows, _, done = run_module(c8, instances=10, budget_s=10.0)
    assert done == 10 and {r.claim for r in rows} == {"C8"}
    assert all(r.kind == "inequality" and r.holds for r in rows)


def test_module_rows_are_the_claims_check():
    """One check, many callers: the module's rows are the rows of ``claims.c8_strict_sn.check``
    on the probed conv layer (same lhs, rhs, verdict)."""
    rng = np.random.default_rng(8)
    for _ in range(5):
        p = c8.sample(rng)
        want = [r for r in claim.check(c8.make_context(p)) if asserted(r)]
        got = c8.instance(p)
        assert len(want) == (4 if c8.r2_applicable(p) else 2)
        assert [(r.lhs, r.rhs, r.holds) for r in got] == \
            [(r["lhs"], r["rhs"], r["holds"]) for r in want]
