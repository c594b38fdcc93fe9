"""Weight scalings (THEORY §1) and the three spectral norms of a layer."""
from .init import (INIT_SCHEMES, SCALED_SCHEMES, SCHEMES, SPECTRAL_SCHEMES, draw_weights, fan_in,
                   fan_out, init_std, kaiming_gain, parametric_layers)
from .spectral import (MODES, ConvGeometry, SpectralScaling, apply_spectral, layer_geometry,
                       one_step_sigma, record_input_shapes, scaling_of)


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
    draw_weights(model, scheme, seed, activation, slope)
    if scheme in SPECTRAL_SCHEMES:
        apply_spectral(model, scheme, example, scale, mode, n_power_iterations, seed=seed)
    return model


__all__ = ["INIT_SCHEMES", "SPECTRAL_SCHEMES", "SCALED_SCHEMES", "SCHEMES", "MODES",
           "ConvGeometry", "SpectralScaling", "apply_scheme", "apply_spectral", "draw_weights",
           "fan_in", "fan_out", "init_std", "kaiming_gain", "layer_geometry", "one_step_sigma",
           "parametric_layers", "record_input_shapes", "scaling_of"]
