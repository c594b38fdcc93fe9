"""THEORY C7: mean-field prediction of per-layer gradient norms across depth (prediction).

An instance is a bias-free MLP of depth 2-8 and width 64-256 (input dimension 16..width) under
any scheme of the registry, with a relu / leaky relu / tanh / linear inside and an identity or
sigmoid output, probed on 32 Gaussian inputs and checked by
:func:`gradcheck.claims.c7_meanfield.check`. One row per layer: measured
``sqrt(mean_x ||dD/dW_l||_F^2)`` (rms over the inputs, one weight draw) vs the prediction
``sqrt(N_l fan_in_l d_l q_{l-1})`` of :func:`gradcheck.claims.c7_meanfield.mean_field`, with
``v_l`` from its ``weight_variance`` (SN family: the realised sigma) and ``q_0 = mean(x^2)``.
Nothing is asserted: the ratio is reported (THEORY says 0.8-1.3 at width 256, depth 10). Its
spread comes from one weight draw and 32 inputs and grows like ``sqrt(depth / width)``.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from gradcheck.claims import c7_meanfield as claim
from gradcheck.models import mlp
from gradcheck.schemes import apply_scheme
from gradcheck.schemes.registry import NAMES

from ._base import context, from_rows

CLAIMS = {c.id: c.kind for c in claim.CLAIMS}
#: every scheme of the registry (on an MLP sn-conv divides by ||W||_op = sigma_R)
SCHEMES = NAMES
ACTIVATIONS = ("relu", "lrelu", "tanh", "linear")
N_INPUTS = 32
#: Inputs are drawn from seed + this offset: with the weights' own seed they would equal the
#: first rows of the first layer's raw Gaussian draw Z (strongly aligned with W_1).
INPUT_SEED_OFFSET = 10_000


def sample(rng: np.random.Generator) -> dict:
    width = int(rng.integers(64, 257))
    return dict(depth=int(rng.integers(2, 9)), width=width,
                input_dim=int(rng.integers(16, width + 1)), seed=int(rng.integers(0, 2**31)),
                activation=str(rng.choice(ACTIVATIONS)), slope=float(rng.uniform(0, 0.5)),
                output=str(rng.choice(["identity", "sigmoid"])), scheme=str(rng.choice(SCHEMES)),
                scale=float(rng.uniform(0.8, 2.0)))


def build(p: dict) -> tuple[torch.nn.Module, torch.Tensor]:
    """The instance's float64 MLP with its scheme applied, and its Gaussian inputs."""
    model = mlp(p["depth"], p["width"], p["input_dim"], p["activation"], p["slope"],
                p["output"]).double()
    gen = torch.Generator().manual_seed(p["seed"] + INPUT_SEED_OFFSET)
    x = torch.randn((N_INPUTS, p["input_dim"]), generator=gen, dtype=torch.float64)
    apply_scheme(model, p["scheme"], x, seed=p["seed"], scale=p["scale"],
                 activation=p["activation"], slope=p["slope"])
    return model.eval(), x


def make_context(p: dict):
    """The probed instance as the claims' ``Context`` (no model: C7 needs none)."""
    model, x = build(p)
    return context(model, x, p["scheme"], p["scale"], p["seed"], hessians=False)


def rows(p: dict) -> list[dict]:
    """The C7 rows of :func:`gradcheck.claims.c7_meanfield.check` on the instance."""
    return [r for r in claim.check(make_context(p)) if r["claim"] == "C7"]


def measured_and_predicted(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(L,)`` rms ``||dD/dW_l||_F`` over the inputs and its C7 prediction (the check's
    ``lhs`` and ``rhs``)."""
    r = rows(p)
    return np.array([x["lhs"] for x in r]), np.array([x["rhs"] for x in r])


def instance(p: dict) -> list:
    """The instance's rows (the runner pins one torch/BLAS thread: these problems are small)."""
    ctx = make_context(p)
    tag = f"; {p['scheme']}/{p['activation']}/{p['output']}"
    out = from_rows(claim.check(ctx), ctx, p,
                    keep=lambda r: math.isfinite(r["rhs"]) and r["rhs"] > 0)
    return [replace(r, note=r.note + tag) for r in out]
