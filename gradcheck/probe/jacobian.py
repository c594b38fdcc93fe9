"""Jacobian singular values, per input: each layer's map and the map to the penultimate features.

For layer ``i`` the *local* Jacobian is ``dh[i+1]/dh[i]`` (``h[L] := D``, so the last one is the
row ``dD/dh[L-1]``) and the *cumulative* Jacobian is ``dh[L-1]/dh[i]`` for ``i = 0..L-2``.

Two paths, chosen automatically:
- ``chain`` (dense nets whose activations act elementwise, which is tested on the tape): the
  per-layer matrices ``diag(a'(z_i)) W_i`` are formed once per input batch and multiplied from
  the top, ``C_i = C_{i+1} M_i``; full spectra by batched ``svdvals``. No autograd loops.
- ``operator`` (everything else): matrix-free ``J v`` / ``J^T u`` by autograd on a one-input
  tape (``J v`` by the double-vjp trick). Full spectra by dense assembly where
  ``min(m, n) <= dense_max`` and ``m n <= dense_elems``; otherwise the top-k by ARPACK
  (``scipy.sparse.linalg.svds``), the bottom-k by Lanczos on the smaller Gram (NaN where it does
  not converge within its budget), and the mean squared singular value by Hutchinson.
Only singular values are kept; Jacobians are built one input chunk at a time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh, svds
from torch import nn

from .._threads import single_threaded
from ..linalg import grad
from .layers import Tape, record


@dataclass(frozen=True)
class Spectrum:
    """Singular values of one Jacobian over the probed inputs.

    values: ``(n_inputs, k)`` descending; full spectrum if ``full``, else top-k then bottom-k.
    msq: ``(n_inputs,)`` mean squared singular value ``tr(J^T J) / min(m, n)`` (exact when
        ``full``, Hutchinson with ``hutchinson_probes`` probes otherwise).
    """

    values: np.ndarray
    msq: np.ndarray
    shape: tuple[int, int]    # (m, n) of the Jacobian
    full: bool
    method: str               # 'chain' | 'chain-topk' | 'dense' | 'lanczos' | 'skipped'
    residual: np.ndarray | None = None   # (n_inputs,) worst relative residual of the top-k

    @property
    def top(self) -> np.ndarray:
        return self.values[:, 0]

    @property
    def bottom(self) -> np.ndarray:
        return self.values[:, -1]

    def numerical_zero(self, eps: float) -> np.ndarray:
        """Per input, the threshold ``sigma_max * max(m, n) * eps`` below which a singular
        value is numerically zero (ReLU Jacobians are rank-deficient: dead units)."""
        return self.top * max(self.shape) * eps

    def smallest_nonzero(self, eps: float) -> np.ndarray:
        """Per input, the smallest singular value above :meth:`numerical_zero` (NaN if none).

        For a top-k + bottom-k spectrum only the bottom-k half counts: where that solve did not
        converge (NaN) the answer is NaN, never the smallest of the top-k.
        """
        vals = self.values if self.full else self.values[:, self.values.shape[1] // 2:]
        v = np.where(vals > self.numerical_zero(eps)[:, None], vals, np.nan)
        with np.errstate(all="ignore"):
            return np.where(np.isnan(v).all(axis=1), np.nan,
                            np.nanmin(np.where(np.isnan(v), np.inf, v), axis=1))

    def rank_fraction(self, eps: float) -> np.ndarray:
        """Per input, numerical rank / min(m, n) (full spectra only; NaN otherwise)."""
        if not self.full:
            return np.full(len(self.values), np.nan)
        return (self.values > self.numerical_zero(eps)[:, None]).sum(1) / min(self.shape)


@dataclass(frozen=True)
class JacobianOptions:
    """Knobs of the spectrum computation (defaults keep ``gradcheck run`` in seconds)."""

    dense_max: int = 1024           # full spectrum if min(m, n) <= dense_max ...
    dense_elems: int = 1 << 22      # ... and m * n <= dense_elems
    k: int = 3                      # top-k and bottom-k otherwise
    hutchinson_probes: int = 16
    tol: float = 1e-6               # ARPACK relative tolerance (top/bottom-k)
    max_matvecs: int = 600          # J/J^T products for the top-k solve
    bottom_matvecs: int = 200       # ... for the bottom-k solve (NaN when not converged)
    operator_inputs: int = 1        # inputs that get matrix-free spectra (expensive)
    chunk: int = 16                 # inputs per chunk on the chain path
    seed: int = 0
    mode: str = "full"              # full | topk | auto (gradcheck.probe.budget)
    budget_seconds: float = 10.0    # auto: the plan's estimated seconds must fit this


def _diagonal_derivative(out: torch.Tensor, inp: torch.Tensor) -> torch.Tensor | None:
    """``d out / d inp`` as a (B, n) diagonal if ``out`` is an elementwise function of ``inp``."""
    if out.reshape(out.shape[0], -1).shape != inp.reshape(inp.shape[0], -1).shape:
        return None
    if out is inp:
        return torch.ones_like(inp).reshape(inp.shape[0], -1)
    ones = torch.ones_like(out)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(12345),
                    dtype=out.dtype).to(out.device)
    try:
        d1 = grad(out, inp, ones, retain_graph=True)[0]
        d2 = grad(out, inp, r, retain_graph=True)[0]
    except RuntimeError:
        return None
    if d1 is None or not torch.allclose(d2, r.reshape(d2.shape) * d1, rtol=1e-12, atol=0):
        return None
    return d1.reshape(d1.shape[0], -1).detach()


def chain_matrices(tape: Tape) -> list[torch.Tensor] | None:
    """Per-input local Jacobians ``M_i = diag(a'(z_i)) W_i``, each (B, n_{i+1}, n_i), or None.

    None when some layer is not dense or some activation is not elementwise.
    """
    if any(info.kind != "linear" for info in tape.layers):
        return None
    L = len(tape.layers)
    mats = []
    for i in range(L):
        nxt = tape.h[i + 1] if i + 1 < L else tape.D.reshape(-1, 1)
        diag = _diagonal_derivative(nxt, tape.z[i])
        if diag is None:
            return None
        # detached: svdvals of a tensor that requires grad computes the singular vectors too
        mats.append(diag[:, :, None] * tape.weights[i].detach()[None])
    return mats


def _msq(s: torch.Tensor) -> torch.Tensor:
    return (s ** 2).mean(dim=-1)


def _svdvals(m: torch.Tensor) -> torch.Tensor:
    """Batched ``svdvals``; matrices with non-finite entries (float32 overflow: explosion is a
    measurement, not a crash) get singular values ``inf``."""
    bad = ~torch.isfinite(m).flatten(-2).all(-1)
    if not bad.any():
        return torch.linalg.svdvals(m)
    out = torch.full((*m.shape[:-2], min(m.shape[-2:])), float("inf"), dtype=m.dtype,
                     device=m.device)
    if (~bad).any():
        out[~bad] = torch.linalg.svdvals(m[~bad])
    return out


def _svdvals_rows(m: torch.Tensor) -> torch.Tensor:
    """:func:`_svdvals` of ``m`` (B, r, c) without its all-zero rows (exactly-zero singular
    values: ReLU's dead units zero whole rows of ``diag(a') W``), zeros padded back — the SVD
    of a ReLU layer's Jacobian on about half its rows, ~4x fewer flops."""
    B, r, c = m.shape
    live = (m != 0).any(-1)                                    # (B, r)
    a = int(live.sum(1).max()) if B else r
    if a >= r or a == 0:
        return _svdvals(m) if a else torch.zeros(B, min(r, c), dtype=m.dtype, device=m.device)
    order = torch.argsort((~live).to(torch.int8), dim=1, stable=True)[:, :a]
    s = _svdvals(torch.gather(m, 1, order[:, :, None].expand(B, a, c)))
    return torch.nn.functional.pad(s, (0, min(r, c) - s.shape[1]))


