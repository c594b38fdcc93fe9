"""Sample instances per claim module within a time budget and tabulate the verdicts."""
from __future__ import annotations

import importlib
import json
import math
import pkgutil
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gradcheck._threads import single_threaded

from ._base import Result

SUMMARY_COLUMNS = ["claim", "kind", "instances", "worst_ratio", "median_ratio", "verdict",
                   "seconds"]


def claim_modules() -> list:
    """The ``cN_*`` modules of this package, in claim order."""
    pkg = importlib.import_module("proofs_numeric")
    names = sorted((m.name for m in pkgutil.iter_modules(pkg.__path__)
                    if re.fullmatch(r"c\d+_\w+", m.name)),
                   key=lambda n: int(re.match(r"c(\d+)", n).group(1)))
    return [importlib.import_module(f"proofs_numeric.{n}") for n in names]


def run_module(module, instances: int, budget_s: float, seed: int = 0,
               progress=None) -> tuple[list[Result], float, int]:
    """Up to ``instances`` random instances of one module within ``budget_s`` seconds.

    Returns (rows, seconds, instances run). At least one instance always runs.
    """
    rng = np.random.default_rng([seed, int(re.search(r"c(\d+)", module.__name__).group(1))])
    rows: list[Result] = []
    t0, done = time.perf_counter(), 0
    while done < instances and (done == 0 or time.perf_counter() - t0 < budget_s):
        params = module.sample(rng)
        with single_threaded():              # tiny instances: threads cost more than they give
            rows += module.instance(params)
        done += 1
        if progress:
            progress(module.__name__, done)
    return rows, time.perf_counter() - t0, done


def summarize(df: pd.DataFrame, seconds: dict[str, float], counts: dict[str, int],
              order: list[str]) -> pd.DataFrame:
    """One line per (sub-)claim: worst and median ratio and the verdict.

    ``df`` holds one row per checked Result plus the ``module`` that produced it.
    """
    out = []
    for claim in order:
        sub = df[df.claim == claim]
        if sub.empty:
            continue
        kind = sub.kind.iloc[0]
        r = sub.ratio.to_numpy(dtype=float)
        if kind == "inequality":
            worst = float(np.max(r))
        elif kind == "identity":
            worst = float(r[np.argmax(np.abs(r - 1))])
        else:
            worst = float(r[np.argmax(np.abs(np.log(np.where(r > 0, r, np.nan))))]) \
                if np.isfinite(r).any() else math.nan
        if kind == "prediction":
            verdict = f"measured/predicted {np.nanmin(r):.3g}-{np.nanmax(r):.3g}"
        else:
            verdict = "holds" if bool(sub.holds.all()) else \
                f"VIOLATED ({int((~sub.holds.astype(bool)).sum())} rows)"
        mod = sub.module.iloc[0]
        out.append(dict(claim=claim, kind=kind, instances=counts[mod], worst_ratio=worst,
                        median_ratio=float(np.nanmedian(r)), verdict=verdict,
                        seconds=round(seconds[mod], 2)))
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def markdown(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(SUMMARY_COLUMNS) + " |\n|" + "---|" * len(SUMMARY_COLUMNS) + "\n"
    fmt = lambda v: f"{v:.12g}" if isinstance(v, float) else str(v)  # noqa: E731
    return head + "".join("| " + " | ".join(fmt(r[c]) for c in SUMMARY_COLUMNS) + " |\n"
                          for _, r in table.iterrows())


def prove(instances: int = 20, budget_seconds: float = 100.0, seed: int = 0,
          out: Path | None = None, only: list[str] | None = None, progress=None):
    """Run every claim module; return (summary table, all rows). Writes CSV + Markdown to out."""
    mods = claim_modules()
    if only:
        mods = [m for m in mods if any(m.__name__.split(".")[-1].startswith(o.lower() + "_")
                                       for o in only)]
    per = budget_seconds / max(len(mods), 1)
    rows, seconds, counts, order = [], {}, {}, []
    for m in mods:
        name = m.__name__.split(".")[-1]
        res, seconds[name], counts[name] = run_module(m, instances, per, seed, progress)
        rows += [dict(r.row(), module=name) for r in res]
        order += [c for c in m.CLAIMS if c not in order]
    all_rows = pd.DataFrame(rows)
    table = summarize(all_rows, seconds, counts, order)
    if out is not None:        # staged: a complete directory or none (the CLI checked --force)
        from gradcheck.report.io import staged_dir, write_csv

        with staged_dir(Path(out), overwrite=True, kind="prove") as tmp:
            write_csv(table, tmp / "prove.csv")
            flat = all_rows.assign(params=all_rows.params.map(
                lambda p: json.dumps(p, sort_keys=True)))
            write_csv(flat, tmp / "prove_instances.csv")
            (tmp / "prove.md").write_text(markdown(table))
    return table, all_rows
