"""Find the probe-able layers of ANY ``nn.Module`` and record one forward pass (the tape).

Probe layers are the ``nn.Linear`` / ``nn.Conv2d`` modules in the order the forward pass calls
them, found by hooks (so layers under torch's own ``spectral_norm`` parametrizations, the legacy
``spectral_norm`` hook, or ours are all found). Index ``i = 0..L-1``; ``h[i]`` is the input of
layer ``i`` (``h[0] = x``), ``z[i]`` its output, ``D`` the model output (one scalar per input).
Nothing is written onto the modules: hooks are removed when the forward returns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


PROBE_TYPES = (nn.Linear, nn.Conv2d)


class ProbeError(ValueError):
    """The model cannot be probed (unsupported layer, no layer, non-scalar output, ...)."""


@dataclass(frozen=True)
class LayerInfo:
    """Static description of one probe layer (shapes are per input, without batch)."""

    index: int
    name: str                      # qualified module name in the model
    kind: str                      # 'linear' | 'conv'
    weight_shape: tuple[int, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel: tuple[int, int]        # (1, 1) for dense
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    padding_mode: str
    has_bias: bool
    parametrized: str              # '' | 'gradcheck' | 'torch' | 'legacy'

    @property
    def fan_in(self) -> int:
        return int(math.prod(self.weight_shape[1:]))

    @property
    def fan_out(self) -> int:
        return int(self.weight_shape[0] * math.prod(self.weight_shape[2:]))

    @property
    def mu(self) -> float:
        """Patch multiplicity ``mu`` of C1 and C8 (dense: 1).

        THEORY's ``sqrt(ceil(kh/sh) ceil(kw/sw))``, or the exact ``sqrt`` of the most patches
        reading one input pixel where that is larger (dilation > 1, circular/reflect/replicate
        padding, which THEORY's premise excludes and its formula undercounts).
        """
        if self.kind != "conv":
            return 1.0
        from ..theory.bounds import exact_patch_multiplicity, patch_multiplicity

        return max(patch_multiplicity(self.kernel, self.stride),
                   exact_patch_multiplicity(self.input_shape[1:], self.kernel, self.stride,
                                            self.padding, self.dilation, self.padding_mode))

    @property
    def n_out(self) -> int:
        """``N_l``: number of output elements per input."""
        return int(math.prod(self.output_shape))


def _parametrization_kind(module: nn.Module) -> str:
    from ..schemes.spectral import scaling_of

    if scaling_of(module) is not None:
        return "gradcheck"
    if getattr(module, "parametrizations", None) is not None:
        return "torch"
    if any(type(h).__name__ == "SpectralNorm" for h in module._forward_pre_hooks.values()):
        return "legacy"
    return ""


def _check_supported(model: nn.Module) -> None:
    """Raise ProbeError naming any parametric module the engine cannot probe."""
    from torch.nn.utils.parametrize import ParametrizationList

    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d) and mod.groups != 1:
            raise ProbeError(f"layer {name!r} is a grouped Conv2d (groups={mod.groups}); "
                             "only groups=1 can be probed")
        own = [n for n, _ in mod.named_parameters(recurse=False)]
        if not own or isinstance(mod, PROBE_TYPES + (ParametrizationList,)):
            continue
        raise ProbeError(f"layer {name!r} ({type(mod).__name__}, parameters {own}) cannot be "
                         "probed: only nn.Linear and nn.Conv2d layers are supported")


@dataclass
class Tape:
    """One recorded forward pass on a batch. ``h`` and ``z`` are in the autograd graph."""

    layers: list[LayerInfo]
    modules: list[nn.Module]
    weights: list[torch.Tensor]    # effective weights used in the forward (detached)
    h: list[torch.Tensor]          # inputs h[i], (B, *input_shape); h[0] = x requires grad
    z: list[torch.Tensor]          # outputs z[i], (B, *output_shape)
    D: torch.Tensor                # (B,)


def record(model: nn.Module, x: torch.Tensor) -> Tape:
    """Run ``model(x)`` with hooks on every probe layer and return the :class:`Tape`.

    Raises:
        ProbeError: no probe-able layer, unsupported parametric module, a layer called twice,
            or an output that is not one scalar per input.
    """
    _check_supported(model)
    names = {m: n for n, m in model.named_modules()}
    calls: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []

    def hook(mod, args, out):
        calls.append((mod, args[0], out))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, PROBE_TYPES)]
    x = x.detach().clone().requires_grad_(True)
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    if not calls:
        raise ProbeError(f"model {type(model).__name__} has no probe-able layer "
                         "(nn.Linear or nn.Conv2d) on its forward path")
    seen = set()
    for mod, _, _ in calls:
        if mod in seen:
            raise ProbeError(f"layer {names[mod]!r} is called more than once per forward; "
                             "weight sharing cannot be probed")
        seen.add(mod)
    B = x.shape[0]
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise ProbeError(f"model output is {type(out).__name__}"
                         + (f" of dtype {out.dtype}" if isinstance(out, torch.Tensor) else "")
                         + "; the discriminator must return one floating-point score per input")
    if out.numel() != B:
        raise ProbeError(f"model output has shape {tuple(out.shape)}; the discriminator must "
                         "return one scalar per input, shape (B,) or (B, 1)")
    layers, modules, weights, hs, zs = [], [], [], [], []
    for i, (mod, inp, z) in enumerate(calls):
        w = mod.weight.detach()
        if not torch.isfinite(w).all():
            raise ProbeError(f"layer {names[mod]!r} has non-finite effective weights (NaN or "
                             "inf, e.g. an all-zero raw weight divided by its zero sigma); "
                             "nothing to probe")
        conv = isinstance(mod, nn.Conv2d)
        if conv:
            from ..schemes.sigma import conv_padding
            pad = conv_padding(mod.padding, mod.kernel_size, mod.stride, mod.dilation,
                               tuple(inp.shape[-2:]))
        layers.append(LayerInfo(
            index=i, name=names[mod], kind="conv" if conv else "linear",
            weight_shape=tuple(w.shape), input_shape=tuple(inp.shape[1:]),
            output_shape=tuple(z.shape[1:]),
            kernel=tuple(mod.kernel_size) if conv else (1, 1),
            stride=tuple(mod.stride) if conv else (1, 1),
            padding=tuple(pad) if conv else (0, 0),
            dilation=tuple(mod.dilation) if conv else (1, 1),
            padding_mode=mod.padding_mode if conv else "zeros",
            has_bias=mod.bias is not None, parametrized=_parametrization_kind(mod)))
        modules.append(mod)
        weights.append(w)
        hs.append(inp)
        zs.append(z)
    return Tape(layers, modules, weights, hs, zs, out.reshape(B))


def layer_apply(module: nn.Module, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The bias-free linear map of ``module`` with weight ``w`` applied to ``h`` (B, ...)."""
    if isinstance(module, nn.Conv2d):
        return module._conv_forward(h, w, None)
    return nn.functional.linear(h, w)


__all__ = ["PROBE_TYPES", "ProbeError", "LayerInfo", "Tape", "record", "layer_apply"]
