"""F4 (THEORY C5, C6b): spectral norms of Gaussian matrices and the SN shrink they imply.

(a) C5: ``||W||_op / (s (sqrt m + sqrt n))`` for i.i.d. ``N(0, s^2)`` ``m x n`` matrices against
size, three aspect ratios, with the Gordon lower bound ``max(E||g_m||, E||g_n||)/(sqrt m+sqrt n)``,
the Gordon/Bai-Yin upper value 1 and the Tracy-Widom finite-size estimate
(``gradcheck.theory.randmat``). (b) C6b: the SN shrink ``r = s sqrt(fan_in) / sigma_R(W)`` of
random dense and conv kernels against ``fan_in / c_out``, with the curve
``sqrt(n) / (sqrt(n) + sqrt(m))`` and the values THEORY quotes for the CIFAR-10 discriminator.
(c) the same for BSN, measured against its C6b prediction (which is not a function of
``fan_in / c_out`` alone). Norms by ``gradcheck.schemes.sigma`` (exact, float64).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gradcheck._threads import single_threaded
from gradcheck.models.sngan import SNGAN_CONVS
from gradcheck.schemes.sigma import sigma_R, sigma_R2
from gradcheck.theory.meanfield import shrink_prediction
from gradcheck.theory.randmat import gordon_lower, gordon_upper, opnorm_finite_size

from ._common import figure_main, plt, save, say, size_of, write_table

NAME = "F4"
COLUMNS = ["panel", "m", "n", "aspect", "draw", "ratio", "gordon_lower", "gordon_upper",
           "tracy_widom", "kind", "c_in", "c_out", "k", "fan_in", "rho", "r_sn", "r_sn_pred",
           "r_bsn", "r_bsn_pred", "paper_r"]
ASPECTS = (1.0, 4.0, 16.0)                # m / n (the norm is transpose-invariant)
#: per size: (n values of (a), draws per size, layers per kind in (b), largest channel count)
SIZES = {
    "tiny": ((4, 16, 64), 3, 8, 16),
    "quick": (tuple(2 ** k for k in range(2, 10)), 24, 60, 128),
    "full": (tuple(2 ** k for k in range(2, 12)), 100, 300, 512),
}
#: THEORY C6b reference shrinks of the CIFAR-10 discriminator's 8 layers (sn).
PAPER_R = (0.394, 0.800, 0.680, 0.800, 0.680, 0.800, 0.680, 0.989)
SMALL = 8                                 # a matrix side below this is drawn hollow
MAX_ENTRIES = 1 << 22                     # largest matrix of (a): 32 MB in float64


def _gauss(shape, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def c5_rows(sizes, draws: int, gen: torch.Generator) -> list[dict]:
    rows = []
    for aspect in ASPECTS:
        for n in sizes:
            m = max(1, int(round(aspect * n)))
            if m * n > MAX_ENTRIES:
                continue
            s = 1.0 / math.sqrt(n)                  # LeCun std; the ratio is scale-free
            k = draws if m * n <= 1 << 18 else max(3, draws // 8)
            for d in range(k):
                W = s * _gauss((m, n), gen)
                up = gordon_upper(m, n, s)
                rows.append(dict(panel="c5", m=m, n=n, aspect=aspect, draw=d,
                                 ratio=float(sigma_R(W)) / up,
                                 gordon_lower=gordon_lower(m, n, s) / up, gordon_upper=1.0,
                                 tracy_widom=opnorm_finite_size(m, n, s) / up))
    return rows


def _shrink_row(kind, c_in, c_out, k, W, paper=math.nan) -> dict:
    fan_in = c_in * k * k
    s = 1.0                                          # raw std of W below
    sr, sr2 = float(sigma_R(W)), float(sigma_R2(W))
    return dict(panel="c6b", kind=kind, c_in=c_in, c_out=c_out, k=k, fan_in=fan_in,
                rho=fan_in / c_out, r_sn=s * math.sqrt(fan_in) / sr,
                r_sn_pred=shrink_prediction("sn", c_in, c_out, k),
                r_bsn=s * math.sqrt(fan_in) / ((sr + sr2) / 2),
                r_bsn_pred=shrink_prediction("bsn", c_in, c_out, k), paper_r=paper)


def c6b_rows(n_layers: int, cmax: int, rng: np.random.Generator,
             gen: torch.Generator) -> list[dict]:
    rows = []
    widths = [w for w in (1, 2, 3, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if w <= 8 * cmax]
    chans = [c for c in (1, 3, 4, 8, 16, 32, 64, 128, 256, 512) if c <= cmax]
    for _ in range(n_layers):
        n, m = int(rng.choice(widths)), int(rng.choice(widths))
        rows.append(_shrink_row("dense", n, m, 1, _gauss((m, n), gen)))
        c_in, c_out, k = int(rng.choice(chans)), int(rng.choice(chans)), int(rng.choice([3, 4, 5]))
        rows.append(_shrink_row("conv", c_in, c_out, k, _gauss((c_out, c_in, k, k), gen)))
    c_in = 3                                         # the CIFAR-10 discriminator, one draw
    for (k, _, c_out), r in zip(SNGAN_CONVS, PAPER_R):
        rows.append(_shrink_row("cifar10-D", c_in, c_out, k, _gauss((c_out, c_in, k, k), gen), r))
        c_in = c_out
    rows.append(_shrink_row("cifar10-D", 4 * 4 * 512, 1, 1, _gauss((1, 8192), gen), PAPER_R[-1]))
    return rows


def compute(quick: bool, tiny: bool, out: Path) -> pd.DataFrame:
    sizes, draws, n_layers, cmax = SIZES[size_of(quick, tiny)]
    gen = torch.Generator().manual_seed(5)
    rng = np.random.default_rng(6)
    with single_threaded():
        say(f"C5: {len(ASPECTS)} aspect ratios x {len(sizes)} sizes, up to {draws} draws")
        rows = c5_rows(sizes, draws, gen)
        say(f"C6b: {2 * n_layers} random dense and conv kernels")
        rows += c6b_rows(n_layers, cmax, rng, gen)
    return write_table(pd.DataFrame(rows, columns=COLUMNS), out, NAME.lower())


def draw(df: pd.DataFrame, out: Path) -> None:
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 3, figsize=(15, 4.8), width_ratios=(1.2, 1.2, 0.9),
                                constrained_layout=True)
    ax = axes[0]
    c5 = df[df.panel == "c5"]
    colors = {1.0: "#1f77b4", 4.0: "#2ca02c", 16.0: "#9467bd"}
    for aspect, g in c5.groupby("aspect"):
        s = g.groupby("n")
        n = np.array(list(s.groups))
        col = colors.get(aspect, "k")
        lab = f"m/n = {aspect:g}"
        ax.plot(n, s.ratio.mean(), "o-", color=col, ms=4, label=f"measured, {lab} (mean)")
        ax.fill_between(n, s.ratio.min(), s.ratio.max(), color=col, alpha=0.18, lw=0)
        ax.plot(n, s.tracy_widom.first(), ":", color=col, lw=1.4)
        ax.plot(n, s.gordon_lower.first(), "--", color=col, lw=1)
    ax.axhline(1.0, color="k", lw=1.2)
    from matplotlib.lines import Line2D

    h, lab = ax.get_legend_handles_labels()
    h += [Line2D([], [], color="k", lw=1.2), Line2D([], [], color="k", ls=":", lw=1.4),
          Line2D([], [], color="k", ls="--", lw=1)]
    lab += ["Gordon upper / Bai-Yin limit (1)", "Tracy-Widom finite-size estimate",
            "Gordon lower bound"]
    ax.legend(h, lab, loc="lower right", frameon=False, fontsize=7, ncol=2)
    ax.set_ylim(0.2, max(1.15, c5.ratio.max() * 1.02))
    ax.set(xscale="log", xlabel="n (columns; the matrix is m x n, m = aspect x n)",
           ylabel=r"$\|W\|_{op}\,/\,(s(\sqrt{m}+\sqrt{n}))$ (ratio)",
           title=f"(a) C5: Gaussian operator norm vs size (band: min-max over up to "
                 f"{int(c5.groupby(['aspect', 'n']).size().max())} draws;\nthe bounds are on "
                 "the mean: single small draws can exceed 1)")
    # (b) SN shrink vs fan_in / c_out
    bx = axes[1]
    sh = df[df.panel == "c6b"]
    small = np.minimum(sh.fan_in, sh.c_out) < SMALL
    for kind, mk, col in (("dense", "o", "#1f77b4"), ("conv", "s", "#d62728")):
        for tiny_side in (False, True):
            g = sh[(sh.kind == kind) & (small == tiny_side)]
            bx.scatter(g.rho, g.r_sn, s=16, marker=mk, alpha=0.7,
                       facecolors="none" if tiny_side else col, edgecolors=col,
                       lw=0.8 if tiny_side else 0,
                       label=f"{kind}, measured r (sn)" + (f", min(fan_in, c_out) < {SMALL}"
                                                           if tiny_side else ""))
    rho = np.logspace(np.log10(sh.rho.min()) - 0.2, np.log10(sh.rho.max()) + 0.2, 200)
    bx.plot(rho, np.sqrt(rho) / (np.sqrt(rho) + 1), "k-", lw=1.3,
            label=r"C6b: $\sqrt{n}/(\sqrt{n}+\sqrt{m})$")
    paper = sh[sh.kind == "cifar10-D"]
    if len(paper):
        bx.plot(paper.rho, paper.paper_r, "*", color="#ff7f0e", ms=11, mec="k", mew=0.5,
                label="THEORY's CIFAR-10 D values")
        bx.plot(paper.rho, paper.r_sn, "x", color="k", ms=6, label="CIFAR-10 D, our draw")
    bx.axhline(0.5, color="grey", lw=0.8, ls="--")
    bx.annotate("square dense: r = 1/2", (1, 0.5), (1.3, 0.42), fontsize=7, color="grey")
    bx.set(xscale="log", ylim=(0, 1.05), xlabel="fan_in / c_out (ratio n/m)",
           ylabel=r"SN shrink $r = s\sqrt{fan_{in}}/\sigma_R(W)$ (ratio)",
           title="(b) C6b: SN is LeCun times r; r -> 1 when fan_in >> c_out\n"
                 f"(hollow: a side < {SMALL}, where C5's s(sqrt m + sqrt n) is loose)")
    bx.legend(loc="upper left", frameon=False, fontsize=7)
    # (c) BSN: measured vs predicted
    cx = axes[2]
    for kind, mk, col in (("dense", "o", "#1f77b4"), ("conv", "s", "#d62728"),
                          ("cifar10-D", "*", "#ff7f0e")):
        for tiny_side in (False, True):
            g = sh[(sh.kind == kind) & (small == tiny_side)]
            if not len(g):
                continue
            cx.scatter(g.r_bsn_pred, g.r_bsn, s=16 if kind != "cifar10-D" else 70, marker=mk,
                       facecolors="none" if tiny_side else col, edgecolors=col,
                       lw=0.8 if tiny_side else 0, alpha=0.7 if kind != "cifar10-D" else 1,
                       label=None if tiny_side else
                       f"{kind}" + (" layers" if kind != "cifar10-D" else " (our draw)"))
    cx.plot([0, 1.05], [0, 1.05], "k-", lw=1.2, label="measured = predicted")
    cx.set(xlim=(0, 1.05), ylim=(0, 1.05), xlabel="C6b predicted BSN shrink (ratio)",
           ylabel=r"measured BSN shrink $2 s\sqrt{fan_{in}}/(\sigma_R+\sigma_{R2})$ (ratio)",
           title="(c) C6b for BSN: measured vs predicted\n(hollow: a side < 8)")
    cx.legend(loc="upper left", frameon=False, fontsize=7)
    fig.suptitle("F4 — THEORY C5, C6b: random Gaussian matrices sit just below "
                 "s(sqrt m + sqrt n), so SN rescales LeCun weights by a predictable shrink r",
                 fontsize=10.5)
    save(fig, out, NAME.lower())


def main(argv=None) -> int:
    return figure_main(NAME, compute, draw, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