def _topk_explicit(m: torch.Tensor, k: int, opts) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of explicit matrices (B, r, c) by batched Lanczos: (values (B, 2k) with a NaN
    bottom half, worst residual (B,)). A matrix with non-finite entries (float32 overflow)
    gets top values ``inf`` and residual NaN; the others of the chunk are solved as usual."""
    from .krylov import topk_singular

    B = m.shape[0]
    vals = torch.full((B, 2 * k), float("nan"), dtype=m.dtype, device=m.device)
    res = torch.full((B,), float("nan"), dtype=m.dtype, device=m.device)
    good = torch.isfinite(m).flatten(1).all(1)
    vals[~good, :k] = float("inf")
    if bool(good.any()):
        g = m[good]
        # (V^T M^T)^T, not M V: bmm with one column is 3-6x slower than with one row
        r = topk_singular(lambda V: (V.mT @ g.mT).mT, lambda U: (U.mT @ g).mT, g.shape[-1],
                          g.shape[0], k, dtype=m.dtype, device=m.device, seed=opts.seed,
                          tol=opts.tol)
        vals[good, :k] = r.values                # NaN where not converged or not computed
        res[good] = r.residual.nan_to_num(nan=float("inf")).amax(1) if k else 0.0
    return vals, res


def _frob_msq(m: torch.Tensor) -> torch.Tensor:
    return (m ** 2).sum(dim=(-2, -1)) / min(m.shape[-2:])


def chain_jobs(n: list[int]) -> list:
    """Per-input costs of the chain path's Jacobians for layer sizes ``n`` (h_0..h_{L-1})."""
    from .budget import Job, matmul_seconds, svd_seconds, topk_seconds

    L = len(n)
    jobs = []
    for i in range(L):
        m = n[i + 1] if i + 1 < L else 1
        jobs.append(Job("local", i, (m, n[i]), svd_seconds(m, n[i]), topk_seconds(m, n[i])))
    for i in range(L - 1):
        prod = matmul_seconds(n[L - 1], n[i + 1], n[i]) if i < L - 2 else 0.0
        shp = (n[L - 1], n[i])
        jobs.append(Job("cumulative", i, shp, prod + svd_seconds(*shp),
                        prod + topk_seconds(*shp)))
    return jobs


