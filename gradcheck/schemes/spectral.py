"""The SN family of THEORY §1 as ``torch.nn.utils.parametrize`` parametrizations.

``SpectralScaling`` maps a raw weight ``W`` to ``c * W / sigma(W)`` where ``sigma`` is
- ``sn`` / ``ssn``: ``sigma_R(W)`` (Miyato's SN_w),
- ``bsn`` / ``bssn``: ``(sigma_R(W) + sigma_R2(W)) / 2`` (BSN, v1/v2),
- ``sn-conv``: ``||Conv_W||_op`` on the layer's actual input size, stride and padding (strict SN).

Two modes:
- ``exact``: sigma by SVD (``sn``/``bsn``) or Lanczos to ``tol`` (``sn-conv``), recomputed on
  every forward; differentiable (the conv operator norm as ``<u, Conv_W v>`` with the exact top
  singular vectors, whose derivative is ``u v^T`` as for any simple singular value).
- ``power``: the authors' estimator: ``n_power_iterations`` steps of power iteration with
  persistent vectors, updated only in training mode; sigma is ``u^T W v`` with the stored
  vectors. At construction one step is taken from a seeded random vector, so before training the
  estimate undershoots, as in the authors' code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .registry import DIVISORS, MODES  # MODES is also re-exported from here
from .registry import SCHEMES as _SCHEMES
from .sigma import conv_adjoint, conv_forward, conv_operator_norm, sigma_R, sigma_R2

#: scheme name -> the divisor its SpectralScaling uses (from the scheme registry)
SN_KINDS = {n: s.divisor for n, s in _SCHEMES.items() if s.spectral}


@dataclass(frozen=True)
class ConvGeometry:
    """What the strict SN needs to know about a conv layer's actual linear map."""

    input_shape: tuple[int, int, int]  # (c_in, H, W) of one input
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    padding_mode: str


