"""Bad flags of every subcommand: exit 2, one ``gradcheck: error:`` line naming the argument,
no traceback, nothing written; resource caps checked before any work (issue 9, items 1, 3, 8)."""
from __future__ import annotations

import re

import pytest

from .conftest import (
    FIGURES_TINY,
    PROVE_TINY,
    RUN_TINY,
    TRACK_TINY,
    TRAIN_TINY,
    assert_no_traceback,
    assert_one_line_error,
    assert_unchanged,
    clone,
    refuse,
    run_cli,
    snapshot,
    what_it_did,
)

# ------------------------------------------------------------------------------------------------
# run
# ------------------------------------------------------------------------------------------------

RUN_CASES = [
    ("run-depth-zero", ["--depth", "0"], ["--depth"]),
    ("run-depth-negative", ["--depth=-3"], ["--depth"]),
    ("run-depth-not-an-integer", ["--depth", "abc"], ["--depth"]),
    ("run-depth-float", ["--depth", "2.5"], ["--depth"]),
    ("run-width-zero", ["--width", "0"], ["--width"]),
    ("run-width-over-cap", ["--width", "16385"], ["--width"]),
    ("run-init-unknown", ["--init", "foo"], ["--init"]),
    ("run-scale-nan", ["--init", "ssn", "--scale", "nan"], ["--scale"]),
    ("run-scale-inf", ["--init", "ssn", "--scale", "inf"], ["--scale"]),
    ("run-scale-negative", ["--init", "ssn", "--scale=-1"], ["--scale"]),
    ("run-scale-on-unscaled-scheme", ["--init", "sn", "--scale", "2"], ["--scale"]),
    ("run-slope-nan", ["--activation", "lrelu", "--slope", "nan"], ["--slope"]),
    ("run-slope-above-one", ["--activation", "lrelu", "--slope", "2"], ["--slope"]),
    ("run-activation-unknown", ["--activation", "gelu"], ["--activation"]),
    ("run-output-unknown", ["--output", "softmax"], ["--output"]),
    ("run-arch-unknown", ["--arch", "vit"], ["--arch"]),
    ("run-sngan-depth-not-8", ["--arch", "sngan", "--depth", "5"], ["--depth"]),
    ("run-seeds-reversed-range", ["--seeds", "4-2"], ["--seeds"]),
    ("run-seeds-negative", ["--seeds=-1"], ["--seeds"]),
    ("run-seeds-repeated", ["--seeds", "1,1"], ["--seeds"]),
    ("run-seeds-too-large", ["--seeds", "4294967296"], ["--seeds"]),
    ("run-batch-zero", ["--batch", "0"], ["--batch"]),
    ("run-dtype-unknown", ["--dtype", "float16"], ["--dtype"]),
    ("run-device-unknown", ["--device", "tpu"], ["--device"]),
    ("run-sn-mode-unknown", ["--sn-mode", "approx"], ["--sn-mode"]),
    ("run-power-iterations-zero", ["--power-iterations", "0"], ["--power-iterations"]),
    ("run-spectra-inputs-negative", ["--spectra-inputs=-1"], ["--spectra-inputs"]),
    ("run-topk-zero", ["--topk", "0"], ["--topk"]),
    ("run-image-size-zero", ["--arch", "conv", "--image-size", "0"], ["--image-size"]),
    ("run-inputs-unknown", ["--inputs", "mnist"], ["--inputs"]),
    ("run-inputs-ring-with-conv", ["--inputs", "ring", "--arch", "conv"], ["--inputs"]),
    ("run-inputs-npy-missing-file", ["--inputs", "npy:/nonexistent/x.npy"], ["/nonexistent/x.npy"]),
    ("run-input-shape-without-model", ["--input-shape", "3,32,32"], ["--input-shape"]),
    ("run-input-shape-not-integers", ["--model", "m:f", "--input-shape", "3,a"],
     ["--input-shape"]),
    ("run-weights-without-model", ["--weights", "w.pt"], ["--weights"]),
    ("run-model-without-colon", ["--model", "nocolon", "--input-shape", "4"], ["--model"]),
    ("run-model-not-importable", ["--model", "no_such_module_xyz:make", "--input-shape", "4"],
     ["--model"]),
    ("run-checkpoint-and-model", ["--checkpoint", "c.pt", "--model", "m:f", "--input-shape", "4"],
     ["--checkpoint"]),
    ("run-unknown-flag", ["--bogus"], ["--bogus"]),
    ("run-flag-missing-its-value", ["--depth"], ["--depth"]),
]


@pytest.mark.parametrize("extra, names", [pytest.param(a, n, id=i) for i, a, n in RUN_CASES])
def test_run_flag_refused(extra, names, arena):
    refuse(["run", *RUN_TINY, *extra, "--out", arena / "out"], arena, names)


