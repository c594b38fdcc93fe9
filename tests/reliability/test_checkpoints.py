"""Crafted and damaged checkpoints and --weights files: one line, exit 2, no advice to load with
weights_only=False, nothing executed, nothing written; --weights accepts the usual layouts; a
checkpoint whose data moved; torch's warnings never on stderr (issue 9, item 5)."""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import (
    TRACK_TINY,
    TRAIN_TINY,
    assert_no_traceback,
    assert_unchanged,
    clone,
    refuse,
    run_cli,
    run_sub,
    snapshot,
    what_it_did,
)

ADVICE = re.compile(r"weights_only\s*(=|set to)\s*False|trust the source", re.I)
PROBE = ["--batch", "4", "--spectra-inputs", "0", "--no-plots", "--quiet"]


class Evil:
    """Unpickling this runs ``touch MARKER`` (harmless, and shows if it ever ran)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _no_advice(line: str) -> None:
    assert not ADVICE.search(line), f"the message advises unsafe loading: {line!r}"


def _state(artifacts) -> dict:
    return torch.load(artifacts.train / "ckpt_2.pt", map_location="cpu", weights_only=True)


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _mut(fn):
    def make(artifacts, path: Path) -> Path:
        s = _state(artifacts)
        fn(s)
        return _save(s, path)
    return make


def _bytes(data: bytes):
    def make(artifacts, path: Path) -> Path:
        path.write_bytes(data)
        return path
    return make


def _truncated(artifacts, path: Path) -> Path:
    raw = (artifacts.train / "ckpt_2.pt").read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _flipped(artifacts, path: Path) -> Path:
    """The checkpoint's zip with its pickle (``data.pkl``) overwritten by random bytes."""
    import zipfile

    with zipfile.ZipFile(artifacts.train / "ckpt_2.pt") as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = os.urandom(len(data))
            dst.writestr(info, data)
    return path


def _evil(artifacts, path: Path) -> Path:
    s = _state(artifacts)
    s["D"] = Evil(path.parent / "PWNED")
    return _save(s, path)


def _wrong_shape(s):
    k = next(iter(s["D"]))
    s["D"][k] = torch.zeros(3, 3, 3)


CKPT_CASES = [
    ("ckpt-random-bytes", _bytes(os.urandom(4096))),
    ("ckpt-empty-file", _bytes(b"")),
    ("ckpt-text-file", _bytes(b"this is not a checkpoint\n")),
    ("ckpt-truncated", _truncated),
    ("ckpt-pickle-part-random-bytes", _flipped),
    ("ckpt-malicious-global", _evil),
    ("ckpt-not-a-dict", lambda a, p: _save([1, 2, 3], p)),
    ("ckpt-foreign-format", _mut(lambda s: s.update(format="something-else/9"))),
    ("ckpt-missing-D", _mut(lambda s: s.pop("D"))),
    ("ckpt-step-is-a-string", _mut(lambda s: s.update(step="forty"))),
    ("ckpt-step-is-a-tensor-list", _mut(lambda s: s.update(step=[1, 2]))),
    ("ckpt-spec-is-a-string", _mut(lambda s: s.update(spec="ring"))),
    ("ckpt-spec-width-is-a-string", _mut(lambda s: s["spec"].update(width="8"))),
    ("ckpt-spec-unknown-field", _mut(lambda s: s["spec"].update(bogus=1))),
    ("ckpt-spec-scheme-unknown", _mut(lambda s: s["spec"].update(scheme="nope"))),
    ("ckpt-D-is-a-list", _mut(lambda s: s.update(D=[1, 2]))),
    ("ckpt-D-wrong-tensor-shape", _mut(_wrong_shape)),
    ("ckpt-D-tensor-is-a-string", _mut(lambda s: s["D"].update({next(iter(s["D"])): "abc"}))),
]


@pytest.mark.parametrize("make", [pytest.param(m, id=i) for i, m in CKPT_CASES])
def test_run_refuses_bad_checkpoint(make, arena, artifacts):
    ck = make(artifacts, arena / "ckpt_2.pt")
    line = refuse(["run", "--checkpoint", ck, *PROBE, "--out", arena / "out"], arena,
                  ["--checkpoint"])
    _no_advice(line)
    assert not (arena / "PWNED").exists(), "the malicious pickle ran"


