"""Second-order and raw-weight measurements of one probe layer (THEORY C3, C4).

- :func:`weight_hessian_opnorm`: ``||H_{W_t} D(x)||_op`` for ONE input, where ``W_t`` is the
  EFFECTIVE weight of probe layer ``t`` (the tensor the forward pass multiplies by). The layer's
  output is replaced, by a forward hook, with ``layer_apply(module, h, W)`` for a free variable
  ``W`` (plus the layer's bias, if any); every other layer runs unchanged. Exact for small layers
  (``torch.func.hessian`` of the flattened weight, then ``eigvalsh``), otherwise Lanczos
  (``scipy.sparse.linalg.eigsh``, ``which='LM'``) on Hessian-vector products by double backward.
- :func:`raw_weight_hessian_opnorm`: the same for the RAW weight of a parametrized layer, through
  its parametrization (e.g. the SN map ``W -> c W / sigma(W)``). Measured and reported; THEORY
  states no bound for it.
- :func:`raw_weight_grads`: per-input gradients ``dD(x_b)/dW_raw`` by autograd through the
  parametrization (the left side of THEORY C3a); :func:`effective_weight_grads`: the same
  w.r.t. the effective weights (the ``G`` of C3a, and both sides of C2a).

Nothing is written onto the modules: hooks are removed when each call returns, and the model's
training flag is restored (it is put in eval mode, as in :func:`gradcheck.probe.probe`).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh
from torch import nn
from torch.nn.utils import parametrize

from .._threads import single_threaded
from ..linalg import grad, hessian
from .layers import ProbeError, layer_apply, record

#: Layers with at most this many weight entries get the dense Hessian and ``eigvalsh``.
EXACT_MAX = 400


@contextlib.contextmanager
def _eval(model: nn.Module):
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


@contextlib.contextmanager
def _frozen(model: nn.Module):
    """Eval mode, one thread, and parametrized weights computed once (``parametrize.cached``):
    every other layer's weight is a constant of the Hessian, and recomputing an exact
    ``sn-conv`` divisor (a Lanczos solve) on each of the many forwards dominated the cost."""
    with _eval(model), single_threaded(), parametrize.cached():
        yield


def _layer(model: nn.Module, x1: torch.Tensor, layer_index: int):
    """(module, effective weight) of probe layer ``layer_index`` on the one input ``x1``."""
    if x1.shape[0] != 1:
        raise ValueError(f"x1 must hold ONE input, shape (1, ...); got {tuple(x1.shape)}")
    with torch.no_grad():
        tape = record(model, x1)
    L = len(tape.layers)
    if not 0 <= layer_index < L:
        raise ValueError(f"layer_index must be in [0, {L - 1}]; got {layer_index}")
    return tape.modules[layer_index], tape.weights[layer_index]


def _output_as(model: nn.Module, module: nn.Module, x1: torch.Tensor, weight_of):
    """``f(var) = D(x1)`` (0-dim) with ``module``'s output recomputed from ``weight_of(var)``."""
    def f(var: torch.Tensor) -> torch.Tensor:
        fired = []

        def hook(mod, args, out):
            fired.append(True)
            z = layer_apply(mod, args[0], weight_of(var))
            if mod.bias is not None:
                z = z + (mod.bias[:, None, None] if isinstance(mod, nn.Conv2d) else mod.bias)
            return z

        handle = module.register_forward_hook(hook)
        try:
            out = model(x1).reshape(())
        finally:
            handle.remove()
        if not fired:    # a functional layer, or one whose forward is called directly
            raise ProbeError("the Hessian needs the layer called through nn.Module.__call__; "
                             "this one is an F.linear/F.conv2d call its hooks do not see")
        return out
    return f


def _hvp_operator(f, w0: torch.Tensor):
    """(matvec on flat float64 numpy vectors, n) for the Hessian of ``f`` at ``w0``."""
    w = w0.detach().clone().requires_grad_(True)
    g = torch.autograd.grad(f(w), w, create_graph=True, allow_unused=True)[0]
    n = w.numel()
    if g is None or not g.requires_grad:
        return (lambda v: np.zeros(n)), n

    def matvec(v):
        vt = torch.as_tensor(np.ascontiguousarray(v).reshape(w.shape), dtype=w.dtype)
        hv = grad(g, w, vt, retain_graph=True, allow_unused=True)[0]
        return np.zeros(n) if hv is None else hv.detach().reshape(-1).double().numpy()
    return matvec, n


