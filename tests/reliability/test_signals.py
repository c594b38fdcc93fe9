"""Interrupts: SIGINT and SIGTERM at any moment, start-up included, end with exit 130, the one
line ``gradcheck: interrupted``, no traceback, and nothing left behind (issue 9, item 1).

In-process cases raise KeyboardInterrupt at chosen moments (what the signal handler does);
subprocess cases send real signals during start-up (torch still importing) and mid-run."""
from __future__ import annotations

import importlib
import signal
import time

import pytest

from .conftest import (
    FIGURES_TINY,
    PROVE_TINY,
    RUN_TINY,
    TRACK_TINY,
    TRAIN_TINY,
    assert_interrupted,
    assert_unchanged,
    clone,
    run_cli,
    snapshot,
    spawn,
    staging_leftovers,
    what_it_did,
)


def _figure_module() -> str:
    from figures import FIGURES

    return FIGURES["F3"]


def _interrupt(*a, **k):
    raise KeyboardInterrupt


# ------------------------------------------------------------------------------------------------
# In-process: KeyboardInterrupt at chosen moments
# ------------------------------------------------------------------------------------------------

def _run_argv(a):
    return ["run", *RUN_TINY, "--out", a / "out"]


def _train_argv(a):
    return ["train", *TRAIN_TINY, "--out", a / "out"]


def _prove_argv(a):
    return ["prove", *PROVE_TINY, "--out", a / "out"]


def _figures_argv(a):
    return ["figures", *FIGURES_TINY, "--out", a / "out"]


MOMENTS = [
    ("interrupt-run-while-validating", "gradcheck.spec", "validate", _run_argv),
    ("interrupt-run-during-probe", "gradcheck.pipeline", "run", _run_argv),
    ("interrupt-run-while-writing", "gradcheck.report.run_dir", "write_npz", _run_argv),
    ("interrupt-run-while-writing-summary", "gradcheck.report.run_dir", "write_json", _run_argv),
    ("interrupt-train-loading-data", "gradcheck.train.gan", "load_data", _train_argv),
    ("interrupt-train-building-models", "gradcheck.train.gan", "build_discriminator",
     _train_argv),
    ("interrupt-prove-during-instances", "proofs_numeric.runner", "run_module", _prove_argv),
    ("interrupt-prove-while-writing", "proofs_numeric.runner", "markdown", _prove_argv),
    ("interrupt-figures-during-compute", None, "compute", _figures_argv),
    ("interrupt-figures-while-drawing", None, "draw", _figures_argv),
]


@pytest.mark.parametrize("module, name, argv", [pytest.param(m, n, a, id=i)
                                                for i, m, n, a in MOMENTS])
def test_interrupt_in_process(module, name, argv, monkeypatch, arena):
    monkeypatch.setattr(importlib.import_module(module or _figure_module()), name, _interrupt)
    before = snapshot(arena)
    code, out, err = run_cli(argv(arena))
    assert_interrupted(code, out, err)
    assert_unchanged(before, arena, code, out, err)


@pytest.mark.parametrize("name", ["run", "write_csv"],
                         ids=["interrupt-track-during-probe", "interrupt-track-while-writing"])
def test_interrupt_track_in_process(name, monkeypatch, arena, artifacts):
    run_dir = clone(artifacts.train, arena / "t")
    monkeypatch.setattr(importlib.import_module("gradcheck.track"), name, _interrupt)
    before = snapshot(arena)
    code, out, err = run_cli(["track", run_dir, *TRACK_TINY])
    assert_interrupted(code, out, err)
    assert_unchanged(before, arena, code, out, err)


# ------------------------------------------------------------------------------------------------
# Subprocesses: real signals during start-up
# ------------------------------------------------------------------------------------------------

STARTUP_DELAY = 0.3          # python is running, torch is still importing


@pytest.mark.parametrize("command, signum", [
    pytest.param("run", signal.SIGINT, id="sigint-run-at-startup"),
    pytest.param("run", signal.SIGTERM, id="sigterm-run-at-startup"),
    pytest.param("train", signal.SIGINT, id="sigint-train-at-startup"),
    pytest.param("train", signal.SIGTERM, id="sigterm-train-at-startup"),
    pytest.param("prove", signal.SIGTERM, id="sigterm-prove-at-startup"),
])
def test_signal_at_startup(command, signum, arena):
    argv = {"run": _run_argv, "train": _train_argv, "prove": _prove_argv}[command](arena)
    before = snapshot(arena)
    p = spawn(argv)
    time.sleep(STARTUP_DELAY)
    assert p.p.poll() is None, "the command ended before the signal"
    p.signal(signum)
    code, out, err = p.finish()
    assert_interrupted(code, out, err)
    assert_unchanged(before, arena, code, out, err)


