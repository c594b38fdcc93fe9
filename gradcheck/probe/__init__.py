"""The probe engine: layers, gradient norms, weight norms, Jacobian spectra."""
from .engine import ProbeOptions, ProbeResult, probe
from .gradients import GradientNorms, gradient_norms, per_sample_weight_grads
from .jacobian import JacobianOptions, Spectrum, jacobian_spectra
from .layers import LayerInfo, ProbeError, Tape, record
from .norms import LayerNorms, layer_norms

__all__ = ["ProbeOptions", "ProbeResult", "probe", "GradientNorms", "gradient_norms",
           "per_sample_weight_grads", "JacobianOptions", "Spectrum", "jacobian_spectra",
           "LayerInfo", "ProbeError", "Tape", "record", "LayerNorms", "layer_norms"]
