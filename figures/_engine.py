"""The one place where the figure scripts call the gradcheck engine.

:func:`probe_tables` is ``gradcheck.pipeline.run_seed`` without the claims that need the model
itself (C2a, C3, C4, C11-H) and C6a's twin, which the figures do not draw and which dominate the
cost of deep nets: the same per-layer rows (``layers.csv``) and check rows (``checks.csv``) that
``gradcheck run`` writes. :func:`trained_run` and :func:`tracked` are ``gradcheck train``
and ``gradcheck track`` with a cache keyed by the training spec.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gradcheck.claims import CHECK_COLUMNS
from gradcheck.pipeline import run_seed
from gradcheck.probe import ProbeResult
from gradcheck.spec import RunSpec, TrainSpec, validate, validate_train


@dataclass(frozen=True)
class Probed:
    """One seed of one spec: the layers table, the C1/C1a/C7/C8 checks, the raw result."""

    layers: pd.DataFrame
    checks: pd.DataFrame
    result: ProbeResult


def probe_tables(spec: RunSpec, seed: int, spectra: bool = False) -> Probed:
    """Probe ``spec``'s model for ``seed``; ``spectra`` adds the Jacobian singular values."""
    out = run_seed(validate(spec), seed, model_level=False, spectra=spectra)
    return Probed(pd.DataFrame(out.layers), pd.DataFrame(out.checks, columns=CHECK_COLUMNS),
                  out.result)


def _run_name(spec: TrainSpec) -> str:
    return (f"{spec.scheme}-c{spec.scale:g}-{spec.arch}{spec.depth}-n{spec.steps}"
            f"-lr{spec.lr:g}-s{spec.seed}")


def _cached(spec: TrainSpec, root: Path) -> Path | None:
    """The run directory of ``spec`` under ``root/runs`` if it holds a finished run of it."""
    run_dir = Path(root) / "runs" / _run_name(spec)
    done = run_dir / "metrics.csv"
    if not (done.exists() and done.stat().st_size and (run_dir / "spec.json").exists()):
        return None
    same = json.loads((run_dir / "spec.json").read_text()) == json.loads(
        json.dumps(spec.to_dict()))
    return run_dir if same and pd.read_csv(done).step.max() == spec.steps else None


def trained_run(spec: TrainSpec, root: Path, say=lambda m: None) -> Path:
    """Train ``spec`` into ``root/runs/<name>`` unless a finished run of that spec is there."""
    from gradcheck.train.gan import train

    spec = validate_train(spec)
    hit = _cached(spec, root)
    if hit is not None:
        say(f"reusing {hit.name}")
        return hit
    run_dir = Path(root) / "runs" / _run_name(spec)
    if run_dir.exists():
        shutil.rmtree(run_dir)          # our own cache entry, from another spec or unfinished
    say(f"training {run_dir.name}")
    train(spec, run_dir, resume=False, progress=False)
    return run_dir


def _train_one(args) -> str:
    spec, root = args
    return str(trained_run(spec, root))


def trained_runs(specs: list[TrainSpec], root: Path, say=lambda m: None,
                 workers: int = 2) -> list[Path]:
    """:func:`trained_run` for each spec, ``workers`` at a time in fresh processes (each
    MLP training is single-threaded, so two of them use both cores of a 2-core machine)."""
    specs = [validate_train(s) for s in specs]
    todo = [s for s in specs if _cached(s, root) is None]
    if len(todo) < len(specs):
        say(f"reusing {len(specs) - len(todo)} finished training run(s)")
    if workers <= 1 or len(todo) <= 1:
        for s in todo:
            trained_run(s, root, say)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        say(f"training {len(todo)} GANs, {workers} at a time: "
            + ", ".join(_run_name(s) for s in todo))
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            list(pool.map(_train_one, [(s, Path(root)) for s in todo]))
    return [Path(root) / "runs" / _run_name(s) for s in specs]


def tracked(run_dir: Path, batch: int, say=lambda m: None) -> pd.DataFrame:
    """``gradcheck track``'s per-checkpoint layers table of ``run_dir`` (computed once)."""
    from gradcheck.track import track

    table = Path(run_dir) / "track" / "layers.csv"
    metrics = Path(run_dir) / "metrics.csv"
    if not (table.exists() and table.stat().st_mtime >= metrics.stat().st_mtime):
        say(f"probing the checkpoints of {Path(run_dir).name}")
        track(Path(run_dir), batch=batch, spectra_inputs=0, overwrite=True)   # our own cache
    return pd.read_csv(table)


def geometric_mean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.mean(np.log(v)))) if len(v) else float("nan")