class _Operator:
    """Matrix-free Jacobian ``J = d dst / d src`` of one input from a recorded graph."""

    def __init__(self, dst: torch.Tensor, src: torch.Tensor):
        self.dst, self.src = dst, src
        self.m, self.n = dst.numel(), src.numel()
        self._u = torch.zeros_like(dst, requires_grad=True)
        self._g = None
        self.matvecs = 0

    def _graph(self) -> None:
        """Build ``g(u) = J^T u`` once, with a graph, so that ``J v = d<g(u), v>/du``."""
        if self._g is None:
            self._g = torch.autograd.grad(self.dst, self.src, self._u, retain_graph=True,
                                          create_graph=True)[0]

    def rmatvec(self, u: torch.Tensor) -> torch.Tensor:   # J^T u
        self.matvecs += 1
        return torch.autograd.grad(self.dst, self.src, u.reshape(self.dst.shape),
                                   retain_graph=True)[0].reshape(-1)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:    # J v by the double-vjp trick
        self.matvecs += 1
        self._graph()
        out = torch.autograd.grad(self._g, self._u, v.reshape(self.src.shape),
                                  retain_graph=True, allow_unused=True)[0]
        return torch.zeros(self.m, dtype=v.dtype) if out is None else out.reshape(-1)

    def dense(self, chunk: int = 256) -> torch.Tensor:
        """The (m, n) matrix, by batched vjps (rows) or batched jvps (columns), thinner side."""
        if self.m <= self.n:
            eye = torch.eye(self.m, dtype=self.dst.dtype, device=self.dst.device)
            rows = [torch.autograd.grad(self.dst, self.src, e.reshape(-1, *self.dst.shape),
                                        retain_graph=True, is_grads_batched=True)[0]
                    .reshape(e.shape[0], -1) for e in eye.split(chunk)]
            self.matvecs += self.m
            return torch.cat(rows)
        self._graph()
        eye = torch.eye(self.n, dtype=self.src.dtype, device=self.src.device)
        cols = [torch.autograd.grad(self._g, self._u, e.reshape(-1, *self.src.shape),
                                    retain_graph=True, is_grads_batched=True)[0]
                .reshape(e.shape[0], -1) for e in eye.split(chunk)]
        self.matvecs += self.n
        return torch.cat(cols).T

    def scipy(self) -> LinearOperator:
        dt = self.src.dtype
        to_t = lambda a: torch.as_tensor(np.ascontiguousarray(a).reshape(-1), dtype=dt)  # noqa
        return LinearOperator((self.m, self.n), dtype=np.float64,
                              matvec=lambda v: self.matvec(to_t(v)).double().numpy(),
                              rmatvec=lambda u: self.rmatvec(to_t(u)).double().numpy())


