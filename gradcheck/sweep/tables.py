"""Tidy tables of a sweep or comparison, the per-cell summary, and the compare console table.

Pure functions of the cells and their stored results (pandas at the edge). The tables are
built from the stored results in grid order, never in completion order, so every backend
gives the same table.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..claims._base import verdict_line, violated_claims
from ..report.tables import claim_summary, gradient_control_table, vanishing_rates
from .cells import decode_rows
from .grid import Cell

#: the claims whose worst ratio is the "bound tightness" (chain bound, graph bound)
BOUND_CLAIMS = ("C1", "C11")


def _fmt(v, spec: str) -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def _keyed(df: pd.DataFrame, cell: Cell) -> pd.DataFrame:
    front = {"cell": cell.key}
    front.update({k: (",".join(map(str, v)) if isinstance(v, tuple) else v)
                  for k, v in cell.coords if k != "seed"})
    df = df.copy()
    for i, (k, v) in enumerate(front.items()):
        df.insert(i, k if k not in df.columns else f"grid_{k}", [v] * len(df))
    return df


def tidy(cells: list[Cell], results: dict[str, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(layers, checks)``: every layer row and every check row of every cell, with the cell
    key and the grid coordinates in front (the rows carry their ``seed`` already)."""
    layers, checks = [], []
    for c in cells:
        r = results[c.key]
        layers.append(_keyed(decode_rows(r["layers"]), c))
        checks.append(_keyed(decode_rows(r["checks"]), c))
    return (pd.concat(layers, ignore_index=True) if layers else pd.DataFrame(),
            pd.concat(checks, ignore_index=True) if checks else pd.DataFrame())


def _worst(entry: dict | None) -> float:
    if not entry or entry.get("worst_ratio") is None:
        return math.nan
    return float(entry["worst_ratio"])


