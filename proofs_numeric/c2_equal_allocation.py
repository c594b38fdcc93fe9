"""THEORY C2a, C2b: layer scalings of homogeneous nets, and why equal allocation is optimal.

An instance is a random bias-free chain (dense or conv, built by the C1 module's ``build``,
inputs drawn independently of the weights: see :func:`build_generic`) with
ReLU / leaky-ReLU / identity activations and identity output (C2a's premise), any scheme, and
random layer scales ``c_i`` in [1/4, 4] (half of the instances rescaled to ``prod c_i = 1``).

- The claims check :func:`gradcheck.claims.c2_equal_allocation.check`: C2b on the measured
  operator norms ``s_t`` (``L ||x||^2 C^(2-2/L) <= ||x||^2 C^2 sum_t s_t^-2`` at the worst
  input), and C2a with its own ``prod c_i = 1`` draw (per layer ``||dD/dW_t||`` divided by
  ``c_t``; ``D`` unchanged).
- The part of THEORY C2a that check does not draw (a different experiment): the sampled
  ``c_i``, with ``prod c_i`` unconstrained, on the whole tensors. The net is materialised
  (effective weights baked in), a copy gets ``W_i -> c_i W_i``, and ``D`` and every per-input
  ``dD/dW_t`` of the copy are compared with ``prod c_i D`` and ``prod_{i != t} c_i dD/dW_t`` of
  the original (:func:`gradcheck.theory.reparam.scaled_gradient_factors`). The row's
  ``lhs = ||P|| + ||M - P||_F`` and ``rhs = ||P||`` for prediction ``P`` and measurement ``M``
  over the whole batch, so ``ratio - 1`` is the relative error of the whole tensor.
- The equality case of C2b: the same ``C`` re-allocated equally, ``s_t = C^(1/L)``, where the
  AM-GM side equals the summed bounds.
"""
from __future__ import annotations

import numpy as np
import torch

from gradcheck.claims import c2_equal_allocation as claim
from gradcheck.claims import failed_premise
from gradcheck.probe.hessian import effective_weight_grads
from gradcheck.reference import PROBE_TYPES, materialize
from gradcheck.theory.bounds import inequality_tol
from gradcheck.theory.reparam import c2b_lhs, c2b_rhs, scaled_gradient_factors

from ._base import EPS, context, from_rows, identity, inequality, layer_label
from .c1_gradient_bound import SCHEMES, build

CLAIMS = {c.id: c.kind for c in claim.CLAIMS}
#: activations of the model builder inside C2a's premise (positively homogeneous)
HOMOGENEOUS = ("relu", "lrelu", "linear")
MAX_LAYERS = 7   # conv: up to 6 convs + the dense head


def sample(rng: np.random.Generator) -> dict:
    return dict(
        conv=bool(rng.random() < 0.5), depth=int(rng.integers(1, 6)),
        seed=int(rng.integers(0, 2**31)),
        widths=[int(w) for w in rng.integers(1, 25, size=6)],
        kernels=[int(k) for k in rng.integers(1, 5, size=6)],
        strides=[int(s) for s in rng.integers(1, 4, size=6)],
        paddings=[int(p) for p in rng.integers(0, 3, size=6)],
        image=int(rng.integers(5, 11)),
        activation=str(rng.choice(HOMOGENEOUS)), slope=float(rng.uniform(0, 1)),
        output="identity", scheme=str(rng.choice(SCHEMES)), scale=float(rng.uniform(0.5, 2.0)),
        c=[float(v) for v in np.exp(rng.uniform(np.log(0.25), np.log(4.0), size=MAX_LAYERS))],
        unit_product=bool(rng.random() < 0.5))


def build_generic(p: dict) -> tuple[torch.nn.Module, torch.Tensor]:
    """The C1 module's ``build(p)``; its inputs come from their own stream (drawing them from
    the weights' seed made ``x[0]`` a row of the first draw: ReLU inputs at a kink)."""
    return build(p)


def make_context(p: dict, hessians: bool = True):
    """The probed instance as the claims' ``Context`` (with the model: C2a needs it)."""
    model, x = build_generic(p)
    return context(model, x, p["scheme"], p["scale"], p["seed"], hessians=hessians)


def layer_scales(p: dict, L: int) -> np.ndarray:
    """The ``L`` scales of the instance (divided by their geometric mean if ``unit_product``)."""
    c = np.asarray(p["c"][:L], dtype=np.float64)
    return c / np.exp(np.mean(np.log(c))) if p["unit_product"] else c


def scaled_copy(model: torch.nn.Module, c: np.ndarray) -> torch.nn.Sequential:
    """A materialised float64 copy of ``model`` with probe layer ``i``'s weight times ``c[i]``."""
    seq = materialize(model)
    layers = [m for m in seq if isinstance(m, PROBE_TYPES)]
    with torch.no_grad():
        for m, ci in zip(layers, c):
            m.weight.mul_(float(ci))
    return seq


def _rel(measured: torch.Tensor, predicted: torch.Tensor) -> tuple[float, float]:
    """``(||P|| + ||M - P||, ||P||)``: an identity row whose ratio - 1 is the relative error."""
    p = float(predicted.norm())
    return p + float((measured - predicted).norm()), p


def sampled_scaling(ctx, p: dict) -> list:
    """C2a with the instance's own ``c_i`` (any product), whole tensors (module docstring)."""
    if failed_premise(claim.C2A, ctx) or ctx.model is None:
        return []
    L, tol, x = len(ctx.layers), ctx.tol, ctx.x
    c = layer_scales(p, L)
    D_fac, g_fac = scaled_gradient_factors(c)
    D0, G0 = effective_weight_grads(materialize(ctx.model), x)
    D1, G1 = effective_weight_grads(scaled_copy(ctx.model, c), x)
    cs = ", ".join(f"{v:.3g}" for v in c)
    out = [identity("C2a", *_rel(D1, D_fac * D0), tol, p,
                    f"network: D scales by prod c = {D_fac:.4g} (sampled c = {cs})")]
    for t in range(L):
        out.append(identity("C2a", *_rel(G1[t], g_fac[t] * G0[t]), tol, p,
                            f"{layer_label(ctx, t)}: dD/dW scales by prod_(i!=t) c_i = "
                            f"{g_fac[t]:.4g} "
                            "(sampled c, whole tensor)"))
    return out


def equal_allocation(ctx, p: dict) -> list:
    """C2b's equality case: the measured ``C`` re-allocated as ``s_t = C^(1/L)``."""
    if failed_premise(claim.C2B, ctx):
        return []
    s = np.array([n.sigma_op for n in ctx.result.norms])
    L = len(s)
    xn = float(np.max(ctx.result.grads.x_norm))
    C = float(np.prod(s))
    eq = np.full(L, C ** (1.0 / L))
    return [inequality("C2b", c2b_rhs(xn, eq), c2b_lhs(xn, eq), inequality_tol(EPS, L, 1), p,
                       f"network: equal allocation s_t = C^(1/L) = {eq[0]:.4g} (C = {C:.4g}): "
                       "equality")]


def instance(p: dict) -> list:
    """The rows of one instance (the runner pins one thread: the nets are tiny)."""
    ctx = make_context(p)
    return from_rows(claim.check(ctx), ctx, p) + sampled_scaling(ctx, p) + \
        equal_allocation(ctx, p)