class _BudgetExceeded(Exception):
    pass


def _budgeted(A: LinearOperator, op: "_Operator", budget: int) -> LinearOperator:
    """``A`` whose products raise ``_BudgetExceeded`` once ``op`` has used ``budget`` more."""
    limit = op.matvecs + budget

    def guard(fn):
        def call(v):
            if op.matvecs >= limit:
                raise _BudgetExceeded
            return fn(v)
        return call

    return LinearOperator(A.shape, matvec=guard(A.matvec), rmatvec=guard(A.rmatvec),
                          dtype=np.float64)


def _operator_spectrum(op: _Operator, opts: JacobianOptions) -> tuple[np.ndarray, float, bool]:
    """(singular values, msq, full) of one operator.

    Full spectrum by dense assembly when small (or when one side is so thin that assembling it
    costs fewer products than Lanczos would). Otherwise top-k by ``svds`` and bottom-k by
    ``eigsh`` on the smaller Gram, each within ``max_matvecs`` applications of J or J^T; a solve
    that runs out of budget gives NaN values (reported as such, never guessed).
    """
    m, n = op.m, op.n
    thin = min(m, n) <= 2 * opts.k + 2
    if thin or (min(m, n) <= opts.dense_max and m * n <= opts.dense_elems):
        s = _svdvals(op.dense()).double()
        return s.numpy(), float(_msq(s)), True
    A = op.scipy()
    rng = np.random.RandomState(opts.seed)
    k = opts.k
    try:
        top = svds(_budgeted(A, op, opts.max_matvecs), k=k, which="LM", tol=opts.tol,
                   v0=rng.standard_normal(min(m, n)), return_singular_vectors=False)
        top = np.sort(top)[::-1]
    except (_BudgetExceeded, ArpackNoConvergence):
        top = np.full(k, np.nan)
    small = min(m, n)
    Ab = _budgeted(A, op, opts.bottom_matvecs)
    gram = (lambda v: Ab.rmatvec(Ab.matvec(v))) if n <= m else (lambda u: Ab.matvec(Ab.rmatvec(u)))
    try:
        ev = eigsh(LinearOperator((small, small), matvec=gram, dtype=np.float64), k=k,
                   which="SA", tol=opts.tol, v0=rng.standard_normal(small),
                   return_eigenvectors=False)
        bottom = np.sort(np.sqrt(np.clip(ev, 0, None)))[::-1]
    except (_BudgetExceeded, ArpackNoConvergence):
        bottom = np.full(k, np.nan)
    probes = rng.choice([-1.0, 1.0], size=(opts.hutchinson_probes, n))
    msq = float(np.mean([np.sum(A.matvec(p) ** 2) for p in probes])) / small
    return np.concatenate([top, bottom]), msq, False


def _layer_flops(info) -> float:
    """Multiply-adds x 2 of one probe layer's forward on one input."""
    out_pos = int(np.prod(info.output_shape[1:])) if info.kind == "conv" else 1
    if info.kind == "linear" and len(info.output_shape) > 1:
        out_pos = int(np.prod(info.output_shape[:-1]))
    return 2.0 * float(np.prod(info.weight_shape)) * out_pos


def operator_jobs(layers, opts: JacobianOptions) -> list:
    """Per-input costs of the matrix-free path (one job per local / cumulative Jacobian)."""
    from .budget import OPERATOR_OVERHEAD, OPERATOR_RATE, Job

    L = len(layers)
    n = [int(np.prod(info.input_shape)) for info in layers]
    flops = [_layer_flops(info) for info in layers]

    def seconds(m, nn_, lo, hi):
        per = OPERATOR_OVERHEAD + 3.0 * sum(flops[lo:hi + 1]) / OPERATOR_RATE
        thin = min(m, nn_) <= 2 * opts.k + 2
        if thin or (min(m, nn_) <= opts.dense_max and m * nn_ <= opts.dense_elems):
            return 0.3 * min(m, nn_) * per + 4.0 * m * nn_ * min(m, nn_) / 4e9
        return (0.6 * opts.max_matvecs + opts.bottom_matvecs + opts.hutchinson_probes) * per

    jobs = []
    for i in range(L):
        m = n[i + 1] if i + 1 < L else 1
        t = seconds(m, n[i], i, i)
        jobs.append(Job("local", i, (m, n[i]), t, t))
    for i in range(L - 1):
        t = seconds(n[L - 1], n[i], i, L - 2)
        jobs.append(Job("cumulative", i, (n[L - 1], n[i]), t, t))
    return jobs


