"""The architecture registry lives in :mod:`gradcheck.archs` (torch-free); this name stays."""
from ..archs import ARCHS, Arch

__all__ = ["ARCHS", "Arch"]
