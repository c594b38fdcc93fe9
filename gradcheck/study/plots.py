"""``study.png``: quality and the layer-0 gradient over training, per scheme (mean over seeds,
min-max band). pyplot-free (a ``matplotlib.figure.Figure`` on the Agg canvas), imported only
when drawn: ``import gradcheck`` stays matplotlib-free."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .summary import QUALITY


def _band(frames: list[pd.DataFrame], col: str) -> pd.DataFrame | None:
    """Per step over the seeds' metrics: mean, min, max of ``col`` (finite values only)."""
    cols = [f.set_index("step")[col].astype(float).rename(i)
            for i, f in enumerate(frames) if col in f and len(f)]
    if not cols:
        return None
    wide = pd.concat(cols, axis=1).sort_index()
    wide = wide.where(np.isfinite(wide))
    if not wide.notna().any().any():
        return None
    return pd.DataFrame({"mean": wide.mean(axis=1), "lo": wide.min(axis=1),
                         "hi": wide.max(axis=1)})


def plot_study(groups: list[tuple[str, list[pd.DataFrame]]], path: Path, title: str) -> bool:
    """One panel per quality metric present, plus ``grad_0`` (log y); one line per group
    ``(label, [metrics frame per seed])``. False (nothing drawn) without any metrics rows."""
    from matplotlib.figure import Figure

    present = {c for _, frames in groups for f in frames for c in f.columns}
    panels = [m for m in QUALITY if m in present] + (["grad_0"] if "grad_0" in present else [])
    if not panels or not any(len(f) for _, frames in groups for f in frames):
        return False
    fig = Figure(figsize=(4.6 * len(panels), 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    fig.subplots_adjust(left=0.22 / len(panels) ** 0.5, right=0.98, bottom=0.13, top=0.84,
                        wspace=0.32)
    colors = [f"C{i}" for i in range(10)]
    for ax, col in zip(axes, panels):
        lo, hi = np.inf, -np.inf
        for i, (label, frames) in enumerate(groups):
            b = _band(frames, col)
            if b is None:
                continue
            pos = b[["lo", "hi"]].to_numpy(float)
            pos = pos[np.isfinite(pos) & (pos > 0)]
            if len(pos):
                lo, hi = min(lo, pos.min()), max(hi, pos.max())
            c = colors[i % len(colors)]
            ax.plot(b.index, b["mean"], "o-", ms=2.5, lw=1.2, color=c,
                    label=f"{label} (n={len(frames)})")
            ax.fill_between(b.index, b["lo"], b["hi"], color=c, alpha=0.18, lw=0)
        ax.set_xlabel("training step")
        if col == "grad_0":
            ax.set_yscale("log")
            if np.isfinite(lo) and hi > lo:
                _log_ticks(ax, lo / 1.15, hi * 1.15)
            ax.set_ylabel("||dD/dW_0||_F of the raw weight (D step)")
            ax.set_title("C10 (c): layer-0 gradient norm", fontsize=9)
        else:
            better = "higher" if QUALITY[col] else "lower"
            ax.set_ylabel(f"{col} ({better} is better)")
            ax.set_title(f"C10 (e): {col}", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(f"gradcheck study — {title}; mean over seeds, band: min..max", fontsize=10)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return True


def _log_ticks(ax, lo: float, hi: float) -> None:
    """Limits and plain tick labels (1, 2, 5 per decade below 3 decades); no minor ticks and
    no mathtext labels (each costs ~0.4 s to lay out, see gradcheck.report.plots)."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullLocator

    ax.set_ylim(lo, hi)
    few = np.log10(hi / lo) < 3
    ax.yaxis.set_major_locator(LogLocator(10, subs=(1, 2, 5) if few else (1,)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g" if few else "%.0e"))
    ax.yaxis.set_minor_locator(NullLocator())


__all__ = ["plot_study"]