def operator_plan(jobs: list, n_inputs: int, mode: str, budget: float):
    """auto: the cheapest Jacobians first while the estimate fits; the rest skipped.
    Returns ``(run: set of (family, index), estimated seconds, note)``."""
    if mode != "auto":
        return {(j.family, j.index) for j in jobs}, n_inputs * sum(j.full_s for j in jobs), ""
    run, total = set(), 0.0
    for j in sorted(jobs, key=lambda j: j.full_s):
        if total + n_inputs * j.full_s <= budget:
            run.add((j.family, j.index))
            total += n_inputs * j.full_s
    skipped = [j for j in jobs if (j.family, j.index) not in run]
    note = ""
    if skipped:
        est = n_inputs * sum(j.full_s for j in skipped)
        names = ", ".join(f"{j.family} {j.index}" for j in skipped[:6]) + \
            (f" and {len(skipped) - 6} more" if len(skipped) > 6 else "")
        note = (f"--budget-seconds {budget:g}: {len(skipped)} of {len(jobs)} matrix-free "
                f"Jacobians skipped ({names}; estimated {est:.3g} s more; --spectra full or "
                f"--budget-seconds {est + total:.3g} for all)")
    return run, total, note


def operator_spectra(model: nn.Module, x1: torch.Tensor, opts: JacobianOptions, say=None,
                     run: set | None = None):
    """(local, cumulative) lists of (values, msq, full, (m, n)) for ONE input ``x1`` (1, ...);
    Jacobians not in ``run`` (when given) are skipped: NaN values, ``full`` None."""
    tape = record(model, x1)
    L = len(tape.layers)
    say = say or (lambda msg: None)
    dst_local = tape.h[1:] + [tape.D.reshape(1, 1)]
    local, cumulative = [], []
    skip = lambda op: (np.full(2 * opts.k, np.nan), math.nan, None, (op.m, op.n))  # noqa: E731
    for i in range(L):
        op = _Operator(dst_local[i], tape.h[i])
        if run is not None and ("local", i) not in run:
            local.append(skip(op))
            continue
        local.append((*_operator_spectrum(op, opts), (op.m, op.n)))
        say(f"local Jacobian {i + 1}/{L} ({op.m}x{op.n}, {op.matvecs} products)")
    for i in range(L - 1):
        op = _Operator(tape.h[L - 1], tape.h[i])
        if run is not None and ("cumulative", i) not in run:
            cumulative.append(skip(op))
            continue
        cumulative.append((*_operator_spectrum(op, opts), (op.m, op.n)))
        say(f"cumulative Jacobian {i + 1}/{L - 1} ({op.m}x{op.n}, {op.matvecs} products)")
    return local, cumulative


def _pad_stack(rows: list[np.ndarray]) -> np.ndarray:
    k = max(len(r) for r in rows)
    return np.stack([np.pad(r, (0, k - len(r)), constant_values=np.nan) for r in rows])


