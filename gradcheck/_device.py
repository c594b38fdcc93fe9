"""``--device`` names to torch devices, for every command (run, train, study, fid).

Its own module, below ``build`` and ``train``: both use it, and ``build`` imports ``train``'s data
helpers, so the function cannot live in either without an import cycle.
"""
from __future__ import annotations

import torch

from .spec import DEVICES, SpecError


def resolve_device(name: str) -> torch.device:
    """'cpu' | 'cuda' | 'auto' (cuda if available else cpu); SpecError (one line) for any other
    name or for cuda without a CUDA build."""
    if name not in DEVICES:
        raise SpecError(f"argument --device: must be one of {', '.join(DEVICES)}; got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError("argument --device: cuda is not available with this torch build; use "
                        "cpu or auto")
    return torch.device(name)


__all__ = ["resolve_device"]
