"""F2 (THEORY C1): measured ``||dD/dW_t||_F`` against its bound over many random networks.

Random bias-free dense and conv discriminators (depth, width or channels, image size, strides,
activation, output, LeCun or SN weights drawn at random per net); every (net, layer, input)
gives one point: the measured per-input weight-gradient norm and the C1 bound
``lambda_L mu_t ||x|| prod_{i != t} ||W_i||_op`` with the true operator norms, both from the probe
engine. Inequality: every point must lie on or below the diagonal.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from gradcheck._threads import single_threaded
from gradcheck.spec import RunSpec
from gradcheck.theory.bounds import c1_bound, inequality_tol, lambda_L

from ._common import SCHEME_COLOR, as_bool, figure_main, plt, save, say, size_of, write_table
from ._engine import probe_tables

NAME = "F2"
COLUMNS = ["net", "arch", "scheme", "activation", "output", "depth", "seed", "layer", "input",
           "measured", "bound", "ratio", "tol", "holds"]
SIZES = {"tiny": (6, 4), "quick": (150, 8), "full": (400, 16)}  # (nets, inputs per net)


def random_spec(rng: np.random.Generator, batch: int) -> RunSpec:
    """One random bias-free discriminator of THEORY §0 (the premise of C1)."""
    arch = str(rng.choice(["mlp", "conv"]))
    common = dict(init=str(rng.choice(["lecun", "sn"])), batch=batch, spectra_inputs=0,
                  activation=str(rng.choice(["relu", "lrelu", "tanh", "linear"])),
                  slope=float(rng.uniform(0.05, 0.3)),
                  output=str(rng.choice(["identity", "sigmoid"])))
    if arch == "mlp":
        return RunSpec(arch="mlp", depth=int(rng.integers(2, 9)), width=int(rng.integers(4, 65)),
                       input_dim=int(rng.integers(2, 33)), **common)
    return RunSpec(arch="conv", depth=int(rng.integers(2, 7)), channels=int(rng.integers(2, 9)),
                   image_size=int(rng.integers(4, 11)), stride_every=int(rng.integers(0, 3)),
                   **common)


def compute(quick: bool, tiny: bool, out: Path) -> pd.DataFrame:
    n_nets, batch = SIZES[size_of(quick, tiny)]
    rng = np.random.default_rng(2020)
    rows = []
    say(f"{n_nets} random nets, {batch} inputs each")
    with single_threaded():
        for net in range(n_nets):
            spec = random_spec(rng, batch)
            seed = int(rng.integers(0, 10_000))
            res = probe_tables(spec, seed).result
            op = np.array([n.sigma_op for n in res.norms])
            mu = np.array([i.mu for i in res.layers])
            bound = c1_bound(res.grads.x_norm, op, mu, lambda_L(spec.output))
            meas = res.grads.weight_grad
            L, B = meas.shape
            width = max(max(math.prod(i.input_shape), math.prod(i.output_shape))
                        for i in res.layers)
            rows.append(pd.DataFrame(dict(
                net=net, arch=spec.arch, scheme=spec.init, activation=spec.resolved_activation,
                output=spec.output, depth=L, seed=seed, layer=np.repeat(np.arange(L), B),
                input=np.tile(np.arange(B), L), measured=meas.ravel(), bound=bound.ravel(),
                tol=inequality_tol(float(np.finfo(np.float64).eps), L, width))))
    df = pd.concat(rows, ignore_index=True)
    df["ratio"] = df.measured / df.bound
    df["holds"] = df.ratio <= 1 + df.tol
    return write_table(df[COLUMNS], out, NAME.lower())


def draw(df: pd.DataFrame, out: Path) -> None:
    pyplot = plt()
    fig, (ax, bx) = pyplot.subplots(1, 2, figsize=(11, 4.8), width_ratios=(1.15, 1),
                                    constrained_layout=True)
    pos = df[(df.measured > 0) & (df.bound > 0)]
    for (arch, scheme), g in pos.groupby(["arch", "scheme"]):
        ax.scatter(g.bound, g.measured, s=6, alpha=0.45, lw=0, color=SCHEME_COLOR[scheme],
                   marker="o" if arch == "mlp" else "s",
                   label=f"{'dense' if arch == 'mlp' else 'conv'}, {scheme} "
                         f"({g.net.nunique()} nets)")
    xlo, xhi = pos.bound.min() / 2, pos.bound.max() * 2
    ylo, yhi = pos.measured.min() / 2, max(pos.measured.max(), xhi) * 2
    ax.plot([min(xlo, ylo), yhi], [min(xlo, ylo), yhi], "k-", lw=1.2,
            label="diagonal: measured = bound")
    ax.set(xscale="log", yscale="log", xlim=(xlo, xhi), ylim=(ylo, yhi),
           xlabel=r"C1 bound $\lambda_L\,\mu_t\,\|x\|\,\prod_{i\neq t}\|W_i\|_{op}$ (norm)",
           ylabel=r"measured $\|\partial D/\partial W_t\|_F$ (norm, one input)")
    worst = df.ratio.max()
    holds = as_bool(df.holds)
    above = int((~holds).sum())
    tight = int((holds & (df.ratio >= 1 - df.tol)).sum())
    ax.set_title(f"{len(df)} points (net, layer, input) from {df.net.nunique()} random nets:\n"
                 f"{above} above the diagonal (float64 tolerance), worst ratio {worst:.6f}, "
                 f"{tight} on it;\n{int((df.measured == 0).sum())} exact zeros (dead ReLU paths) "
                 "not drawn", fontsize=8.5)
    ax.legend(loc="upper left", markerscale=2.5, frameon=False)
    # right: the distribution of the ratio (how tight the bound is)
    edges = np.linspace(np.floor(np.log10(pos.ratio.min())), 0.0, 41)
    for (arch, scheme), g in pos.groupby(["arch", "scheme"]):
        # ratios within float64 tolerance above 1 (C1 tight) are drawn in the last bin
        bx.hist(np.minimum(np.log10(g.ratio), 0.0), bins=edges, histtype="step", lw=1.4,
                color=SCHEME_COLOR[scheme], ls="-" if arch == "mlp" else "--",
                label=f"{'dense' if arch == 'mlp' else 'conv'}, {scheme}")
    bx.axvline(0.0, color="k", lw=1.2, label="bound (ratio 1)")
    bx.set(xlabel=r"$\log_{10}$(measured / bound) (ratio)", ylabel="number of points",
           title="tightness: ratio measured / bound per point (must be <= 1;\n"
                  "ratio 1 is reached: C1 is tight, e.g. layer 0 of a depth-2 linear net)")
    bx.legend(loc="upper left", frameon=False)
    fig.suptitle("F2 — THEORY C1: the per-layer gradient bound holds on every random dense and "
                 "conv net (LeCun and SN weights)", fontsize=10.5)
    save(fig, out, NAME.lower())


def main(argv=None) -> int:
    return figure_main(NAME, compute, draw, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
