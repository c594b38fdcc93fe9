"""`gradcheck train` options of issue 12: --init (alias --scheme), --device, the D input lift,
the 2-D defaults, and old (pre-lift, "scheme") specs and checkpoints that keep loading.

Short runs only: that the toy GANs *learn* under the defaults is a measurement (README,
"Training"), not asserted here.
"""
from __future__ import annotations

import json

import pytest
import torch

from gradcheck.cli import main
from gradcheck.spec import IMAGE_DEFAULTS, TOY_DEFAULTS, SpecError, TrainSpec, validate_train
from gradcheck.train.checkpoint import load_checkpoint
from gradcheck.train.gan import Trainer, build_discriminator, build_generator, load_data, train

TINY = ["--depth", "3", "--width", "8", "--steps", "4", "--log-every", "2", "--ckpt-every", "2",
        "--n-data", "64", "--batch", "8", "--quiet"]
SPEC = dict(data="ring", depth=3, width=8, steps=4, log_every=2, ckpt_every=2, n_data=64,
            batch=8)


def _one_error_line(capsys, code: int, needle: str) -> None:
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err, err


@pytest.mark.parametrize("flags", [["--init", "bsn"], ["--scheme", "bsn"],
                                   ["--init", "bsn", "--scheme", "bsn"]])
def test_init_and_its_alias_scheme_name_the_same_field(tmp_path, flags):
    out = tmp_path / "t"
    assert main(["train", *flags, *TINY, "--out", str(out)]) == 0
    assert json.loads((out / "spec.json").read_text())["scheme"] == "bsn"


def test_init_and_scheme_disagreeing_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "t"
    code = main(["train", "--init", "sn", "--scheme", "lecun", *TINY, "--out", str(out)])
    _one_error_line(capsys, code, "--init and --scheme")
    assert not out.exists()


@pytest.mark.parametrize("argv, needle", [
    (["--init", "foo"], "--init"), (["--scheme", "foo"], "--scheme"),
    (["--device", "gpu"], "--device"), (["--lift", "-1"], "--lift"),
    (["--lift", "nan"], "--lift"), (["--data", "shapes", "--lift", "1"], "--lift"),
    (["--init", "sn", "--scale", "2"], "--init is 'sn'"), (["--lr-decay", "cosine"], "--lr-decay")])
def test_bad_new_options_exit_2_with_one_line_and_no_output(tmp_path, capsys, argv, needle):
    out = tmp_path / "t"
    _one_error_line(capsys, main(["train", *argv, "--out", str(out)]), needle)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_cuda_without_cuda_is_refused(tmp_path, capsys):
    out = tmp_path / "t"
    _one_error_line(capsys, main(["train", "--device", "cuda", "--out", str(out)]), "--device")
    assert not out.exists()