def _normalize(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm().clamp_min(torch.finfo(t.dtype).tiny)


class SpectralScaling(nn.Module):
    """Parametrization ``W -> scale * W / sigma(W)`` (THEORY §1, SN family).

    Args:
        weight: the raw weight it will parametrize, shape ``(c_out, c_in[, k_h, k_w])``.
        kind: ``sn``, ``bsn`` or ``sn-conv``.
        scale: the constant ``c`` (1 for sn/bsn/sn-conv).
        mode: ``exact`` or ``power``.
        n_power_iterations: power steps per training-mode forward (``power`` mode).
        geometry: required for ``sn-conv`` on conv weights.
        tol: relative tolerance of the Lanczos solve for ``sn-conv`` in ``exact`` mode.
        seed: seeds the initial power-iteration vectors.
    """

    def __init__(self, weight: torch.Tensor, kind: str = "sn", scale: float = 1.0,
                 mode: str = "exact", n_power_iterations: int = 1,
                 geometry: ConvGeometry | None = None, tol: float = 1e-10, seed: int = 0):
        super().__init__()
        if kind not in DIVISORS:
            raise ValueError(f"kind must be one of {', '.join(DIVISORS)}; got {kind!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if kind == "sn-conv" and weight.ndim == 4 and geometry is None:
            raise ValueError("sn-conv on a conv layer needs its input geometry")
        self.kind, self.scale, self.mode = kind, float(scale), mode
        self.n_power_iterations, self.tol, self.seed = int(n_power_iterations), tol, int(seed)
        self.geometry = geometry if weight.ndim == 4 else None
        if mode == "power":
            self._init_vectors(weight.detach())

    # -- power-iteration state ------------------------------------------------------------
    def _operators(self, w: torch.Tensor):
        """(forward, adjoint, input_shape) pairs of the maps whose norms make up sigma."""
        if self.geometry is not None and self.kind == "sn-conv":
            g = self.geometry
            fwd = lambda v, w=w: conv_forward(w, v, g.stride, g.padding, g.dilation, g.padding_mode)  # noqa: E731
            adj = lambda u, w=w: conv_adjoint(w, u, g.input_shape, g.stride, g.padding,  # noqa: E731
                                              g.dilation, g.padding_mode)
            return [(fwd, adj, g.input_shape)]
        mats = [w.reshape(w.shape[0], -1)]
        if self.kind == "bsn" and w.ndim > 2:   # dense: sigma_R2 = sigma_R, BSN == SN (C9a)
            mats.append(w.transpose(0, 1).reshape(w.shape[1], -1))
        return [(lambda v, m=m: m @ v, lambda u, m=m: m.T @ u, (m.shape[1],)) for m in mats]

    def _init_vectors(self, w: torch.Tensor) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        for j, (fwd, adj, shape) in enumerate(self._operators(w)):
            v = torch.randn(shape, generator=gen, dtype=torch.float64).to(w.dtype)
            with torch.no_grad():
                u = _normalize(fwd(_normalize(v)))
                v = _normalize(adj(u))
                u = _normalize(fwd(v))
            self.register_buffer(f"_u{j}", u)
            self.register_buffer(f"_v{j}", v)

    @torch.no_grad()
    def _power_step(self, w: torch.Tensor) -> None:
        for j, (fwd, adj, _) in enumerate(self._operators(w)):
            u, v = getattr(self, f"_u{j}"), getattr(self, f"_v{j}")
            for _ in range(self.n_power_iterations):
                v = _normalize(adj(u))
                u = _normalize(fwd(v))
            getattr(self, f"_u{j}").copy_(u)
            getattr(self, f"_v{j}").copy_(v)

    # -- sigma ----------------------------------------------------------------------------
    def sigma(self, w: torch.Tensor) -> torch.Tensor:
        """The divisor sigma(W) (0-dim, differentiable in ``w``), without power updates."""
        if self.mode == "power":
            # clones: a later training-mode forward updates the buffers in place, which must
            # not invalidate the graph of an earlier forward (D(real), D(fake), one backward)
            vals = [(getattr(self, f"_u{j}").clone() * fwd(getattr(self, f"_v{j}").clone())).sum()
                    for j, (fwd, _, _) in enumerate(self._operators(w))]
            return vals[0] if len(vals) == 1 else (vals[0] + vals[1]) / 2
        if self.kind == "sn" or (self.kind == "bsn" and w.ndim == 2):   # dense BSN == SN
            return sigma_R(w)
        if self.kind == "bsn":
            return (sigma_R(w) + sigma_R2(w)) / 2
        if self.geometry is None:  # sn-conv on a dense layer: the operator norm is sigma_R
            return sigma_R(w)
        g = self.geometry
        op = conv_operator_norm(w.detach(), g.input_shape, g.stride, g.padding, g.dilation,
                                g.padding_mode, tol=self.tol, seed=self.seed)
        return (op.u * conv_forward(w, op.v, g.stride, g.padding, g.dilation,
                                    g.padding_mode)).sum()

    def forward(self, w: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.mode == "power" and self.training and torch.is_grad_enabled():
            self._power_step(w)
        return self.scale * w / self.sigma(w)

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        """``module.weight = X`` sets the raw weight to X (as torch's spectral_norm does)."""
        return w

    def extra_repr(self) -> str:  # noqa: D102
        return (f"kind={self.kind}, scale={self.scale}, mode={self.mode}, "
                f"n_power_iterations={self.n_power_iterations}")


def layer_geometry(module: nn.Conv2d, input_shape: tuple[int, ...]) -> ConvGeometry:
    """The ``ConvGeometry`` of ``module`` applied to one input of shape ``(c_in, H, W)``."""
    from .sigma import conv_padding

    pad = conv_padding(module.padding, module.kernel_size, module.stride, module.dilation,
                       tuple(input_shape[-2:]))
    return ConvGeometry(tuple(int(s) for s in input_shape), tuple(module.stride), tuple(pad),
                        tuple(module.dilation), module.padding_mode)


def record_input_shapes(model: nn.Module, example: torch.Tensor) -> dict[nn.Module, tuple]:
    """Per-sample input shape of every Linear/Conv2d, from one forward of ``example`` (B, ...)."""
    shapes: dict[nn.Module, tuple] = {}
    def hook(mod, args):
        shapes.setdefault(mod, tuple(args[0].shape[1:]))   # returns None: input unchanged

    hooks = [m.register_forward_pre_hook(hook) for m in model.modules()
             if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _layer_seed(seed: int, j: int) -> int:
    """A 32-bit seed for layer ``j`` of a model seeded ``seed`` (any non-negative int)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), j]).generate_state(1)[0])


def apply_spectral(model: nn.Module, scheme: str, example: torch.Tensor, scale: float = 1.0,
                   mode: str = "exact", n_power_iterations: int = 1, tol: float = 1e-10,
                   seed: int = 0) -> nn.Module:
    """Register the ``scheme`` parametrization on every Linear/Conv2d of ``model`` (in place).

    ``example`` is one batch of inputs, used to learn each layer's input size (``sn-conv``).
    ``scale`` is used by ``ssn``/``bssn`` only (the others use 1).
    """
    kind = SN_KINDS[scheme]
    c = _SCHEMES[scheme].c(scale)
    shapes = record_input_shapes(model, example) if kind == "sn-conv" else {}
    for j, m in enumerate(x for x in model.modules() if isinstance(x, (nn.Linear, nn.Conv2d))):
        geom = layer_geometry(m, shapes[m]) if isinstance(m, nn.Conv2d) and kind == "sn-conv" \
            else None
        parametrize.register_parametrization(
            m, "weight", SpectralScaling(m.weight, kind, c, mode, n_power_iterations, geom, tol,
                                         seed=_layer_seed(seed, j)))
    return model


def scaling_of(module: nn.Module) -> SpectralScaling | None:
    """The ``SpectralScaling`` on ``module.weight``, if any."""
    params = getattr(module, "parametrizations", None)
    if params is None or "weight" not in params:
        return None
    for p in params["weight"]:
        if isinstance(p, SpectralScaling):
            return p
    return None


def one_step_sigma(w: torch.Tensor, seed: int = 0) -> float:
    """The authors' estimate at initialisation: one power step from a seeded random vector.

    Reported beside the exact sigma_R (THEORY §1); undershoots it.
    """
    m = w.detach().reshape(w.shape[0], -1).to(torch.float64)
    u0 = torch.randn(m.shape[0], generator=torch.Generator().manual_seed(seed),
                     dtype=torch.float64)
    v = F.normalize(m.T @ u0, dim=0)
    return float((m @ v).norm())
