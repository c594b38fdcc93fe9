"""gradcheck: measure why spectral normalization stabilizes GAN discriminators.

The public API is loaded lazily (``import gradcheck`` imports neither torch nor matplotlib
until a name is used).
"""
from __future__ import annotations

import importlib

from ._threads import configure_openmp as _configure_openmp

_configure_openmp()     # OMP_WAIT_POLICY=PASSIVE if torch is not loaded yet (gradcheck._threads)

__version__ = "0.1.0"

_EXPORTS = {
    # building models and scalings (THEORY §0-§1)
    "mlp": "gradcheck.models", "conv_stack": "gradcheck.models", "sngan": "gradcheck.models",
    "resnet": "gradcheck.models",
    "apply_scheme": "gradcheck.schemes", "SCHEMES": "gradcheck.schemes",
    # measuring
    "probe": "gradcheck.probe", "ProbeOptions": "gradcheck.probe",
    "ProbeResult": "gradcheck.probe", "ProbeError": "gradcheck.probe",
    # checking against theory
    "RunSpec": "gradcheck.spec", "run": "gradcheck.pipeline", "check": "gradcheck.pipeline",
    "Checks": "gradcheck.pipeline", "CLAIMS": "gradcheck.claims", "REGISTRY": "gradcheck.claims",
    "ModelFacts": "gradcheck.probe.facts",
    # BSN / BSSN for users
    "bidirectional_spectral_norm": "gradcheck.nn", "scaled_spectral_norm": "gradcheck.nn",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gradcheck' has no attribute {name!r}")
