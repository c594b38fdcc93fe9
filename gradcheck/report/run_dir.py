"""Write one run directory: spec.json, layers.csv, checks.csv, spectra.npz, summary.json, plots."""
from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy
import torch

from .. import __version__
from ..claims._base import verdict_line, violated_claims
from .io import staged_dir, write_csv, write_json, write_npz
from .tables import claim_summary, gradient_control_table, vanishing_rates

if TYPE_CHECKING:                      # the pipeline produces what the report writes
    from ..pipeline import RunOutput


def summarize(result: RunOutput) -> dict:
    """The headline: per-claim verdicts and worst ratios, vanishing rates, versions."""
    claims = claim_summary(result.checks)
    violated = list(violated_claims(result.checks))
    overflow = sum(e.get("overflow", 0) for e in claims.values())
    verdict = verdict_line(violated)
    if overflow:
        verdict += (f" ({overflow} rows out of {result.spec.dtype} range: explosion or "
                    "vanishing)")
    return dict(
        verdict=verdict, violated=violated, overflow_rows=int(overflow), claims=claims,
        vanishing_rate=vanishing_rates(result.layers),
        gradient_control=gradient_control_table(result.layers),
        subject=result.subject, notes=list(result.notes),
        n_layers=int(result.layers.layer.max() + 1) if len(result.layers) else 0,
        seeds=list(result.spec.seeds),
        versions=dict(gradcheck=__version__, torch=torch.__version__, numpy=np.__version__,
                      scipy=scipy.__version__, python=platform.python_version()))


def write_run(result: RunOutput, out: Path, overwrite: bool = False,
              plots: bool = True) -> dict:
    """Write the run directory atomically; return the summary dict."""
    summary = summarize(result)
    title = result.subject or f"{result.spec.arch} L={result.spec.n_layers}, {result.spec.init}"
    with staged_dir(Path(out), overwrite=overwrite, kind="run") as tmp:
        (tmp / "spec.json").write_text(result.spec.to_json() + "\n")
        write_csv(result.layers, tmp / "layers.csv")
        write_csv(result.checks, tmp / "checks.csv")
        write_npz(result.spectra, tmp / "spectra.npz")
        write_json(summary, tmp / "summary.json")
        write_json(dict(seconds=round(result.seconds, 3)), tmp / "timings.json")
        if plots:
            from .plots import plot_bounds, plot_gradients, plot_spectra

            plot_gradients(result.layers, title, tmp / "gradients.png")
            plot_spectra(result.layers, title, tmp / "spectra.png")
            plot_bounds(result.checks, title, tmp / "bounds.png")
    return summary