def cell_summary(cells: list[Cell], results: dict[str, dict]) -> pd.DataFrame:
    """One row per cell: coordinates, verdict, worst C1 / C11 ratio, layer-0 gradient and its
    C7 prediction, median C7 ratio, ||dD/dh|| per-layer factor (measured, predicted), C9b."""
    rows = []
    for c in cells:
        r = results[c.key]
        L, K = decode_rows(r["layers"]), decode_rows(r["checks"])
        summ = claim_summary(K) if len(K) else {}
        bad = violated_claims(K) if len(K) else ()
        rate = vanishing_rates(L).get(str(c.seed), {})
        ctrl = gradient_control_table(L).get(str(c.seed), {})
        first = L[L.layer == 0].iloc[0] if len(L) else None
        row = {k: (",".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in c.coords}
        row.update(cell=c.key, n_layers=int(len(L)), verdict=verdict_line(bad),
                   violated=",".join(bad), c1_worst=_worst(summ.get("C1")),
                   c11_worst=_worst(summ.get("C11")),
                   wgrad0_rms=float(first.wgrad_rms) if first is not None else math.nan,
                   wgrad0_pred=float(first.wgrad_pred) if first is not None else math.nan,
                   wgrad0_ratio=float(first.wgrad_ratio) if first is not None else math.nan,
                   c7_ratio_median=float(np.nanmedian(L.wgrad_ratio)) if len(L) and
                   np.isfinite(L.wgrad_ratio).any() else math.nan,
                   agrad_rate=rate.get("measured", math.nan),
                   agrad_rate_pred=rate.get("predicted", math.nan),
                   c9b_spread=ctrl.get("spread", math.nan))
        rows.append(row)
    return pd.DataFrame(rows)


def _for_file(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding mixed Python types (``holds``: True/False, or '' for a
    prediction) as strings, so that Parquet and CSV store the same text."""
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            vals = df[c].dropna()
            if len(vals) and not all(isinstance(v, str) for v in vals):
                df[c] = df[c].map(lambda v: v if v is None or isinstance(v, str) or
                                  (isinstance(v, float) and math.isnan(v)) else str(v))
    return df


def table_format() -> str:
    """'parquet' when pyarrow is installed, else 'csv'."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return "csv"
    return "parquet"


def write_table(df: pd.DataFrame, stem, fmt: str) -> str:
    """Write ``df`` to ``stem.parquet`` or ``stem.csv`` atomically; return the file name."""
    import os
    from pathlib import Path

    from ..report.io import write_csv

    path = Path(f"{stem}.{fmt}")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    out = _for_file(df)
    if fmt == "parquet":
        out.to_parquet(tmp, index=False)
    else:
        write_csv(out, tmp)
    os.replace(tmp, path)
    return path.name


def read_table(path) -> pd.DataFrame:
    """A table written by :func:`write_table` (either format)."""
    p = str(path)
    return pd.read_parquet(p) if p.endswith(".parquet") else pd.read_csv(p)


# -- compare: side by side per layer ------------------------------------------------------------
def bound_rows(checks: pd.DataFrame) -> pd.DataFrame:
    """Per (init, seed, layer): the C1 ratio where C1 applies, else the C11 ratio."""
    out = []
    for claim in BOUND_CLAIMS:
        k = checks[(checks.claim == claim) & ~checks.note.astype(str).str.startswith(
            ("not applicable", "overflow")) & checks.ratio.notna()]
        out.append(k.assign(bound=claim))
    both = pd.concat(out, ignore_index=True)
    both = both.sort_values("bound", kind="stable")        # C1 before C11
    return both.drop_duplicates(["init", "seed", "layer"], keep="first")


def compare_console(layers: pd.DataFrame, checks: pd.DataFrame, columns: list[str],
                    labels: dict[str, str]) -> str:
    """The per-layer tables of ``gradcheck compare`` (schemes side by side) and one verdict row
    per scheme. ``layers`` / ``checks`` carry an ``init`` entry naming the scheme column."""
    n_seeds = layers.seed.nunique()
    over = f"mean over {n_seeds} seeds" if n_seeds > 1 else f"seed {layers.seed.iloc[0]}"
    b = bound_rows(checks)
    blocks = [("|dD/dW_l| (rms over inputs; " + over + ")", layers, "wgrad_rms", "mean", ".3e"),
              ("measured / C7-predicted |dD/dW_l| (" + over + ")", layers, "wgrad_ratio",
               "mean", ".3f"),
              ("bound tightness |dD/dW_t| / bound, worst input (C1; C11 where C1 does not "
               "apply; worst over seeds)", b, "ratio", "max", ".3g")]
    if np.isfinite(layers.jac_cum_msq).any():
        blocks.append(("Jacobian mean square singular value, h_l -> penultimate features (" +
                       over + ")", layers, "jac_cum_msq", "mean", ".3g"))
    n_layers = int(layers.layer.max()) + 1
    head = ["layer"] + [labels[c] for c in columns]
    out = []
    for title, df, col, how, fmt in blocks:
        grid = df.groupby(["layer", "init"])[col].agg(how).unstack("init") if len(df) \
            else pd.DataFrame()
        body = []
        for layer in range(n_layers):
            cells = [str(layer)]
            for c in columns:
                v = grid.at[layer, c] if layer in grid.index and c in grid.columns else math.nan
                cells.append(_fmt(float(v), fmt))
            body.append(cells)
        if col == "ratio" and len(df):
            which = df.groupby("init").bound.agg(lambda s: "/".join(sorted(set(s))))
            body.append(["claim"] + [which.get(c, "-") for c in columns])
        out.append(title + "\n" + _grid_text(head, body))
    out.append("verdict per scheme\n" + verdict_table(layers, checks, columns, labels))
    return "\n\n".join(out)


def verdict_table(layers: pd.DataFrame, checks: pd.DataFrame, columns: list[str],
                  labels: dict[str, str]) -> str:
    """One row per scheme: verdict, worst C1 / C11 ratio, C7 ratio range, ||dD/dh|| factor."""
    head = ["scheme", "verdict", "worst C1", "worst C11", "C7 ratio min..max",
            "|dD/dh| factor/layer (C7 pred)"]
    body = []
    for c in columns:
        L, K = layers[layers.init == c], checks[checks.init == c]
        summ = claim_summary(K)
        bad = violated_claims(K)
        rates = list(vanishing_rates(L).values())
        meas = np.mean([r["measured"] for r in rates]) if rates else math.nan
        pred = np.mean([r["predicted"] for r in rates]) if rates else math.nan
        r = L.wgrad_ratio
        body.append([labels[c], verdict_line(bad) if not bad else "VIOLATED: " + ", ".join(bad),
                     _fmt(_worst(summ.get("C1")), ".4g"), _fmt(_worst(summ.get("C11")), ".4g"),
                     f"{_fmt(float(r.min()), '.3f')}..{_fmt(float(r.max()), '.3f')}",
                     f"{_fmt(float(meas), '.4f')} ({_fmt(float(pred), '.4f')})"])
    return _grid_text(head, body, left=2)


def _grid_text(head: list[str], body: list[list[str]], left: int = 1) -> str:
    widths = [max(len(h), *(len(b[j]) for b in body)) if body else len(h)
              for j, h in enumerate(head)]

    def line(cells):
        return "  ".join(c.ljust(w) if j < left else c.rjust(w)
                         for j, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


__all__ = ["tidy", "cell_summary", "write_table", "read_table", "table_format",
           "compare_console", "verdict_table", "bound_rows"]
