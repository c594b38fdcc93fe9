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

from .trace import PROBE_TYPES


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
    has_bias: bool                 # a bias is present AND non-zero (a zero bias is no bias)
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
    """Raise ProbeError naming a layer the engine cannot probe (grouped convolutions).

    Other parametric modules (normalisation layers, SN wrappers holding ``weight_bar``, ...) are
    allowed: the recorded graph says what they do, and the claims say which premise they break.
    """
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Embedding):
            raise ProbeError(f"layer {name!r} is an nn.Embedding (integer inputs): the probe "
                             "needs gradients with respect to floating-point inputs")
        if isinstance(mod, nn.Conv2d) and mod.groups != 1:
            raise ProbeError(f"layer {name!r} is a grouped Conv2d (groups={mod.groups}); "
                             "only groups=1 can be probed")


@dataclass
class Tape:
    """One recorded forward pass on a batch. ``h`` and ``z`` are in the autograd graph.

    ``graph`` is the recorded x-dependent graph (:class:`~gradcheck.probe.trace.GraphNode`,
    value 0 = ``x``, ``out_value`` = the model output); ``h[i]`` / ``z[i]`` are the tensors layer
    ``i`` read and produced (private clones: in-place writes by the model cannot reach them).
    """

    layers: list[LayerInfo]
    modules: list[nn.Module]
    weights: list[torch.Tensor]    # effective weights the layer operations received (detached)
    h: list[torch.Tensor]          # inputs h[i], (B, *input_shape)
    z: list[torch.Tensor]          # outputs z[i], (B, *output_shape)
    D: torch.Tensor                # (B,)
    x: torch.Tensor | None = None  # the input that requires grad (h[0] is a clone of it)
    graph: tuple = ()
    out_value: int = -1
    biases: list = None            # bias tensors the operations received (None: no bias)


def record(model: nn.Module, x: torch.Tensor) -> Tape:
    """Run ``model(x)`` under the tracer (:mod:`gradcheck.probe.trace`) and return the tape.

    Raises:
        ProbeError: no probe-able layer, a grouped conv, a layer called twice, a layer whose
            weight cannot be measured, or an output that is not one scalar per input.
    """
    from .trace import trace

    _check_supported(model)
    x = x.detach().clone().requires_grad_(True)
    tr, out = trace(model, x)
    if tr.error:
        raise ProbeError(tr.error)
    calls = tr.layers
    if not calls:
        raise ProbeError(f"model {type(model).__name__} has no probe-able layer "
                         "(nn.Linear / nn.Conv2d, or an F.linear / F.conv2d call) on its "
                         "forward path")
    seen = set()
    for c in calls:
        if id(c.module) in seen:
            raise ProbeError(f"layer {c.name!r} is called more than once per forward; "
                             "weight sharing cannot be probed")
        seen.add(id(c.module))
    B = x.shape[0]
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise ProbeError(f"model output is {type(out).__name__}"
                         + (f" of dtype {out.dtype}" if isinstance(out, torch.Tensor) else "")
                         + "; the discriminator must return one floating-point score per input")
    if out.numel() != B:
        raise ProbeError(f"model output has shape {tuple(out.shape)}; the discriminator must "
                         "return one scalar per input, shape (B,) or (B, 1)")
    layers = []
    for i, c in enumerate(calls):
        w = c.weight
        if not torch.isfinite(w).all():
            raise ProbeError(f"layer {c.name!r} has non-finite effective weights (NaN or "
                             "inf, e.g. an all-zero raw weight divided by its zero sigma); "
                             "nothing to probe")
        conv = c.kind == "conv"
        mod = c.module
        if conv:
            from ..schemes.sigma import conv_padding
            try:
                pad = conv_padding(c.padding if c.padding is not None else 0,
                                   tuple(w.shape[2:]), mod.stride, mod.dilation,
                                   tuple(c.h.shape[-2:]))
            except ValueError as e:
                raise ProbeError(f"layer {c.name!r}: {e}") from None
        layers.append(LayerInfo(
            index=i, name=c.name, kind=c.kind,
            weight_shape=tuple(w.shape), input_shape=tuple(c.h.shape[1:]),
            output_shape=tuple(c.z.shape[1:]),
            kernel=tuple(w.shape[2:]) if conv else (1, 1),
            stride=tuple(mod.stride) if conv else (1, 1),
            padding=tuple(pad) if conv else (0, 0),
            dilation=tuple(mod.dilation) if conv else (1, 1),
            padding_mode=mod.padding_mode if conv else "zeros",
            has_bias=c.bias is not None and bool((c.bias != 0).any()),
            parametrized=_parametrization_kind(mod)))
    return Tape(layers, [c.module for c in calls], [c.weight for c in calls],
                [c.h for c in calls], [c.z for c in calls], out.reshape(B), x,
                tuple(tr.nodes), tr._val(out) if tr._val(out) is not None else -1,
                [c.bias for c in calls])


def layer_apply(module: nn.Module, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The bias-free linear map of ``module`` with weight ``w`` applied to ``h`` (B, ...)."""
    if isinstance(module, nn.Conv2d):
        return module._conv_forward(h, w, None)
    return nn.functional.linear(h, w)


__all__ = ["PROBE_TYPES", "ProbeError", "LayerInfo", "Tape", "record", "layer_apply"]
