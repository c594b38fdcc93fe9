"""Brute-force float64 oracles for discriminator Jacobians, gradients and operator norms.

Everything here is deliberately slow and obviously correct ("ship the oracle", STYLE.md §2): dense
Jacobians come from :func:`torch.func.jacrev`, per-sample gradients from a Python loop over samples
with :func:`torch.func.grad`, conv operator norms from the dense matrix obtained by applying the
conv to every basis vector, and singular values from :func:`torch.linalg.svdvals`. Fast paths in
the rest of the package are tested against these functions on small networks. This module must
not import anything from ``gradcheck.probe`` or ``gradcheck.schemes``.

Conventions (THEORY §0, shared by the whole package):

* The *probe layers* of a model are its ``nn.Linear`` / ``nn.Conv2d`` modules in forward order,
  ``i = 0 .. L-1``.
* ``h[i]`` is the input tensor of probe layer ``i`` (``h[0] = x``); ``h[L] := D(x)``, one scalar per
  sample (shape ``(1,)`` per sample).
* Per-layer Jacobian ``i``: ``d h[i+1] / d h[i]`` for ``i = 0 .. L-1`` (for ``i = L-1`` the
  ``1 x numel(h[L-1])`` row ``dD/dh[L-1]``).
* Cumulative Jacobian from ``i``: ``d h[L-1] / d h[i]`` for ``i = 0 .. L-2`` (``i = L-1`` gives the
  identity).
* All Jacobians are for ONE input sample, flattened to ``(numel(out), numel(in))`` matrices.

The oracle acts on the *effective* weights of the forward pass: parametrizations
(``torch.nn.utils.parametrize``, e.g. ``parametrizations.spectral_norm``) and the legacy
``torch.nn.utils.spectral_norm`` / ``weight_norm`` hooks are baked into plain weights by
:func:`materialize`, with the model in eval mode (no power iteration).
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm as _LegacySpectralNorm
from torch.nn.utils.weight_norm import WeightNorm as _LegacyWeightNorm

__all__ = [
    "PROBE_TYPES",
    "materialize", "effective_weights", "layer_tensors",
    "per_sample_weight_grads", "per_sample_input_grads",
    "layer_jacobian", "cumulative_jacobian",
    "dense_conv_matrix", "singular_values", "operator_norms",
]

#: Module types whose weights are probed, in forward order.
PROBE_TYPES = (nn.Linear, nn.Conv2d)

_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_backward_pre_hooks")


# --------------------------------------------------------------------------------------------
# Materialisation: effective weights, flat Sequential, float64
# --------------------------------------------------------------------------------------------

def _unparametrize(module: nn.Module) -> None:
    """Replace every parametrized tensor of ``module`` (in place) by its current value.

    Equivalent to ``parametrize.remove_parametrizations(module, name, leave_parametrized=True)``
    for every name, but safe on deep copies: torch's function deletes the property from the
    dynamically created ``Parametrized*`` class, which a deep copy SHARES with the original, and so
    would break the original model. Here the copy only switches its own ``__class__`` back.
    """
    values = {}
    with torch.no_grad():
        for name, plist in module.parametrizations.items():
            original = getattr(plist, "original", None)
            if original is None:  # right_inverse returned several tensors: original0, original1...
                original = plist.original0
            values[name] = (getattr(module, name).detach().clone(),
                            isinstance(original, nn.Parameter))
    delattr(module, "parametrizations")
    module.__class__ = type(module).__bases__[0]  # parametrize subclasses the original class
    for name, (value, is_parameter) in values.items():
        if is_parameter:
            module.register_parameter(name, nn.Parameter(value))
        else:
            module.register_buffer(name, value)


def _deepcopy(module: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that tolerates non-leaf tensors cached as plain attributes.

    The legacy ``spectral_norm`` / ``weight_norm`` hooks store the last computed weight as a plain
    attribute, with autograd history after a training forward; deepcopy refuses those tensors, so
    they are pre-seeded (detached) in the memo. They are recomputed and replaced when the hooks
    are removed.
    """
    memo = {id(t): t.detach().clone() for m in module.modules() for t in vars(m).values()
            if isinstance(t, Tensor) and not t.is_leaf}
    return copy.deepcopy(module, memo)