def test_run_checkpoint_with_model_flags(arena, artifacts):
    """--checkpoint brings its own model: --depth beside it is refused (not silently ignored)."""
    ck = clone(artifacts.train, arena / "t") / "ckpt_2.pt"
    refuse(["run", "--checkpoint", ck, "--depth", "5", "--out", arena / "out", "--quiet"], arena,
           ["--depth"])


def test_no_subcommand(arena):
    refuse([], arena)


def test_unknown_subcommand(arena):
    refuse(["frobnicate"], arena, ["frobnicate"])


# ------------------------------------------------------------------------------------------------
# Resources: refused up front with an estimate and the flag to change
# ------------------------------------------------------------------------------------------------

ESTIMATE = re.compile(r"\d[\d.,]*\s*(GiB|GB|TiB|TB)\b")
SIZE_FLAGS = ("--width", "--depth", "--batch", "--channels", "--image-size", "--spectra-inputs")

RESOURCE_CASES = [
    ("run-resources-depth1000-width16384", ["run", "--depth", "1000", "--width", "16384"],
     [("gradcheck.build", "make_model")]),
    ("run-resources-conv-2048ch-1024px", ["run", "--arch", "conv", "--channels", "2048",
                                          "--image-size", "1024", "--depth", "100"],
     [("gradcheck.build", "make_model")]),
    ("run-resources-batch-and-spectra", ["run", "--width", "4096", "--depth", "10", "--batch",
                                         "65536", "--spectra-inputs", "65536"],
     [("gradcheck.build", "make_model")]),
    ("train-resources-depth1000-width16384", ["train", "--width", "16384", "--depth", "1000",
                                              "--steps", "2", "--quiet"],
     [("gradcheck.train.gan", "build_discriminator"), ("gradcheck.train.gan", "load_data")]),
    ("train-resources-conv-images", ["train", "--data", "shapes", "--channels", "2048",
                                     "--depth", "64", "--batch", "65536", "--n-data", "64",
                                     "--steps", "2", "--quiet"],
     [("gradcheck.train.gan", "build_discriminator"), ("gradcheck.train.gan", "load_data")]),
]


@pytest.mark.parametrize("argv, guarded", [pytest.param(a, g, id=i)
                                           for i, a, g in RESOURCE_CASES])
def test_resources_refused_up_front(argv, guarded, arena, guard):
    for module, name in guarded:
        guard(module, name)
    before = snapshot(arena)
    code, out, err = run_cli([*argv, "--out", arena / "out"])
    assert not guard.calls, f"the CLI started the work ({guard.calls[0]}) instead of refusing " \
                            f"up front: {what_it_did(code, out, err)}"
    assert code == 2, f"expected exit 2: {what_it_did(code, out, err)}"
    line = assert_one_line_error(err, code=code, out=out)
    assert ESTIMATE.search(line), f"no memory estimate in GiB/GB: {what_it_did(code, out, err)}"
    assert any(f in line for f in SIZE_FLAGS), \
        f"names no flag to change: {what_it_did(code, out, err)}"
    assert_unchanged(before, arena, code, out, err)


# ------------------------------------------------------------------------------------------------
# prove
# ------------------------------------------------------------------------------------------------

PROVE_CASES = [
    ("prove-seed-minus-one", ["--seed=-1"], ["--seed"]),
    ("prove-seed-negative-large", ["--seed=-123456"], ["--seed"]),
    ("prove-seed-not-an-integer", ["--seed", "x"], ["--seed"]),
    ("prove-instances-zero", ["--instances", "0"], ["--instances"]),
    ("prove-budget-zero", ["--budget-seconds", "0"], ["--budget-seconds"]),
    ("prove-budget-nan", ["--budget-seconds", "nan"], ["--budget-seconds"]),
    ("prove-only-unknown-claim", ["--only", "C77"], ["--only"]),
    ("prove-only-just-commas", ["--only", ","], ["--only"]),
]


@pytest.mark.parametrize("extra, names", [pytest.param(a, n, id=i) for i, a, n in PROVE_CASES])
def test_prove_flag_refused(extra, names, arena):
    refuse(["prove", *PROVE_TINY, *extra, "--out", arena / "out"], arena, names)


# ------------------------------------------------------------------------------------------------
# train
# ------------------------------------------------------------------------------------------------

