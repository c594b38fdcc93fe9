"""One thread for torch and for the BLAS under scipy while ARPACK drives many small products.

ARPACK calls back into torch for every matvec; torch's OpenMP pool and OpenBLAS's pool then
spin against each other and a probe runs 5-100x slower on a busy 2-core machine.
"""
from __future__ import annotations

import contextlib

import torch
from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def single_threaded():
    """Limit torch and the BLAS libraries to one thread inside the block."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1, "blas"):
            yield
    finally:
        torch.set_num_threads(threads)
