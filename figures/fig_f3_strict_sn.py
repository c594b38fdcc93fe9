"""F3 (THEORY C8, C6b): SN_w vs strict SN (SN_Conv) on the paper's CIFAR-10 discriminator.

Three panels, per layer of the 8-layer discriminator (7 convs + dense head), float64, exact
sigmas: (a) ``||Conv_K||_op / sigma_R(K)`` (and ``/ sigma_R2``) inside the C8 band ``[1, mu]``,
with the values THEORY quotes; (b) the measured shrink ``r_hat`` of sn, bsn and sn-conv against
the C6b prediction and the paper's reference values; (c) the rms per-input weight-gradient norm
``||dD/dW_l||_F`` under sn, sn-conv and bsn with the C7 (padding-aware) prediction dashed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gradcheck._threads import single_threaded
from gradcheck.spec import RunSpec

from ._common import SCHEME_COLOR, SCHEME_MARKER, figure_main, plt, save, say, size_of, write_table
from ._engine import probe_tables

NAME = "F3"
SCHEMES = ("sn", "sn-conv", "bsn")
COLUMNS = ["arch", "scheme", "seed", "layer", "kind", "weight_shape", "input_shape", "mu",
           "sigma_R", "sigma_R2", "sigma_op", "op_over_R", "op_over_R2", "r_hat", "r_pred",
           "wgrad_rms", "wgrad_pred", "wgrad_pred_pad", "paper_op_over_R", "paper_r"]
#: THEORY C8 / C6b reference values for the authors' CIFAR-10 discriminator at init.
PAPER_OP_OVER_R = (2.22, 1.21, 1.67, 1.19, 1.61, 1.15, 1.48, 1.0)
PAPER_R = (0.394, 0.800, 0.680, 0.800, 0.680, 0.800, 0.680, 0.989)
#: per size: (spec fields, batch, seeds); tiny uses a small conv stack instead of sngan.
SIZES = {
    "tiny": (dict(arch="conv", depth=4, channels=4, image_size=8, stride_every=2), 4, (0,)),
    "quick": (dict(arch="sngan"), 8, (0,)),
    "full": (dict(arch="sngan"), 32, (0, 1, 2)),
}


def compute(quick: bool, tiny: bool, out: Path) -> pd.DataFrame:
    kw, batch, seeds = SIZES[size_of(quick, tiny)]
    rows = []
    for scheme in SCHEMES:
        for seed in seeds:
            say(f"{kw['arch']} {scheme} seed {seed}")
            spec = RunSpec(init=scheme, batch=batch, spectra_inputs=0, **kw)
            with single_threaded():         # 4x faster SVDs on a busy 2-core machine
                L = probe_tables(spec, seed).layers
            L = L.assign(arch=kw["arch"], scheme=scheme, op_over_R2=L.sigma_op / L.sigma_R2)
            paper = kw["arch"] == "sngan"
            L["paper_op_over_R"] = PAPER_OP_OVER_R if paper else np.nan
            L["paper_r"] = PAPER_R if paper else np.nan
            rows.append(L[COLUMNS])
    return write_table(pd.concat(rows, ignore_index=True), out, NAME.lower())


def _layer_names(df: pd.DataFrame) -> list[str]:
    first = df[(df.scheme == df.scheme.iloc[0]) & (df.seed == df.seed.min())].sort_values("layer")
    names = []
    for _, r in first.iterrows():
        shape = str(r.weight_shape).split("x")
        what = f"conv {shape[2]}x{shape[3]}" if r.kind == "conv" else "dense"
        names.append(f"{int(r.layer)}\n{what}\n{shape[1]}->{shape[0]}")
    return names


def draw(df: pd.DataFrame, out: Path) -> None:
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 3, figsize=(15, 4.9), constrained_layout=True)
    layers = sorted(df.layer.unique())
    x = np.arange(len(layers))
    names = _layer_names(df)
    paper = df.paper_op_over_R.notna().any()
    n_seeds = df.seed.nunique()
    # (a) C8: ||Conv||_op / sigma_R in [1, mu]; the ratio does not depend on the scheme
    ax = axes[0]
    base = df[df.scheme == df.scheme.iloc[0]]
    g = base.groupby("layer")
    mu = g.mu.first().values
    ax.bar(x, mu - 1.0, bottom=1.0, width=0.6, color="#cccccc", edgecolor="#888888",
           label=r"C8 band $[1, \mu]$ ($\mu$ = patch multiplicity)")
    ax.errorbar(x - 0.1, g.op_over_R.mean(), yerr=[g.op_over_R.mean() - g.op_over_R.min(),
                                                   g.op_over_R.max() - g.op_over_R.mean()],
                fmt="o", color="#d62728", ms=6, capsize=2,
                label=r"measured $\|Conv_K\|_{op} / \sigma_R(K)$")
    ax.errorbar(x + 0.1, g.op_over_R2.mean(), yerr=[g.op_over_R2.mean() - g.op_over_R2.min(),
                                                    g.op_over_R2.max() - g.op_over_R2.mean()],
                fmt="s", color="#ff7f0e", ms=5, capsize=2, mfc="none",
                label=r"measured $\|Conv_K\|_{op} / \sigma_{R2}(K)$")
    if paper:
        ax.plot(x, g.paper_op_over_R.first(), "*", color="k", ms=9, label="THEORY C8 reference")
    ax.set_xticks(x, names, fontsize=7)
    ax.set(ylabel="ratio of spectral norms (norm / norm)",
           title=f"(a) C8: strict SN divides each conv by up to mu more\n"
                 f"extra shrink over the net: prod op/R = {np.prod(g.op_over_R.mean()):.3f}"
                 f" (1/{np.prod(g.op_over_R.mean()):.1f})")
    ax.legend(loc="upper right", frameon=False)
    ax.set_ylim(0.9, max(mu.max(), g.op_over_R.max().max()) * 1.25)
    # (b) C6b: the shrink r per layer
    bx = axes[1]
    for k, scheme in enumerate(SCHEMES):
        s = df[df.scheme == scheme].groupby("layer")
        dx = 0.12 * (k - 1)
        prod = np.exp(np.log(df[df.scheme == scheme].groupby("seed").r_hat.prod()).mean())
        bx.plot(x + dx, s.r_hat.mean(), marker=SCHEME_MARKER[scheme], ls="none", ms=6,
                color=SCHEME_COLOR[scheme], label=f"{scheme}: measured r_hat (product {prod:.3g})")
        bx.plot(x + dx, s.r_pred.mean(), marker="_", ls="none", ms=14, mew=2,
                color=SCHEME_COLOR[scheme])
    if paper:
        bx.plot(x, g.paper_r.first(), "*", color="k", ms=9,
                label=f"THEORY C6b reference, sn (product {np.prod(g.paper_r.first()):.3f})")
    bx.plot([], [], marker="_", ls="none", ms=14, mew=2, color="k",
            label="C6b prediction (for sn-conv r_hat is the prediction)")
    bx.set_xticks(x, names, fontsize=7)
    bx.set(ylabel=r"shrink $r = s\sqrt{fan_{in}}\,/\,\sigma$ (ratio)", ylim=(0, 1.15),
           title="(b) C6b: SN = LeCun times a per-layer shrink r;\n"
                 "strict SN shrinks the convs more")
    bx.legend(loc="lower right", frameon=False, fontsize=7)
    # (c) per-layer gradient norms under the three schemes
    cx = axes[2]
    for scheme in SCHEMES:
        s = df[df.scheme == scheme].groupby("layer")
        cx.plot(x, s.wgrad_rms.mean(), marker=SCHEME_MARKER[scheme], color=SCHEME_COLOR[scheme],
                label=f"{scheme}: measured")
        cx.fill_between(x, s.wgrad_rms.min(), s.wgrad_rms.max(), color=SCHEME_COLOR[scheme],
                        alpha=0.15, lw=0)
        cx.plot(x, s.wgrad_pred_pad.mean(), ls="--", lw=1, color=SCHEME_COLOR[scheme])
    cx.plot([], [], "k--", lw=1, label="C7 prediction (padding-aware fans)")
    cx.set_yscale("log")
    cx.set_xticks(x, names, fontsize=7)
    cx.set(ylabel=r"$\|\partial D/\partial W_l\|_F$ (norm, rms over inputs)",
           title="(c) per-layer weight-gradient norms:\nsn-conv's extra shrink lowers them all")
    cx.legend(loc="best", frameon=False)
    arch = ("the paper's CIFAR-10 discriminator" if paper
            else f"a {len(layers)}-layer conv stack (smoke-test size)")
    fig.suptitle(f"F3 — THEORY C8, C6b: SN_w (sigma_R) vs strict SN (||Conv||_op) vs BSN on "
                 f"{arch}, at init ({n_seeds} seed{'s' if n_seeds > 1 else ''}, "
                 "bars: min-max)", fontsize=10.5)
    save(fig, out, NAME.lower())


def main(argv=None) -> int:
    return figure_main(NAME, compute, draw, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
