"""Reverse-mode helpers on plain ``torch.autograd`` (no ``torch.func``).

``torch.func.vjp``/``vmap``/``hessian`` import ``torch._dynamo`` on first use, which costs
~1.4 s of start-up on a 2-core machine (measured: ``import torch`` 0.95 s, first
``torch.func.vjp`` 1.44 s) — more than the whole quick-start probe. These helpers give the
same answers with ``torch.autograd.grad`` on a detached leaf copy.
"""
from __future__ import annotations

import torch


def vjp(fn, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(d fn(x) / dx)^T v`` for a function of one tensor (zeros where ``fn`` ignores ``x``)."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        y = fn(leaf)
        (g,) = torch.autograd.grad(y, leaf, v.reshape(y.shape), allow_unused=True)
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
            rows = [torch.autograd.grad(g, leaf, e, retain_graph=True, allow_unused=True)[0]
                    for e in eye]
            rows = [torch.zeros(n, dtype=w.dtype, device=w.device) if r is None else r
                    for r in rows]
            return torch.stack(rows).detach()
        parts = [torch.autograd.grad(g, leaf, e, retain_graph=True, is_grads_batched=True,
                                     allow_unused=True)[0] for e in eye.split(batch_rows)]
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
            (g,) = torch.autograd.grad(y, leaf, delta[b:b + 1].detach().reshape(y.shape),
                                       allow_unused=True)
            out[b] = 0 if g is None else g
    return out
