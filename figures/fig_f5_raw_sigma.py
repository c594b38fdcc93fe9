"""F5 (THEORY C10a): raw per-layer spectral norms over GAN training, unnormalised vs SN vs BSN.

Toy GANs on the ring of 8 Gaussians (MLP D of 4 dense layers) trained with unnormalised D
weights (LeCun and Kaiming init) and with SN and BSN (authors' power-iteration estimator, one
step per training step). Drawn: ``sigma_R`` of each layer's *raw* weight (the parameter the
optimiser moves; for sn/bsn the weight used is ``W / sigma`` and has norm 1) at every logged
step, from the trainer's ``metrics.csv``. For a dense D, BSN divides by the same sigma as SN
(C9a), so only its power-iteration vectors differ.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gradcheck.schemes.registry import SCHEMES as SCHEME_RECORDS

from ._common import SCHEME_COLOR, figure_main, plt, save, say, size_of, write_table
from ._engine import trained_runs
from ._toy import toy_seeds, toy_spec

NAME = "F5"
SCHEMES = ("lecun", "kaiming", "sn", "bsn")
COLUMNS = ["scheme", "seed", "step", "layer", "raw_sigma_R"]


def compute(quick: bool, tiny: bool, out: Path) -> pd.DataFrame:
    size = size_of(quick, tiny)
    specs = [toy_spec(size, s, seed=seed) for s in SCHEMES for seed in toy_seeds(size)]
    dirs = trained_runs(specs, out, say, workers=1 if tiny else 2)
    rows = []
    for spec, d in zip(specs, dirs):
        m = pd.read_csv(d / "metrics.csv")
        cols = sorted((c for c in m.columns if c.startswith("raw_sigma_")),
                      key=lambda c: int(c.rsplit("_", 1)[1]))
        long = m.melt(id_vars="step", value_vars=cols, var_name="layer",
                      value_name="raw_sigma_R")
        long["layer"] = long.layer.str.rsplit("_", n=1).str[1].astype(int)
        rows.append(long.assign(scheme=spec.scheme, seed=spec.seed))
    return write_table(pd.concat(rows, ignore_index=True)[COLUMNS], out, NAME.lower())


def draw(df: pd.DataFrame, out: Path) -> None:
    pyplot = plt()
    schemes = [s for s in SCHEMES if s in set(df.scheme)]
    fig, axes = pyplot.subplots(1, len(schemes), figsize=(3.6 * len(schemes), 4.2),
                                sharey=True, constrained_layout=True)
    cmap = pyplot.get_cmap("viridis")
    n_layers = int(df.layer.max()) + 1
    n_seeds = df.seed.nunique()
    for ax, scheme in zip(np.atleast_1d(axes), schemes):
        sub = df[df.scheme == scheme]
        for layer, g in sub.groupby("layer"):
            s = g.groupby("step").raw_sigma_R
            col = cmap(layer / max(1, n_layers - 1))
            mid = np.exp(np.log(g.raw_sigma_R).groupby(g.step).mean())
            ax.plot(mid.index, mid.values, color=col, lw=1.4,
                    label=f"layer {layer}: {mid.iloc[0]:.2f} -> {mid.iloc[-1]:.2f} "
                          f"(x{mid.iloc[-1] / mid.iloc[0]:.2f})")
            if n_seeds > 1:
                ax.fill_between(mid.index, s.min(), s.max(), color=col, alpha=0.2, lw=0)
        normalised = SCHEME_RECORDS[scheme].spectral
        if normalised:
            ax.axhline(1.0, color="k", ls="--", lw=1, label="sigma of the weight used (1)")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_title(f"{scheme}: " + ("raw weight W (D uses W / sigma)" if normalised
                                      else "unnormalised (D uses W)"),
                     color=SCHEME_COLOR[scheme])
        ax.legend(loc="upper left", frameon=False, fontsize=7,
                  title="first logged -> last step", title_fontsize=7)
    axes[0].set_ylabel(r"raw $\sigma_R(W_l)$, top singular value (norm)")
    lo, hi = df.raw_sigma_R.min(), df.raw_sigma_R.max()
    axes[0].set_ylim(min(lo, 1.0) / 1.3, hi * 3.5)          # room for the legends
    sizes = f"{n_seeds} seed{'s' if n_seeds > 1 else ''}" + (", band min-max" if n_seeds > 1
                                                            else "")
    fig.suptitle("F5 — THEORY C10a: raw per-layer spectral norms over training "
                 f"(ring-of-8 toy GAN, MLP D, {int(df.step.max())} steps, {sizes})",
                 fontsize=10.5)
    save(fig, out, NAME.lower())


def main(argv=None) -> int:
    return figure_main(NAME, compute, draw, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
