"""Console tables and the run summary (pure functions of the run's DataFrames)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

ASSERTED = ("inequality", "identity")


def _fmt(v, spec: str = ".3g") -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def layer_table(layers: pd.DataFrame, seed: int) -> str:
    """The per-layer console table for one seed: sizes, sigmas, gradient norms vs C7."""
    cols = [("layer", "layer", "d"), ("kind", "kind", ""), ("fan_in", "fan_in", "d"),
            ("fan_out", "fan_out", "d"), ("sigma_R", "sig_R", ".4g"),
            ("sigma_R2", "sig_R2", ".4g"), ("sigma_op", "sig_op", ".4g"),
            ("sigma_scheme", "sig_div", ".4g"), ("wgrad_rms", "|dD/dW|", ".3e"),
            ("wgrad_pred", "C7 pred", ".3e"), ("wgrad_ratio", "ratio", ".3f"),
            ("agrad_rms", "|dD/dh|", ".3e"), ("agrad_pred", "C7 pred", ".3e"),
            ("agrad_ratio", "ratio", ".3f")]
    df = layers[layers.seed == seed]
    if (df.kind == "conv").any():          # C8: 1 <= sigma_op / sigma_R <= mu
        cols[7:7] = [("op_over_R", "op/R", ".3f"), ("mu", "mu", ".3g")]
    head = [c[1] for c in cols]
    body = [[_fmt(r[c[0]], c[2]) for c in cols] for _, r in df.iterrows()]
    widths = [max(len(h), *(len(b[j]) for b in body)) for j, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def claim_summary(checks: pd.DataFrame) -> dict:
    """Per claim: kind, rows, applicable rows, violations, worst ratio, verdict."""
    from ..claims import REGISTRY as CLAIMS

    order = {c: i for i, c in enumerate(CLAIMS)}
    out = {}
    groups = sorted(checks.groupby("claim", sort=False), key=lambda g: order.get(g[0], 99))
    for claim, df in groups:
        kind = df.kind.iloc[0]
        over = df.note.str.startswith("overflow")
        app = df[(df.note.str.startswith("not applicable") == False) & ~over]  # noqa: E712
        entry = dict(kind=kind, rows=int(len(df)), applicable=int(len(app)),
                     overflow=int(over.sum()))
        if len(app) == 0:
            entry.update(verdict="overflow" if entry["overflow"] else "not applicable",
                         worst_ratio=None, reason=str(df.note.iloc[0]))
        elif kind in ASSERTED:
            bad = int((app.holds == False).sum())  # noqa: E712
            dev = (app.ratio if kind == "inequality" else (app.ratio - 1).abs())
            worst = app.ratio.iloc[int(np.argmax(dev.to_numpy()))]
            entry.update(verdict="violated" if bad else "holds", violations=bad,
                         worst_ratio=float(worst))
        else:
            r = app.ratio.to_numpy(dtype=float)
            entry.update(verdict="measured/predicted", ratio_min=float(np.nanmin(r)),
                         ratio_median=float(np.nanmedian(r)), ratio_max=float(np.nanmax(r)))
        out[claim] = entry
    return out


def vanishing_rates(layers: pd.DataFrame) -> dict:
    """Per seed: geometric-mean per-layer factor of ||dD/dh|| from the top layer down, measured
    and C7-predicted (1 = no vanishing; < 1 vanishing; > 1 exploding)."""
    out = {}
    for seed, df in layers.groupby("seed"):
        L = len(df)
        if L < 2:
            continue
        a, p = df.agrad_rms.to_numpy(), df.agrad_pred.to_numpy()
        rate = lambda v: float((v[0] / v[-1]) ** (1 / (L - 1))) if v[-1] > 0 else math.nan  # noqa
        out[str(seed)] = dict(measured=rate(a), predicted=rate(p))
    return out


def checks_table(summary: dict) -> str:
    """One line per claim with its verdict."""
    lines = []
    for claim, e in summary.items():
        if e["verdict"] == "measured/predicted":
            extra = (f"measured/predicted min {e['ratio_min']:.3f}  median "
                     f"{e['ratio_median']:.3f}  max {e['ratio_max']:.3f}")
        elif e["verdict"] == "not applicable":
            extra = e["reason"].replace("not applicable: ", "")
        elif e["verdict"] == "overflow":
            extra = ""
        elif e["kind"] == "identity":
            extra = (f"worst |ratio - 1| {abs(e['worst_ratio'] - 1):.2e}  "
                     f"violations {e['violations']}")
        else:
            extra = f"worst ratio {e['worst_ratio']:.6g}  violations {e['violations']}"
        if e.get("overflow"):
            extra += (f"  ({e['overflow']} rows out of this dtype's range: explosion or "
                      "vanishing)")
        lines.append(f"{claim:8s} {e['kind']:10s} {e['verdict']:18s} "
                     f"{e['applicable']:>4d}/{e['rows']:<4d} rows  {extra}")
    return "\n".join(lines)


def gradient_control_table(layers: pd.DataFrame) -> dict:
    """THEORY C9b, per seed: spread max/min of per-layer rms ||dD/dW|| and sum |log chi|."""
    from ..theory.bsn import gradient_control

    out = {}
    for seed, df in layers.groupby("seed"):
        try:
            spread, logchi = gradient_control(df.wgrad_rms.to_numpy(), df.chi.to_numpy())
        except ValueError:
            spread, logchi = math.nan, math.nan
        out[str(seed)] = dict(spread=float(spread), sum_abs_log_chi=float(logchi))
    return out
