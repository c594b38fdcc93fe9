"""Thread policy: what keeps the probe fast on a loaded machine.

Two failure modes were measured on a 2-core machine with two other busy processes (the
depth-20 quick-start probe, ``python`` in-process):

- OpenMP's default *active* wait: idle torch threads spin for the next parallel region and
  compete with the threads doing work and with the other processes — 11.2 s with 2 threads,
  2.8 s with ``OMP_WAIT_POLICY=PASSIVE`` and 2 threads, 2.5 s with 1 thread. The console
  script (and ``import gradcheck`` before torch) therefore sets ``OMP_WAIT_POLICY=PASSIVE``
  unless the user chose a policy; it must be set before torch loads its OpenMP runtime.
- ARPACK calls back into torch for every matvec; torch's OpenMP pool and OpenBLAS's pool then
  spin against each other: :func:`single_threaded` limits both inside such loops.

``--threads N|auto`` (:func:`set_threads`) sets torch's intra-op threads and the BLAS pools;
``auto`` is the number of cores this process may run on.
"""
from __future__ import annotations

import contextlib
import os
import sys


def configure_openmp() -> None:
    """Passive OpenMP waiting unless the user chose (no effect once torch is imported)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def available_cores() -> int:
    """Cores this process may run on (affinity mask; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse_threads(text: str) -> int:
    """``'auto'`` -> :func:`available_cores`; a positive int otherwise (ValueError if not)."""
    if str(text).strip().lower() == "auto":
        return available_cores()
    n = int(text)
    if n < 1:
        raise ValueError(f"--threads must be >= 1 or auto, got {text!r}")
    return n


parse_threads.__name__ = "threads"


def set_threads(n: int) -> None:
    """Use ``n`` threads in torch's intra-op pool and in the BLAS libraries (process-wide)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n)


@contextlib.contextmanager
def limited_threads(n: int, user_api: str | None = None):
    """torch and the BLAS (``user_api=None``: every threadpool threadpoolctl knows) at ``n``
    threads inside the block, torch's count restored after."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(int(n), user_api):
            yield
    finally:
        torch.set_num_threads(threads)


def single_threaded():
    """Limit torch and the BLAS libraries to one thread inside the block."""
    return limited_threads(1, "blas")
