"""Where cells run: this process, local worker processes, or an existing Dask cluster.

Every backend ships the same payload (a dict: the resolved spec, the seed, options; never
tensors) to the same worker function (:func:`gradcheck.sweep.cells.compute_cell` for sweeps,
:func:`gradcheck.study.cells.compute_study_cell` for training studies), and hands each
returned result to ``on_result`` in this process as it arrives; the client alone writes the
cell files (workers need no shared filesystem). Results are bit-identical across backends
because each cell runs at the same fixed thread count (see :mod:`.cells`).

* ``serial``: in this process, one cell after another.
* ``local``: ``N`` spawned worker processes (``multiprocessing``, one cell per task); each
  worker ignores SIGINT (the client handles Ctrl-C and terminates them) and pins torch and the
  BLAS to the cell's thread count.
* ``dask``: ``distributed.Client(ADDRESS)`` (``tcp://host:port`` or a scheduler JSON file);
  dask is imported only here, and only when ``--dask`` is given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._threads import available_cores
from ..spec import SpecError

cores = available_cores     # CPU cores this process may run on


@dataclass
class Backend:
    """How to run cells: ``kind`` serial | local | dask."""

    kind: str = "serial"
    workers: int = 1
    address: str | None = None
    client: object = None                 # a connected distributed.Client (dask)

    def describe(self) -> str:
        if self.kind == "local":
            return f"{self.workers} local worker processes"
        if self.kind == "dask":
            return f"Dask cluster {self.address}"
        return "this process (serial)"

    def run(self, payloads: list[dict], on_result: Callable[[dict], None],
            worker: Callable[[dict], dict] | None = None) -> None:
        """Compute every payload with ``worker`` (default :func:`.cells.compute_cell`; a
        module-level function, so that spawned processes and Dask can pickle it); call
        ``on_result(result)`` in this process per cell."""
        if not payloads:
            return
        if worker is None:
            from .cells import compute_cell as worker
        if self.kind == "dask":
            _run_dask(self.client, payloads, on_result, worker)
        elif self.kind == "local" and self.workers > 1 and len(payloads) > 1:
            _run_local(min(self.workers, len(payloads)), payloads, on_result, worker)
        else:
            for p in payloads:
                on_result(worker(p))

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection is no error
                pass
            self.client = None


def _init_worker(threads: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the client handles Ctrl-C
    from .._threads import set_threads

    set_threads(int(threads))


def _run_local(n: int, payloads: list[dict], on_result, worker) -> None:
    import multiprocessing as mp

    threads = payloads[0].get("threads", 1)
    pool = mp.get_context("spawn").Pool(n, initializer=_init_worker, initargs=(threads,))
    try:
        for res in pool.imap_unordered(worker, payloads, chunksize=1):
            on_result(res)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _run_dask(client, payloads: list[dict], on_result, worker) -> None:
    from distributed import as_completed

    futures = client.map(worker, payloads, pure=False)
    try:
        with client.as_current():
            for _, res in as_completed(futures, with_results=True):
                on_result(res)
    except BaseException:
        try:
            client.cancel(futures)
        except Exception:  # noqa: BLE001
            pass
        raise


def connect_dask(address: str, timeout: float) -> object:
    """A ``distributed.Client`` for ``address``; SpecError (one line) if dask is not installed
    or the scheduler cannot be reached within ``timeout`` seconds."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SpecError("argument --dask: needs dask.distributed, which is not installed "
                        "(pip install 'gradcheck[dask]')") from None
    from distributed import Client

    kw: dict = dict(timeout=f"{float(timeout)}s", set_as_default=False)
    if address.endswith(".json") or Path(address).is_file():
        if not Path(address).is_file():
            raise SpecError(f"argument --dask: scheduler file {address} does not exist")
        kw["scheduler_file"] = address
    elif re.fullmatch(r"([a-z][a-z0-9+]*://)?[\w.\-\[\]:]+:\d+", address):
        kw["address"] = address
    else:
        raise SpecError(f"argument --dask: must be a scheduler address like tcp://host:8786 or "
                        f"a scheduler JSON file; got {address!r}")
    import logging

    quiet = [logging.getLogger(n) for n in ("distributed", "distributed.client",
                                             "distributed.comm", "distributed.core")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)
    try:
        return Client(**kw)
    except Exception as e:  # noqa: BLE001 - refused, timed out, bad file: all the user's input
        msg = " ".join(str(e).split())[:200] or type(e).__name__
        raise SpecError(f"argument --dask: cannot reach the Dask scheduler at {address} within "
                        f"{float(timeout):g} s: {msg}") from None
    finally:
        for lg, lv in zip(quiet, levels):
            lg.setLevel(lv)


__all__ = ["Backend", "connect_dask", "cores"]
