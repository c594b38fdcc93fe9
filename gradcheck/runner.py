"""Compatibility name for :mod:`gradcheck.pipeline` (``gradcheck.runner.run`` still works)."""
from .pipeline import RunOutput, SeedOutput, layer_rows, probe_options, run, run_seed

__all__ = ["RunOutput", "SeedOutput", "layer_rows", "probe_options", "run", "run_seed"]
