"""What the Jacobian spectra will cost, decided before computing, and progress with an ETA.

The decision is made from shapes alone, at nominal 2-core float64 rates (measured on the
development machine with ``torch.linalg.svdvals``/``matmul``/``conv2d``; a faster machine just
finishes sooner), so the same spec gives the same plan — and the same files — everywhere. The
ETA shown while computing uses the measured elapsed time.

Modes (``--spectra``): ``full`` every Jacobian's full spectrum; ``topk`` top-k by batched
Lanczos (:mod:`gradcheck.probe.krylov`) and the exact mean squared singular value (the
matrices are formed on the chain path); ``auto`` (default) full spectra where the plan
fits ``--budget-seconds``, top-k for the rest, and fewer inputs for the expensive family when
even top-k does not fit (the run's notes say so).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..spec import SPECTRA_MODES

#: nominal float64 rates (flop/s) on 2 cores: LAPACK gesdd counted as 4 m n min(m, n) flops,
#: matmul 2 m n k, convolution / autograd products (with their Python overhead) much slower
SVD_RATE, MATMUL_RATE, MATVEC_RATE, OPERATOR_RATE = 4e9, 1.5e10, 3e9, 1e9
KRYLOV_PRODUCTS = 150           # nominal products of one top-k Lanczos solve (k=3, tol 1e-6)
OPERATOR_OVERHEAD = 2e-4        # seconds of Python/autograd per matrix-free product
MODES = SPECTRA_MODES


def svd_seconds(m: int, n: int) -> float:
    return 4.0 * m * n * min(m, n) / SVD_RATE


def matmul_seconds(m: int, k: int, n: int) -> float:
    return 2.0 * m * k * n / MATMUL_RATE


def topk_seconds(m: int, n: int) -> float:
    """Top-k of an explicit (m, n) matrix per input: Lanczos products (memory-bound matrix-vector
    products, ~3 GFLOP/s) plus the per-step overhead shared by a batch of 16 inputs."""
    return KRYLOV_PRODUCTS * 2.0 * m * n / MATVEC_RATE + 0.004


@dataclass(frozen=True)
class Job:
    """One Jacobian family member: its shape and the per-input cost of each method."""

    family: str               # 'local' | 'cumulative'
    index: int
    shape: tuple[int, int]
    full_s: float             # per input, full spectrum (including any products it needs)
    topk_s: float             # per input, top-k


@dataclass(frozen=True)
class Plan:
    """Per job: 'full' or 'topk'; per family: how many inputs; the estimate."""

    methods: dict             # (family, index) -> 'full' | 'topk'
    inputs: dict              # family -> number of inputs
    seconds: float            # estimated total at the nominal rates
    reduced: str              # '' or why fewer inputs / top-k were chosen

    def describe(self, jobs: list[Job]) -> str:
        parts = []
        for fam in ("local", "cumulative"):
            m = [self.methods[(j.family, j.index)] for j in jobs if j.family == fam]
            if m:
                parts.append(f"{fam} {m.count('full')} full + {m.count('topk')} top-k on "
                             f"{self.inputs[fam]} input(s)")
        return "; ".join(parts) + f" (estimated {self.seconds:.3g} s)"


def make_plan(jobs: list[Job], n_inputs: int, mode: str, budget: float) -> Plan:
    """Choose methods and input counts (see the module docstring)."""
    thin = {(j.family, j.index) for j in jobs if min(j.shape) <= 8}      # full is cheapest
    if mode == "full":
        methods = {(j.family, j.index): "full" for j in jobs}
    else:
        methods = {(j.family, j.index): ("full" if (j.family, j.index) in thin else "topk")
                   for j in jobs}
    inputs = {"local": n_inputs, "cumulative": n_inputs}

    def cost():
        return sum(inputs[j.family] * (j.full_s if methods[(j.family, j.index)] == "full"
                                       else j.topk_s) for j in jobs)

    reduced = ""
    if mode == "auto":
        for fam in ("cumulative", "local"):           # fewer inputs where even top-k is over
            if cost() <= budget:
                break
            fam_cost = sum(j.topk_s if methods[(j.family, j.index)] == "topk" else j.full_s
                           for j in jobs if j.family == fam)
            other = cost() - inputs[fam] * fam_cost
            if fam_cost > 0:
                inputs[fam] = max(1, min(inputs[fam], int((budget - other) // fam_cost)))
        upgrades = sorted((j for j in jobs if methods[(j.family, j.index)] == "topk"),
                          key=lambda j: j.full_s - j.topk_s)
        for j in upgrades:                            # then full spectra, cheapest first
            methods[(j.family, j.index)] = "full"
            if cost() > budget:
                methods[(j.family, j.index)] = "topk"
        n_top = sum(m == "topk" for m in methods.values())
        fewer = [f"{fam} on {inputs[fam]} of {n_inputs} inputs" for fam in inputs
                 if inputs[fam] < n_inputs and any(j.family == fam for j in jobs)]
        if n_top > 0 or fewer:
            reduced = (f"--budget-seconds {budget:g}: " + ", ".join(
                ([f"top-k instead of full spectra on {n_top} Jacobian(s)"] if n_top > 0
                 else []) + fewer) + " (--spectra full or a larger budget for all)")
    return Plan(methods, inputs, cost(), reduced)


class Progress:
    """Progress lines with an ETA from the measured rate, at most one per ``every`` seconds."""

    def __init__(self, say, total: float, what: str, every: float = 2.0):
        self.say, self.total, self.what, self.every = say, max(total, 1e-12), what, every
        self.t0 = self.last = time.perf_counter()
        self.done = 0.0

    def step(self, amount: float, detail: str = "") -> None:
        self.done += amount
        now = time.perf_counter()
        if self.say is None or now - self.last < self.every:
            return
        self.last = now
        frac = min(1.0, self.done / self.total)
        el = now - self.t0
        eta = el * (1 - frac) / frac if frac > 0 else math.inf
        self.say(f"{self.what}: {100 * frac:.0f}% ({el:.0f} s elapsed, ETA {eta:.0f} s)"
                 + (f" {detail}" if detail else ""))


__all__ = ["MODES", "Job", "Plan", "make_plan", "Progress", "svd_seconds", "matmul_seconds",
           "topk_seconds"]