def _bake(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Deep copy ``module`` in eval mode with all reparametrizations replaced by their values.

    Eval mode is set *before* anything is removed: in training mode both spectral norms would run
    a power iteration while being removed and bake a weight different from the eval-mode one.
    The original ``module`` is left untouched (buffers, class, training flag).
    """
    module = _deepcopy(module).eval()
    for sub in list(module.modules()):
        if parametrize.is_parametrized(sub):
            _unparametrize(sub)
        for hook in list(sub._forward_pre_hooks.values()):
            if isinstance(hook, _LegacySpectralNorm):
                torch.nn.utils.remove_spectral_norm(sub, hook.name)
            elif isinstance(hook, _LegacyWeightNorm):
                torch.nn.utils.remove_weight_norm(sub, hook.name)
    for sub in module.modules():
        for attr in _HOOK_DICTS:
            hooks = getattr(sub, attr, None)
            if hooks:
                raise ValueError(
                    f"{type(sub).__name__} carries {attr} ({list(hooks.values())!r}); the "
                    "reference oracle only removes parametrizations and legacy "
                    "spectral_norm/weight_norm hooks. Remove other hooks before calling it.")
    return module.to(dtype)


def _find_sequential(model: nn.Module) -> nn.Sequential:
    """``model`` itself if it is an ``nn.Sequential``, else the end of its single-child chain."""
    node = model
    while not isinstance(node, nn.Sequential):
        children = list(node.children())
        if len(children) != 1:
            raise ValueError(
                f"reference oracle needs an nn.Sequential (or a module whose only child chain ends "
                f"in one); {type(node).__name__} has {len(children)} children")
        node = children[0]
    return node


def _validate_flat(seq: nn.Sequential) -> None:
    """Reject nested containers and parametric layers that are not probe layers."""
    for idx, layer in enumerate(seq):
        if any(True for _ in layer.children()):
            raise ValueError(
                f"reference oracle needs a flat nn.Sequential; child {idx} "
                f"({type(layer).__name__}) has submodules")
        params = [name for name, _ in layer.named_parameters(recurse=False)]
        if params and not isinstance(layer, PROBE_TYPES):
            raise ValueError(
                f"child {idx} ({type(layer).__name__}) has parameters {params} but is not one of "
                f"the probe layer types {[t.__name__ for t in PROBE_TYPES]}")
    if not _probe_positions(seq):
        raise ValueError("model has no nn.Linear / nn.Conv2d layer to probe")


def materialize(model: nn.Module, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """Return an independent, plain copy of ``model`` computing its eval-mode forward pass.

    The copy is in eval mode, every parametrization is removed keeping its current value
    (``leave_parametrized=True``), legacy ``spectral_norm`` / ``weight_norm`` hooks are removed
    keeping the weight the eval-mode hook computes (``W / (u^T W v)`` with the stored ``u, v``), and
    all floating tensors are cast to ``dtype``. ``model`` itself is not modified.

    Args:
        model: a flat ``nn.Sequential`` (e.g. ``gradcheck.models.Discriminator``) or a module whose
            single-child chain ends in one.
        dtype: floating dtype of the copy.

    Returns:
        The flat ``nn.Sequential`` (same class as in ``model``).

    Raises:
        ValueError: nested containers, parametric layers other than Linear/Conv2d, unknown hooks,
            or no probe layer.
    """
    seq = _find_sequential(_bake(model, dtype))
    _validate_flat(seq)
    return seq


def _probe_positions(seq: nn.Sequential) -> list[int]:
    """Indices into ``seq`` of the probe layers, in forward order."""
    return [idx for idx, layer in enumerate(seq) if isinstance(layer, PROBE_TYPES)]


def _run(seq: nn.Sequential, h: Tensor, start: int, stop: int) -> Tensor:
    """Apply children ``seq[start:stop]`` to the batched tensor ``h``."""
    for layer in list(seq)[start:stop]:
        h = layer(h)
    return h


def _as_scalar_per_sample(out: Tensor) -> Tensor:
    """Reshape a network output to ``(B,)``, checking it holds one scalar per sample."""
    if out.numel() != out.shape[0]:
        raise ValueError(f"model output has shape {tuple(out.shape)}; "
                         "expected one scalar per sample")
    return out.reshape(out.shape[0])


def _check_index(i: int, n: int, what: str) -> None:
    if not 0 <= i < n:
        raise ValueError(f"{what} index must be in [0, {n - 1}]; got {i}")


# --------------------------------------------------------------------------------------------
# Forward quantities
# --------------------------------------------------------------------------------------------

def effective_weights(model: nn.Module) -> list[Tensor]:
    """Float64 effective weights of the probe layers, forward order (Linear: (out, in); Conv2d:
    (c_out, c_in/groups, k_h, k_w))."""
    seq = materialize(model)
    return [seq[p].weight.detach().clone() for p in _probe_positions(seq)]


def layer_tensors(model: nn.Module, x: Tensor) -> tuple[list[Tensor], Tensor]:
    """Inputs of every probe layer and the output, by iterating the materialised Sequential.

    Args:
        model: see :func:`materialize`.
        x: batched input ``(B, ...)``.

    Returns:
        ``([h[0], ..., h[L-1]], D)``: ``h[i]`` of shape ``(B, *)``, ``D`` of shape ``(B,)``,
        float64.
    """
    seq = materialize(model)
    positions = set(_probe_positions(seq))
    h = x.detach().to(torch.float64)
    inputs = []
    with torch.no_grad():
        for idx, layer in enumerate(seq):
            if idx in positions:
                inputs.append(h)
            h = layer(h)
    return inputs, _as_scalar_per_sample(h)


# --------------------------------------------------------------------------------------------
# Per-sample gradients (Python loop over samples: brute force)
# --------------------------------------------------------------------------------------------

def per_sample_weight_grads(model: nn.Module, x: Tensor) -> list[Tensor]:
    """Per-sample gradients ``dD(x_b)/dW_i`` of every probe-layer weight (biases held fixed).

    Computed with :func:`torch.func.grad` of :func:`torch.func.functional_call` on the
    materialised float64 model, one sample at a time.

    Args:
        model: see :func:`materialize`.
        x: batched input ``(B, ...)``.

    Returns:
        ``[g_0, ..., g_{L-1}]`` with ``g_i`` of shape ``(B, *W_i.shape)``, float64.
    """
    seq = materialize(model)
    names = [f"{p}.weight" for p in _probe_positions(seq)]
    fixed = {k: v.detach() for k, v in seq.named_parameters()}
    fixed.update({k: v.detach() for k, v in seq.named_buffers()})
    plain = nn.Sequential(*seq)  # plain chaining forward, whatever the Sequential subclass does

    def d_of_sample(weights: dict[str, Tensor], x1: Tensor) -> Tensor:
        out = functional_call(plain, {**fixed, **weights}, (x1.unsqueeze(0),))
        return _as_scalar_per_sample(out)[0]

    weights = {k: fixed[k] for k in names}
    xs = x.detach().to(torch.float64)
    per_sample = [grad(d_of_sample)(weights, xs[b]) for b in range(xs.shape[0])]
    return [torch.stack([g[k] for g in per_sample]) for k in names]


def per_sample_input_grads(model: nn.Module, x: Tensor) -> list[Tensor]:
    """Per-sample gradients ``dD(x_b)/dh[i]`` of the output w.r.t. every probe-layer input.

    Args:
        model: see :func:`materialize`.
        x: batched input ``(B, ...)``.

    Returns:
        ``[g_0, ..., g_{L-1}]`` with ``g_i`` of shape ``(B, *h[i].shape[1:])``, float64.
    """
    seq = materialize(model)
    positions = _probe_positions(seq)
    inputs, _ = layer_tensors(seq, x)
    out = []
    for pos, h in zip(positions, inputs):
        def d_from_here(h1: Tensor, pos: int = pos) -> Tensor:
            return _as_scalar_per_sample(_run(seq, h1.unsqueeze(0), pos, len(seq)))[0]
        out.append(torch.stack([grad(d_from_here)(h[b]) for b in range(h.shape[0])]))
    return out


# --------------------------------------------------------------------------------------------
# Dense Jacobians of sub-networks (one sample)
# --------------------------------------------------------------------------------------------

def _segment_jacobian(seq: nn.Sequential, h1: Tensor, start: int, stop: int) -> Tensor:
    """Dense ``(numel out, numel in)`` Jacobian of ``seq[start:stop]`` at the single sample ``h1``.

    When ``stop == len(seq)`` the output is the scalar ``D``, taken with shape ``(1,)``.
    """
    def segment(h: Tensor) -> Tensor:
        out = _run(seq, h.unsqueeze(0), start, stop)
        return _as_scalar_per_sample(out) if stop == len(seq) else out.squeeze(0)

    jac = jacrev(segment)(h1)
    out_numel = jac.numel() // h1.numel()
    return jac.reshape(out_numel, h1.numel())


def _single_sample_inputs(seq: nn.Sequential, x1: Tensor) -> list[Tensor]:
    """``h[0..L-1]`` of the single sample ``x1`` (no batch dim), float64."""
    inputs, _ = layer_tensors(seq, x1.unsqueeze(0))
    return [h[0] for h in inputs]


def layer_jacobian(model: nn.Module, x1: Tensor, i: int) -> Tensor:
    """Per-layer Jacobian ``d h[i+1] / d h[i]`` at ONE sample ``x1`` (no batch dimension).

    It covers probe layer ``i`` and every parameter-free module up to the next probe layer
    (activation, Flatten); for ``i = L-1`` it is the row ``dD/dh[L-1]`` (output activation
    included).

    Returns:
        Dense float64 matrix of shape ``(numel h[i+1], numel h[i])``.
    """
    seq = materialize(model)
    positions = _probe_positions(seq)
    _check_index(i, len(positions), "layer")
    stop = positions[i + 1] if i + 1 < len(positions) else len(seq)
    h = _single_sample_inputs(seq, x1)[i]
    return _segment_jacobian(seq, h, positions[i], stop)


def cumulative_jacobian(model: nn.Module, x1: Tensor, i: int) -> Tensor:
    """Cumulative Jacobian ``d h[L-1] / d h[i]`` at ONE sample ``x1`` (no batch dimension).

    Defined for ``i = 0 .. L-2``; ``i = L-1`` returns the identity (empty product).

    Returns:
        Dense float64 matrix of shape ``(numel h[L-1], numel h[i])``.
    """
    seq = materialize(model)
    positions = _probe_positions(seq)
    _check_index(i, len(positions), "layer")
    h = _single_sample_inputs(seq, x1)[i]
    return _segment_jacobian(seq, h, positions[i], positions[-1])


# --------------------------------------------------------------------------------------------
# Dense conv matrices, singular values, operator norms
# --------------------------------------------------------------------------------------------

def dense_conv_matrix(conv: nn.Conv2d, input_shape: Sequence[int],
                      weight: Tensor | None = None) -> Tensor:
    """Dense matrix of the bias-free convolution ``x -> conv(x) - bias`` on inputs ``(c_in, H, W)``.

    Column ``j`` is the conv applied to the ``j``-th basis vector of the flattened input, so stride,
    padding (ints, ``'same'``, ``'valid'``), dilation, groups and ``padding_mode`` are exactly those
    of ``conv``'s own forward pass (``nn.Conv2d._conv_forward``).

    Args:
        conv: the layer (parametrizations / legacy spectral norm are resolved to eval-mode weights).
        input_shape: ``(c_in, H, W)``.
        weight: kernel to use instead of ``conv``'s effective weight,
            ``(c_out, c_in/groups, k, k)``.

    Returns:
        Float64 matrix of shape ``(c_out * H_out * W_out, c_in * H * W)``; ``M @ x.flatten()``
        equals ``conv(x[None]).flatten()`` without bias.
    """
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"dense_conv_matrix needs an nn.Conv2d; got {type(conv).__name__}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (c_in, H, W); got {tuple(input_shape)}")
    plain = _bake(conv, torch.float64)
    w = plain.weight if weight is None else weight.detach().to(torch.float64)
    n_in = int(torch.Size(input_shape).numel())

    def apply(batch: Tensor) -> Tensor:
        return plain._conv_forward(batch, w, None)

    with torch.no_grad():
        n_out = apply(torch.zeros(1, *input_shape, dtype=torch.float64)).numel()
        matrix = torch.empty(n_out, n_in, dtype=torch.float64)
        for start in range(0, n_in, 512):  # chunks of basis vectors bound the peak memory
            stop = min(start + 512, n_in)
            cols = torch.arange(start, stop)
            basis = torch.zeros(stop - start, n_in, dtype=torch.float64)
            basis[cols - start, cols] = 1.0
            basis = basis.reshape(-1, *input_shape)
            matrix[:, start:stop] = apply(basis).reshape(stop - start, n_out).T
    return matrix


def singular_values(matrix: Tensor) -> Tensor:
    """All singular values of ``matrix`` (``(..., m, n)``) in float64, descending."""
    if matrix.dim() < 2:
        raise ValueError(f"singular_values needs a matrix; got shape {tuple(matrix.shape)}")
    return torch.linalg.svdvals(matrix.detach().to(torch.float64))


def operator_norms(model: nn.Module, x1: Tensor) -> list[float]:
    """``||W_i||_op`` of every probe layer on its actual input (THEORY §0 ``||Conv_K||_op``).

    Linear layers: largest singular value of the weight. Conv layers: largest singular value of
    :func:`dense_conv_matrix` on the input shape that layer sees for the single sample ``x1``.
    Biases are ignored (operator norm of the linear part).
    """
    seq = materialize(model)
    norms = []
    for pos, h in zip(_probe_positions(seq), _single_sample_inputs(seq, x1)):
        layer = seq[pos]
        if isinstance(layer, nn.Conv2d):
            matrix = dense_conv_matrix(layer, tuple(h.shape))
        else:
            matrix = layer.weight
        norms.append(float(singular_values(matrix)[0]))
    return norms
