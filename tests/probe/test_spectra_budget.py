"""Spectra within a budget: the block Krylov top-k solver, the chain path's top-k mode, the
zero-row-compressed SVD, the plan and its CLI flags — against dense float64 oracles.

Tolerances:
- ``KRYLOV_TOL = 1e-10``: the solver stops when every top-k value's residual
  ``||A^T u - s v|| / s_1`` is below it (``A v = s u`` holds exactly in the subspace), so by the
  perturbation bound for singular triplets each value is within ``tol * s_1`` of a singular
  value of ``A``; Ritz values interlace from below, so it is the matching top-k value. Compared at
  ``10 * tol`` relative to the top value.
- ``SPECTRUM_RTOL = 1e-10`` relative to the top value for the SVD of the compressed matrix (the
  nonzero rows hold every nonzero singular value exactly; only round-off differs).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import mlp_case
from gradcheck import reference as R
from gradcheck.cli import main
from gradcheck.probe import JacobianOptions
from gradcheck.probe.budget import Job, Progress, make_plan
from gradcheck.probe.jacobian import _svdvals, _svdvals_rows, chain_jobs, spectra_with_plan
from gradcheck.probe.krylov import topk_singular

KRYLOV_TOL = 1e-10
SPECTRUM_RTOL = 1e-10


def _matrices(kind: str, B: int, m: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(B, m, n, generator=g, dtype=torch.float64)
    if kind == "rank2":
        A = torch.randn(B, m, 2, generator=g, dtype=torch.float64) @ \
            torch.randn(B, 2, n, generator=g, dtype=torch.float64)
    elif kind == "decaying":
        U = torch.linalg.qr(torch.randn(B, m, min(m, n), generator=g,
                                        dtype=torch.float64)).Q
        V = torch.linalg.qr(torch.randn(B, n, min(m, n), generator=g,
                                        dtype=torch.float64)).Q
        s = 0.7 ** torch.arange(min(m, n), dtype=torch.float64)
        A = U @ torch.diag_embed(s.expand(B, -1)) @ V.mT
    elif kind == "zero":
        A = torch.zeros(B, m, n, dtype=torch.float64)
    return A


@pytest.mark.parametrize("kind,B,m,n", [
    ("gaussian", 3, 40, 40), ("gaussian", 2, 120, 30), ("gaussian", 2, 30, 120),
    ("rank2", 2, 25, 35), ("decaying", 2, 60, 50), ("gaussian", 2, 1, 17), ("gaussian", 2, 17, 1),
    ("gaussian", 1, 6, 6), ("zero", 2, 9, 7), ("gaussian", 2, 16, 300), ("gaussian", 1, 2, 50),
    ("decaying", 2, 12, 90)])
def test_block_krylov_topk_matches_svdvals(kind, B, m, n, seed):
    A = _matrices(kind, B, m, n, seed)
    k = 3
    r = topk_singular(lambda V: A @ V, lambda U: A.mT @ U, n, B, k, dtype=A.dtype,
                      device=A.device, seed=seed, tol=KRYLOV_TOL, max_products=20000)
    s = torch.linalg.svdvals(A)
    kk = min(k, m, n)
    assert r.values.shape == (B, k)
    assert torch.isnan(r.values[:, kk:]).all()          # beyond the rank: not computed
    top = s[:, :1].clamp_min(1e-300)
    err = ((r.values[:, :kk] - s[:, :kk]).abs() / top).max().item()
    assert err <= 10 * KRYLOV_TOL, f"{kind} {m}x{n}: worst |s - s_oracle| / s_max = {err:.2e}"
    assert float(r.residual[:, :kk].max()) <= KRYLOV_TOL


def test_block_krylov_budget_gives_nan_not_a_guess(seed):
    A = _matrices("gaussian", 2, 200, 200, seed)   # tiny top gaps: not converged in 40 products
    r = topk_singular(lambda V: A @ V, lambda U: A.mT @ U, 200, 2, 3, dtype=A.dtype,
                      device=A.device, seed=seed, tol=1e-14, max_products=40)
    bad = r.residual > 1e-14
    assert bad.any()
    assert torch.isnan(r.values[bad]).all()


@pytest.mark.parametrize("live", [0.0, 0.5, 1.0])
def test_svd_without_zero_rows_matches_svdvals(live, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(4, 30, 20, generator=g, dtype=torch.float64)
    mask = torch.rand(4, 30, 1, generator=g) < live
    A = A * mask
    got, want = _svdvals_rows(A), _svdvals(A)
    assert got.shape == want.shape
    top = float(want.max()) if float(want.max()) > 0 else 1.0
    assert (got - want).abs().max().item() <= SPECTRUM_RTOL * top


def _mlp(seed, depth=4, width=12, batch=5):
    case = mlp_case("relu", depth=depth, width=width, input_dim=6, batch=batch)
    return case.make(seed)


def test_chain_topk_mode_matches_oracle_top_values_and_exact_msq(seed):
    model, x = _mlp(seed)
    k = 3
    opts = JacobianOptions(mode="topk", k=k, tol=KRYLOV_TOL, seed=seed)
    local, cum, plan, note = spectra_with_plan(model, x, opts)
    assert "top-k" in plan and note == ""            # topk chosen by the user: no budget note
    for which, specs, fn in (("local", local, R.layer_jacobian),
                             ("cumulative", cum, R.cumulative_jacobian)):
        for i, sp in enumerate(specs):
            for b in range(x.shape[0]):
                J = fn(model, x[b], i).detach()
                s = R.singular_values(J).numpy()
                where = f"{which} {i} input {b} ({sp.method})"
                msq = float((J ** 2).sum()) / min(J.shape)
                assert abs(sp.msq[b] - msq) <= SPECTRUM_RTOL * max(s[0], 1e-300) ** 2, where
                if min(J.shape) <= 8:                # thin: computed in full
                    assert sp.full, where
                    continue
                assert not sp.full and sp.method == "chain-topk", where
                assert np.allclose(sp.values[b, :k], s[:k], rtol=0,
                                   atol=10 * KRYLOV_TOL * s[0]), where
                assert np.isnan(sp.values[b, k:]).all(), where     # bottom-k not computed
                assert np.isnan(sp.smallest_nonzero(1e-16)[b]), where
                assert sp.residual[b] <= KRYLOV_TOL, where


def test_full_mode_equals_the_compressed_and_plain_svd(seed):
    model, x = _mlp(seed, depth=3, width=10, batch=3)
    local, cum, _, _ = spectra_with_plan(model, x, JacobianOptions(mode="full"))
    for i, sp in enumerate(local):
        for b in range(x.shape[0]):
            s = R.singular_values(R.layer_jacobian(model, x[b], i).detach()).numpy()
            assert np.allclose(sp.values[b], s, rtol=0, atol=SPECTRUM_RTOL * max(s[0], 1e-300))


def test_plan_full_fits_everything_and_tiny_budget_cuts_inputs_then_method():
    jobs = chain_jobs([256] * 30)
    big = make_plan(jobs, 16, "auto", 1e9)
    assert set(big.methods.values()) == {"full"} and big.inputs == {"local": 16,
                                                                   "cumulative": 16}
    assert big.reduced == ""
    tiny = make_plan(jobs, 16, "auto", 1e-6)
    assert tiny.inputs["cumulative"] == 1 and "topk" in tiny.methods.values()
    assert "--budget-seconds" in tiny.reduced and "--spectra full" in tiny.reduced
    forced = make_plan(jobs, 16, "full", 1e-6)           # the user asked: no cut, no note
    assert set(forced.methods.values()) == {"full"} and forced.reduced == ""
    assert make_plan(jobs, 16, "auto", 3.0) == make_plan(jobs, 16, "auto", 3.0)  # shapes only
    mid = make_plan(jobs, 16, "auto", 3.0)
    assert mid.seconds <= 3.0 or mid.inputs["cumulative"] == 1


def test_plan_upgrades_cheapest_jobs_first():
    jobs = [Job("local", 0, (50, 50), 1.0, 0.1), Job("local", 1, (50, 50), 5.0, 0.1)]
    plan = make_plan(jobs, 1, "auto", 1.2)
    assert plan.methods == {("local", 0): "full", ("local", 1): "topk"}


def test_progress_reports_an_eta():
    lines = []
    bar = Progress(lines.append, total=4.0, what="Jacobian spectra", every=0.0)
    bar.step(1.0, "(local Jacobian 1)")
    assert lines and "25%" in lines[0] and "ETA" in lines[0]


def test_cli_topk_run_and_plan_in_output(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--depth", "4", "--width", "24", "--batch", "4", "--spectra", "topk",
                 "--out", str(out), "--no-plots", "--threads", "1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "Jacobian spectra plan:" in err and "top-k" in err
    spec = json.loads((out / "spec.json").read_text())
    assert spec["spectra"] == "topk"
    import pandas as pd

    layers = pd.read_csv(out / "layers.csv")
    assert np.isfinite(layers.jac_cum_max[:-1]).all()


def test_cli_budget_note_when_the_plan_cuts(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--depth", "6", "--width", "64", "--batch", "8", "--budget-seconds",
                 "1e-6", "--out", str(out), "--no-plots"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert any("--budget-seconds" in n for n in summary["notes"]), summary["notes"]


@pytest.mark.parametrize("argv,needle", [
    (["--spectra", "some"], "--spectra"), (["--budget-seconds", "0"], "--budget-seconds"),
    (["--budget-seconds", "nan"], "--budget-seconds"), (["--threads", "0"], "--threads"),
    (["--threads", "many"], "--threads")])
def test_cli_bad_spectra_and_thread_flags_exit_2(argv, needle, tmp_path, capsys):
    code = main(["run", "--depth", "2", "--out", str(tmp_path / "r"), *argv])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "r").exists()


def test_operator_path_budget_skips_the_expensive_jacobians_and_says_so(seed):
    from conftest import conv_case

    model, x = conv_case(depth=3, channels=2, image_size=5).make(seed)
    full_l, full_c, _, note_full = spectra_with_plan(model, x, JacobianOptions(mode="full"))
    assert note_full == "" and all(sp.method != "skipped" for sp in full_l + full_c)
    from gradcheck.probe.jacobian import operator_jobs
    from gradcheck.probe.layers import record

    jobs = operator_jobs(record(model, x[:1]).layers, JacobianOptions())
    cheapest = min(j.full_s for j in jobs)
    opts = JacobianOptions(mode="auto", budget_seconds=cheapest * 1.0001)
    loc, cum, plan, note = spectra_with_plan(model, x, opts)
    specs = loc + cum
    ran = [sp for sp in specs if sp.method != "skipped"]
    skipped = [sp for sp in specs if sp.method == "skipped"]
    assert len(ran) >= 1 and skipped, plan
    assert all(np.isnan(sp.values).all() and not sp.full for sp in skipped)
    assert "--budget-seconds" in note and "skipped" in note
    for sp, ref in zip(specs, full_l + full_c):      # what was computed equals the full run
        if sp.method != "skipped":
            assert np.allclose(sp.values, ref.values, equal_nan=True, rtol=1e-12, atol=0)


def test_block_krylov_more_values_than_rank_are_nan_not_zero(seed):
    A = _matrices("gaussian", 2, 3, 10, seed)
    r = topk_singular(lambda V: A @ V, lambda U: A.mT @ U, 10, 2, 5, dtype=A.dtype,
                      device=A.device, seed=seed, tol=KRYLOV_TOL)
    assert r.values.shape == (2, 5) and torch.isnan(r.values[:, 3:]).all()
    s = torch.linalg.svdvals(A)
    assert torch.allclose(r.values[:, :3], s, rtol=0, atol=10 * KRYLOV_TOL * float(s.max()))


def test_topk_one_overflowing_input_leaves_the_others_finite(seed):
    from gradcheck.probe.jacobian import _topk_explicit

    A = _matrices("gaussian", 3, 20, 15, seed)
    A[1, 0, 0] = float("inf")
    vals, res = _topk_explicit(A, 3, JacobianOptions(tol=KRYLOV_TOL, seed=seed))
    assert torch.isinf(vals[1, :3]).all() and torch.isnan(res[1])
    for b in (0, 2):
        s = torch.linalg.svdvals(A[b])[:3]
        assert torch.allclose(vals[b, :3], s, rtol=0, atol=10 * KRYLOV_TOL * float(s[0]))
        assert float(res[b]) <= KRYLOV_TOL


def test_plan_note_counts_every_topk_jacobian():
    jobs = chain_jobs([1024, 1024, 1024])
    plan = make_plan(jobs, 4, "auto", 5.0)
    n_top = sum(m == "topk" for m in plan.methods.values())
    assert n_top > 0 and f"top-k instead of full spectra on {n_top} Jacobian(s)" in plan.reduced


def test_sigma_R_and_R2_of_a_large_dense_layer_are_two_computations_that_agree(seed):
    from gradcheck.schemes.sigma import top_sigma

    g = torch.Generator().manual_seed(seed)
    W = torch.randn(300, 600, generator=g, dtype=torch.float64)
    s = float(torch.linalg.svdvals(W)[0])
    a = top_sigma(W, gram="AAt")
    b = top_sigma(W.T, seed=1, gram="AAt")      # W^T W: the other Gram matrix
    assert abs(a - s) <= 1e-12 * s and abs(b - s) <= 1e-12 * s
