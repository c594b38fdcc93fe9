"""Reparametrisation claims of THEORY §2: layer scalings (C2), the SN map (C3), the Hessian (C4).

Pure functions of measured quantities (numpy arrays or float64 torch tensors); nothing here
builds or runs a model. Layer index ``t = 0..L-1`` in forward order.

- C2a :func:`scaled_gradient_factors`: what scaling layer ``i`` by ``c_i > 0`` does to ``D`` and to
  every ``dD/dW_t`` of a positively homogeneous net.
- C2b :func:`c2b_lhs`, :func:`c2b_rhs`: the two sides of the AM-GM inequality on the summed squared
  C1 bounds, ``c2b_lhs >= c2b_rhs``.
- C3a :func:`sn_raw_gradient`: Miyato's Eq. 12, the gradient through ``W -> W / sigma(W)``.
- C3b :func:`c3b_bound`, :func:`c3b_dense_bound`: bounds on its Frobenius norm.
- C4 :func:`c4_bound`: the Hessian bound for piecewise-linear nets.
"""
from __future__ import annotations

import numpy as np
import torch

from .bounds import SUP_SECOND, prod_except


# -- C2 ----------------------------------------------------------------------------------------
def scaled_gradient_factors(c) -> tuple[float, np.ndarray]:
    """THEORY C2a: ``(prod_i c_i, [prod_{i != t} c_i for t])``.

    For a bias-free net with ReLU / leaky-ReLU / identity activations and identity output,
    replacing ``W_i`` by ``c_i W_i`` (``c_i > 0``) multiplies ``D`` by the first factor and
    ``dD/dW_t`` (at the scaled weights) by ``grad_factors[t]``.

    Args:
        c: ``(L,)`` positive layer scales.

    Returns:
        ``(D_factor, grad_factors)``: a float and an ``(L,)`` array (computed without division,
        so exact products of the given floats up to rounding).

    >>> d, g = scaled_gradient_factors([2.0, 0.5, 4.0])
    >>> d, g.tolist()
    (4.0, [2.0, 8.0, 1.0])
    """
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    if c.size == 0 or np.any(~(c > 0)):
        raise ValueError(f"c must be a non-empty vector of positive scales; got {c.tolist()}")
    return float(np.prod(c)), prod_except(c)


def c2b_lhs(x_norm, s) -> np.ndarray:
    """THEORY C2b, larger side: ``||x||^2 C^2 sum_t s_t^-2`` with ``C = prod_i s_i``.

    This is the sum over layers of the squared C1 bounds with ``lambda_L = mu_t = 1``; it is
    evaluated as ``||x||^2 sum_t prod_{i != t} s_i^2`` (no division: exact when some ``s_t = 0``).

    Args:
        x_norm: ``||x||``, a float or ``(B,)`` array.
        s: ``(L,)`` layer operator norms.

    Returns:
        Same shape as ``x_norm``.
    """
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    return np.asarray(x_norm, dtype=np.float64) ** 2 * float(np.sum(prod_except(s) ** 2))


def c2b_rhs(x_norm, s) -> np.ndarray:
    """THEORY C2b, smaller side: ``L ||x||^2 C^(2 - 2/L)`` with ``C = prod_i s_i``.

    ``c2b_lhs(x, s) >= c2b_rhs(x, s)`` by AM-GM on the ``L`` numbers ``(C / s_t)^2`` (whose
    product is ``C^(2L-2)``), with equality iff all ``s_t = C^(1/L)`` (equal allocation).

    Args:
        x_norm: ``||x||``, a float or ``(B,)`` array.
        s: ``(L,)`` layer operator norms (non-negative).

    Returns:
        Same shape as ``x_norm``.

    >>> float(c2b_lhs(1.0, [2.0, 0.5])), float(c2b_rhs(1.0, [2.0, 0.5]))
    (4.25, 2.0)
    """
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    L = s.size
    C = float(np.prod(s))
    return L * np.asarray(x_norm, dtype=np.float64) ** 2 * C ** (2.0 - 2.0 / L)


# -- C3 ----------------------------------------------------------------------------------------
def _as_matrix(t: torch.Tensor) -> torch.Tensor:
    """``(c_out, c_in[, kh, kw]) -> (c_out, c_in kh kw)``: the reshape SN_w normalises."""
    return t.reshape(t.shape[0], -1)


