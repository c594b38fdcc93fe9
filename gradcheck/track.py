"""``gradcheck track RUN_DIR``: the probe engine on every checkpoint, and the C10 report.

THEORY C10 (empirical): (a) raw layer sigma over training; (b) C1 holds at every checkpoint
and its bound factor ``prod_{i != t} ||W_i||_op`` stays 1 under SN (dense) while it drifts
without; (c) per-layer gradient norms over training; (d) the effective LeCun ratio
``||W_bar_l||_F / sqrt(c_out)`` over training. Every number is reported; the verdict says which
direction each went, it is not asserted (except (b)'s C1, an inequality).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .pipeline import run
from .report.io import staged_dir, write_csv, write_json
from .spec import RunSpec, SpecError
from .theory.bounds import prod_except
from .train.checkpoint import checkpoint_files


def _direction(first: float, last: float, tol: float = 0.05) -> str:
    if not (math.isfinite(first) and math.isfinite(last)) or first == 0:
        return "undefined"
    r = last / first
    return "increased" if r > 1 + tol else "decreased" if r < 1 - tol else "stable"


def track(run_dir: Path, batch: int = 64, spectra_inputs: int = 0, progress=None,
          out: Path | None = None, overwrite: bool = False, plots: bool = True) -> dict:
    """Probe every checkpoint of a training run; write ``track/`` and return the C10 report
    (``plots=False``: without ``training.png``)."""
    run_dir = Path(run_dir)
    files = checkpoint_files(run_dir)
    if not files:
        raise SpecError(f"argument RUN_DIR: no ckpt_<step>.pt files in {run_dir}")
    say = progress or (lambda m: None)
    layers, checks = [], []
    for f in files:
        step = int(f.stem.split("_")[1])
        say(f"checkpoint step {step} ({files.index(f) + 1}/{len(files)})")
        res = run(RunSpec(checkpoint=str(f), batch=batch, spectra_inputs=spectra_inputs))
        layers.append(res.layers.assign(step=step))
        checks.append(res.checks.assign(step=step))
    L_df, C_df = pd.concat(layers, ignore_index=True), pd.concat(checks, ignore_index=True)
    L_df["lecun_ratio"] = L_df.frobenius / np.sqrt(L_df.weight_shape.map(
        lambda s: int(str(s).split("x")[0])))
    L_df["c1_factor"] = np.concatenate([prod_except(g.sigma_op.to_numpy())
                                        for _, g in L_df.groupby("step", sort=True)])
    report = c10_report(L_df, C_df, json.loads((run_dir / "spec.json").read_text())
                        if (run_dir / "spec.json").exists() else {})
    out = Path(out) if out else run_dir / "track"
    with staged_dir(out, overwrite=overwrite, kind="track") as t:
        write_csv(L_df, t / "layers.csv")
        write_csv(C_df, t / "checks.csv")
        write_json(report, t / "c10.json")
        (t / "c10.md").write_text(c10_markdown(report, L_df))
        if plots:
            from .report.plots import plot_training

            plot_training(L_df, report["scheme"], t / "training.png")
    return report


def c10_report(L_df: pd.DataFrame, C_df: pd.DataFrame, spec: dict) -> dict:
    """(a)-(d) per layer, first vs last checkpoint, with directions; (b) C1 at every step."""
    steps = sorted(L_df.step.unique())
    first, last = L_df[L_df.step == steps[0]], L_df[L_df.step == steps[-1]]
    per_layer = []
    for (_, a), (_, b) in zip(first.iterrows(), last.iterrows()):
        per_layer.append({
            "layer": int(a.layer),
            "a_raw_sigma": [float(a.raw_sigma_R), float(b.raw_sigma_R),
                            _direction(a.raw_sigma_R, b.raw_sigma_R)],
            "b_c1_factor": [float(a.c1_factor), float(b.c1_factor),
                            _direction(a.c1_factor, b.c1_factor)],
            "c_grad_rms": [float(a.wgrad_rms), float(b.wgrad_rms),
                           _direction(a.wgrad_rms, b.wgrad_rms)],
            "d_lecun_ratio": [float(a.lecun_ratio), float(b.lecun_ratio),
                              _direction(a.lecun_ratio, b.lecun_ratio)]})
    c1 = C_df[C_df.claim == "C1"]
    asserted = c1[c1.holds.astype(str).isin(["True", "False"])]
    violated = bool((asserted.holds.astype(str) == "False").any())
    unasserted = [int(s) for s in steps if not (asserted.step == s).any()] if len(asserted) else []
    c1_all = len(asserted) > 0 and not violated and not unasserted
    c1_state = ("VIOLATED" if violated else "holds" if c1_all else
                "not applicable" if not len(asserted) else "partial")
    return dict(
        scheme=spec.get("scheme", "?"), steps=[int(s) for s in steps],
        c1_holds_every_checkpoint=c1_all, c1_rows=int(len(asserted)),
        c1_violated=violated, c1_unasserted_steps=unasserted,
        c1_worst_ratio=float(asserted.ratio.max()) if len(asserted) else None,
        layers=per_layer,
        verdict=_verdict(per_layer, c1_state, spec.get("scheme", "?"), c1, unasserted))


def _verdict(per_layer: list[dict], c1_state: str, scheme: str, c1: pd.DataFrame,
             unasserted: list[int] = ()) -> str:
    count = lambda key, d: sum(p[key][2] == d for p in per_layer)  # noqa: E731
    n = len(per_layer)
    if c1_state == "not applicable":            # no asserted row: say why, never "violated"
        notes = [str(v) for v in c1.note.dropna().unique()] if "note" in c1 else []
        why = notes[0].removeprefix("not applicable").lstrip(": ") if notes else ""
        c1_text = "C1 not applicable" + (f" ({why})" if why else "")
    elif c1_state == "partial":                   # asserted at some checkpoints only
        c1_text = (f"C1 holds where asserted; not asserted at step(s) "
                   f"{', '.join(map(str, unasserted))} (not applicable or overflow there)")
    else:
        c1_text = f"C1 {c1_state} at every checkpoint"
    return (f"{scheme}: {c1_text}; "
            f"raw sigma increased in {count('a_raw_sigma', 'increased')}/{n} layers; "
            f"C1 bound factor drifted (>5%) in "
            f"{n - count('b_c1_factor', 'stable')}/{n} layers; gradient rms increased in "
            f"{count('c_grad_rms', 'increased')}/{n}, decreased in "
            f"{count('c_grad_rms', 'decreased')}/{n}; LeCun ratio moved (>5%) in "
            f"{n - count('d_lecun_ratio', 'stable')}/{n}")


def c10_markdown(report: dict, L_df: pd.DataFrame) -> str:
    lines = [f"# C10 report ({report['scheme']})", "", report["verdict"], "",
             "| layer | raw sigma first -> last | C1 factor | grad rms | LeCun ratio |",
             "|---|---|---|---|---|"]
    f = lambda v: f"{v[0]:.4g} -> {v[1]:.4g} ({v[2]})"  # noqa: E731
    for p in report["layers"]:
        lines.append(f"| {p['layer']} | {f(p['a_raw_sigma'])} | {f(p['b_c1_factor'])} | "
                     f"{f(p['c_grad_rms'])} | {f(p['d_lecun_ratio'])} |")
    for col, what in (("raw_sigma_R", "(a) raw sigma_R per layer"),
                      ("c1_factor", "(b) C1 bound factor prod_{i!=t} ||W_i||_op per layer"),
                      ("wgrad_rms", "(c) rms ||dD/dW|| per layer"),
                      ("lecun_ratio", "(d) ||W_bar||_F / sqrt(c_out) per layer")):
        lines += ["", f"Trajectory {what}, by step:", "", "```"]
        piv = L_df.pivot_table(index="step", columns="layer", values=col)
        lines += [piv.to_string(float_format=lambda v: f"{v:.4g}"), "```"]
    return "\n".join(lines) + "\n"
