"""End-to-end tests of ``gradcheck run``: main(argv), the console script, bad input, files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradcheck.cli import main

SMALL = ["--depth", "4", "--width", "16", "--batch", "8", "--spectra-inputs", "4", "--no-plots"]
FILES = ["spec.json", "layers.csv", "checks.csv", "spectra.npz", "summary.json", "timings.json",
         "gradcheck.json"]


def run_main(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_writes_every_file_and_holds(tmp_path, capsys):
    out = tmp_path / "r"
    code, stdout, _ = run_main(["run", "--init", "sn", *SMALL, "--out", str(out)], capsys)
    assert code == 0, stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    checks = pd.read_csv(out / "checks.csv")
    assert list(checks.columns) == ["claim", "kind", "seed", "layer", "lhs", "rhs", "ratio",
                                    "holds", "note"]
    for claim in ("C1", "C1-SN", "C1a", "C6a", "C7"):
        assert (checks.claim == claim).sum() == 4, claim
    c1sn = checks[checks.claim == "C1-SN"]
    assert c1sn.holds.all() and (c1sn.ratio <= 1).all()
    layers = pd.read_csv(out / "layers.csv")
    assert len(layers) == 4 and np.allclose(layers.sigma_op, 1.0, rtol=1e-12)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "all asserted claims hold"
    assert "C1" in stdout and "|dD/dW|" in stdout


def test_c1_sn_bound_is_input_norm(tmp_path, capsys):
    """THEORY C1-SN: with SN the C1 bound of every layer is ||x|| (lambda_L = 1)."""
    out = tmp_path / "r"
    assert run_main(["run", "--init", "sn", *SMALL, "--out", str(out)], capsys)[0] == 0
    checks = pd.read_csv(out / "checks.csv")
    from gradcheck.build import make_inputs
    from gradcheck.spec import RunSpec

    spec = RunSpec.from_dict(json.loads((out / "spec.json").read_text()))
    x_norms = make_inputs(spec, 0).reshape(spec.batch, -1).norm(dim=1).numpy()
    c1 = checks[checks.claim == "C1"].reset_index(drop=True)
    c1sn = checks[checks.claim == "C1-SN"].reset_index(drop=True)
    np.testing.assert_allclose(c1.rhs, c1sn.rhs, rtol=1e-12, atol=0)
    for rhs in c1sn.rhs:      # the bound at the worst input is that input's norm
        assert np.min(np.abs(x_norms - rhs) / rhs) < 1e-12


def test_same_spec_same_files(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_main(["run", "--init", "bsn", *SMALL, "--out", str(a)], capsys)[0] == 0
    assert run_main(["run", "--spec", str(a / "spec.json"), "--no-plots", "--out", str(b)],
                    capsys)[0] == 0
    for name in FILES:
        if name != "timings.json":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_json_output(tmp_path, capsys):
    code, stdout, _ = run_main(["run", *SMALL, "--out", str(tmp_path / "r"), "--json"], capsys)
    assert code == 0
    assert json.loads(stdout)["claims"]["C1"]["verdict"] == "holds"


def test_plots_written(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["run", "--depth", "3", "--width", "8", "--batch", "4", "--out", str(out), "--quiet"]
    assert run_main(argv, capsys)[0] == 0
    for name in ("gradients.png", "spectra.png", "bounds.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name


def test_conv_and_sngan_report_three_sigmas(tmp_path, capsys):
    out = tmp_path / "c"
    argv = ["run", "--arch", "conv", "--init", "sn", "--depth", "3", "--channels", "4",
            "--image-size", "6", "--batch", "4", "--spectra-inputs", "1", "--no-plots",
            "--out", str(out)]
    code, stdout, _ = run_main(argv, capsys)
    assert code == 0
    layers = pd.read_csv(out / "layers.csv")
    conv = layers[layers.kind == "conv"]
    assert (conv.op_over_R >= 1 - 1e-9).all() and (conv.op_over_R <= conv.mu + 1e-9).all()
    assert "op/R" in stdout


@pytest.mark.parametrize("argv, needle", [
    (["run", "--init", "foo"], "argument --init: must be one of lecun"),
    (["run", "--depth", "0"], "argument --depth: must be an integer >= 1"),
    (["run", "--depth", "abc"], "argument --depth"),
    (["run", "--arch", "sngan", "--depth", "5"], "fixed depth of 8"),
    (["run", "--scale", "2", "--init", "sn"], "only ssn, bssn take a scale"),
    (["run", "--seeds", "4-2"], "argument --seeds"),
    (["run", "--slope", "nan"], "argument --slope"),
    (["run", "--inputs", "ring", "--arch", "conv"], "argument --inputs"),
    (["run", "--activation", "gelu"], "argument --activation"),
    (["run", "--spec", "/nonexistent/spec.json"], "argument --spec: cannot read"),
    (["run", "--bogus"], "unrecognized arguments"),
    (["prove", "--instances", "0"], "argument --instances"),
    (["prove", "--only", "C77"], "argument --only"),
])
def test_bad_input_exits_2_with_one_line(argv, needle, tmp_path, capsys):
    out = tmp_path / "never"
    code, stdout, stderr = run_main([*argv, "--out", str(out)] if argv[0] == "run" else argv,
                                    capsys)
    assert code == 2
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not any(p.name.startswith(".never") for p in tmp_path.iterdir())


def test_corrupt_spec_file(tmp_path, capsys):
    bad = tmp_path / "spec.json"
    bad.write_text('{"arch": "mlp", "depth": "twenty"}')
    code, _, err = run_main(["run", "--spec", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "field 'depth' must be an integer" in err   # JSON types are checked
    bad.write_text('{"nonsense": 1}')
    code, _, err = run_main(["run", "--spec", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "unknown field" in err


def test_existing_out_needs_force(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "spec.json").write_text("{}")            # an earlier run directory (its manifest)
    (out / "gradcheck.json").write_text('{"kind": "run", "version": "0.1.0"}')
    (out / "keep").write_text("x")
    code, _, err = run_main(["run", *SMALL, "--out", str(out)], capsys)
    assert code == 2 and "--force" in err and (out / "keep").exists()
    assert run_main(["run", *SMALL, "--out", str(out), "--force"], capsys)[0] == 0
    assert not (out / "keep").exists()


def test_force_never_deletes_what_is_not_a_run(tmp_path, capsys, monkeypatch):
    """--force on the current directory, a parent of it, a file, or a non-run directory: exit 2
    and nothing touched (a reviewer found `--out . --force` emptied the working directory)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious").write_text("x")
    monkeypatch.chdir(work)
    other = tmp_path / "other"
    other.mkdir()
    (other / "data").write_text("y")
    afile = tmp_path / "file"
    afile.write_text("z")
    for out in (".", "", str(tmp_path), str(other), str(afile), str(afile / "sub")):
        code, _, err = run_main(["run", *SMALL, "--out", out, "--force"], capsys)
        assert code == 2 and err.count("\n") == 1 and "--out" in err, (out, err)
    assert (work / "precious").read_text() == "x" and (other / "data").read_text() == "y"
    assert afile.read_text() == "z"


