"""Per-sample weight-gradient norms: the engine's fast path against a per-input backward loop,
measured in the same process (ratios, never asserted). ``python benchmarks/bench_grad_norms.py``
"""
from __future__ import annotations

import time

import numpy as np
import torch

from gradcheck.models import mlp
from gradcheck.probe.gradients import gradient_norms
from gradcheck.probe.layers import record
from gradcheck.schemes import apply_scheme


def naive(model, x) -> np.ndarray:
    """One forward and backward per input (the baseline)."""
    ws = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    out = np.zeros((len(ws), len(x)))
    for b in range(len(x)):
        g = torch.autograd.grad(model(x[b:b + 1]).sum(), ws)
        out[:, b] = [float(gi.norm()) for gi in g]
    return out


def main(depth: int = 20, width: int = 128) -> None:
    torch.manual_seed(0)
    model = mlp(depth, width, width).double()
    x = torch.randn(256, width, dtype=torch.float64)
    apply_scheme(model, "lecun", x)
    model.eval()
    print(f"MLP depth {depth}, width {width}")
    print("| batch | engine s | per-input loop s | ratio | max rel diff |")
    print("|---|---|---|---|---|")
    for B in (1, 8, 32, 256):
        xb = x[:B]
        gradient_norms(record(model, xb))                       # warm-up
        t = time.perf_counter()
        eng = gradient_norms(record(model, xb)).weight_grad
        te = time.perf_counter() - t
        t = time.perf_counter()
        ref = naive(model, xb)
        tn = time.perf_counter() - t
        print(f"| {B} | {te:.4f} | {tn:.4f} | x{tn / te:.1f} | "
              f"{np.max(np.abs(eng - ref) / ref):.1e} |")


if __name__ == "__main__":
    main()