def _lanczos_opnorm(f, w0: torch.Tensor, tol: float, seed: int, max_iter: int) -> float:
    """``max |eig|`` of the Hessian of ``f`` at ``w0`` by ARPACK on Hessian-vector products."""
    matvec, n = _hvp_operator(f, w0)
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(n)
    if not np.any(matvec(v0)):
        # H v0 = 0 exactly for a random v0: H is 0 (identity output on a piecewise-linear net),
        # unless v0 is orthogonal to its range, which a second probe rules out.
        if not np.any(matvec(rng.standard_normal(n))):
            return 0.0
    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    try:
        ev = eigsh(op, k=1, which="LM", tol=tol, v0=v0, maxiter=max_iter,
                   return_eigenvectors=False)
    except ArpackNoConvergence as err:
        raise ProbeError(f"Hessian Lanczos did not converge in {max_iter} iterations "
                         f"(n = {n}, tol = {tol})") from err
    except ArpackError:
        # ARPACK can stop on an exactly invariant start (H of rank one reached in one step);
        # fall back to power iteration on H^2.
        return _power_opnorm(matvec, v0, tol, max_iter)
    return float(np.abs(ev).max())


def _power_opnorm(matvec, v0: np.ndarray, tol: float, max_iter: int) -> float:
    v, lam = v0 / np.linalg.norm(v0), 0.0
    for _ in range(max_iter):
        w = matvec(matvec(v))
        nw = np.linalg.norm(w)
        if nw == 0:
            return 0.0
        new = float(np.sqrt(nw))
        if abs(new - lam) <= tol * new:
            return new
        v, lam = w / nw, new
    return lam


def _opnorm(f, w0: torch.Tensor, exact_max: int, tol: float, seed: int, max_iter: int) -> float:
    """Largest ``|eig|`` of the Hessian of ``f`` at ``w0``: dense if small, else Lanczos.

    Callers run it single-threaded: the layers are small, and torch's and the BLAS's thread
    pools contending on a loaded machine made one dense Hessian 100x slower (measured: 0.7 s vs
    0.005 s).
    """
    n = w0.numel()
    if n <= exact_max:
        flat = w0.detach().reshape(-1).clone()
        shape = w0.shape
        try:
            H = hessian(lambda v: f(v.reshape(shape)), flat)
        except (RuntimeError, NotImplementedError):   # an op without forward-mode AD
            matvec, _ = _hvp_operator(f, w0)
            H = torch.as_tensor(np.stack([matvec(e) for e in np.eye(n)]), dtype=torch.float64)
        H = H.detach().double()
        return float(torch.linalg.eigvalsh((H + H.T) / 2).abs().max())
    return _lanczos_opnorm(f, w0, tol, seed, max_iter)


def weight_hessian_opnorm(model: nn.Module, x1: torch.Tensor, layer_index: int,
                          exact_max: int = EXACT_MAX, tol: float = 1e-10, seed: int = 0,
                          max_iter: int = 1000) -> float:
    """``||H_{W_t} D(x1)||_op`` w.r.t. the EFFECTIVE weight of probe layer ``t`` (THEORY C4).

    Args:
        model: any probe-able discriminator (see :func:`gradcheck.probe.record`).
        x1: ONE input, shape ``(1, ...)``.
        layer_index: ``t`` in forward order.
        exact_max: dense Hessian + ``eigvalsh`` when ``numel(W_t) <= exact_max``, else Lanczos.
        tol, seed, max_iter: ARPACK relative tolerance, start-vector seed, iteration cap.

    Returns:
        The largest absolute eigenvalue of the ``(n, n)`` Hessian, ``n = numel(W_t)``.
    """
    return weight_hessian_opnorms(model, x1, [layer_index], exact_max, tol, seed, max_iter)[0]


def weight_hessian_opnorms(model: nn.Module, x1: torch.Tensor, layers=None,
                           exact_max: int = EXACT_MAX, tol: float = 1e-10, seed: int = 0,
                           max_iter: int = 1000) -> list[float]:
    """:func:`weight_hessian_opnorm` of several probe layers (default: all), one recording.

    Raises:
        ProbeError: a layer the Hessian cannot reach (see :func:`_output_as`).
    """
    if x1.shape[0] != 1:
        raise ValueError(f"x1 must hold ONE input, shape (1, ...); got {tuple(x1.shape)}")
    with _frozen(model):
        with torch.no_grad():
            tape = record(model, x1)
        L = len(tape.layers)
        layers = range(L) if layers is None else list(layers)
        out = []
        for t in layers:
            if not 0 <= t < L:
                raise ValueError(f"layer_index must be in [0, {L - 1}]; got {t}")
            f = _output_as(model, tape.modules[t], x1, lambda var: var)
            out.append(_opnorm(f, tape.weights[t], exact_max, tol, seed, max_iter))
        return out


def _parametrization_chain(module: nn.Module):
    """(raw weight, map raw -> effective) of a ``torch.nn.utils.parametrize``-d ``weight``."""
    params = getattr(module, "parametrizations", None)
    if params is None or "weight" not in params:
        return module.weight.detach(), (lambda r: r)
    plist = params["weight"]
    for p in plist:
        g = getattr(p, "geometry", None)
        if getattr(p, "kind", "") == "sn-conv" and getattr(p, "mode", "") == "exact" \
                and g is not None:
            raise ProbeError("the raw-weight Hessian through exact sn-conv is not available: its "
                             "sigma = <u, Conv_W v> uses detached top singular vectors, whose "
                             "variation the second derivative would miss")

    def chain(r):
        w = r
        for p in plist:
            w = p(w)
        return w
    return plist.original.detach(), chain