TRAIN_CASES = [
    ("train-scheme-unknown", ["--scheme", "foo"], ["--scheme"]),
    ("train-data-unknown", ["--data", "mnist"], ["--data"]),
    ("train-data-npy-empty-path", ["--data", "npy:"], ["--data"]),
    ("train-images-with-mlp", ["--data", "shapes", "--arch", "mlp"], ["--arch"]),
    ("train-steps-zero", ["--steps", "0"], ["--steps"]),
    ("train-depth-zero", ["--depth", "0"], ["--depth"]),
    ("train-lr-negative", ["--lr=-1"], ["--lr"]),
    ("train-lr-nan", ["--lr", "nan"], ["--lr"]),
    ("train-lr-inf", ["--lr", "inf"], ["--lr"]),
    ("train-beta1-one", ["--beta1", "1"], ["--beta1"]),
    ("train-seed-negative", ["--seed=-1"], ["--seed"]),
    ("train-width-over-cap", ["--width", "16385"], ["--width"]),
    ("train-batch-zero", ["--batch", "0"], ["--batch"]),
    ("train-z-dim-zero", ["--z-dim", "0"], ["--z-dim"]),
    ("train-d-steps-zero", ["--d-steps", "0"], ["--d-steps"]),
    ("train-n-data-zero", ["--n-data", "0"], ["--n-data"]),
    ("train-log-every-zero", ["--log-every", "0"], ["--log-every"]),
    ("train-scale-on-unscaled-scheme", ["--scheme", "sn", "--scale", "2"], ["--scale"]),
    ("train-unknown-flag", ["--bogus"], ["--bogus"]),
]


@pytest.mark.parametrize("extra, names", [pytest.param(a, n, id=i) for i, a, n in TRAIN_CASES])
def test_train_flag_refused(extra, names, arena):
    refuse(["train", *TRAIN_TINY, *extra, "--out", arena / "out"], arena, names)


def test_train_without_out(arena):
    refuse(["train", *TRAIN_TINY], arena, ["--out"])


# ------------------------------------------------------------------------------------------------
# track: refuses what run refuses (no clamping)
# ------------------------------------------------------------------------------------------------

TRACK_CASES = [
    ("track-batch-zero", ["--batch", "0"], ["--batch"]),
    ("track-batch-over-run-cap", ["--batch", "65537"], ["--batch"]),
    ("track-batch-not-an-integer", ["--batch", "many"], ["--batch"]),
    ("track-spectra-inputs-negative", ["--spectra-inputs=-1"], ["--spectra-inputs"]),
    ("track-spectra-inputs-over-run-cap", ["--spectra-inputs", "65537"], ["--spectra-inputs"]),
]


@pytest.mark.parametrize("extra, names", [pytest.param(a, n, id=i) for i, a, n in TRACK_CASES])
def test_track_flag_refused(extra, names, arena, artifacts):
    run_dir = clone(artifacts.train, arena / "t")
    refuse(["track", run_dir, *TRACK_TINY, *extra], arena, names)


@pytest.mark.parametrize("make, names", [
    pytest.param(lambda a: a / "nope", ["nope"], id="track-run-dir-missing"),
    pytest.param(lambda a: (a / "empty").mkdir() or a / "empty", ["empty"],
                 id="track-run-dir-empty"),
    pytest.param(lambda a: (a / "afile").write_text("x") and a / "afile", ["afile"],
                 id="track-run-dir-is-a-file"),
])
def test_track_bad_run_dir(make, names, arena):
    run_dir = make(arena)
    refuse(["track", run_dir, *TRACK_TINY], arena, names)


def test_track_on_a_probe_run_dir(arena, artifacts):
    """track-run-dir-is-a-run-kind: a `gradcheck run` directory has no checkpoints."""
    run_dir = clone(artifacts.run, arena / "r")
    refuse(["track", run_dir, *TRACK_TINY], arena, ["r"])


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------

FIGURES_CASES = [
    ("figures-only-unknown", ["--only", "F9"], ["--only"]),
    ("figures-only-just-commas", ["--only", ","], ["--only"]),
    ("figures-unknown-flag", ["--bogus"], ["--bogus"]),
]


@pytest.mark.parametrize("extra, names", [pytest.param(a, n, id=i) for i, a, n in FIGURES_CASES])
def test_figures_flag_refused(extra, names, arena):
    refuse(["figures", *FIGURES_TINY, *extra, "--out", arena / "out"], arena, names)


def test_figures_draw_only_empty_dir(arena):
    (arena / "empty").mkdir()
    refuse(["figures", "--draw-only", "--only", "F3", "--out", arena / "empty"], arena,
           any_of=["--draw-only", "--out", "empty", "f3.csv"])


def test_figures_draw_only_missing_dir(arena):
    refuse(["figures", "--draw-only", "--only", "F3", "--out", arena / "missing"], arena,
           any_of=["--draw-only", "--out", "missing", "f3.csv"])


def test_figures_out_is_a_file(arena):
    (arena / "afile").write_text("x")
    refuse(["figures", *FIGURES_TINY, "--out", arena / "afile"], arena, ["--out"])


def test_prove_out_is_a_file(arena):
    (arena / "afile").write_text("x")
    refuse(["prove", *PROVE_TINY, "--out", arena / "afile"], arena, ["--out"])


def test_help_is_not_an_error(arena):
    """Control case: --help exits 0 with the usage on stdout, no traceback, nothing written."""
    before = snapshot(arena)
    code, out, err = run_cli(["run", "--help"])
    assert code == 0 and "--depth" in out, what_it_did(code, out, err)
    assert_no_traceback(code, out, err)
    assert_unchanged(before, arena, code, out, err)