def test_violation_exits_1(tmp_path, capsys, monkeypatch):
    """A broken bound must turn into exit code 1 and a 'violated' verdict (the checker can fail)."""
    import gradcheck.claims.c1_gradient_bound as c1

    monkeypatch.setattr(c1, "c1_bound", lambda x, op, mu, lam: 0.5 * np.ones(
        (len(op), len(x))) * 1e-12)
    code, stdout, _ = run_main(["run", *SMALL, "--out", str(tmp_path / "r")], capsys)
    assert code == 1 and "violated: C1" in stdout


def test_console_script_and_module(tmp_path):
    exe = shutil.which("gradcheck", path=str(Path(sys.executable).parent)) or "gradcheck"
    for cmd in ([exe], [sys.executable, "-m", "gradcheck"]):
        p = subprocess.run([*cmd, "run", *SMALL, "--out", str(tmp_path / cmd[-1].replace(
            "/", "_")), "--quiet"], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        bad = subprocess.run([*cmd, "run", "--init", "nope"], capture_output=True, text=True,
                             timeout=300)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr


def test_import_is_light():
    code = ("import sys, gradcheck, gradcheck.probe, gradcheck.cli, gradcheck.runner; "
            "print('matplotlib' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ})
    assert p.stdout.strip() == "False", p.stderr


def test_float32_overflow_is_reported_not_crashed(tmp_path, capsys):
    """ssn with c = 4 on a linear net doubles the signal per layer: 2^150 overflows float32."""
    out = tmp_path / "r"
    argv = ["run", "--dtype", "float32", "--init", "ssn", "--scale", "4", "--activation",
            "linear", "--depth", "150", "--width", "8", "--batch", "4", "--spectra-inputs", "2",
            "--no-plots", "--out", str(out)]
    code, stdout, _ = run_main(argv, capsys)
    assert code == 0, stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overflow_rows"] > 0 and "explosion" in summary["verdict"]


def test_run_covers_every_applicable_claim(tmp_path, capsys):
    out = tmp_path / "r"
    assert run_main(["run", "--init", "bsn", *SMALL, "--out", str(out)], capsys)[0] == 0
    checks = pd.read_csv(out / "checks.csv")
    for claim in ("C1", "C1a", "C1-SN", "C2a", "C2b", "C3a", "C3b", "C4", "C6a", "C9a"):
        rows = checks[checks.claim == claim]
        assert len(rows) and (rows.holds == True).all(), claim  # noqa: E712
    for claim in ("C5-ratio", "C6b", "C7", "C9b"):
        rows = checks[checks.claim == claim]
        assert len(rows) and rows.holds.isna().all() and rows.ratio.notna().all(), claim


def test_inapplicable_claims_say_why(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["run", "--init", "sn", "--activation", "tanh", "--bias", *SMALL, "--out", str(out)]
    code, stdout, _ = run_main(argv, capsys)
    assert code == 0
    checks = pd.read_csv(out / "checks.csv")
    for claim in ("C1", "C1-SN", "C2a", "C4", "C6a"):
        rows = checks[checks.claim == claim]
        assert len(rows) and rows.note.str.startswith("not applicable: non-zero biases").all()
        assert rows.holds.isna().all(), claim           # never reported as a pass
    assert "not applicable" in stdout and "non-zero biases" in stdout


USER_MODELS = '''
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.nn.utils import spectral_norm as legacy_sn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = spectral_norm(nn.Conv2d(3, 4, 3, padding=1, bias=False))
        self.c2 = legacy_sn(nn.Conv2d(4, 4, 4, stride=2, padding=1, bias=False))
        self.fc = spectral_norm(nn.Linear(4 * 4 * 4, 1, bias=False))

    def forward(self, x):
        h = nn.functional.leaky_relu(self.c1(x), 0.2)
        h = nn.functional.leaky_relu(self.c2(h), 0.2)
        return self.fc(h.flatten(1))


def torch_sn():
    return Net()


def sigmoid_mlp():
    return nn.Sequential(nn.Linear(8, 16, bias=False), nn.ReLU(), nn.Linear(16, 1, bias=False),
                         nn.Sigmoid())


class Five(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8, bias=False), nn.Linear(8, 1, bias=False)

    def forward(self, x):
        return self.b(5 * self.a(x))


def five():
    return Five()


def bn():
    return nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
'''


def test_user_model_from_a_separate_file(tmp_path, capsys, monkeypatch):
    """A user's module with torch's own spectral_norm (parametrization and legacy hook) is
    probed end to end; activations are read off the tape, so a sigmoid output or an x5
    'activation' are never reported as violations (they are n/a or checked with the right
    lambda_L); unprobe-able layers are named."""
    (tmp_path / "usernets.py").write_text(USER_MODELS)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "a"
    code, stdout, err = run_main(["run", "--model", "usernets:torch_sn", "--input-shape",
                                  "3,8,8", "--batch", "4", "--no-plots", "--out", str(out)],
                                 capsys)
    assert code == 0, err
    layers = pd.read_csv(out / "layers.csv")
    assert list(layers.kind) == ["conv", "conv", "linear"]
    assert "lrelu (slope 0.2)" in err
    checks = pd.read_csv(out / "checks.csv")
    assert checks[checks.claim == "C1"].holds.all() and checks[checks.claim == "C2a"].holds.all()
    code, _, err = run_main(["run", "--model", "usernets:sigmoid_mlp", "--input-shape", "8",
                             "--no-plots", "--out", str(tmp_path / "b")], capsys)
    assert code == 0 and "output sigmoid" in err
    code, _, _ = run_main(["run", "--model", "usernets:five", "--input-shape", "8",
                           "--no-plots", "--out", str(tmp_path / "c")], capsys)
    c = pd.read_csv(tmp_path / "c" / "checks.csv")
    assert code == 0 and c[c.claim == "C1"].note.str.contains(
        r"operator norm > 1: mul at '' \(5\)").all()
    # eval-mode BatchNorm is probed; the claims name it as the node outside their premises
    code, _, err = run_main(["run", "--model", "usernets:bn", "--input-shape", "8",
                             "--out", str(tmp_path / "d")], capsys)
    d = pd.read_csv(tmp_path / "d" / "checks.csv")
    assert code == 0 and d[d.claim == "C11"].note.str.contains("BatchNorm1d").all()
    assert d[d.claim == "C1"].note.str.startswith("not applicable").all()
    # same spec + seed -> same files, for a factory with torch's default (global-RNG) init
    code, _, _ = run_main(["run", "--model", "usernets:sigmoid_mlp", "--input-shape", "8",
                           "--no-plots", "--out", str(tmp_path / "b2")], capsys)
    assert (tmp_path / "b" / "layers.csv").read_bytes() == \
        (tmp_path / "b2" / "layers.csv").read_bytes()


@pytest.mark.parametrize("args", [["--scale", "4", "--depth", "120", "--dtype", "float32"],
                                  ["--scale", "0.1", "--depth", "60", "--dtype", "float32"],
                                  ["--scale", "4", "--depth", "600"]])
def test_out_of_range_is_never_a_violation(args, tmp_path, capsys):
    """Reviewer's cases: float32 overflow (C6a lhs 1.6e10 vs rhs inf), float32 underflow (lhs 0
    vs 2.5e-87) and a float64 Lipschitz product beyond 1e308 (C2b inf <= inf) were violations."""
    argv = ["run", "--init", "ssn", *args, "--width", "8", "--batch", "4", "--spectra-inputs",
            "2", "--no-plots", "--out", str(tmp_path / "r")]
    code, stdout, _ = run_main(argv, capsys)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert code == 0 and not summary["violated"] and summary["overflow_rows"] > 0, stdout


def test_figures_subcommand_delegates(tmp_path, capsys):
    code = main(["figures", "--tiny", "--only", "F4", "--out", str(tmp_path)])
    assert code == 0 and (tmp_path / "f4.png").exists() and (tmp_path / "f4.csv").exists()
    assert main(["figures", "--only", "F9"]) == 2
