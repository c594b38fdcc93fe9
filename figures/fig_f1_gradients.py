"""F1 (THEORY C7): gradient norms vs layer index in depth-20 nets, one line per weight scaling.

A depth-20 ReLU MLP and a depth-20 leaky-ReLU conv stack, Gaussian inputs, every scheme of
THEORY §1 except sn-conv (see F3); ssn and bssn at the Kaiming point ``c = g / r`` (the scale
whose mean-field gain ``chi`` is 1, with ``r`` the C6b shrink of a hidden layer). Measured: rms
over inputs of ``||dD/dW_l||_F`` and ``||dD/dh_l||`` per seed; drawn as the geometric mean over
seeds with the min-max band; the C7 mean-field predictions dashed (for the conv stack the
padding-aware variant, ``*_pred_pad``: on 16x16 maps with stride 2 the stated C7 ignores the
zero-padded border and overshoots 5-20x; both are in the table).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gradcheck._threads import single_threaded
from gradcheck.schemes import kaiming_gain
from gradcheck.schemes.registry import SCHEMES as SCHEME_RECORDS
from gradcheck.spec import RunSpec
from gradcheck.theory.meanfield import shrink_prediction

from ._common import (
    SCHEME_COLOR,
    SCHEME_MARKER,
    figure_main,
    plt,
    save,
    say,
    scheme_label,
    size_of,
    write_table,
)
from ._engine import probe_tables

NAME = "F1"
SCHEMES = ("lecun", "xavier", "kaiming", "orthogonal", "sn", "bsn", "ssn", "bssn")
COLUMNS = ["arch", "scheme", "scale", "seed", "layer", "kind", "wgrad_rms", "wgrad_pred",
           "wgrad_pred_pad", "agrad_rms", "agrad_pred", "agrad_pred_pad", "chi"]

#: per size: (mlp spec fields, conv spec fields, batch, seeds)
SIZES = {
    "tiny": (dict(depth=4, width=16), dict(depth=4, channels=4, image_size=8, stride_every=2),
             8, (0, 1)),
    "quick": (dict(depth=20, width=128),
              dict(depth=20, channels=16, image_size=16, stride_every=5), 32, (0, 1, 2, 3)),
    "full": (dict(depth=20, width=256),
             dict(depth=20, channels=32, image_size=16, stride_every=5), 64, tuple(range(10))),
}


def kaiming_point(spec: RunSpec, scheme: str) -> float:
    """``c`` at which ssn/bssn match Kaiming on a hidden layer: ``g / r`` (C6b, C7)."""
    g = kaiming_gain(spec.resolved_activation, spec.slope)
    kind = SCHEME_RECORDS[scheme].divisor
    if spec.arch == "mlp":
        return g / shrink_prediction(kind, spec.width, spec.width, 1)
    return g / shrink_prediction(kind, spec.channels, spec.channels, 3)


def compute(quick: bool, tiny: bool, out: Path) -> pd.DataFrame:
    mlp_kw, conv_kw, batch, seeds = SIZES[size_of(quick, tiny)]
    rows = []
    with single_threaded():
        for arch, kw in (("mlp", mlp_kw), ("conv", conv_kw)):
            base = RunSpec(arch=arch, batch=batch, spectra_inputs=0, **kw)
            for scheme in SCHEMES:
                scale = kaiming_point(base, scheme) if SCHEME_RECORDS[scheme].takes_scale \
                    else 1.0
                spec = RunSpec(arch=arch, init=scheme, scale=scale, batch=batch,
                               spectra_inputs=0, **kw)
                say(f"{arch} {scheme_label(scheme, scale)}: {len(seeds)} seeds")
                for seed in seeds:
                    L = probe_tables(spec, seed).layers
                    rows.append(L.assign(arch=arch, scheme=scheme, scale=scale)[COLUMNS])
    return write_table(pd.concat(rows, ignore_index=True), out, NAME.lower())


def _band(ax, df: pd.DataFrame, meas: str, pred: str, scheme: str, scale: float,
          dx: float) -> None:
    """Geometric mean over seeds (markers shifted by ``dx`` so that equal lines stay visible),
    min-max band, mean prediction dashed."""
    g = df.groupby("layer")
    logs = np.log(df[meas].where(df[meas] > 0))
    mid = np.exp(logs.groupby(df.layer).mean())
    c = SCHEME_COLOR[scheme]
    ax.plot(mid.index + dx, mid.values, marker=SCHEME_MARKER[scheme], ms=3.5, lw=1.2, color=c,
            label=scheme_label(scheme, scale))
    ax.fill_between(mid.index + dx, g[meas].min().values, g[meas].max().values, color=c,
                    alpha=0.15, lw=0)
    ax.plot(mid.index, g[pred].mean().values, ls="--", lw=1, color=c)


def draw(df: pd.DataFrame, out: Path) -> None:
    pyplot = plt()
    fig, axes = pyplot.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    n_seeds = df.seed.nunique()
    for i, arch in enumerate(("mlp", "conv")):
        sub = df[df.arch == arch]
        depth = int(sub.layer.max()) + 1
        what = (f"depth-{depth} ReLU MLP (dense: bsn = sn, bssn = ssn, C9a)" if arch == "mlp"
                else f"depth-{depth} leaky-ReLU conv stack (3x3 convs + dense head)")
        pad = "_pad" if arch == "conv" else ""
        for j, (meas, pred, lab) in enumerate((
                ("wgrad_rms", "wgrad_pred" + pad,
                 r"weight gradient $\|\partial D/\partial W_l\|_F$"),
                ("agrad_rms", "agrad_pred" + pad,
                 r"input gradient $\|\partial D/\partial h_l\|$"))):
            ax = axes[i, j]
            for k, scheme in enumerate(SCHEMES):
                s = sub[sub.scheme == scheme]
                if len(s):
                    _band(ax, s, meas, pred, scheme, float(s.scale.iloc[0]),
                          0.07 * (k - (len(SCHEMES) - 1) / 2))
            ax.set_yscale("log")
            ax.set_xlabel("layer index l (0 = input layer)")
            ax.set_ylabel(f"{lab} (norm, rms over inputs)")
            ax.set_title(f"{what}\n{lab.split(' ')[0]} gradient at layer l", fontsize=8.5)
            ax.set_xticks(range(0, depth, max(1, depth // 10)))
    from matplotlib.lines import Line2D

    keys = [Line2D([], [], color="k", lw=1.2), Line2D([], [], color="k", ls="--", lw=1)]
    for i, arch in enumerate(("mlp", "conv")):
        h, lab = axes[i, 0].get_legend_handles_labels()
        pred = "C7 prediction" + (" (padding-aware fans)" if arch == "conv" else "")
        axes[i, 1].legend(h + keys, lab + [f"measured: geometric mean\nover {n_seeds} seeds, "
                                           "band min-max", f"THEORY {pred}"],
                          loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle("F1 — THEORY C7: input gradients vanish across depth (LeCun, Xavier, "
                 "orthogonal; SN, BSN faster) or stay level (Kaiming, SSN/BSSN at the Kaiming "
                 "point)",
                 fontsize=10.5)
    save(fig, out, NAME.lower())


def main(argv=None) -> int:
    return figure_main(NAME, compute, draw, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