def top_singular_triple(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(sigma, u, v)`` of ``W.reshape(c_out, -1)`` by a full SVD (detached, float64 in,
    same dtype out): ``sigma`` 0-dim, ``u`` ``(c_out,)``, ``v`` ``(fan_in,)``."""
    U, S, Vh = torch.linalg.svd(_as_matrix(W.detach()), full_matrices=False)
    return S[0], U[:, 0], Vh[0]


def sn_raw_gradient(G: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """THEORY C3a (Miyato Eq. 12): ``dD/dW = (G - <G, W_bar> u v^T) / sigma(W)``.

    ``W_bar = W / sigma(W)`` with ``sigma`` the exact top singular value of
    ``W.reshape(c_out, -1)`` (assumed simple) and ``u, v`` its singular vectors; ``G = dD/dW_bar``.
    For SSN / BSSN (``W_eff = c W_bar``) pass ``G = c dD/dW_eff``. The sign of ``(u, v)`` cancels.

    Args:
        G: ``dD/dW_bar``, shape ``W.shape`` or batched ``(B, *W.shape)``.
        W: the raw weight, ``(c_out, c_in[, kh, kw])``.

    Returns:
        ``dD/dW``, the shape of ``G``.
    """
    sigma, u, v = top_singular_triple(W)
    W_bar = (W.detach() / sigma).to(G.dtype)
    uv = torch.outer(u, v).reshape(W.shape).to(G.dtype)
    batched = G.dim() == W.dim() + 1
    dims = tuple(range(1, G.dim())) if batched else tuple(range(G.dim()))
    inner = (G * W_bar).sum(dim=dims, keepdim=True) if batched else (G * W_bar).sum()
    return (G - inner * uv) / sigma.to(G.dtype)


def nuclear_norm(G: torch.Tensor) -> torch.Tensor:
    """``||G.reshape(c_out, -1)||_*``: the sum of singular values of one ``(c_out, ...)`` tensor."""
    return torch.linalg.matrix_norm(_as_matrix(G), ord="nuc")


def c3b_bound(G: torch.Tensor, W: torch.Tensor, sigma: float | None = None) -> float:
    """THEORY C3b: ``||dD/dW||_F <= (||G||_F + ||G||_*) / sigma(W)``.

    From C3a: ``||u v^T||_F = 1`` and ``|<G, W_bar>| <= ||G||_* ||W_bar||_op = ||G||_*``.

    Args:
        G: ``dD/dW_bar`` for ONE input (or any single gradient), shape ``W.shape``.
        W: the raw weight, ``(c_out, c_in[, kh, kw])``.
        sigma: ``sigma(W)`` when the caller has it (one SVD per layer, not per input).
    """
    sigma = float(top_singular_triple(W)[0]) if sigma is None else float(sigma)
    G = G.detach().to(torch.float64)
    return float((G.norm() + nuclear_norm(G)) / sigma)


def c3b_dense_bound(x_norm, sigma, lam: float, others=1.0):
    """THEORY C3b, dense one-input corollary: ``2 lambda_L ||x|| others / sigma(W)``.

    For one input to a dense layer ``G = c delta h^T`` has rank one, so ``||G||_* = ||G||_F``
    and C1 gives ``||G||_F <= c lambda_L ||x|| prod_{i != t} ||W_i||_op``. ``others`` is that
    factor ``c prod_{i != t} ||W_i||_op`` of the effective weights: 1 under SN with every layer
    dense (the THEORY statement ``2 lambda_L ||x|| / sigma(W)``).

    Args:
        x_norm: float or ``(B,)``. sigma: raw ``sigma(W)``. lam: ``lambda_L``.
        others: ``c prod_{i != t} ||W_i||_op`` (default 1: dense SN).
    """
    return 2.0 * lam * np.asarray(x_norm, dtype=np.float64) * others / float(sigma)


# -- C4 ----------------------------------------------------------------------------------------
def c4_bound(output: str, mu_t: float, x_norm, op_norms, t: int):
    """THEORY C4: ``||H_{W_t} D||_op <= sup|a_L''| (mu_t ||x|| prod_{i != t} ||W_i||_op)^2``.

    Premise: bias-free, internal activations piecewise linear (ReLU / leaky ReLU / identity).
    ``sup|a_L''|`` is 0 for identity output (the Hessian is exactly 0) and ``1/(6 sqrt 3)`` for
    sigmoid.

    Args:
        output: ``'identity'`` or ``'sigmoid'``.
        mu_t: patch multiplicity of layer ``t`` (dense: 1).
        x_norm: ``||x||``, float or ``(B,)``.
        op_norms: ``(L,)`` true operator norms of the effective weights.
        t: the layer.

    Returns:
        Same shape as ``x_norm``.

    >>> float(c4_bound("identity", 1.0, 3.0, [2.0, 2.0], 0))
    0.0
    """
    if output not in SUP_SECOND:
        raise ValueError(f"output must be one of {', '.join(SUP_SECOND)}; got {output!r}")
    others = float(prod_except(np.asarray(op_norms, dtype=np.float64))[t])
    return SUP_SECOND[output] * (mu_t * np.asarray(x_norm, dtype=np.float64) * others) ** 2


__all__ = ["scaled_gradient_factors", "c2b_lhs", "c2b_rhs", "top_singular_triple",
           "sn_raw_gradient", "nuclear_norm", "c3b_bound", "c3b_dense_bound", "c4_bound"]
