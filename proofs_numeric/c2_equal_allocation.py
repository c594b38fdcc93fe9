"""THEORY C2a, C2b: layer scalings of homogeneous nets, and why equal allocation is optimal.

An instance is a random bias-free net (dense or conv, built by the C1 module's ``build``, inputs
redrawn independently of the weights: see :func:`build_generic`) with
ReLU / leaky-ReLU / identity activations and identity output (C2a's premise), any scheme, and
random layer scales ``c_i`` in [1/4, 4] (half of the instances rescaled to ``prod c_i = 1``).

- C2a (identity): the net is materialised (effective weights baked in), a copy gets
  ``W_i -> c_i W_i``, and ``D`` and every per-input ``dD/dW_t`` (engine path) of the copy are
  compared with ``prod c_i D`` and ``prod_{i != t} c_i dD/dW_t`` of the original. The row's
  ``lhs = ||P|| + ||M - P||_F`` and ``rhs = ||P||`` for prediction ``P`` and measurement ``M``
  over the whole batch, so ``ratio - 1`` is the relative error of the whole tensor.
- C2b (inequality): with ``s_t`` the measured operator norms of the net's effective weights,
  ``L ||x||^2 C^(2-2/L) <= ||x||^2 C^2 sum_t s_t^-2`` (``lhs`` the AM-GM side); a second row
  re-allocates the same ``C`` equally, ``s_t = C^(1/L)``, where it holds with equality.
"""
from __future__ import annotations

import numpy as np
import torch

from gradcheck.probe import ProbeOptions, probe
from gradcheck.probe.hessian import effective_weight_grads
from gradcheck.reference import PROBE_TYPES, materialize
from gradcheck.theory.bounds import chain_tol, inequality_tol
from gradcheck.theory.reparam import c2b_lhs, c2b_rhs, scaled_gradient_factors

from ._base import identity, inequality
from .c1_gradient_bound import SCHEMES, build

CLAIMS = {"C2a": "identity", "C2b": "inequality"}
#: C2a's premise: positively homogeneous internal activations.
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


def instance(p: dict) -> list:
    """The rows of one instance (the runner pins one thread: the nets are tiny)."""
    model, x = build_generic(p)
    res = probe(model, x, ProbeOptions(spectra=False))
    L = len(res.layers)
    tol = chain_tol(res.layers, float(torch.finfo(torch.float64).eps))
    c = layer_scales(p, L)
    D_fac, g_fac = scaled_gradient_factors(c)
    D0, G0 = effective_weight_grads(materialize(model), x)
    D1, G1 = effective_weight_grads(scaled_copy(model, c), x)
    cs = ", ".join(f"{v:.3g}" for v in c)
    out = [identity("C2a", *_rel(D1, D_fac * D0), tol, p, f"D scales by prod c = {D_fac:.4g}"
                    f" (c = {cs})")]
    for t in range(L):
        out.append(identity("C2a", *_rel(G1[t], g_fac[t] * G0[t]), tol, p,
                            f"layer {t}: dD/dW scales by prod_(i!=t) c_i = {g_fac[t]:.4g}"))
    s = np.array([n.sigma_op for n in res.norms])
    j = int(np.argmax(res.grads.x_norm))
    xn = float(res.grads.x_norm[j])
    C = float(np.prod(s))
    tol2 = inequality_tol(float(np.finfo(np.float64).eps), L, 1)
    out.append(inequality("C2b", c2b_rhs(xn, s), c2b_lhs(xn, s), tol2, p,
                          f"measured s = [{', '.join(f'{v:.4g}' for v in s)}], C = {C:.4g}"))
    eq = np.full(L, C ** (1.0 / L))
    out.append(inequality("C2b", c2b_rhs(xn, eq), c2b_lhs(xn, eq), tol2, p,
                          f"equal allocation s_t = C^(1/L) = {eq[0]:.4g}: equality"))
    return out
