"""THEORY C10 per cell and per scheme: (e) quality, (f) stability, (a)-(d) from ``track``.

Pure functions of the stored cell results (pandas / numpy; no torch), built in grid order, so
every backend gives byte-identical tables.

Quality (C10 e), from the training run's metrics.csv (one row every ``--log-every`` steps):

* ring / grid: ``modes_covered`` and ``high_quality`` (higher is better);
* digits: ``digits_frechet`` (a Fréchet distance, lower is better) and ``image_proxy``;
* other images: ``image_proxy`` (a Fréchet distance of pixel features, lower is better);
* other point clouds (``npy:`` of shape (N, 2)): ``point_frechet`` (lower is better).

``final`` is the value at the last metrics row; ``best`` the best value over all rows (max, or
min for lower-is-better metrics), ``best_step`` the first step that reached it.

Stability (C10 f):

* **collapsed** (:func:`collapsed`): at the final row the quality is worse than half its best
  after reaching it: ``final < best / 2`` for higher-is-better metrics, symmetrically
  ``final > 2 * best`` for lower-is-better ones (a distance that more than doubled from its
  best). A non-finite final value with a finite best counts as collapsed; a run without any
  finite value does not (there is no best to fall from). A cell's ``collapsed`` is that of its
  *primary* metric (:data:`PRIMARY`: modes_covered, else digits_frechet, else image_proxy,
  else point_frechet); every metric's own flag is in study.csv.
* **diverged**: the run's summary.json says so (training stopped at a non-finite loss) or a
  metrics row holds a non-finite ``loss_d`` / ``loss_g``.

(a)-(d) come from the C10 report of ``track`` (first vs last checkpoint per layer, with a
direction: increased / decreased / stable within 5%); (b)'s C1 inequality at every checkpoint
is the one asserted number. Every (e)/(f) number is reported with the number of seeds and
never asserted.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..sweep.cells import decode_rows

#: quality metrics: column -> True when higher is better (False: lower is better)
QUALITY = {"modes_covered": True, "high_quality": True, "digits_frechet": False,
           "image_proxy": False, "point_frechet": False}
#: the metric a cell's ``collapsed`` (and the study's headline) refers to, first present wins
PRIMARY = ("modes_covered", "digits_frechet", "image_proxy", "point_frechet")
#: C10 (a)-(d) directions counted per cell: column -> (report field stem, direction(s))
DIRECTION_COUNTS = {"a_sigma_up": ("a_raw_sigma", ("increased",)),
                    "b_c1_drift": ("b_c1_factor", ("increased", "decreased", "undefined")),
                    "b_c1_up": ("b_c1_factor", ("increased",)),
                    "c_grad_up": ("c_grad_rms", ("increased",)),
                    "c_grad_down": ("c_grad_rms", ("decreased",)),
                    "d_lecun_moved": ("d_lecun_ratio", ("increased", "decreased", "undefined"))}
COLLAPSE_RULE = ("collapsed: at the final metrics row the quality is worse than half its best "
                 "(higher-is-better: final < best/2; lower-is-better Frechet distances: final > "
                 "2*best); diverged: a non-finite D or G loss")


def quality_metrics(columns) -> list[str]:
    """The quality columns among ``columns``, in :data:`QUALITY` order."""
    return [m for m in QUALITY if m in set(columns)]


def primary_metric(columns) -> str | None:
    return next((m for m in PRIMARY if m in set(columns)), None)


def best_value(values, higher: bool) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan
    return float(v.max() if higher else v.min())


def collapsed(final: float, best: float, higher: bool) -> bool:
    """C10 (f): ``final`` is worse than half of ``best`` (see the module docstring)."""
    if not math.isfinite(best):
        return False
    if not math.isfinite(final):
        return True
    return final < best / 2 if higher else final > 2 * best


def quality_summary(steps, values, higher: bool) -> dict:
    """``{final, best, best_step, collapsed}`` of one metric over training."""
    steps, values = list(steps), [float(v) for v in values]
    if not values:
        return dict(final=math.nan, best=math.nan, best_step=math.nan, collapsed=False)
    best = best_value(values, higher)
    at = [s for s, v in zip(steps, values) if v == best]
    return dict(final=values[-1], best=best, best_step=int(at[0]) if at else math.nan,
                collapsed=collapsed(values[-1], best, higher))


def diverged(metrics: pd.DataFrame, flagged: bool) -> bool:
    """C10 (f): summary.json's flag, or a non-finite loss in any metrics row."""
    if flagged:
        return True
    for col in ("loss_d", "loss_g"):
        if col in metrics and not np.isfinite(metrics[col].to_numpy(dtype=float)).all():
            return True
    return False


def _coord(v):
    return ",".join(map(str, v)) if isinstance(v, (tuple, list)) else v


