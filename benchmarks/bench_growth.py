"""Cost growth of the engine on MLPs: time and peak memory against depth, width and batch.

For ``gradient_norms(record(model, x))`` and ``jacobian_spectra(model, x)`` one size is varied
at a time (the others at their base values), and ``numpy.polyfit`` of ``log t`` (and of
``log peak``) on ``log size`` gives the fitted log-log slope: 1 = linear, 2 = quadratic. The
arithmetic alone would give: gradient norms ~ depth^1 width^2 batch^1 (the forward pass);
spectra ~ depth^1 width^3 batch^1 (one product and one SVD per layer). Small sizes are
dominated by fixed per-call costs, which pull slopes below those values. Memory is the extra
RSS at the peak of the call (see ``common.py``); sub-MiB peaks make memory slopes noisy.
Run ``python benchmarks/bench_growth.py [--quick]``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

try:
    from . import common as C
except ImportError:
    import common as C

from gradcheck.build import make_model
from gradcheck.probe.gradients import gradient_norms
from gradcheck.probe.jacobian import JacobianOptions, jacobian_spectra
from gradcheck.probe.layers import record
from gradcheck.spec import RunSpec

BASE = {"gradient_norms": dict(depth=10, width=128, batch=64),
        "jacobian_spectra": dict(depth=10, width=128, batch=16)}
EXPECTED = {"gradient_norms": dict(depth=1, width=2, batch=1),
            "jacobian_spectra": dict(depth=1, width=3, batch=1)}
SIZES = {
    True: {"gradient_norms": dict(depth=(5, 10, 20), width=(64, 128, 256),
                                  batch=(32, 128, 512)),
           "jacobian_spectra": dict(depth=(5, 10, 20), width=(32, 64, 128),
                                    batch=(4, 16, 64))},
    False: {"gradient_norms": dict(depth=(5, 10, 20, 40, 80), width=(64, 128, 256, 512, 1024),
                                   batch=(16, 64, 256, 1024, 4096)),
            "jacobian_spectra": dict(depth=(5, 10, 20, 40), width=(32, 64, 128, 256, 512),
                                     batch=(4, 16, 64, 256))},
}


def _call(fn_name, depth, width, batch):
    spec = RunSpec(arch="mlp", depth=depth, width=width, init="lecun")
    model = make_model(spec, seed=0)
    x = torch.randn((batch, *spec.input_shape), generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    if fn_name == "gradient_norms":
        return lambda: gradient_norms(record(model, x))
    return lambda: jacobian_spectra(model, x, JacobianOptions())


def slope(sizes, values) -> float:
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(np.asarray(sizes, float)[ok]), np.log(v[ok]), 1)[0])


def run(quick: bool = False) -> list[dict]:
    print(f"cost growth; {C.env_line()}", flush=True)
    rows = []
    for fn_name, axes in SIZES[quick].items():
        _call(fn_name, 3, 16, 2)()                       # warm-up: first-call costs
        part = []
        for axis, sizes in axes.items():
            ts, ms = [], []
            for s in sizes:
                kw = dict(BASE[fn_name], **{axis: s})
                try:
                    _, t, m, basis = C.measure(_call(fn_name, **kw), repeat=2 if quick else 3,
                                               budget_s=3.0 if quick else 15.0)
                except Exception as e:  # noqa: BLE001 - one error row, the sweep goes on
                    t, m, basis = math.nan, math.nan, f"error: {type(e).__name__}: {e}"[:160]
                ts.append(t)
                ms.append(m)
                part.append(C.row("growth", f"{fn_name} d{kw['depth']} w{kw['width']} "
                                  f"B={kw['batch']}", t, peak_MiB=m, mem_basis=basis))
            st, sm = slope(sizes, ts), slope(sizes, ms)
            part.append(C.row("growth", f"{fn_name} vs {axis} ({', '.join(map(str, sizes))})",
                              baseline="log-log fit", mem_basis=basis,
                              notes=f"time slope {st:.2f}, memory slope {sm:.2f} "
                                    f"(arithmetic ~{EXPECTED[fn_name][axis]})"))
        C.print_table(f"growth: {fn_name}", part)
        rows += part
    return rows


if __name__ == "__main__":
    raise SystemExit(C.cli(__doc__, run))
