"""Numeric checks of THEORY's claims: one module per claim, ``python -m proofs_numeric``."""
from ._base import Result, identity, inequality, prediction

__all__ = ["Result", "identity", "inequality", "prediction"]