def _chain_path(model, x, first: Tape, opts: JacobianOptions, progress):
    """The chain path under a plan: (local, cumulative, plan text, note)."""
    from .budget import Progress, make_plan

    L = len(first.layers)
    n = [int(np.prod(h.shape[1:])) for h in first.h]
    jobs = chain_jobs(n)
    plan = make_plan(jobs, x.shape[0], opts.mode, opts.budget_seconds)
    say = progress or (lambda msg: None)
    say(f"Jacobian spectra plan: {plan.describe(jobs)}")
    bar = Progress(progress, plan.seconds, "Jacobian spectra")
    cost = {(j.family, j.index): (j.full_s if plan.methods[(j.family, j.index)] == "full"
                                  else j.topk_s) for j in jobs}
    n_loc, n_cum = plan.inputs["local"], plan.inputs["cumulative"]
    acc = {("local", i): [] for i in range(L)} | {("cumulative", i): [] for i in range(L - 1)}
    k = opts.k

    def measure(key, mat, b):
        if plan.methods[key] == "full":
            sv = _svdvals_rows(mat)
            out = (sv, _msq(sv), None)
        else:
            vals, res = _topk_explicit(mat, k, opts)
            out = (vals, _frob_msq(mat), res)
        acc[key].append(tuple(None if t is None else t.detach().double().cpu().numpy()
                              for t in out))
        bar.step(cost[key] * b, f"({key[0]} Jacobian {key[1] + 1})")

    for s0 in range(0, max(n_loc, n_cum), opts.chunk):
        s1 = min(s0 + opts.chunk, max(n_loc, n_cum))
        mats = chain_matrices(record(model, x[s0:s1]))
        bl, bc = max(0, min(n_loc, s1) - s0), max(0, min(n_cum, s1) - s0)
        for i in range(L):
            if bl:
                measure(("local", i), mats[i][:bl], bl)
        C = None
        if bc:
            for i in range(L - 2, -1, -1):
                C = mats[i][:bc] if C is None else C @ mats[i][:bc]
                measure(("cumulative", i), C, bc)

    def spectrum(key, shp):
        parts = acc[key]
        full = plan.methods[key] == "full"
        res = None if full else np.concatenate([p[2] for p in parts])
        return Spectrum(np.concatenate([p[0] for p in parts]),
                        np.concatenate([p[1] for p in parts]), shp, full,
                        "chain" if full else "chain-topk", res)

    local = [spectrum(("local", i), (n[i + 1] if i + 1 < L else 1, n[i])) for i in range(L)]
    cum = [spectrum(("cumulative", i), (n[L - 1], n[i])) for i in range(L - 1)]
    return local, cum, plan.describe(jobs), plan.reduced


def spectra_with_plan(model: nn.Module, x: torch.Tensor,
                      opts: JacobianOptions = JacobianOptions(), progress=None):
    """:func:`jacobian_spectra` plus ``(plan, note)``: what was computed how, and, where the
    budget cut anything, a note saying what and how to get the rest."""
    first = record(model, x[:1])
    if chain_matrices(first) is not None:
        return _chain_path(model, x, first, opts, progress)
    n_in = min(x.shape[0], opts.operator_inputs)
    jobs = operator_jobs(first.layers, opts)
    run, est, note = operator_plan(jobs, n_in, opts.mode, opts.budget_seconds)
    plan = (f"matrix-free: {len(run)} of {len(jobs)} Jacobians on {n_in} input(s) "
            f"(estimated {est:.3g} s)")
    if progress:
        progress(f"Jacobian spectra plan: {plan}")
    local, cum = _operator_path(model, x, opts, progress, run)
    return local, cum, plan, note


def jacobian_spectra(model: nn.Module, x: torch.Tensor,
                     opts: JacobianOptions = JacobianOptions(),
                     progress=None) -> tuple[list, list]:
    """Spectra of every local and cumulative Jacobian over the inputs ``x`` (B, ...).

    Returns:
        ``(local, cumulative)``: lists of :class:`Spectrum`, of lengths L and L-1.
    """
    local, cum, _, _ = spectra_with_plan(model, x, opts, progress)
    return local, cum


def _operator_path(model, x, opts: JacobianOptions, progress, run=None):
    with single_threaded():
        n_in = min(x.shape[0], opts.operator_inputs)
        if n_in == 0:
            return [], []
        per_input = [operator_spectra(model, x[b:b + 1], opts, progress and (
            lambda msg, b=b: progress(f"input {b + 1}/{n_in}: {msg}")), run)
            for b in range(n_in)]
    out = []
    for which in (0, 1):
        specs = []
        for j in range(len(per_input[0][which])):
            parts = [p[which][j] for p in per_input]
            skipped = any(p[2] is None for p in parts)
            full = not skipped and all(p[2] for p in parts)
            specs.append(Spectrum(_pad_stack([p[0] for p in parts]),
                                  np.array([p[1] for p in parts]), parts[0][3], full,
                                  "skipped" if skipped else "dense" if full else "lanczos"))
        out.append(specs)
    return out[0], out[1]
