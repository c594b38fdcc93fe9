"""Smoke tests of the figure scripts F1-F8 at tiny size (a few seconds each).

Each figure is computed by its ``main(argv)`` exactly as ``gradcheck figures`` would run it,
then its outputs are checked: PNG, PDF and CSV exist and are non-empty, the CSV has the
columns the figure declares, and the figure's claim-specific invariants hold on the table.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pandas as pd

from figures import FIGURES, make_all

ROOT = Path(__file__).resolve().parents[2]


def _run(fid: str, out: Path) -> pd.DataFrame:
    mod = importlib.import_module(FIGURES[fid])
    assert mod.main(["--tiny", "--out", str(out)]) == 0
    name = fid.lower()
    for ext in ("png", "pdf", "csv"):
        f = out / f"{name}.{ext}"
        assert f.exists() and f.stat().st_size > 0, f"{fid}: {f.name} missing or empty in {out}"
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    df = pd.read_csv(out / f"{name}.csv")
    missing = sorted(set(mod.COLUMNS) - set(df.columns))
    assert not missing, f"{fid}: {name}.csv lacks columns {missing}; has {list(df.columns)}"
    assert len(df) > 0, f"{fid}: {name}.csv is empty"
    return df


def test_f1_gradients(tmp_path):
    df = _run("F1", tmp_path)
    assert set(df.scheme) == {"lecun", "xavier", "kaiming", "orthogonal", "sn", "bsn", "ssn",
                              "bssn"}
    assert set(df.arch) == {"mlp", "conv"}
    assert (df.wgrad_rms > 0).all() and (df.wgrad_pred > 0).all()


def test_f2_c1_bound(tmp_path):
    df = _run("F2", tmp_path)
    worst = df.loc[df.ratio.idxmax()]
    assert (df.holds.astype(str) == "True").all(), f"C1 violated: worst point {worst.to_dict()}"


def test_f3_strict_sn(tmp_path):
    df = _run("F3", tmp_path)
    assert set(df.scheme) == {"sn", "sn-conv", "bsn"}
    conv = df[df.kind == "conv"]
    # C8: sigma_R <= ||Conv||_op <= mu sigma_R, up to the Lanczos tolerance
    assert (conv.op_over_R >= 1 - 1e-8).all() and (conv.op_over_R <= conv.mu + 1e-8).all()


def test_f4_random_matrices(tmp_path):
    df = _run("F4", tmp_path)
    c5 = df[df.panel == "c5"]
    assert (c5.gordon_lower < 1).all() and (c5.ratio > 0).all()
    assert len(df[df.panel == "c6b"]) > 0


def test_f5_raw_sigma(tmp_path):
    df = _run("F5", tmp_path)
    assert set(df.scheme) == {"lecun", "kaiming", "sn", "bsn"}
    assert (df.raw_sigma_R > 0).all() and df.step.nunique() > 1


def test_f6_training_gradients(tmp_path):
    df = _run("F6", tmp_path)
    assert set(df.panel) == {"grad", "train"}
    grad = df[df.panel == "grad"]
    assert grad.step.nunique() > 1 and (grad.wgrad_rms > 0).all()


def test_f7_scale_sweep(tmp_path):
    df = _run("F7", tmp_path)
    probe = df[(df.panel == "probe") & df.scheme.isin(["ssn", "bssn"])]
    # homogeneous net (C2a): the first-layer gradient grows with c
    for _, g in probe.groupby(["scheme", "seed"]):
        g = g.sort_values("scale")
        assert g.first_wgrad.is_monotonic_increasing, g[["scale", "first_wgrad"]]
    assert len(df[df.panel == "train"]) > 0


def test_f8_jacobian_spectra(tmp_path):
    df = _run("F8", tmp_path)
    meas = df[df.kind == "measured"]
    assert (meas.sv2 >= 0).all()
    assert len(df[df.kind == "fuss_catalan"]) > 0


def test_pdf_is_deterministic_and_draw_only_redraws(tmp_path):
    _run("F4", tmp_path)
    first = (tmp_path / "f4.pdf").read_bytes()
    assert make_all.main(["--only", "f4", "--draw-only", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "f4.pdf").read_bytes() == first


def test_make_all_only_and_usage_errors(tmp_path, capsys):
    assert make_all.main(["--tiny", "--only", "F2, F4", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("f*.png")) == ["f2.png", "f4.png"]
    text = capsys.readouterr().out
    assert "[1/2] F2" in text and "[2/2] F4 done in" in text
    assert make_all.main(["--only", "F9"]) == 2
    assert "unknown figure(s) F9" in capsys.readouterr().err
    assert make_all.main(["--bogus"]) == 2


def test_importing_figures_does_not_import_matplotlib():
    mods = ", ".join(["figures.make_all"] + list(FIGURES.values()))
    code = f"import sys, {mods}; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
