"""Conv Jacobian top-k singular values (the engine's matrix-free ``operator`` path) against scipy
``svds`` on a ``torch.func`` jvp/vjp ``LinearOperator``.

Engine: ``jacobian_spectra(model, x[:1], JacobianOptions(dense_max=0, dense_elems=0, k=k))``
(every Jacobian through ARPACK, except the thin ``1 x n`` head which is assembled): top-k and
bottom-k singular values plus a Hutchinson mean square of all 2L-1 Jacobians of one input.
Baselines on the same 2L-1 maps (flattened sub-networks of the ``nn.Sequential`` model), with
``J v`` from ``torch.func.linearize`` (falling back to ``torch.func.jvp``) and ``J^T u`` from one
``torch.func.vjp`` per Jacobian, single-threaded as the engine is:

- ``svds top-k``: ``scipy.sparse.linalg.svds(k, tol)`` only, the strict top-k baseline (less
  work than the engine does);
- ``svds+eigsh+hutch``: the engine's whole answer by the same scipy calls (top-k by ``svds``,
  bottom-k by ``eigsh`` on the smaller Gram within the engine's product budget, ``msq`` by
  Hutchinson), the like-for-like comparison.

Agreement: the worst relative difference of the top-k values. Run
``python benchmarks/bench_conv.py [--quick]``.
"""
from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh, svds
from threadpoolctl import threadpool_limits
from torch import nn

try:
    from . import common as C
except ImportError:
    import common as C

from gradcheck.build import make_model
from gradcheck.probe.jacobian import JacobianOptions, jacobian_spectra
from gradcheck.spec import RunSpec


@contextlib.contextmanager
def single_threaded():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1, "blas"):
            yield
    finally:
        torch.set_num_threads(n)


def _maps(model, x1):
    """[(f, h)]: flat maps of the 2L-1 Jacobians (local, then cumulative) and their inputs."""
    seq = list(model)
    probe = [i for i, m in enumerate(seq) if isinstance(m, (nn.Linear, nn.Conv2d))]
    hs = C.layer_inputs(seq, probe, x1)

    def flat(a, b, shape):
        net = nn.Sequential(*seq[a:b])
        return lambda v: net(v.reshape(1, *shape)).reshape(-1)

    L, out = len(probe), []
    for i in range(L):
        out.append((flat(probe[i], probe[i + 1] if i + 1 < L else len(seq), hs[i].shape[1:]),
                    hs[i].reshape(-1)))
    for i in range(L - 1):
        out.append((flat(probe[i], probe[-1], hs[i].shape[1:]), hs[i].reshape(-1)))
    return out


class _Budget(Exception):
    pass


def _operator(f, h):
    """scipy LinearOperator of ``J = df/dh`` at ``h`` and a product counter."""
    y, vjp_fn = torch.func.vjp(f, h)
    try:
        _, jvp_fn = torch.func.linearize(f, h)
    except Exception:  # noqa: BLE001 - any tracing failure: plain jvp
        def jvp_fn(v):
            return torch.func.jvp(f, (h,), (v,))[1]
    count = [0]
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64).reshape(-1))  # noqa

    def mv(v):
        count[0] += 1
        return jvp_fn(to_t(v)).detach().numpy()

    def rmv(u):
        count[0] += 1
        return vjp_fn(to_t(u))[0].detach().numpy()

    return LinearOperator((y.numel(), h.numel()), matvec=mv, rmatvec=rmv,
                          dtype=np.float64), count, vjp_fn, y.numel()


