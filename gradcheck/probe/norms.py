"""Per-layer weight norms: the three spectral norms of THEORY §0 and the scheme's divisor."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..schemes.sigma import module_operator_norm, top_sigma
from ..schemes.spectral import one_step_sigma, scaling_of
from .layers import LayerInfo


@dataclass(frozen=True)
class LayerNorms:
    """Norms of one probe layer's effective weight ``W`` (the one used in the forward)."""

    sigma_R: float           # sigma_max(W.reshape(c_out, -1))
    sigma_R2: float          # sigma_max(W.transpose(0, 1).reshape(c_in, -1))
    sigma_op: float          # ||W||_op on the actual input size (conv: Lanczos/FFT)
    op_residual: float       # achieved residual of the sigma_op solve
    op_method: str
    frobenius: float         # ||W||_F
    sigma_scheme: float      # what the scheme divided the raw weight by (NaN: none)
    raw_sigma_R: float       # sigma_R of the raw weight (= sigma_R(W) without a parametrization)
    sigma_1step: float       # authors' one-step power estimate of raw sigma_R (from seeded u)


def _raw_weight(module: nn.Module) -> torch.Tensor:
    params = getattr(module, "parametrizations", None)
    if params is not None and "weight" in params:
        return params["weight"].original.detach()
    if hasattr(module, "weight_orig"):          # legacy torch.nn.utils.spectral_norm
        return module.weight_orig.detach()
    return module.weight.detach()


def _scheme_divisor(module: nn.Module, w_eff: torch.Tensor, raw: torch.Tensor) -> float:
    sc = scaling_of(module)
    if sc is not None:
        with torch.no_grad():
            return float(sc.sigma(raw))
    if raw is w_eff or torch.equal(raw, w_eff):
        return math.nan
    # torch's own spectral_norm (parametrization or legacy): W_eff = W_raw / sigma.
    return float(raw.norm() / w_eff.norm())


def layer_norms(info: LayerInfo, module: nn.Module, w_eff: torch.Tensor, tol: float = 1e-10,
                seed: int = 0) -> LayerNorms:
    """Compute :class:`LayerNorms` for one layer (float64 internally)."""
    w = w_eff.detach()
    op = module_operator_norm(module, info.input_shape, weight=w, tol=tol, seed=seed)
    raw = _raw_weight(module)
    wd = w.double()
    W_R = wd.reshape(wd.shape[0], -1)
    gram = "AtA" if W_R.shape[0] >= W_R.shape[1] else "AAt"
    s_R = top_sigma(W_R, gram=gram)
    # the same Gram label on W_R2 = W_R^T (dense) is the OTHER Gram matrix, with another
    # start vector: C9a (sigma_R = sigma_R2) compares two computations, not one twice
    s_R2 = top_sigma(wd.transpose(0, 1).reshape(wd.shape[1], -1), seed=1, gram=gram)
    return LayerNorms(
        sigma_R=s_R, sigma_R2=s_R2,
        sigma_op=float(op.sigma), op_residual=float(op.residual), op_method=op.method,
        frobenius=float(w.double().norm()), sigma_scheme=_scheme_divisor(module, w, raw),
        raw_sigma_R=s_R if raw is w_eff or torch.equal(raw, w) else
        top_sigma(raw.double().reshape(raw.shape[0], -1)),
        sigma_1step=one_step_sigma(raw, seed=seed + info.index))