def cell_row(cell, result: dict) -> dict:
    """One row of study.csv: the cell's coordinates, (e)/(f) per metric, (a)-(d) counts and
    every per-layer first/last value and direction of the C10 report."""
    M = decode_rows(result["metrics"])
    row = {k: _coord(v) for k, v in cell.coords}
    row.update(cell=cell.key, run=f"runs/{cell.train_key}", steps=int(cell.spec["steps"]),
               last_step=int(M.step.iloc[-1]) if len(M) else 0, rows=int(len(M)))
    dv = diverged(M, bool(result.get("diverged")))
    at = result.get("diverged_at") or {}
    row.update(diverged=dv, diverged_step=at.get("step", math.nan) if at else math.nan)
    metrics = quality_metrics(M.columns)
    primary = primary_metric(M.columns)
    row.update(quality=primary or "", collapsed=False)
    for m in metrics:
        q = quality_summary(M.step, M[m], QUALITY[m])
        if dv:          # the last row before a divergence is not a final quality: (f) counts it
            q["final"] = math.nan
        row.update({f"final_{m}": q["final"], f"best_{m}": q["best"],
                    f"best_step_{m}": q["best_step"], f"collapsed_{m}": q["collapsed"]})
        if m == primary:
            row["collapsed"] = q["collapsed"]
    tr = result.get("track")
    row["tracked"] = tr is not None
    if tr is None:
        return row
    rep = tr["report"]
    L = decode_rows(tr["layers"])
    row.update(checkpoints=len(rep.get("steps", [])),
               c1_every_checkpoint=bool(rep["c1_holds_every_checkpoint"])
               if int(rep["c1_rows"]) > 0 else None,          # None: C1 not applicable
               c1_rows=int(rep["c1_rows"]),
               c1_violated=bool(rep.get("c1_violated", int(rep["c1_rows"]) > 0 and
                                    not rep["c1_holds_every_checkpoint"])),
               c1_worst_ratio=math.nan if rep.get("c1_worst_ratio") is None
               else float(rep["c1_worst_ratio"]), n_layers=int(len(L)))
    for col, (stem, dirs) in DIRECTION_COUNTS.items():
        row[col] = int(L[f"{stem}_dir"].isin(dirs).sum())
    # (b)'s size, not only its direction: the largest C1 bound factor over the layers at the
    # first and the last checkpoint (SN: ~1 once its power iteration has converged)
    for end in ("first", "last"):
        v = L[f"b_c1_factor_{end}"].to_numpy(dtype=float)
        row[f"b_c1_factor_{end}_max"] = float(v.max()) if len(v) else math.nan
    for _, r in L.iterrows():
        i = int(r.layer)
        for stem in ("a_raw_sigma", "b_c1_factor", "c_grad_rms", "d_lecun_ratio"):
            row[f"{stem}_first_{i}"] = float(r[f"{stem}_first"])
            row[f"{stem}_last_{i}"] = float(r[f"{stem}_last"])
            row[f"{stem}_dir_{i}"] = str(r[f"{stem}_dir"])
    return row


def cell_table(cells, results: dict[str, dict]) -> pd.DataFrame:
    """study.csv: one row per cell in grid order (columns: the union, in first-seen order)."""
    rows = [cell_row(c, results[c.key]) for c in cells]
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    return pd.DataFrame(rows, columns=columns)


def group_axes(cells_df: pd.DataFrame, axes: list[str]) -> list[str]:
    """The axes the per-scheme table groups by: every axis but the seed that varies, and
    ``scheme`` always (and ``scale`` whenever it varies)."""
    out = [a for a in axes if a != "seed" and (a == "scheme" or cells_df[a].nunique() > 1)]
    return out or []


def _stats(v: np.ndarray) -> tuple[float, float, float, float]:
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan, math.nan, math.nan
    std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
    return float(np.mean(v)), std, float(v.min()), float(v.max())


def _median(v) -> float:
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else math.nan


def groups(df: pd.DataFrame, by: list[str]):
    """``(key tuple, frame)`` per group of ``by`` in first-seen (grid) order."""
    if not by:
        yield (), df
        return
    for key, g in df.groupby(by, sort=False, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), g


