"""Engine speed against naive autograd baselines, measured in the same run (ratios printed).

Per-input weight-gradient norms: the engine (one backward + vmapped layer vjps) vs one
backward per input. Jacobian spectra of a deep MLP: the engine's chained per-layer matrices vs
``torch.autograd.functional.jacobian`` per input per layer (the DESIGN.md baseline). Nothing is
asserted; run ``python benchmarks/bench_engine.py [--width 128 --depth 20 --batch 32]``.
"""
from __future__ import annotations

import argparse
import time

import torch

from gradcheck.models import mlp
from gradcheck.probe.gradients import gradient_norms
from gradcheck.probe.jacobian import JacobianOptions, jacobian_spectra
from gradcheck.probe.layers import record
from gradcheck.schemes import apply_scheme


def _time(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def naive_grad_norms(model, x):
    """One backward per input: the baseline for per-sample gradient norms."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    out = torch.zeros(len(layers), len(x), dtype=torch.float64)
    for b in range(len(x)):
        model.zero_grad()
        model(x[b:b + 1]).sum().backward()
        for i, m in enumerate(layers):
            out[i, b] = m.weight.grad.norm()
    return out


def naive_spectra(model, x):
    """``torch.autograd.functional.jacobian`` of every layer-to-penultimate map, per input."""
    seq = list(model)
    lin = [i for i, m in enumerate(seq) if isinstance(m, torch.nn.Linear)]
    pen = lin[-1]                       # input of the last Linear = penultimate features
    vals = []
    for b in range(len(x)):
        h = x[b]
        hs = []
        for i, m in enumerate(seq[:pen]):
            if i in lin:
                hs.append((i, h))
            h = m(h)
        for i, h0 in hs:
            f = lambda v, i=i: torch.nn.Sequential(*seq[i:pen])(v)  # noqa: E731
            J = torch.autograd.functional.jacobian(f, h0)
            vals.append(torch.linalg.svdvals(J))
    return vals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args(argv)
    x = torch.randn(a.batch, a.width, dtype=torch.float64)
    model = apply_scheme(mlp(a.depth, a.width, a.width).double(), "lecun", x, seed=0).eval()
    grad_rows = []
    for B in (a.batch, 8 * a.batch):
        xb = torch.randn(B, a.width, dtype=torch.float64)
        ref = naive_grad_norms(model, xb).numpy()
        got = gradient_norms(record(model, xb)).weight_grad
        assert abs(got - ref).max() <= 1e-10 * abs(ref).max(), "engine and baseline disagree"
        grad_rows.append((B, _time(lambda xb=xb: gradient_norms(record(model, xb))),
                          _time(lambda xb=xb: naive_grad_norms(model, xb))))
    eng_s = _time(lambda: jacobian_spectra(model, x, JacobianOptions()), repeat=1)
    base_s = _time(lambda: naive_spectra(model, x), repeat=1)
    print(f"MLP depth {a.depth}, width {a.width}, {a.batch} inputs, float64, "
          f"{torch.get_num_threads()} threads")
    for B, eng_g, base_g in grad_rows:
        print(f"per-input gradient norms, {B} inputs: engine {eng_g:.3f} s, per-input backward "
              f"loop {base_g:.3f} s, speed-up x{base_g / eng_g:.1f}")
    print(f"Jacobian spectra (all layers to the penultimate features): engine {eng_s:.3f} s, "
          f"autograd.functional.jacobian per input per layer {base_s:.3f} s, "
          f"speed-up x{base_s / eng_s:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