def raw_weight_hessian_opnorm(model: nn.Module, x1: torch.Tensor, layer_index: int,
                              exact_max: int = EXACT_MAX, tol: float = 1e-10, seed: int = 0,
                              max_iter: int = 1000) -> float:
    """``||H_{W_raw} D(x1)||_op`` through the layer's parametrization (THEORY C4, reported).

    For an unparametrized layer the raw weight is the effective one and this equals
    :func:`weight_hessian_opnorm`. Parametrizations must be ``torch.nn.utils.parametrize`` ones
    (gradcheck's :class:`~gradcheck.schemes.SpectralScaling` or torch's ``spectral_norm``); in
    eval mode torch's SN divides by ``u^T W v`` with its stored vectors, and that map is what is
    differentiated.

    Raises:
        ProbeError: exact ``sn-conv`` on a conv layer (its second derivative is not available).
    """
    with _frozen(model):
        module, _ = _layer(model, x1, layer_index)
        raw, chain = _parametrization_chain(module)
        f = _output_as(model, module, x1, chain)
        return _opnorm(f, raw, exact_max, tol, seed, max_iter)


def _raw_tensor(module: nn.Module) -> torch.Tensor:
    params = getattr(module, "parametrizations", None)
    if params is not None and "weight" in params:
        return params["weight"].original
    if hasattr(module, "weight_orig"):           # legacy torch.nn.utils.spectral_norm
        return module.weight_orig
    return module.weight


def raw_weight_grads(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Per-input ``dD(x_b)/dW_raw`` of every probe layer, by autograd through its parametrization.

    The raw weight is ``parametrizations.weight.original`` (gradcheck's SN family, torch's
    ``spectral_norm``), ``weight_orig`` (legacy hook) or ``weight`` (no parametrization). One
    forward and backward per input, in eval mode (no power-iteration update).

    Args:
        x: inputs ``(B, ...)``.

    Returns:
        ``[g_0, ..., g_{L-1}]``, ``g_t`` of shape ``(B, *raw_t.shape)``, in probe-layer order.
    """
    with _eval(model), single_threaded():
        with torch.no_grad():
            modules = record(model, x[:1]).modules
        raws = [_raw_tensor(m) for m in modules]
        out = [torch.zeros((x.shape[0], *r.shape), dtype=r.dtype, device=r.device)
               for r in raws]
        # parametrize.cached(): the parametrized weights (an SVD per SN layer) are computed
        # once for all inputs; retain_graph keeps their graph for the next input's backward
        with torch.enable_grad(), parametrize.cached():
            for b in range(x.shape[0]):
                D = model(x[b:b + 1]).reshape(())
                gs = torch.autograd.grad(D, raws, allow_unused=True, retain_graph=True)
                for t, g in enumerate(gs):
                    if g is not None:
                        out[t][b] = g.detach()
    return out


def effective_weight_grads(model: nn.Module, x: torch.Tensor
                           ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(D, [dD(x_b)/dW_t])``: outputs ``(B,)`` and per-input gradients w.r.t. the EFFECTIVE
    weights, each ``(B, *W_t.shape)``, by the engine's path (one backward to every ``z_t``, then
    :func:`gradcheck.probe.per_sample_weight_grads`). The ``G`` of THEORY C3a is ``c`` times
    these for a layer ``W_eff = c W / sigma(W)``.
    """
    from .gradients import per_sample_weight_grads

    with _eval(model), single_threaded():
        tape = record(model, x)
        deltas = torch.autograd.grad(tape.D.sum(), tape.z, allow_unused=True)
        grads = [per_sample_weight_grads(m, w, h, d if d is not None else torch.zeros_like(z))
                 for m, w, h, d, z in zip(tape.modules, tape.weights, tape.h, deltas, tape.z)]
    return tape.D.detach(), [g.detach() for g in grads]


def effective_weight_grad_norms(model: nn.Module, x: torch.Tensor
                                ) -> tuple[torch.Tensor, np.ndarray]:
    """``(D, ||dD(x_b)/dW_t||_F as (L, B))`` w.r.t. the EFFECTIVE weights, by the engine's
    per-sample norm rules (:func:`gradcheck.probe.gradients.gradient_norms`): the norms
    without materialising ``B x numel(W)`` per-sample gradients (50 layers of 1024 x 1024 at
    batch 256 would be 100 GB)."""
    from .gradients import gradient_norms

    with _eval(model), single_threaded():
        tape = record(model, x)
        g = gradient_norms(tape, check_inputs=0)       # no C1a side here
    return tape.D.detach(), g.weight_grad


__all__ = ["EXACT_MAX", "effective_weight_grad_norms", "weight_hessian_opnorm",
           "weight_hessian_opnorms", "raw_weight_hessian_opnorm", "raw_weight_grads",
           "effective_weight_grads"]
