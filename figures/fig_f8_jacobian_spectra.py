"""F8 (THEORY §5, C7): Jacobian singular-value spectra at several depths, per weight scaling.

A depth-17 MLP (width 128, Gaussian inputs) per scheme; the probe engine's *cumulative*
Jacobians ``d h_{L-1} / d h_t`` give the end-to-end Jacobian of the top ``d = L-1-t`` layers
(activation included) for ``d`` = 1, 2, 4, 8, 16; full spectra (chain path), over
``spectra_inputs`` inputs. Drawn: histograms of the squared singular values ``sigma^2`` (log
scale; zero singular values of ReLU Jacobians, dead units, are left out and counted). ReLU for
lecun, kaiming, orthogonal, sn and bsn; a sixth panel is the deep linear Gaussian case (LeCun,
identity activation) with the Fuss-Catalan law of THEORY §5 drawn over it
(``gradcheck.theory.randmat``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gradcheck._threads import single_threaded
from gradcheck.spec import RunSpec
from gradcheck.theory.randmat import deep_linear_moments, fuss_catalan_curve, fuss_catalan_moment

from ._common import SCHEME_COLOR, as_bool, figure_main, plt, save, say, size_of, write_table
from ._engine import probe_tables

NAME = "F8"
PANELS = (("lecun", "relu"), ("kaiming", "relu"), ("orthogonal", "relu"), ("sn", "relu"),
          ("bsn", "relu"), ("lecun", "linear"))
COLUMNS = ["kind", "scheme", "activation", "depth", "seed", "input", "sv2", "nonzero", "x",
           "density", "fc_m2", "finite_m2"]
#: per size: (layers L, width, spectra inputs, seeds, depths d shown)
SIZES = {
    "tiny": (5, 16, 4, (0,), (1, 2, 4)),
    "quick": (17, 128, 16, (0, 1, 2), (1, 2, 4, 8, 16)),
    "full": (17, 256, 32, (0, 1, 2), (1, 2, 4, 8, 16)),
}


def compute(quick: bool, tiny: bool, out: Path) -> pd.DataFrame:
    L, width, n_in, seeds, depths = SIZES[size_of(quick, tiny)]
    eps = float(np.finfo(np.float64).eps)
    rows = []
    with single_threaded():
        for scheme, act in PANELS:
            say(f"{scheme} {act}: depth-{L} MLP, width {width}, {len(seeds)} seed(s)")
            spec = RunSpec(arch="mlp", depth=L, width=width, init=scheme, activation=act,
                           batch=n_in, spectra_inputs=n_in)
            for seed in seeds:
                cum = probe_tables(spec, seed, spectra=True).result.cumulative
                for d in depths:
                    sp = cum[L - 1 - d]             # d h_{L-1} / d h_t spans d layers
                    sv = sp.values                   # (inputs, k) singular values, full
                    zero = sv <= sp.numerical_zero(eps)[:, None]
                    rows.append(pd.DataFrame(dict(
                        kind="measured", scheme=scheme, activation=act, depth=d, seed=seed,
                        input=np.repeat(np.arange(sv.shape[0]), sv.shape[1]),
                        sv2=(sv ** 2).ravel(), nonzero=~zero.ravel())))
    for d in depths:                                 # THEORY §5 overlay (width -> infinity)
        x, dens = fuss_catalan_curve(d, 400)
        rows.append(pd.DataFrame(dict(kind="fuss_catalan", scheme="lecun", activation="linear",
                                      depth=d, x=x, density=dens,
                                      fc_m2=float(fuss_catalan_moment(d, 2)),
                                      finite_m2=deep_linear_moments(d, width)[1])))
    df = pd.concat(rows, ignore_index=True).reindex(columns=COLUMNS)
    return write_table(df, out, NAME.lower())


def draw(df: pd.DataFrame, out: Path) -> None:
    pyplot = plt()
    fig, axes = pyplot.subplots(2, 3, figsize=(14, 8), constrained_layout=True)
    meas = df[df.kind == "measured"]
    fc = df[df.kind == "fuss_catalan"]
    depths = sorted(meas.depth.unique())
    cmap = pyplot.get_cmap("plasma")
    colors = {d: cmap(0.85 * i / max(1, len(depths) - 1)) for i, d in enumerate(depths)}
    n_inputs = meas.groupby(["scheme", "activation", "seed"]).input.nunique().max()
    n_seeds = meas.seed.nunique()
    for ax, (scheme, act) in zip(axes.ravel(), PANELS):
        sub = meas[(meas.scheme == scheme) & (meas.activation == act)]
        if not len(sub):
            ax.set_visible(False)
            continue
        nz = sub[as_bool(sub.nonzero)]
        logs = np.log10(nz.sv2)
        edges = np.linspace(logs.min() - 0.1, logs.max() + 0.1, 70)
        for d in depths:
            v = nz[nz.depth == d].sv2
            allv = sub[sub.depth == d]
            zeros = 1 - len(v) / max(1, len(allv))
            label = f"depth {d}: mean sigma^2 {allv.sv2.mean():.3g}"
            if zeros:
                label += f", {100 * zeros:.0f}% numerically 0"
            ax.hist(np.log10(v), bins=edges, density=True, histtype="step", lw=1.4,
                    color=colors[d], label=label)
        if act == "linear":
            for d in depths:
                c = fc[fc.depth == d]
                # density of log10(x) is x ln(10) p(x)
                ax.plot(np.log10(c.x), c.x * np.log(10) * c.density, "--", color=colors[d],
                        lw=1.1)
            ax.plot([], [], "k--", lw=1.1,
                    label="Fuss-Catalan law (THEORY §5, width -> inf),\nmean 1, "
                          "E sigma^4 = d + 1")
            check = "\n".join(
                f"d={d}: measured {sub[sub.depth == d].sv2.pow(2).mean():.1f}, law "
                f"{fc[fc.depth == d].fc_m2.iloc[0]:.0f}, exact at this width "
                f"{fc[fc.depth == d].finite_m2.iloc[0]:.1f}" for d in depths[-2:])
            ax.set_title(f"lecun, linear: deep linear Gaussian net (one Jacobian per seed)\n"
                         f"E sigma^4 {check}", fontsize=8)
        else:
            ax.set_title(f"{scheme}, ReLU", color=SCHEME_COLOR[scheme])
        ax.set_xlabel(r"$\log_{10} \sigma^2$ (squared singular value of the Jacobian)")
        ax.set_ylabel(r"density per unit $\log_{10}\sigma^2$")
        ax.legend(loc="upper left", frameon=False, fontsize=7)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.45)            # room for the legend
    seeds = f"{n_seeds} seed{'s' if n_seeds > 1 else ''} x {n_inputs} inputs"
    fig.suptitle(f"F8 — Jacobian spectra of the top d layers of a deep MLP at init ({seeds}): "
                 "LeCun, SN, BSN shrink with depth; Kaiming keeps mean sigma^2 ~ 1 as the spread "
                 "grows;\nthe deep linear Gaussian net follows the Fuss-Catalan law "
                 "(THEORY §5, C7)", fontsize=10.5)
    save(fig, out, NAME.lower())


def main(argv=None) -> int:
    return figure_main(NAME, compute, draw, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