def test_run_checkpoint_missing(arena):
    """ckpt-missing-file"""
    line = refuse(["run", "--checkpoint", arena / "ckpt_9.pt", *PROBE, "--out", arena / "out"],
                  arena, ["--checkpoint"])
    _no_advice(line)


def test_run_checkpoint_is_a_directory(arena):
    """ckpt-is-a-directory"""
    (arena / "ckpt_1.pt").mkdir()
    refuse(["run", "--checkpoint", arena / "ckpt_1.pt", *PROBE, "--out", arena / "out"], arena,
           ["--checkpoint"])


@pytest.mark.parametrize("make", [
    pytest.param(_bytes(os.urandom(2048)), id="track-random-bytes-checkpoint"),
    pytest.param(_evil, id="track-malicious-checkpoint"),
    pytest.param(_truncated, id="track-truncated-checkpoint")])
def test_track_refuses_bad_checkpoint(make, arena, artifacts):
    run_dir = clone(artifacts.train, arena / "t")
    make(artifacts, run_dir / "ckpt_2.pt")
    line = refuse(["track", run_dir, *TRACK_TINY], arena, ["ckpt_2.pt"])
    _no_advice(line)
    assert not (run_dir / "PWNED").exists(), "the malicious pickle ran"


@pytest.mark.parametrize("make", [
    pytest.param(_bytes(os.urandom(2048)), id="train-resume-random-bytes-checkpoint"),
    pytest.param(_evil, id="train-resume-malicious-checkpoint"),
    pytest.param(_mut(lambda s: s.update(step="x")), id="train-resume-checkpoint-step-string")])
def test_train_resume_refuses_bad_checkpoint(make, arena, artifacts):
    run_dir = clone(artifacts.train, arena / "t")
    make(artifacts, run_dir / "ckpt_2.pt")
    line = refuse(["train", *TRAIN_TINY, "--out", run_dir], arena,
                  any_of=["ckpt_2.pt", "--out"])
    _no_advice(line)
    assert not (run_dir / "PWNED").exists(), "the malicious pickle ran"


# ------------------------------------------------------------------------------------------------
# --weights for --model
# ------------------------------------------------------------------------------------------------

NET = '''
from torch import nn


def make():
    return nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(), nn.Linear(8, 1, bias=False))
'''


@pytest.fixture
def user_model(arena):
    """(model spec 'mod:make', a matching state dict); the module lives in the arena."""
    name = f"relnet_{uuid.uuid4().hex[:8]}"
    (arena / f"{name}.py").write_text(NET)
    torch.manual_seed(0)
    from torch import nn
    sd = nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(),
                       nn.Linear(8, 1, bias=False)).state_dict()
    return f"{name}:make", sd


def _model_argv(model, weights, out):
    return ["run", "--model", model, "--input-shape", "4", "--weights", weights, *PROBE,
            "--out", out]


@pytest.mark.parametrize("wrap", [
    pytest.param(lambda sd: sd, id="weights-bare-state-dict"),
    pytest.param(lambda sd: {"state_dict": sd}, id="weights-state-dict-key"),
    pytest.param(lambda sd: {"model_state_dict": sd}, id="weights-model-state-dict-key"),
])
def test_weights_layouts_accepted(wrap, arena, user_model):
    model, sd = user_model
    w = _save(wrap(sd), arena / "w.pt")
    code, out, err = run_cli(_model_argv(model, w, arena / "out"))
    assert code == 0, what_it_did(code, out, err)
    assert_no_traceback(code, out, err)
    assert "Warning" not in err, f"a warning on stderr: {what_it_did(code, out, err)}"
    assert (arena / "out" / "layers.csv").exists()


def _sd_case(fn):
    def make(sd, path):
        return _save(fn(sd), path)
    return make


