"""GAN training: determinism, checkpoints (weights_only), kill-and-resume, probing checkpoints."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from gradcheck.cli import main
from gradcheck.spec import TrainSpec, validate_train
from gradcheck.train.checkpoint import checkpoint_files, load_checkpoint
from gradcheck.train.gan import train

SPEC = dict(data="ring", depth=3, width=32, steps=40, log_every=10, ckpt_every=10, n_data=512,
            batch=32)


def _same_state(a: dict, b: dict) -> None:
    for key in ("D", "G"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    assert a["step"] == b["step"] and torch.equal(a["rng"], b["rng"])


@pytest.mark.parametrize("scheme", ["lecun", "sn", "bsn"])
def test_resume_equals_uninterrupted(tmp_path, scheme):
    spec = validate_train(TrainSpec(scheme=scheme, **SPEC))
    train(spec, tmp_path / "full", progress=False)
    train(spec, tmp_path / "cut", progress=False, stop_at=25)       # last checkpoint: 20
    assert [p.name for p in checkpoint_files(tmp_path / "cut")][-1] == "ckpt_20.pt"
    train(spec, tmp_path / "cut", progress=False)                    # resumes from 20
    _same_state(load_checkpoint(tmp_path / "full" / "ckpt_40.pt"),
                load_checkpoint(tmp_path / "cut" / "ckpt_40.pt"))
    a = pd.read_csv(tmp_path / "full" / "metrics.csv")
    b = pd.read_csv(tmp_path / "cut" / "metrics.csv")
    pd.testing.assert_frame_equal(a, b)


def test_checkpoint_loads_weights_only(tmp_path):
    spec = validate_train(TrainSpec(scheme="sn", **SPEC))
    train(spec, tmp_path, progress=False)
    state = torch.load(tmp_path / "ckpt_40.pt", weights_only=True)
    assert state["format"] == "gradcheck-checkpoint/1" and state["step"] == 40
    assert {"D", "G", "opt_D", "opt_G", "rng", "spec"} <= set(state)


def test_kill_and_resume_subprocess(tmp_path):
    """SIGKILL a real `gradcheck train` mid-run, rerun it, and get the uninterrupted weights."""
    args = ["--data", "ring", "--scheme", "bsn", "--depth", "3", "--width", "32",
            "--steps", "600", "--ckpt-every", "50", "--log-every", "50", "--n-data", "512",
            "--batch", "64", "--d-steps", "1", "--quiet"]
    cmd = [sys.executable, "-m", "gradcheck", "train", *args]
    ref = subprocess.run([*cmd, "--out", str(tmp_path / "ref")], capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    p = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "ckpt_100.pt").exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, "the run ended before it could be interrupted"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    steps = [int(f.stem.split("_")[1]) for f in checkpoint_files(out)]
    assert 100 <= max(steps) < 600, steps
    again = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    _same_state(load_checkpoint(tmp_path / "ref" / "ckpt_600.pt"),
                load_checkpoint(out / "ckpt_600.pt"))


def test_run_probes_a_checkpoint_and_rejects_bad_ones(tmp_path, capsys):
    spec = validate_train(TrainSpec(scheme="sn", **SPEC))
    train(spec, tmp_path / "t", progress=False)
    ck = tmp_path / "t" / "ckpt_40.pt"
    code = main(["run", "--checkpoint", str(ck), "--batch", "8", "--spectra-inputs", "2",
                 "--no-plots", "--out", str(tmp_path / "probe")])
    assert code == 0
    checks = pd.read_csv(tmp_path / "probe" / "checks.csv")
    assert checks[checks.claim == "C1"].holds.all()
    c6a = checks[checks.claim == "C6a"]
    assert c6a.note.str.contains("trained weights").all()
    capsys.readouterr()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    for f in (bad, tmp_path / "missing.pt"):
        code = main(["run", "--checkpoint", str(f), "--out", str(tmp_path / "never")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--checkpoint" in err, err
        assert not (tmp_path / "never").exists()
    # a checkpoint whose D does not match its own spec
    state = torch.load(ck, weights_only=True)
    state["spec"]["width"] = 16
    torch.save(state, tmp_path / "mismatch.pt")
    code = main(["run", "--checkpoint", str(tmp_path / "mismatch.pt"), "--out",
                 str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert code == 2 and "does not match" in err and err.count("\n") == 1, err


def test_track_reports_c10(tmp_path, capsys):
    spec = validate_train(TrainSpec(scheme="sn", **SPEC))
    train(spec, tmp_path, progress=False)
    assert main(["track", str(tmp_path), "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "C10 report (sn)" in out and "C1 holds at every checkpoint" in out
    # --quiet: the verdict line alone
    assert main(["track", str(tmp_path), "--batch", "8", "--quiet", "--force"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("sn: C1 holds at every checkpoint"), out
    layers = pd.read_csv(tmp_path / "track" / "layers.csv")
    assert sorted(layers.step.unique()) == [0, 10, 20, 30, 40]
    for f in ("checks.csv", "c10.json", "c10.md", "training.png"):
        assert (tmp_path / "track" / f).exists()


def test_track_of_a_resnet_d_says_c1_not_applicable_and_exits_0(tmp_path, capsys):
    """C1's premise (a chain) is not met by a ResNet D: not applicable, never "violated"."""
    spec = validate_train(TrainSpec(data="shapes", arch="resnet", depth=1, channels=4,
                                    width=16, steps=2, batch=4, n_data=16, log_every=1,
                                    ckpt_every=2, scheme="sn"))
    train(spec, tmp_path, progress=False)
    assert main(["track", str(tmp_path), "--batch", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "C1 not applicable" in out and "VIOLATED" not in out, out
    report = json.loads((tmp_path / "track" / "c10.json").read_text())
    assert report["c1_rows"] == 0 and report["c1_violated"] is False


def test_train_bad_input(tmp_path, capsys):
    for argv, needle in ((["--init", "foo"], "--init"), (["--data", "mnist"], "--data"),
                         (["--data", "shapes", "--arch", "mlp"], "--arch"),
                         (["--steps", "0"], "--steps"), (["--lr", "-1"], "--lr")):
        code = main(["train", *argv, "--out", str(tmp_path / "t")])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and err.count("\n") == 1, (argv, err)


def test_resumed_run_writes_byte_identical_checkpoint_files(tmp_path):
    """A run stopped at step 2 and resumed writes the same ckpt_4.pt bytes as an uninterrupted
    run (equal tensors were not enough: pickle memoised a restored optimiser's shared objects
    differently, 25 bytes apart)."""
    from gradcheck.spec import TrainSpec, validate_train
    from gradcheck.train.gan import train

    s = validate_train(TrainSpec(data="ring", depth=3, width=8, steps=4, n_data=64, batch=8,
                                 log_every=1, ckpt_every=2))
    train(s, tmp_path / "a", progress=False)
    train(s, tmp_path / "b", progress=False, stop_at=2)
    train(s, tmp_path / "b", progress=False)
    for f in ("ckpt_2.pt", "ckpt_4.pt", "metrics.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
