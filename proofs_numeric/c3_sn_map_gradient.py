"""THEORY C3a, C3b: the gradient through the SN map ``W -> c W / sigma(W)`` to the raw weight.

An instance is a random bias-free SN-family net (dense or conv, any internal activation, identity
or sigmoid output; built by the C1 module's ``build``, inputs redrawn by
``c2_equal_allocation.build_generic``, exact sigma). C3 concerns ``sigma = sigma_R``: it applies
to every layer of ``sn`` / ``ssn`` nets and to the dense layers of ``bsn`` / ``bssn`` /
``sn-conv`` nets (where their sigma equals ``sigma_R``); their conv layers are skipped (a
different sigma, outside THEORY C3).

- C3a (identity): per-input raw-weight gradients by autograd through the parametrization
  (:func:`gradcheck.probe.hessian.raw_weight_grads`) against
  :func:`gradcheck.theory.reparam.sn_raw_gradient` ``P`` of ``G = c dD/dW_eff`` (engine path).
  Encoded as ``lhs = ||G||_F / sigma + ||M - P||_F``, ``rhs = ||G||_F / sigma`` over the batch:
  ``ratio - 1`` is the error relative to the size of the two terms of C3a (``||P||`` itself is 0
  for a 1x1 weight, where ``W_bar = sign(W)``, and can be tiny). Tolerance: C1's round-off
  slack times ``1 + sigma_1 / (sigma_1 - sigma_2)``, the conditioning of the top singular
  vectors.
- C3b (inequality): ``||dD/dW||_F <= (||G||_F + ||G||_*) / sigma(W)`` at the worst input; for dense
  layers also the one-input corollary ``2 lambda_L ||x|| c prod_{i != t} ||W_i||_op / sigma(W)``
  (``2 lambda_L ||x|| / sigma(W)`` under SN on an all-dense net).
"""
from __future__ import annotations

import numpy as np
import torch

from gradcheck.probe import ProbeOptions, probe
from gradcheck.probe.hessian import effective_weight_grads, raw_weight_grads
from gradcheck.schemes import scaling_of
from gradcheck.theory.bounds import chain_tol, lambda_L, prod_except
from gradcheck.theory.reparam import (c3b_bound, c3b_dense_bound, sn_raw_gradient,
                                      top_singular_triple)

from ._base import identity, inequality
from .c2_equal_allocation import build_generic

CLAIMS = {"C3a": "identity", "C3b": "inequality"}
SN_SCHEMES = ("sn", "ssn", "bsn", "bssn", "sn-conv")


def sample(rng: np.random.Generator) -> dict:
    return dict(
        conv=bool(rng.random() < 0.5), depth=int(rng.integers(1, 5)),
        seed=int(rng.integers(0, 2**31)),
        widths=[int(w) for w in rng.integers(1, 25, size=6)],
        kernels=[int(k) for k in rng.integers(1, 5, size=6)],
        strides=[int(s) for s in rng.integers(1, 4, size=6)],
        paddings=[int(p) for p in rng.integers(0, 3, size=6)],
        image=int(rng.integers(5, 11)),
        activation=str(rng.choice(["relu", "lrelu", "tanh", "linear"])),
        slope=float(rng.uniform(0, 1)), output=str(rng.choice(["identity", "sigmoid"])),
        scheme=str(rng.choice(SN_SCHEMES)), scale=float(rng.uniform(0.5, 2.0)))


def gap_factor(W: torch.Tensor) -> float:
    """``1 + sigma_1 / (sigma_1 - sigma_2)`` of ``W.reshape(c_out, -1)`` (``sigma_2 = 0`` for a
    rank-one shape): how much round-off in ``W`` moves its top singular vectors."""
    s = torch.linalg.svdvals(W.detach().reshape(W.shape[0], -1).double())
    s2 = float(s[1]) if s.numel() > 1 else 0.0
    return 1.0 + float(s[0]) / max(float(s[0]) - s2, float(s[0]) * 1e-300)


def applicable(module, weight: torch.Tensor) -> bool:
    """C3 with ``sigma = sigma_R`` applies: SN/SSN anywhere, the other SN kinds on dense layers."""
    sc = scaling_of(module)
    return sc is not None and sc.mode == "exact" and (sc.kind == "sn" or weight.dim() == 2)


def instance(p: dict) -> list:
    """The rows of one instance (the runner pins one thread: the nets are tiny)."""
    model, x = build_generic(p)
    res = probe(model, x, ProbeOptions(spectra=False))
    eps = float(torch.finfo(torch.float64).eps)
    base_tol = chain_tol(res.layers, eps)
    _, G_eff = effective_weight_grads(model, x)
    raw = raw_weight_grads(model, x)
    ops = np.array([n.sigma_op for n in res.norms])
    lam = lambda_L(p["output"])
    modules = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    out = []
    for t, info in enumerate(res.layers):
        mod = modules[t]
        W = mod.parametrizations["weight"].original.detach()
        if not applicable(mod, W):
            continue
        c = scaling_of(mod).scale
        G = c * G_eff[t]
        pred = sn_raw_gradient(G, W)
        sigma = float(top_singular_triple(W)[0])
        ref = float(G.norm()) / sigma
        out.append(identity("C3a", ref + float((raw[t] - pred).norm()), ref,
                            base_tol * gap_factor(W), p,
                            f"layer {t} ({info.kind}): ||P|| = {float(pred.norm()):.4g}"))
        lhs = raw[t].reshape(raw[t].shape[0], -1).norm(dim=1).numpy()
        rhs = np.array([c3b_bound(G[b], W) for b in range(G.shape[0])])
        j = int(np.argmax(lhs / np.maximum(rhs, 1e-300)))
        out.append(inequality("C3b", lhs[j], rhs[j], base_tol, p,
                              f"layer {t} ({info.kind}): (||G||_F + ||G||_*) / sigma"))
        if info.kind == "linear":
            others = c * float(prod_except(ops)[t])
            rhs = c3b_dense_bound(res.grads.x_norm, sigma, lam, others)
            j = int(np.argmax(lhs / np.maximum(rhs, 1e-300)))
            out.append(inequality("C3b", lhs[j], rhs[j], base_tol, p,
                                  f"layer {t}: dense corollary 2 lambda_L ||x|| "
                                  f"c prod_(i!=t)||W_i|| / sigma (= {others:.4g} factor)"))
    return out
