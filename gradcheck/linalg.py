"""Linear-algebra helpers on plain torch (a leaf module: torch only).

``torch.func.vjp``/``vmap``/``hessian`` import ``torch._dynamo`` on first use, which costs
~1.4 s of start-up on a 2-core machine (measured: ``import torch`` 0.95 s, first
``torch.func.vjp`` 1.44 s) — more than the whole quick-start probe. These helpers give the
same answers with ``torch.autograd.grad`` on a detached leaf copy.
"""
from __future__ import annotations

import torch


def grad(outputs, inputs, grad_outputs, **kwargs):
    """``torch.autograd.grad(outputs, inputs, grad_outputs)`` as the gradient of the scalar
    ``sum(<output, grad_output>)`` — the same numbers bit for bit (``d(y*v).sum()/dy = v``
    exactly), without ``torch.autograd``'s shape check on explicit gradients, whose first use
    imports ``torch.fx.experimental.symbolic_shapes`` and sympy (0.4 s of start-up)."""
    outs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
    gos = [grad_outputs] if isinstance(grad_outputs, torch.Tensor) else list(grad_outputs)
    total = sum((o * g.reshape(o.shape)).sum() for o, g in zip(outs, gos))
    return torch.autograd.grad(total, inputs, **kwargs)


def vjp(fn, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(d fn(x) / dx)^T v`` for a function of one tensor (zeros where ``fn`` ignores ``x``)."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        y = fn(leaf)
        (g,) = grad(y, leaf, v, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def hessian(f, w: torch.Tensor, batch_rows: int = 256) -> torch.Tensor:
    """Dense Hessian ``(n, n)`` of a scalar ``f`` at ``w`` (flattened), by double backward.

    Rows by one vjp each for small ``n``; in batches of ``batch_rows`` through
    ``is_grads_batched`` above (whose first call costs ~0.3 s of set-up).
    """
    n = w.numel()
    with torch.enable_grad():
        leaf = w.detach().reshape(-1).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(leaf.reshape(w.shape)), leaf, create_graph=True)
        if not g.requires_grad:                 # f is linear in w: the Hessian is zero
            return torch.zeros(n, n, dtype=w.dtype, device=w.device)
        eye = torch.eye(n, dtype=w.dtype, device=w.device)
        if n <= batch_rows:
            rows = [grad(g, leaf, e, retain_graph=True, allow_unused=True)[0] for e in eye]
            rows = [torch.zeros(n, dtype=w.dtype, device=w.device) if r is None else r
                    for r in rows]
            return torch.stack(rows).detach()
        parts = [torch.autograd.grad(g, leaf, e, retain_graph=True, is_grads_batched=True,
                                     allow_unused=True)[0] for e in eye.split(batch_rows)]
        parts = [torch.zeros(e.shape[0], n, dtype=w.dtype, device=w.device) if p is None
                 else p for p, e in zip(parts, eye.split(batch_rows))]   # linear in w
        return torch.cat(parts).detach()


def per_sample_vjp(fn, w: torch.Tensor, h: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``d <fn(h_b, W), delta_b> / dW`` for each sample ``b``: ``(B, *w.shape)``.

    One small backward per sample (the engine's fast rules cover the batch; this is the
    independent check on a few inputs and the fallback for maps without a rule).
    """
    out = torch.empty((h.shape[0], *w.shape), dtype=w.dtype, device=w.device)
    with torch.enable_grad():
        leaf = w.detach().requires_grad_(True)
        for b in range(h.shape[0]):
            y = fn(h[b:b + 1].detach(), leaf)
            (g,) = grad(y, leaf, delta[b:b + 1].detach(), allow_unused=True)
            out[b] = 0 if g is None else g
    return out


def lanczos_top(A: torch.Tensor, tol: float = 1e-13, max_iter: int = 400, seed: int = 0,
                gram: str = "small"):
    """Top singular triple of a dense 2-D ``A`` by Lanczos on its smaller Gram matrix.

    Full re-orthogonalisation; stops when the Lanczos residual ``beta_k |y_k|`` (a rigorous
    bound on ``||G x - theta x||`` for the Ritz pair) is below ``tol * theta``, so ``sigma``
    has relative error below ~``tol`` (about 0.05 s for a 1024 x 1024 Gaussian matrix against
    0.2 s for ``eigvalsh`` of the Gram and 0.6 s for ``svdvals``, measured on 2 cores).

    Args:
        gram: ``'small'`` (the smaller of ``A^T A`` and ``A A^T``), ``'AtA'`` or ``'AAt'``.

    Returns:
        ``(sigma, u, v, relative residual)`` or None when not converged in ``max_iter`` steps
        (the caller falls back to a dense method).
    """
    tall = A.shape[0] >= A.shape[1] if gram == "small" else gram == "AtA"
    n = A.shape[1] if tall else A.shape[0]
    G = (lambda x: A.T @ (A @ x)) if tall else (lambda x: A @ (A.T @ x))
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, generator=g, dtype=torch.float64).to(dtype=A.dtype, device=A.device)
    q = q / q.norm()
    Q = torch.empty((min(max_iter, n) + 1, n), dtype=A.dtype, device=A.device)
    Q[0] = q
    alphas, betas = [], []
    theta = y = None
    for k in range(min(max_iter, n)):
        w = G(Q[k])
        a = torch.dot(w, Q[k])
        w = w - Q[:k + 1].T @ (Q[:k + 1] @ w)            # full re-orthogonalisation, twice
        w = w - Q[:k + 1].T @ (Q[:k + 1] @ w)
        b = w.norm()
        alphas.append(a)
        betas.append(b)
        if k % 4 == 3 or k == n - 1 or float(b) == 0.0:
            T = torch.diag(torch.stack(alphas))
            if k:
                off = torch.stack(betas[:-1])
                T = T + torch.diag(off, 1) + torch.diag(off, -1)
            ev, vec = torch.linalg.eigh(T)
            theta, y = ev[-1], vec[:, -1]
            if theta <= 0:
                if float(b) == 0.0:
                    break
            elif float(b * y[-1].abs()) <= tol * float(theta) or float(b) == 0.0 \
                    or k == n - 1:
                break
        if float(b) == 0.0:
            break
        Q[k + 1] = w / b
    else:
        return None
    if theta is None:
        return None
    x = Q[:len(alphas)].T @ y
    x = x / x.norm()
    sigma = theta.clamp_min(0).sqrt()
    if tall:
        v = x
        u = A @ v / sigma if sigma > 0 else A.new_zeros(A.shape[0])
    else:
        u = x
        v = A.T @ u / sigma if sigma > 0 else A.new_zeros(A.shape[1])
    s2 = float(theta)
    res = float((G(x) - s2 * x).norm()) / s2 if s2 > 0 else 0.0
    if s2 > 0 and res > 10 * tol:
        return None
    return sigma, u, v, res
