"""F7 (THEORY C6b, C7, C9b): the scale ``c`` of SSN and BSSN, at init and in training.

(a, b) A leaky-ReLU conv stack (3x3 convs, stride 1, 16 channels, dense head) probed at init
under ssn and bssn for a grid of ``c``: the rms per-input ``||dD/dW_0||_F`` of the first layer
and the mean-field backward gain ``chi_l`` of the hidden convs (C7; geometric mean over them,
band min-max). Horizontal references: the same net with Kaiming (and SN) weights; vertical: the
Kaiming point ``c = g / r`` (Kaiming gain over the C6b shrink of a hidden layer), where C7 puts
``chi = 1``. (c, d) Toy GANs (ring of 8, MLP D, the 2-D training defaults) trained with bssn
(full mode: ssn and bssn) at several ``c``: modes covered and high-quality sample share,
averaged over the last quarter of the logged steps. A dense D has ``sigma_R = sigma_R2``, so
bssn == ssn there (C9a; the runs are bit-identical), which is why quick mode trains one of them.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from gradcheck._threads import single_threaded
from gradcheck.schemes import kaiming_gain
from gradcheck.schemes.registry import SCHEMES as SCHEME_RECORDS
from gradcheck.spec import RunSpec, validate_train
from gradcheck.theory.meanfield import shrink_prediction

from ._common import SCHEME_COLOR, SCHEME_MARKER, figure_main, plt, save, say, size_of, write_table
from ._engine import geometric_mean, probe_tables, trained_runs
from ._toy import toy_seeds, toy_spec

NAME = "F7"
SCHEMES = ("ssn", "bssn")
COLUMNS = ["panel", "scheme", "scale", "seed", "first_wgrad", "chi_geo", "chi_min", "chi_max",
           "kaiming_point", "modes_covered", "high_quality", "input_grad_real", "steps"]
#: per size: (probe net fields, batch, probe seeds, probe c grid, trained c values)
SIZES = {
    "tiny": (dict(depth=4, channels=4, image_size=6), 4, (0,), (0.5, 1.0, 2.0), (1.0, 2.0)),
    "quick": (dict(depth=10, channels=16, image_size=8), 16, (0, 1),
              tuple(np.round(np.geomspace(0.5, 4.0, 10), 3)), (0.5, 1.0, 2.0, 2.83, 4.0)),
    "full": (dict(depth=10, channels=32, image_size=16), 64, (0, 1, 2, 3, 4),
             tuple(np.round(np.geomspace(0.5, 4.0, 22), 3)),
             (0.5, 0.7, 1.0, 1.4, 2.0, 2.83, 4.0)),
}
#: steps of the toy GANs of (c, d) (None: the 2-D default, 4000)
TRAIN_STEPS = {"tiny": 40, "quick": None, "full": None}
#: schemes trained in (c, d): on the MLP D bssn = ssn (C9a), so quick mode trains bssn only
TRAIN_SCHEMES = {"tiny": ("bssn",), "quick": ("bssn",), "full": SCHEMES}


def _probe_row(spec: RunSpec, seed: int, scheme: str, scale: float, c_k: float) -> dict:
    L = probe_tables(spec, seed).layers
    hidden = L.chi.iloc[1:-1]                # the square 16 -> 16 convs
    return dict(panel="probe", scheme=scheme, scale=scale, seed=seed,
                first_wgrad=float(L.wgrad_rms.iloc[0]), chi_geo=geometric_mean(hidden),
                chi_min=float(hidden.min()), chi_max=float(hidden.max()), kaiming_point=c_k)


def compute(quick: bool, tiny: bool, out: Path) -> pd.DataFrame:
    size = size_of(quick, tiny)
    net, batch, seeds, grid, trained = SIZES[size]
    base = dict(arch="conv", stride_every=0, batch=batch, spectra_inputs=0, **net)
    g = kaiming_gain("lrelu", RunSpec().slope)
    rows = []
    with single_threaded():
        for scheme in SCHEMES:
            c_k = g / shrink_prediction(SCHEME_RECORDS[scheme].divisor, net["channels"],
                                        net["channels"], 3)
            say(f"probe {scheme}: {len(grid)} values of c x {len(seeds)} seeds "
                f"(Kaiming point c = {c_k:.3f})")
            for c in grid:
                for seed in seeds:
                    rows.append(_probe_row(RunSpec(init=scheme, scale=float(c), **base), seed,
                                           scheme, float(c), c_k))
        for ref in ("kaiming", "sn"):
            for seed in seeds:
                rows.append(_probe_row(RunSpec(init=ref, **base), seed, ref, np.nan, np.nan))
    # toy GANs: the MLP D's hidden layers are square dense, r = 1/2, g = sqrt 2 (ReLU)
    c_k_mlp = kaiming_gain("relu", 0.0) / shrink_prediction("sn", 128, 128, 1)
    specs = [validate_train(replace(toy_spec(size, s, float(c), seed), steps=TRAIN_STEPS[size]))
             for s in TRAIN_SCHEMES[size] for c in trained for seed in toy_seeds(size)[:2]]
    dirs = trained_runs(specs, out, say, workers=1 if tiny else 2)
    for spec, d in zip(specs, dirs):
        m = pd.read_csv(d / "metrics.csv")
        tail = m[m.step > 0.75 * m.step.max()] if len(m) > 3 else m
        rows.append(dict(panel="train", scheme=spec.scheme, scale=spec.scale, seed=spec.seed,
                         kaiming_point=c_k_mlp, modes_covered=float(tail.modes_covered.mean()),
                         high_quality=float(tail.high_quality.mean()),
                         input_grad_real=float(tail.input_grad_real.mean()), steps=spec.steps))
    return write_table(pd.DataFrame(rows, columns=COLUMNS), out, NAME.lower())


def _vline(ax, c, text, color="k") -> None:
    ax.axvline(c, color=color, ls=":", lw=1.3)
    ax.annotate(text, (c, 0.02), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                ha="right", va="bottom", color=color)


def _c_axis(ax) -> None:
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([0.5, 0.7, 1, 1.5, 2, 3, 4]))
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("scale c of ssn / bssn (factor, log scale)")


def draw(df: pd.DataFrame, out: Path) -> None:
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 4, figsize=(17, 4.6), constrained_layout=True)
    pr = df[df.panel == "probe"]
    n_seeds = pr.seed.nunique()
    for scheme in SCHEMES:
        s = pr[pr.scheme == scheme]
        if not len(s):
            continue
        g = s.groupby("scale")
        col, mk = SCHEME_COLOR[scheme], SCHEME_MARKER[scheme]
        axes[0].plot(g.first_wgrad.mean().index, g.first_wgrad.mean(), marker=mk, color=col,
                     ms=4, label=f"{scheme} (mean of {n_seeds} seeds)")
        axes[0].fill_between(g.first_wgrad.min().index, g.first_wgrad.min(),
                             g.first_wgrad.max(), color=col, alpha=0.18, lw=0)
        axes[1].plot(g.chi_geo.mean().index, g.chi_geo.mean(), marker=mk, color=col, ms=4,
                     label=f"{scheme}: geometric mean over hidden layers")
        axes[1].fill_between(g.chi_min.min().index, g.chi_min.min(), g.chi_max.max(),
                             color=col, alpha=0.18, lw=0)
    for ref, ls in (("kaiming", "--"), ("sn", "-.")):
        r = pr[pr.scheme == ref]
        if len(r):
            axes[0].axhline(r.first_wgrad.mean(), color=SCHEME_COLOR[ref], ls=ls, lw=1.2,
                            label=f"{ref} init (same net)")
            axes[1].axhline(r.chi_geo.mean(), color=SCHEME_COLOR[ref], ls=ls, lw=1.2,
                            label=f"{ref} init")
    c_ks = pr.kaiming_point.dropna().unique()
    for ax in axes[:2]:
        for c_k in c_ks:
            _vline(ax, c_k, f"Kaiming point c = g/r = {c_k:.2f}")
        ax.set_yscale("log")
        _c_axis(ax)
    axes[0].set(ylabel=r"first-layer $\|\partial D/\partial W_0\|_F$ (norm, rms over inputs)",
                title="(a) first-layer gradient at init vs c\n(grows like c^(L-1): "
                      "homogeneous net, C2a)")
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[1].set(ylabel=r"mean-field backward gain $\chi_l$ per layer (factor)",
                title="(b) THEORY C7 gain chi of the hidden convs vs c\n"
                      "(chi = 1: gradients neither vanish nor explode)")
    for ax in axes[:2]:
        ax.legend(loc="upper left", frameon=False, fontsize=7)
    tr = df[df.panel == "train"]
    for ax, col, lab in ((axes[2], "modes_covered", "modes covered (of 8)"),
                         (axes[3], "high_quality", "high-quality sample share (fraction)")):
        for k, scheme in enumerate(SCHEMES):
            s = tr[tr.scheme == scheme]
            if not len(s):
                continue
            g = s.groupby("scale")[col]
            x = g.mean().index.to_numpy() * (1 + 0.02 * (k - 0.5))   # side by side
            ax.errorbar(x, g.mean(), yerr=[g.mean() - g.min(), g.max() - g.mean()],
                        marker=SCHEME_MARKER[scheme], color=SCHEME_COLOR[scheme], ms=5,
                        capsize=2, label=scheme)
        for c_k in tr.kaiming_point.dropna().unique():
            _vline(ax, c_k, f"Kaiming point of the MLP D, c = {c_k:.2f}")
        ax.set_ylabel(lab)
        _c_axis(ax)
        ax.legend(loc="upper left", frameon=False, fontsize=7)
    steps = int(tr.steps.max()) if len(tr) else 0
    axes[2].set_ylim(-0.3, 8.3)
    axes[2].set_title(f"(c) toy GAN sample quality vs c: modes covered\n(last quarter of "
                      f"{steps} steps; dense D: bssn = ssn, C9a)")
    axes[3].set_title("(d) toy GAN sample quality vs c:\nshare of samples within 3 std of a mode")
    fig.suptitle("F7 — THEORY C6b, C7, C9b: the scale c of SSN / BSSN moves the net from "
                 "vanishing (c < g/r) through critical to exploding gradients", fontsize=10.5)
    save(fig, out, NAME.lower())


def main(argv=None) -> int:
    return figure_main(NAME, compute, draw, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
