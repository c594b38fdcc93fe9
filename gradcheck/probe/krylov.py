"""Batched top-k singular values by a restarted block Krylov method, in torch.

One solve handles a batch of operators at once (one per input): ``apply(V)`` maps ``(B, n, p)``
to ``(B, m, p)`` and ``adjoint(U)`` maps back, so every product is one batched matmul or one
batched convolution, on whatever device the tensors live. The method (block Lanczos on
``A^T A`` with full re-orthogonalisation, Rayleigh-Ritz on the whole basis, thick restart from
the top Ritz vectors when the basis is full) is the randomized block Krylov iteration of Musco
and Musco (2015): it converges on small spectral gaps where subspace iteration stalls.

The result is never guessed: each top-k value comes with its residual
``||A^T u - sigma v|| / sigma_1`` (relative to the top value) computed with one more adjoint
product; ``A v = sigma u`` holds exactly in the subspace, so each value is within
``residual * sigma_1`` of a singular value of ``A``. Values whose residual is above ``tol``
when the product budget is spent are NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TopK:
    """Top-k singular values of a batch of operators."""

    values: torch.Tensor      # (B, k) descending; NaN where not converged
    residual: torch.Tensor    # (B, k) residuals ||A^T u - s v|| / s_1
    products: int             # applications of A or A^T, per operator (counting block columns)
    iterations: int


def _orth(Y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(Y).Q


def _extend(K: torch.Tensor, Y: torch.Tensor, gaussian) -> torch.Tensor:
    """Orthonormal block orthogonal to ``K`` whose span holds ``Y``'s new directions.

    Where ``Y`` has (numerically) fewer new directions than columns — a rank-deficient
    operator, or an invariant subspace found — the missing columns are random directions
    orthogonal to ``K``, so the basis stays orthonormal.
    """
    def perp(Z):
        for _ in range(2):                                   # full re-orthogonalisation
            Z = Z - K @ (K.mT @ Z)
        return Z

    scale = Y.norm(dim=1).amax(-1, keepdim=True)             # (B, 1)
    Q, R = torch.linalg.qr(perp(Y))
    bad = R.diagonal(dim1=-2, dim2=-1).abs() <= 1e-10 * scale
    if bool(bad.any()):
        Q = torch.linalg.qr(perp(torch.where(bad[:, None, :], perp(gaussian(Y.shape[-1])),
                                             Q))).Q
    return Q


def topk_singular(apply, adjoint, n: int, batch: int, k: int, *, dtype, device, seed: int = 0,
                  tol: float = 1e-6, block: int | None = None, max_dim: int = 96,
                  max_products: int = 2000) -> TopK:
    """Top-``k`` singular values of ``B`` operators ``(m, n)`` given as batched products.

    Args:
        apply, adjoint: ``A V`` for ``V`` of shape ``(B, n, p)``; ``A^T U`` for ``(B, m, p)``.
        n: columns of each operator; batch: ``B``; k: how many values.
        seed: seeds the Gaussian start block (CPU generator: the same on every device).
        tol: relative residual at which a value counts as converged.
        block: block size (default ``k + 4``); max_dim: basis columns before a restart;
        max_products: budget of block columns of ``A`` and ``A^T`` per operator.
    """
    p = min(n, block or k + 4)
    g = torch.Generator().manual_seed(seed)

    def gaussian(cols):
        return torch.randn((batch, n, cols), generator=g, dtype=torch.float64).to(
            dtype=dtype, device=device)

    Q = _orth(gaussian(p))
    basis, images = [Q], [apply(Q)]
    k = min(k, n, images[0].shape[1])
    products, it = p, 0
    while True:
        it += 1
        K, AK = torch.cat(basis, -1), torch.cat(images, -1)
        Qa, Ra = torch.linalg.qr(AK)                     # SVD of the small triangle only
        Ur, S, Wh = torch.linalg.svd(Ra)
        Wt = Wh.mT
        sig = S[:, :k]
        v, u = K @ Wt[..., :k], Qa @ Ur[..., :k]
        R = adjoint(u) - v * sig[:, None, :]
        products += k
        with torch.no_grad():                    # relative to the top value: the accuracy
            top = sig[:, :1]                     # every value has, zero ones included
            res = R.norm(dim=1) / top.clamp_min(torch.finfo(dtype).tiny)
        res = torch.where(top > 0, res, torch.zeros_like(res))   # an exactly-zero operator
        done = bool((res <= tol).all()) or K.shape[-1] >= n
        if done or products + 2 * p > max_products:
            vals = torch.where(res <= tol, sig, torch.full_like(sig, float("nan"))) \
                if not done else sig
            return TopK(vals.detach(), res.detach(), products, it)
        Y = adjoint(images[-1])[..., :n - K.shape[-1]]       # never more than n columns
        products += p
        Qn = _extend(K, Y, gaussian)                         # new directions only
        if K.shape[-1] + p > max_dim and max_dim < n:        # thick restart: keep the top p
            keep = min(p, K.shape[-1])
            basis, images = [K @ Wt[..., :keep]], [AK @ Wt[..., :keep]]
        basis.append(Qn)
        images.append(apply(Qn))
        products += Qn.shape[-1]


def hutchinson_msq(apply, n: int, batch: int, probes: int, *, dtype, device, seed: int = 0):
    """``tr(A^T A) / n`` per operator from ``probes`` Rademacher vectors (B,) — unbiased."""
    g = torch.Generator().manual_seed(seed + 7919)
    Z = (torch.randint(0, 2, (batch, n, probes), generator=g) * 2 - 1).to(dtype=dtype,
                                                                          device=device)
    return (apply(Z) ** 2).sum(dim=(1, 2)) / (probes * n)


__all__ = ["TopK", "topk_singular", "hutchinson_msq"]