def test_device_auto_and_cpu_train_the_same_on_a_cpu_only_machine(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("auto picks cuda here (compared in the cuda test)")
    for name in ("auto", "cpu"):
        assert main(["train", "--device", name, *TINY, "--out", str(tmp_path / name)]) == 0
    for f in ("ckpt_4.pt", "metrics.csv"):
        assert (tmp_path / "auto" / f).read_bytes() == (tmp_path / "cpu" / f).read_bytes()
    assert json.loads((tmp_path / "cpu" / "summary.json").read_text())["device"] == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_draws_cpu_numbers_and_saves_cpu_tensors(tmp_path):
    spec = validate_train(TrainSpec(scheme="sn", **SPEC))
    a = Trainer(spec, tmp_path / "a", progress=False, device="cpu")
    b = Trainer(spec, tmp_path / "b", progress=False, device="cuda")
    assert torch.equal(a._batch(), b._batch().cpu()) and torch.equal(a._z(), b._z().cpu())
    train(spec, tmp_path / "c", progress=False, device="cuda", stop_at=2)
    state = load_checkpoint(tmp_path / "c" / "ckpt_2.pt")
    assert all(v.device.type == "cpu" for v in state["D"].values())
    t = train(spec, tmp_path / "c", progress=False, device="cpu")     # resumes on the CPU
    assert t.step == 4


def test_two_d_and_image_defaults_resolve_separately():
    toy = validate_train(TrainSpec(data="ring"))
    img = validate_train(TrainSpec(data="shapes"))
    for spec, want in ((toy, TOY_DEFAULTS), (img, IMAGE_DEFAULTS)):
        assert {k: getattr(spec, k) for k in want} == want
    assert validate_train(TrainSpec(data="ring", lr=3e-4, lift=0.0, steps=7)).lr == 3e-4


@pytest.mark.parametrize("value", [1.0, 0.5])
def test_lift_appends_a_constant_coordinate_to_every_d_input(value):
    spec = validate_train(TrainSpec(lift=value, **SPEC))
    data = load_data(spec)
    assert data.shape == (64, 3) and torch.all(data[:, 2] == value)
    G = build_generator(spec, data[:2])
    fake = G(torch.randn(5, spec.z_dim))
    assert fake.shape == (5, 3) and torch.all(fake[:, 2] == value)
    D = build_discriminator(spec, data[:2])
    assert D(fake).shape == (5,)
    assert all(m.bias is None for m in D.modules() if isinstance(m, torch.nn.Linear))
    # G's state-dict keys are those of an unlifted G (the lift has no parameters)
    bare = validate_train(TrainSpec(lift=0.0, **SPEC))
    assert G.state_dict().keys() == build_generator(bare, load_data(bare)[:2]).state_dict().keys()


def test_lifted_metrics_are_on_the_data_coordinates(tmp_path):
    t = train(validate_train(TrainSpec(scheme="lecun", **SPEC)), tmp_path, progress=False)
    ring = t.quality(t.data[:100])            # true (lifted) samples: every mode, high quality
    assert ring["modes_covered"] == 8 and ring["high_quality"] > 0.9


@pytest.mark.parametrize("decay", ["linear", "none"])
def test_lr_decay_sets_the_adam_lr_of_both_nets_from_the_step(decay):
    spec = validate_train(TrainSpec(lr=2e-3, lr_decay=decay, **SPEC))
    t = Trainer(spec, "unused", progress=False)
    seen = []
    for _ in range(spec.steps):
        t.train_step()
        seen.append({g["lr"] for opt in (t.opt_D, t.opt_G) for g in opt.param_groups})
    # step k (0-based) runs at lr (1 - k / steps): 2e-3, 1.5e-3, 1e-3, 5e-4 for 4 steps
    want = [2e-3 * (1 - k / 4) if decay == "linear" else 2e-3 for k in range(4)]
    assert all(len(s) == 1 for s in seen)
    assert [s.pop() for s in seen] == pytest.approx(want, rel=1e-15)


def test_old_spec_dicts_keep_loading():
    spec = validate_train(TrainSpec(**SPEC))
    old = {k: v for k, v in spec.to_dict().items() if k != "lift"}      # before the field
    assert TrainSpec.from_dict(old).lift == 0.0
    no_decay = {k: v for k, v in spec.to_dict().items() if k != "lr_decay"}
    assert TrainSpec.from_dict(no_decay).lr_decay == "none"      # trained at a constant lr
    assert TrainSpec.from_dict(dict(data="ring")).lr_decay == TOY_DEFAULTS["lr_decay"]
    partial = dict(data="ring", scheme="bsn")                           # a hand-written spec
    assert TrainSpec.from_dict(partial).lift == TOY_DEFAULTS["lift"]
    assert TrainSpec.from_dict(dict(data="ring", init="bsn")).scheme == "bsn"
    with pytest.raises(SpecError, match="'init' and 'scheme'"):
        TrainSpec.from_dict(dict(init="bsn", scheme="sn"))


def test_pre_lift_checkpoint_is_still_probed(tmp_path, capsys):
    """A checkpoint written before the lift (spec without "lift", D on bare 2-D input)."""
    train(validate_train(TrainSpec(scheme="sn", lift=0.0, **SPEC)), tmp_path / "t",
          progress=False)
    state = torch.load(tmp_path / "t" / "ckpt_4.pt", weights_only=True)
    del state["spec"]["lift"]
    torch.save(state, tmp_path / "old.pt")
    code = main(["run", "--checkpoint", str(tmp_path / "old.pt"), "--batch", "4",
                 "--spectra-inputs", "0", "--no-plots", "--quiet", "--out", str(tmp_path / "p")])
    assert code == 0, capsys.readouterr().err