WEIGHTS_CASES = [
    ("weights-random-bytes", lambda sd, p: p.write_bytes(os.urandom(1024)) and p),
    ("weights-malicious-global", lambda sd, p: _save({"0.weight": Evil(p.parent / "PWNED")}, p)),
    ("weights-not-a-dict", _sd_case(lambda sd: [1, 2, 3])),
    ("weights-wrong-shapes", _sd_case(lambda sd: {k: torch.zeros(2, 2) for k in sd})),
    ("weights-value-is-a-string", _sd_case(lambda sd: {k: "abc" for k in sd})),
    ("weights-missing-keys", _sd_case(lambda sd: {})),
    ("weights-state-dict-key-wrong-type", _sd_case(lambda sd: {"state_dict": 5})),
]


@pytest.mark.parametrize("make", [pytest.param(m, id=i) for i, m in WEIGHTS_CASES])
def test_bad_weights_refused(make, arena, user_model):
    model, sd = user_model
    w = make(sd, arena / "w.pt")
    line = refuse(_model_argv(model, w, arena / "out"), arena, ["--weights"])
    _no_advice(line)
    assert not (arena / "PWNED").exists(), "the malicious pickle ran"


def test_weights_missing_file(arena, user_model):
    """weights-missing-file"""
    model, _ = user_model
    refuse(_model_argv(model, arena / "nope.pt", arena / "out"), arena, ["--weights"])


# ------------------------------------------------------------------------------------------------
# A checkpoint whose training data moved
# ------------------------------------------------------------------------------------------------

def test_checkpoint_whose_data_moved(arena):
    """ckpt-training-data-moved: exit 0 with a note, or exit 2 in one line."""
    data = arena / "imgs.npy"
    np.save(data, np.random.default_rng(0).uniform(-1, 1, (16, 3, 8, 8)).astype(np.float32))
    code, out, err = run_cli(["train", "--data", f"npy:{data}", "--arch", "conv", "--depth", "2",
                              "--channels", "4", "--width", "8", "--z-dim", "4", "--steps", "1",
                              "--n-data", "16", "--batch", "4", "--log-every", "1",
                              "--ckpt-every", "1", "--quiet", "--out", arena / "t"])
    assert code == 0, f"training on npy images failed: {what_it_did(code, out, err)}"
    shutil.move(str(data), str(arena / "moved.npy"))
    before = snapshot(arena)
    code, out, err = run_cli(["run", "--checkpoint", arena / "t" / "ckpt_1.pt", *PROBE,
                              "--out", arena / "probe"])
    assert_no_traceback(code, out, err)
    assert code in (0, 2), f"expected exit 0 (with a note) or 2: {what_it_did(code, out, err)}"
    if code == 2:
        from .conftest import assert_one_line_error
        assert_one_line_error(err, any_of=["--checkpoint", "imgs.npy"], code=code, out=out)
        assert_unchanged(before, arena, code, out, err)
    else:
        text = (out + err).lower() + (arena / "probe" / "summary.json").read_text().lower()
        assert "imgs.npy" in text or "note" in text, \
            f"exit 0 but nothing says the data moved: {what_it_did(code, out, err)}"


# ------------------------------------------------------------------------------------------------
# torch's warnings never on stderr
# ------------------------------------------------------------------------------------------------

def test_checkpoint_probe_in_process_has_no_warnings(arena, artifacts):
    """ckpt-probe-no-warnings"""
    code, out, err = run_cli(["run", "--checkpoint", artifacts.train / "ckpt_2.pt", *PROBE,
                              "--out", arena / "probe"])
    assert code == 0, what_it_did(code, out, err)
    assert err.strip() == "", f"stderr not empty with --quiet: {what_it_did(code, out, err)}"


@pytest.mark.slow
def test_checkpoint_probe_subprocess_has_no_warnings(arena, artifacts):
    """ckpt-probe-subprocess-no-warnings: a fresh process prints nothing on stderr (--quiet)."""
    code, out, err = run_sub(["run", "--checkpoint", artifacts.train / "ckpt_2.pt", *PROBE,
                              "--out", arena / "probe"])
    assert code == 0, what_it_did(code, out, err)
    assert err.strip() == "", f"stderr not empty with --quiet: {what_it_did(code, out, err)}"
