"""Conv operator norms ``||Conv_K||_op`` on the layer's real input size: engine vs baselines.

Engine: ``gradcheck.schemes.sigma.module_operator_norm(conv, input_shape, tol=1e-10)``, the
function ``gradcheck.probe.norms.layer_norms`` calls for ``sigma_op`` (ARPACK Lanczos on
``A^T A`` for zero padding; exact FFT for circular stride-1 'same' padding). Baselines in the
same process:

- ``power``: plain power iteration on ``A^T A`` (``A`` by ``F.conv2d``/the module's forward,
  ``A^T`` by one ``torch.func.vjp``), stopping when the Rayleigh quotient changes by less than
  1e-12 relatively (at most 5000 iterations, 1000 with ``--quick``, and 60 s; the notes column
  says when it stopped unconverged), ``sigma = sqrt`` of the last quotient;
- ``fft`` (circular padding only): the exact answer written out here, the largest of the
  per-frequency singular values of the kernel's 2-D DFT on the ``H x W`` torus (Sedghi et al.);
- ``dense svd`` (inputs of at most 1024 numbers): ``svdvals`` of the assembled matrix, exact.

Agreement: ``|sigma - sigma_engine| / sigma_engine``. Run
``python benchmarks/bench_opnorm.py [--quick]``.
"""
from __future__ import annotations

import time

import torch
from torch import nn

try:
    from . import common as C
except ImportError:
    import common as C

from gradcheck.schemes.sigma import module_operator_norm


def engine(conv, shape):
    return module_operator_norm(conv, shape, tol=1e-10).sigma


def _forward(conv):
    return lambda v: conv._conv_forward(v, conv.weight.detach(), None)


MAX_ITER = {True: 1000, False: 5000}


def power(conv, shape, tol=1e-12, max_iter=5000, seed=0, max_s=60.0):
    """(sigma, iterations used) of plain power iteration on ``A^T A`` (stops after ``max_s``
    seconds too, so that a slow case cannot stall the suite)."""
    t0 = time.perf_counter()
    fwd = _forward(conv)
    v = torch.randn((1, *shape), generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    _, vjp_fn = torch.func.vjp(fwd, torch.zeros_like(v))
    v, q_old, it = v / v.norm(), None, 0
    while it < max_iter:
        it += 1
        w = vjp_fn(fwd(v))[0]
        q = float((v * w).sum())
        v = w / w.norm()
        if q_old is not None and abs(q - q_old) <= tol * q:
            break
        if time.perf_counter() - t0 > max_s:
            it = -it
            break
        q_old = q
    return q ** 0.5, it


def fft(conv, shape):
    """Exact for circular stride-1 'same' convolutions: max over frequencies of sigma(K_hat)."""
    w = conv.weight.detach()
    _, H, W = shape
    k = w.new_zeros(w.shape[:2] + (H, W))
    for i in range(w.shape[2]):                         # taps wrap around on the torus
        for j in range(w.shape[3]):
            k[:, :, i % H, j % W] += w[:, :, i, j]
    sym = torch.fft.fft2(k).permute(2, 3, 0, 1)          # (H, W, c_out, c_in)
    return float(torch.linalg.svdvals(sym).max())


def dense(conv, shape):
    n = int(torch.tensor(shape).prod())
    A = _forward(conv)(torch.eye(n, dtype=torch.float64).reshape(n, *shape)).reshape(n, -1)
    return float(torch.linalg.svdvals(A)[0])


def bench_case(c_in, c_out, k, stride, size, mode="zeros", repeat=3, budget_s=20.0,
               max_iter=5000):
    torch.manual_seed(0)
    pad = k // 2 if mode == "circular" else 1
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, padding_mode=mode,
                     bias=False).double()
    with torch.no_grad():
        conv.weight.normal_(0, (c_in * k * k) ** -0.5)
    shape = (c_in, size, size)
    label = f"{c_in}->{c_out} k{k} s{stride} {mode} on {size}x{size}"
    ref, te, me, basis = C.measure(lambda: engine(conv, shape), repeat=repeat,
                                   budget_s=budget_s)
    method = module_operator_norm(conv, shape, tol=1e-10).method
    rows = [C.row("opnorm", label, te, f"(engine: {method})", peak_MiB=me, mem_basis=basis)]
    cases = {"power": lambda conv, shape: power(conv, shape, max_iter=max_iter)}
    if mode == "circular" and stride == 1:
        cases["fft"] = fft
    if c_in * size * size <= 1024:
        cases["dense svd"] = dense
    for name, fn in cases.items():
        got, tb, mb, basis = C.measure(lambda fn=fn: fn(conv, shape), repeat=repeat,
                                       budget_s=budget_s)
        note = ""
        if name == "power":
            got, it = got
            note = (f"{-it} iterations (60 s cap: not converged)" if it < 0 else
                    f"{it} iterations" + (" (max: not converged)" if it == max_iter else ""))
        rows.append(C.row("opnorm", label, te, name, tb, peak_MiB=mb, mem_basis=basis,
                          agreement=abs(got - ref) / ref, notes=note))
    return rows


def run(quick: bool = False) -> list[dict]:
    print(f"conv operator norms; {C.env_line()}", flush=True)
    cases = [(16, 16, 3, 1, 8, "zeros"), (16, 16, 3, 1, 16, "zeros"),
             (64, 128, 4, 2, 16, "zeros"), (16, 16, 3, 1, 16, "circular"),
             (64, 64, 3, 1, 16, "circular")]
    if not quick:
        cases += [(64, 64, 3, 1, 16, "zeros"), (128, 128, 3, 1, 16, "zeros"),
                  (3, 64, 3, 1, 32, "zeros"), (128, 128, 3, 1, 32, "circular")]
    rows = []
    C.guarded("opnorm", "warm-up", bench_case, 4, 4, 3, 1, 8, max_iter=10, repeat=1)
    for c in cases:
        label = "{}->{} k{} s{} {} on {}x{}".format(*c[:4], c[5], c[4], c[4])
        rows += C.guarded("opnorm", label, bench_case, *c, repeat=2 if quick else 3,
                          budget_s=5.0 if quick else 20.0, max_iter=MAX_ITER[quick])
    C.print_table("opnorm: conv operator norms", rows)
    return rows


if __name__ == "__main__":
    raise SystemExit(C.cli(__doc__, run))