def baseline(maps, opts: JacobianOptions, full_answer: bool):
    """Per Jacobian: the top-k (and with ``full_answer`` bottom-k + msq) singular values."""
    res = []
    with single_threaded():
        for f, h in maps:
            A, count, vjp_fn, m = _operator(f, h)
            n, k = h.numel(), opts.k
            rng = np.random.RandomState(opts.seed)
            if min(m, n) <= 2 * k + 2:       # thin: assemble by vjps, as the engine does
                J = torch.stack([vjp_fn(e)[0] for e in torch.eye(m, dtype=h.dtype)])
                res.append(torch.linalg.svdvals(J.detach()).numpy())
                continue
            top = np.sort(svds(A, k=k, which="LM", tol=opts.tol, v0=rng.standard_normal(
                min(m, n)), return_singular_vectors=False))[::-1]
            if not full_answer:
                res.append(top)
                continue
            limit = count[0] + opts.bottom_matvecs

            def gram(v, A=A, count=count, limit=limit, n=n, m=m):
                if count[0] >= limit:
                    raise _Budget
                return A.rmatvec(A.matvec(v)) if n <= m else A.matvec(A.rmatvec(v))
            small = min(m, n)
            try:
                ev = eigsh(LinearOperator((small, small), matvec=gram, dtype=np.float64), k=k,
                           which="SA", tol=opts.tol, v0=rng.standard_normal(small),
                           return_eigenvectors=False)
                bottom = np.sort(np.sqrt(np.clip(ev, 0, None)))[::-1]
            except (_Budget, ArpackNoConvergence):
                bottom = np.full(k, np.nan)
            probes = rng.choice([-1.0, 1.0], size=(opts.hutchinson_probes, n))
            _ = float(np.mean([np.sum(A.matvec(p) ** 2) for p in probes])) / small
            res.append(np.concatenate([top, bottom]))
    return res


def engine(model, x1, opts):
    loc, cum = jacobian_spectra(model, x1, opts)
    return [s.values[0] for s in loc + cum]


def agreement(got, ref, k) -> float:
    worst = 0.0
    for g, r in zip(got, ref):
        n = min(k, len(g), len(r))
        worst = max(worst, C.max_rel_diff(g[:n], r[:n], scale=np.nanmax(np.abs(r[:n]))))
    return worst


def bench_case(depth, channels, size, k=3, repeat=2, budget_s=30.0) -> list[dict]:
    spec = RunSpec(arch="conv", depth=depth, channels=channels, image_size=size, init="lecun")
    model = make_model(spec, seed=0)
    x1 = torch.randn((1, *spec.input_shape), generator=torch.Generator().manual_seed(1),
                     dtype=torch.float64)
    opts = JacobianOptions(dense_max=0, dense_elems=0, k=k, operator_inputs=1)
    maps = _maps(model, x1)
    shapes = [(int(f(h).numel()), h.numel()) for f, h in maps]
    label = (f"conv d{depth} c{channels} {size}x{size}, 1 input, {len(maps)} Jacobians up to "
             f"{max(m for m, _ in shapes)}x{max(n for _, n in shapes)}, k={k}")
    with single_threaded():             # warm-up (first-call tracing costs), untimed
        _operator(*maps[0])
    ref, te, me, basis = C.measure(lambda: engine(model, x1, opts), repeat=repeat,
                                   budget_s=budget_s)
    nan = sum(int(np.isnan(r[:k]).any()) for r in ref)
    rows = [C.row("conv", label, te, "(engine)", peak_MiB=me, mem_basis=basis,
                  notes=f"{nan} top-k solves NaN (budget)" if nan else "")]
    for name, full in (("svds top-k", False), ("svds+eigsh+hutch", True)):
        got, tb, mb, basis = C.measure(lambda full=full: baseline(maps, opts, full),
                                       repeat=repeat, budget_s=budget_s)
        rows.append(C.row("conv", label, te, name + " (jvp/vjp)", tb, peak_MiB=mb,
                          mem_basis=basis, agreement=agreement(ref, got, k)))
    return rows


def run(quick: bool = False) -> list[dict]:
    warnings.filterwarnings("ignore", module="torch.fx")
    print(f"conv Jacobian top-k; {C.env_line()}", flush=True)
    cases = [(4, 16, 8, 1)] if quick else [(4, 16, 8, 2), (6, 16, 16, 1)]
    rows = []
    for d, c, s, rep in cases:
        rows += C.guarded("conv", f"conv d{d} c{c} {s}x{s}", bench_case, d, c, s, repeat=rep,
                          budget_s=math.inf)
    C.print_table("conv: Jacobian top-k (operator path)", rows)
    return rows


if __name__ == "__main__":
    raise SystemExit(C.cli(__doc__, run))
