"""Figures of ``compare`` and ``sweep`` (PNG). matplotlib is imported inside the functions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .tables import bound_rows


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_compare(layers: pd.DataFrame, checks: pd.DataFrame, columns: list[str],
                 labels: dict[str, str], title: str, path: Path) -> None:
    """|dD/dW_l| vs layer per scheme (C7 predictions dashed) and the C1 / C11 bound ratios."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    b = bound_rows(checks)
    for i, c in enumerate(columns):
        col = colors[i % len(colors)]
        L = layers[layers.init == c].groupby("layer")[["wgrad_rms", "wgrad_pred"]].mean()
        axes[0].plot(L.index, L.wgrad_rms, "o-", ms=3, color=col, label=labels[c])
        if np.isfinite(L.wgrad_pred).any():
            axes[0].plot(L.index, L.wgrad_pred, "--", color=col, lw=1)
        B = b[b.init == c].groupby("layer").ratio.max()
        if len(B):
            axes[1].plot(B.index, B.values, "o-", ms=3, color=col, label=labels[c])
    axes[0].plot([], [], "k--", lw=1, label="C7 prediction (dashed)")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("layer index l (0 = input layer)")
    axes[0].set_ylabel("||dD/dW_l||_F (rms over inputs)")
    axes[0].set_title("gradient norms vs layer (THEORY C7)", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].axhline(1.0, color="k", ls="--", lw=1, label="bound (ratio 1)")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("layer index t")
    axes[1].set_ylabel("||dD/dW_t||_F / bound, worst input")
    axes[1].set_title("bound tightness (C1; C11 where C1 does not apply)", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"gradcheck compare — {title}")
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _lines(summary: pd.DataFrame, x: str, axes: list[str]):
    """Groups of cells that differ only in ``x`` and the seed: (label, frame sorted by x)."""
    others = [a for a in axes if a not in (x, "seed") and summary[a].nunique() > 1]
    if not others:
        yield "", summary
        return
    for key, df in summary.groupby(others, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        yield ", ".join(f"{a}={v}" for a, v in zip(others, key)), df


def plot_sweep(summary: pd.DataFrame, axes: list[str], path: Path) -> bool:
    """The sweep's summary figure; False (nothing drawn) without a depth or width axis.

    Panels: layer-0 ||dD/dW|| vs depth per line (mean over seeds, min-max band over seeds, C7
    prediction dashed); worst C1 and C11 ratio vs depth; measured/predicted (median over
    layers) vs width.
    """
    panels = (["grad", "bound"] if "depth" in axes else []) + (["width"] if "width" in axes
                                                                 else [])
    if not panels:
        return False
    plt = _plt()
    fig, axs = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5),
                            constrained_layout=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axs[0], panels):
        x = "width" if panel == "width" else "depth"
        for i, (label, df) in enumerate(_lines(summary, x, axes)):
            col = colors[i % len(colors)]
            if panel == "grad":
                g = df.groupby(x).agg(m=("wgrad0_rms", "mean"), lo=("wgrad0_rms", "min"),
                                      hi=("wgrad0_rms", "max"), p=("wgrad0_pred", "mean"))
                ax.plot(g.index, g.m, "o-", ms=3, color=col, label=label or "measured")
                ax.fill_between(g.index, g.lo, g.hi, color=col, alpha=0.2, lw=0)
                ax.plot(g.index, g.p, "--", color=col, lw=1)
            elif panel == "bound":
                g = df.groupby(x).agg(c1=("c1_worst", "max"), c11=("c11_worst", "max"))
                if np.isfinite(g.c1).any():
                    ax.plot(g.index, g.c1, "o-", ms=3, color=col, label=f"{label} C1".strip())
                same = np.allclose(g.c1, g.c11, rtol=1e-9, equal_nan=True)
                if np.isfinite(g.c11).any() and not same:      # on a chain C11 equals C1
                    ax.plot(g.index, g.c11, "s:", ms=3, color=col, label=f"{label} C11".strip())
            else:
                g = df.groupby(x).agg(m=("c7_ratio_median", "mean"),
                                      lo=("c7_ratio_median", "min"),
                                      hi=("c7_ratio_median", "max"))
                ax.plot(g.index, g.m, "o-", ms=3, color=col, label=label or "measured")
                ax.fill_between(g.index, g.lo, g.hi, color=col, alpha=0.2, lw=0)
        if panel == "grad":
            ax.plot([], [], "k--", lw=1, label="C7 prediction (dashed)")
            ax.set_yscale("log")
            ax.set_ylabel("layer-0 ||dD/dW_0||_F (rms over inputs)")
            ax.set_title("first-layer gradient vs depth (band: spread over seeds)", fontsize=9)
        elif panel == "bound":
            ax.axhline(1.0, color="k", ls="--", lw=1)
            ax.set_yscale("log")
            ax.set_ylabel("worst ||dD/dW_t|| / bound over layers and seeds")
            ax.set_title("bound tightness vs depth (C1 solid; C11 dotted where it differs)",
                         fontsize=9)
        else:
            ax.axhline(1.0, color="k", ls="--", lw=1)
            ax.set_xscale("log", base=2)
            ax.set_ylabel("measured / C7-predicted ||dD/dW|| (median over layers)")
            ax.set_title("mean-field prediction vs width", fontsize=9)
        ax.set_xlabel(x)
        ax.legend(fontsize=6)
    fig.suptitle("gradcheck sweep")
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return True


__all__ = ["plot_compare", "plot_sweep"]