def scheme_table(cells_df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The per-scheme table (numbers): one row per group of cells that differ only in the
    seed; ``n`` seeds; per quality metric final mean / std (ddof 1; NaN for one seed) / min /
    max and best mean / std; counts of collapsed, diverged and C1-at-every-checkpoint seeds;
    (a)-(d) layer counts summed over seeds and their median over seeds."""
    metrics = [m for m in QUALITY if f"final_{m}" in cells_df]
    rows = []
    for key, g in groups(cells_df, by):
        row = dict(zip(by, key))
        row["n"] = int(len(g))
        for m in metrics:
            f_mean, f_std, f_min, f_max = _stats(g[f"final_{m}"].to_numpy(dtype=float))
            b_mean, b_std, _, _ = _stats(g[f"best_{m}"].to_numpy(dtype=float))
            row[f"final_{m}_n"] = int(np.isfinite(g[f"final_{m}"].to_numpy(dtype=float)).sum())
            row.update({f"final_{m}_mean": f_mean, f"final_{m}_std": f_std,
                        f"final_{m}_min": f_min, f"final_{m}_max": f_max,
                        f"best_{m}_mean": b_mean, f"best_{m}_std": b_std})
        row["quality"] = ",".join(sorted(set(g.quality) - {""}))
        row["collapsed"] = int(g.collapsed.astype(bool).sum())
        row["collapsed_share"] = row["collapsed"] / row["n"]
        row["diverged"] = int(g.diverged.astype(bool).sum())
        row["diverged_share"] = row["diverged"] / row["n"]
        tracked = g[g.tracked.astype(bool)]
        row["tracked"] = int(len(tracked))
        applicable = tracked[tracked.c1_rows.astype(float) > 0] if len(tracked) else tracked
        row["c1_applicable"] = int(len(applicable))
        if len(tracked):
            row["c1_every_checkpoint"] = int((applicable.c1_every_checkpoint == True).sum())  # noqa: E712
            row["layers_sum"] = int(tracked.n_layers.sum())
            row["layers_median"] = _median(tracked.n_layers)
            for col in DIRECTION_COUNTS:
                row[f"{col}_sum"] = int(tracked[col].sum())
                row[f"{col}_median"] = _median(tracked[col])
            for end in ("first", "last"):
                row[f"b_c1_factor_{end}_max_median"] = _median(tracked[f"b_c1_factor_{end}_max"])
            row["c1_worst_ratio"] = float(np.nanmax(tracked.c1_worst_ratio.to_numpy(float))) \
                if np.isfinite(tracked.c1_worst_ratio.to_numpy(float)).any() else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


# -- text ------------------------------------------------------------------------------------
def _g(v, spec: str = ".4g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-" if v is None or math.isnan(v) else format(v, spec)
    return format(v, spec)


def _pm(mean, std) -> str:
    return f"{_g(mean)} ± {_g(std)}" if not math.isnan(std) else _g(mean)


def _counts(row, col: str) -> str:
    if not row.get("tracked"):
        return "-"
    return f"{int(row[f'{col}_sum'])}/{int(row['layers_sum'])} (med {_g(row[f'{col}_median'])})"


def table_text(table: pd.DataFrame, by: list[str], seconds: dict | None = None
               ) -> tuple[list[str], list[list[str]]]:
    """``(head, body)`` of the per-scheme table; ``seconds`` (group index -> mean train
    seconds) adds a column (the console's; the files stay free of wall-clock times)."""
    metrics = [m for m in QUALITY if f"final_{m}_mean" in table]
    head = [*by, "n"]
    for m in metrics:
        head += [f"final {m}", f"best {m}"]
    head += ["collapsed", "diverged", "C1 every ckpt", "(a) sigma up", "(b) C1 factor drift",
             "(b) of which up", "(c) grad up", "(c) grad down", "(d) LeCun moved",
             "(b) max C1 factor first -> last"]
    if seconds is not None:
        head.append("train s")
    body = []
    for i, r in table.iterrows():
        r = r.to_dict()
        line = [str(r[a]) for a in by] + [str(int(r["n"]))]
        for m in metrics:
            if math.isnan(r[f"final_{m}_mean"]):
                line += ["-", "-"]
                continue
            k = int(r.get(f"final_{m}_n", r["n"]))
            line.append(f"{_pm(r[f'final_{m}_mean'], r[f'final_{m}_std'])} "
                        f"[{_g(r[f'final_{m}_min'])}..{_g(r[f'final_{m}_max'])}]"
                        + (f" ({k}/{int(r['n'])} seeds)" if k < int(r["n"]) else ""))
            line.append(_pm(r[f"best_{m}_mean"], r[f"best_{m}_std"]))
        n = int(r["n"])
        line += [f"{int(r['collapsed'])}/{n}", f"{int(r['diverged'])}/{n}",
                 "-" if not r["tracked"] else "n/a" if not r["c1_applicable"] else
                 f"{int(r['c1_every_checkpoint'])}/{int(r['c1_applicable'])}"]
        line += [_counts(r, c) for c in DIRECTION_COUNTS]
        line.append("-" if not r["tracked"] else
                    f"{_g(r['b_c1_factor_first_max_median'])} -> "
                    f"{_g(r['b_c1_factor_last_max_median'])}")
        if seconds is not None:
            line.append(_g(seconds.get(i, math.nan), ".3g"))
        body.append(line)
    return head, body


def markdown(head: list[str], body: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(esc, b)) + " |" for b in body]
    return "\n".join(lines)


def console(head: list[str], body: list[list[str]], left: int) -> str:
    from ..sweep.tables import _grid_text

    return _grid_text(head, body, left=left)


__all__ = ["QUALITY", "PRIMARY", "COLLAPSE_RULE", "quality_metrics", "primary_metric",
           "best_value", "collapsed", "quality_summary", "diverged", "cell_row", "cell_table",
           "group_axes", "groups", "scheme_table", "table_text", "markdown", "console"]
