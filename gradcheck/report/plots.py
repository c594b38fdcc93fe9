"""Run plots (PNG).

matplotlib is imported inside the functions: ``import gradcheck`` stays light.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _subplots(ncols: int, figsize: tuple[float, float], left: float = 0.13):
    """A pyplot-free ``Figure`` (Agg canvas) with ``ncols`` axes and fixed margins.

    Without pyplot (0.3 s less import) and without constrained layout (its tight-bbox pass took
    ~0.35 s per figure on log axes); the margins fit the labels these plots draw.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    axes = fig.subplots(1, ncols)
    fig.subplots_adjust(left=left / ncols ** 0.5, right=0.98, bottom=0.13, top=0.86,
                        wspace=0.3)
    return fig, axes


def _save(fig, path) -> None:
    import math

    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullLocator

    for ax in fig.axes:     # '1e-02' labels: the default 10^x ones start mathtext (~0.4 s);
        if ax.get_yscale() == "log":      # no minor ticks (each tick is ~40 Python objects)
            lo, hi = ax.get_ylim()
            short = lo > 0 and math.log10(hi / lo) < 1.5
            ax.yaxis.set_major_locator(LogLocator(10, subs=(1, 2, 5) if short else (1,)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g" if short else "%.0e"))
            ax.yaxis.set_minor_locator(NullLocator())
    fig.savefig(path, dpi=110, metadata={"Software": None})


def plot_gradients(layers: pd.DataFrame, title: str, path: Path) -> None:
    """||dD/dW_l|| and ||dD/dh_l|| (rms over inputs) vs layer with the C7 predictions dashed."""
    fig, axes = _subplots(2, (10, 4))
    for ax, meas, pred, lab in ((axes[0], "wgrad_rms", "wgrad_pred", "||dD/dW_l||_F"),
                                (axes[1], "agrad_rms", "agrad_pred", "||dD/dh_l||")):
        for seed, df in layers.groupby("seed"):
            ax.plot(df.layer, df[meas], "o-", ms=3, label=f"measured, seed {seed}")
        first = layers[layers.seed == layers.seed.min()]
        ax.plot(first.layer, first[pred], "k--", label="C7 prediction")
        ax.set_yscale("log")
        ax.set_xlabel("layer index l (0 = input layer)")
        ax.set_ylabel(f"{lab} (norm, rms over inputs)")
        ax.legend(fontsize=7)
    fig.suptitle(f"THEORY C7: gradient norms vs depth — {title}")
    _save(fig, path)


def plot_spectra(layers: pd.DataFrame, title: str, path: Path) -> None:
    """Cumulative-Jacobian singular values (max, min, rms) from h_l to the penultimate layer."""
    fig, ax = _subplots(1, (6, 4), left=0.14)
    df = layers[layers.seed == layers.seed.min()]
    df = df[np.isfinite(df.jac_cum_max)]
    if len(df):
        ax.plot(df.layer, df.jac_cum_max, "o-", label="largest")
        ax.plot(df.layer, np.sqrt(df.jac_cum_msq), "s-", label="rms (sqrt of mean sq.)")
        mn = df.jac_cum_min.where(df.jac_cum_min > 0)
        ax.plot(df.layer, mn, "v-", label="smallest above numerical zero")
        ax.set_yscale("log")
    ax.set_xlabel("layer index l (Jacobian d h_{L-1} / d h_l)")
    ax.set_ylabel("singular value (norm)")
    ax.set_title(f"Jacobian spectra to the penultimate features — {title}", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_bounds(checks: pd.DataFrame, title: str, path: Path) -> None:
    """C1 ratio lhs/rhs per layer (must stay <= 1), log scale."""
    fig, ax = _subplots(1, (6, 4), left=0.14)
    for claim, marker in (("C1", "o"), ("C1-SN", "s")):
        df = checks[(checks.claim == claim) & checks.ratio.notna()]
        if len(df):
            ax.plot(df.layer, df.ratio, marker, ms=4, label=f"{claim}: worst-input ratio")
    ax.axhline(1.0, color="k", ls="--", lw=1, label="bound (ratio 1)")
    ax.set_yscale("log")
    ax.set_xlabel("layer index t")
    ax.set_ylabel("||dD/dW_t||_F / bound (ratio)")
    ax.set_title(f"THEORY C1: gradient bound — {title}", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_training(L_df: pd.DataFrame, scheme: str, path: Path) -> None:
    """THEORY C10 (a), (c), (d) over training checkpoints, one line per layer."""
    fig, axes = _subplots(3, (14, 4))
    for ax, col, lab in ((axes[0], "raw_sigma_R", "raw sigma_R(W_l) (norm)"),
                         (axes[1], "wgrad_rms", "||dD/dW_l||_F rms (norm)"),
                         (axes[2], "lecun_ratio", "||W_bar_l||_F / sqrt(c_out)")):
        for layer, df in L_df.groupby("layer"):
            ax.plot(df.step, df[col], "o-", ms=3, label=f"layer {layer}")
        ax.set_xlabel("training step")
        ax.set_ylabel(lab)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes[0].set_title("C10a raw spectral norms")
    axes[1].set_title("C10c gradient norms")
    axes[2].set_title("C10d effective LeCun ratio")
    fig.suptitle(f"THEORY C10 over training — D scheme {scheme}")
    _save(fig, path)
