"""Loaded by pytest before any test module or tests/conftest.py imports torch."""
import os

# passive OpenMP waiting: the suite on a loaded 2-core machine (see gradcheck/_threads.py)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