# ------------------------------------------------------------------------------------------------
# Subprocesses: real signals mid-run
# ------------------------------------------------------------------------------------------------

RUN_PROGRESS = r"^\[\s*\d+(\.\d+)?s\]"
BIG_RUN = ["run", "--depth", "30", "--width", "512", "--batch", "256", "--spectra-inputs", "64",
           "--seeds", "0-19", "--no-plots"]


def _mid_run(arena, argv, ready, signals, allow=None, settle=0.2):
    before = snapshot(arena)
    p = spawn(argv)
    started = p.wait_for(lambda: ready(p), timeout=120)
    assert started and p.p.poll() is None, \
        f"never reached the moment to interrupt: {what_it_did(*p.finish())}"
    time.sleep(settle)
    for k, s in enumerate(signals):
        if k:
            time.sleep(0.05)
        p.signal(s)
    code, out, err = p.finish()
    assert_interrupted(code, out, err, allow=allow)
    return before, code, out, err


@pytest.mark.slow
@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM],
                                     [signal.SIGINT, signal.SIGINT]],
                         ids=["sigint-run-mid-probe", "sigterm-run-mid-probe",
                              "double-sigint-run-mid-probe"])
def test_signal_mid_run(signals, arena):
    before, code, out, err = _mid_run(arena, [*BIG_RUN, "--out", arena / "out"],
                                      lambda p: any("seed" in ln for ln in p.err), signals,
                                      allow=RUN_PROGRESS)
    assert_unchanged(before, arena, code, out, err)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["sigint-train-mid-training", "sigterm-train-mid-training"])
def test_signal_mid_training(signum, arena):
    """Mid-training the run directory stays resumable: complete checkpoints and metrics only,
    no temporary files."""
    from gradcheck.train.checkpoint import checkpoint_files, load_checkpoint

    out = arena / "t"
    argv = ["train", *TRAIN_TINY, "--steps", "1000000", "--ckpt-every", "20", "--log-every",
            "5", "--out", out]
    _mid_run(arena, argv, lambda p: (out / "ckpt_0.pt").exists(), [signum], settle=0.5)
    assert not staging_leftovers(out), f"temporary files left: {staging_leftovers(out)}"
    assert not staging_leftovers(arena), f"temporary files left: {staging_leftovers(arena)}"
    for f in checkpoint_files(out):
        load_checkpoint(f)
    rows = (out / "metrics.csv").read_text().splitlines() if (out / "metrics.csv").exists() else []
    if rows:
        n = rows[0].count(",")
        assert all(r.count(",") == n for r in rows[1:]), "metrics.csv holds a torn row"


@pytest.mark.slow
def test_sigterm_mid_track(arena, artifacts):
    """sigterm-track-mid-probe: no track/ folder, the training run untouched."""
    run_dir = clone(artifacts.long_train, arena / "t")
    before, code, out, err = _mid_run(
        arena, ["track", run_dir, "--batch", "4"],
        lambda p: any("checkpoint step" in ln for ln in p.err), [signal.SIGTERM],
        allow=r"^checkpoint step")
    assert_unchanged(before, arena, code, out, err)


@pytest.mark.slow
def test_sigint_mid_prove(arena):
    """sigint-prove-mid-instances"""
    before, code, out, err = _mid_run(
        arena, ["prove", "--instances", "200", "--budget-seconds", "60", "--out", arena / "p"],
        lambda p: any("instance" in ln for ln in p.err), [signal.SIGINT],
        allow=r"^\s*\S+: instance \d+")
    assert_unchanged(before, arena, code, out, err)


@pytest.mark.slow
def test_sigint_mid_figures(arena):
    """sigint-figures-mid-figure: no half-made output folder."""
    before, code, out, err = _mid_run(
        arena, ["figures", "--tiny", "--only", "F1,F2,F3", "--out", arena / "f"],
        lambda p: any(ln.startswith("[1/") for ln in p.out), [signal.SIGINT], settle=0.5)
    assert_unchanged(before, arena, code, out, err)
