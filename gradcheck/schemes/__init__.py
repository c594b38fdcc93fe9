"""Weight scalings (THEORY §1) and the three spectral norms of a layer.

Names are loaded lazily: the registry (:mod:`gradcheck.schemes.registry`) and the scheme-name
tuples need no torch, so a bad flag is answered before torch is imported.
"""
from __future__ import annotations

import importlib

from .registry import INIT_SCHEMES, MODES, SCALED_SCHEMES, SPECTRAL_SCHEMES
from .registry import NAMES as SCHEMES

_LAZY = {n: ".init" for n in ("draw_weights", "fan_in", "fan_out", "init_std", "kaiming_gain",
                              "parametric_layers")}
_LAZY.update({n: ".spectral" for n in ("ConvGeometry", "SpectralScaling", "apply_spectral",
                                       "layer_geometry", "one_step_sigma",
                                       "record_input_shapes", "scaling_of")})


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'gradcheck.schemes' has no attribute {name!r}")


def apply_scheme(model, scheme: str, example, seed: int = 0, scale: float = 1.0,
                 activation: str = "relu", slope: float = 0.2, mode: str = "exact",
                 n_power_iterations: int = 1):
    """Draw ``model``'s weights for ``scheme`` and, for the SN family, add its parametrization.

    Args:
        model: any module whose parametric layers are Linear/Conv2d.
        scheme: one of :data:`SCHEMES`.
        example: a batch of inputs (used by ``sn-conv`` to learn each layer's input size).
        seed: seeds the weight draw (same seed -> same raw directions for every scheme).
        scale: ``c`` for ssn/bssn.
        activation, slope: pick the Kaiming gain.
        mode, n_power_iterations: SN family only, see :class:`SpectralScaling`.

    Returns:
        ``model`` (modified in place).
    """
    from .init import draw_weights
    from .spectral import apply_spectral

    draw_weights(model, scheme, seed, activation, slope)
    if scheme in SPECTRAL_SCHEMES:
        apply_spectral(model, scheme, example, scale, mode, n_power_iterations, seed=seed)
    return model


__all__ = ["INIT_SCHEMES", "SPECTRAL_SCHEMES", "SCALED_SCHEMES", "SCHEMES", "MODES",
           "ConvGeometry", "SpectralScaling", "apply_scheme", "apply_spectral", "draw_weights",
           "fan_in", "fan_out", "init_std", "kaiming_gain", "layer_geometry", "one_step_sigma",
           "parametric_layers", "record_input_shapes", "scaling_of"]
