"""F6 (THEORY C10c): per-layer gradient norms over GAN training, and toy sample quality.

The runs of F5 (ring-of-8 toy GAN, MLP D; unnormalised LeCun and Kaiming, SN, BSN). Top row:
the probe engine on every checkpoint (``gradcheck track``): the rms over real-data inputs of
the per-input ``||dD/dW_l||_F`` (w.r.t. the weight D uses) for each layer. Bottom row, from the
trainer's ``metrics.csv`` at every logged step: modes covered (of 8) and the high-quality share
of 1000 generated samples (within 3 std of a mode), the mean input gradient ``||dD/dx||`` on
real data, and the D hinge loss.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._common import SCHEME_COLOR, figure_main, plt, save, say, size_of, write_table
from ._engine import tracked, trained_runs
from ._toy import TRACK_BATCH, toy_seeds, toy_spec

NAME = "F6"
SCHEMES = ("lecun", "kaiming", "sn", "bsn")
COLUMNS = ["panel", "scheme", "seed", "step", "layer", "wgrad_rms", "wgrad_pred",
           "modes_covered", "high_quality", "input_grad_real", "loss_d"]


def compute(quick: bool, tiny: bool, out: Path) -> pd.DataFrame:
    size = size_of(quick, tiny)
    specs = [toy_spec(size, s, seed=seed) for s in SCHEMES for seed in toy_seeds(size)]
    dirs = trained_runs(specs, out, say, workers=1 if tiny else 2)
    rows = []
    for spec, d in zip(specs, dirs):
        L = tracked(d, TRACK_BATCH[size], say)
        rows.append(L.assign(panel="grad", scheme=spec.scheme, seed=spec.seed))
        m = pd.read_csv(d / "metrics.csv")
        rows.append(m.assign(panel="train", scheme=spec.scheme, seed=spec.seed, layer=-1))
    df = pd.concat(rows, ignore_index=True).reindex(columns=COLUMNS)
    return write_table(df, out, NAME.lower())


def _smooth(s: pd.Series, k: int = 5) -> pd.Series:
    return s.rolling(k, center=True, min_periods=1).mean()


def draw(df: pd.DataFrame, out: Path) -> None:
    pyplot = plt()
    schemes = [s for s in SCHEMES if s in set(df.scheme)]
    fig, axes = pyplot.subplots(2, len(schemes), figsize=(3.7 * len(schemes), 7.6),
                                constrained_layout=True)
    grad = df[df.panel == "grad"]
    n_layers = int(grad.layer.max()) + 1
    cmap = pyplot.get_cmap("viridis")
    n_seeds = df.seed.nunique()
    for ax, scheme in zip(axes[0], schemes):
        sub = grad[grad.scheme == scheme]
        for layer, g in sub.groupby("layer"):
            mid = np.exp(np.log(g.wgrad_rms).groupby(g.step).mean())
            col = cmap(layer / max(1, n_layers - 1))
            ax.plot(mid.index, mid.values, "o-", ms=3, color=col, lw=1.3,
                    label=f"layer {layer}: x{mid.iloc[-1] / mid.iloc[0]:.2f} over training")
            if n_seeds > 1:
                s = g.groupby("step").wgrad_rms
                ax.fill_between(mid.index, s.min(), s.max(), color=col, alpha=0.2, lw=0)
        ax.set_yscale("log")
        ax.set_xlabel("training step (checkpoints)")
        ax.set_title(f"{scheme}: per-layer gradient at each checkpoint", color=SCHEME_COLOR[scheme])
        ax.legend(loc="best", frameon=False, fontsize=7)
    axes[0, 0].set_ylabel(r"$\|\partial D/\partial W_l\|_F$ (norm, rms over real inputs)")
    lo, hi = grad.wgrad_rms.min(), grad.wgrad_rms.max()
    for ax in axes[0]:
        ax.set_ylim(lo / 2, hi * 2)
    train = df[df.panel == "train"]
    panels = (("modes_covered", "modes covered (of 8)", "linear"),
              ("high_quality", "high-quality sample share (fraction)", "linear"),
              ("input_grad_real", r"mean $\|\partial D/\partial x\|$ on real data (norm)", "log"),
              ("loss_d", "D hinge loss (loss)", "linear"))
    for ax, (col, lab, scale) in zip(axes[1], panels):
        for scheme in schemes:
            g = train[train.scheme == scheme]
            m = g.groupby("step")[col].mean()
            c = SCHEME_COLOR[scheme]
            ax.plot(m.index, m.values, color=c, lw=0.6, alpha=0.35)
            ax.plot(m.index, _smooth(m).values, color=c, lw=1.6, label=scheme)
        ax.set_yscale(scale)
        ax.set(xlabel="training step", ylabel=lab)
        ax.legend(loc="best", frameon=False, fontsize=7)
    axes[1, 0].set_ylim(-0.3, 8.3)
    axes[1, 0].set_title("toy sample quality: modes covered")
    axes[1, 1].set_title("toy sample quality: samples within 3 std of a mode")
    axes[1, 2].set_title("D's input gradient (local Lipschitz)")
    axes[1, 3].set_title("D loss")
    fig.suptitle("F6 — THEORY C10c: per-layer gradient norms over training (top) and toy "
                 f"sample quality (bottom); ring-of-8 GAN, MLP D, {int(train.step.max())} "
                 f"steps, {n_seeds} seed{'s' if n_seeds > 1 else ''} (bottom: thin = logged, "
                 "thick = running mean of 5)", fontsize=10.5)
    save(fig, out, NAME.lower())


def main(argv=None) -> int:
    return figure_main(NAME, compute, draw, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
