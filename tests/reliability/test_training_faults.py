"""Faults during training: divergence stops cleanly and is recorded, resume drops torn metrics
rows, interrupts and crashes leave only complete checkpoints (issue 9, items 6, 7)."""
from __future__ import annotations

import csv
import errno
import io
import re
from pathlib import Path

import pytest
import torch

from .conftest import (
    assert_internal_error,
    assert_interrupted,
    assert_no_traceback,
    clone,
    lines_of,
    refuse,
    run_cli,
    staging_leftovers,
    strict_json,
    what_it_did,
)

TRAIN12 = ["train", "--data", "ring", "--depth", "3", "--width", "8", "--steps", "12",
           "--n-data", "64", "--batch", "8", "--log-every", "1", "--ckpt-every", "10", "--quiet"]
DIVERGE = ["train", "--data", "ring", "--scheme", "lecun", "--lr", "1e30", "--depth", "3",
           "--width", "8", "--steps", "6", "--n-data", "64", "--batch", "8", "--log-every", "1",
           "--ckpt-every", "1"]


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(errors="replace"))))


def _assert_metrics_whole(path: Path) -> list[list[str]]:
    rows = _rows(path)
    assert rows, f"{path} is empty"
    bad = [i for i, r in enumerate(rows[1:], 2) if len(r) != len(rows[0])]
    assert not bad, f"{path.name}: rows {bad[:5]} do not have the header's {len(rows[0])} " \
                    f"fields (torn rows kept)"
    steps = [int(r[0]) for r in rows[1:]]
    assert steps == sorted(set(steps)), f"{path.name}: steps repeat or go back: {steps}"
    return rows


def _assert_checkpoints_load(d: Path) -> list[Path]:
    from gradcheck.train.checkpoint import checkpoint_files, load_checkpoint

    files = checkpoint_files(d)
    for f in files:
        load_checkpoint(f)
    return files


def _same_weights(a: Path, b: Path) -> None:
    from gradcheck.train.checkpoint import load_checkpoint

    sa, sb = load_checkpoint(a), load_checkpoint(b)
    for key in ("D", "G"):
        for name in sa[key]:
            assert torch.equal(sa[key][name], sb[key][name]), f"{a.name}: {key}.{name} differs"


# ------------------------------------------------------------------------------------------------
# Divergence
# ------------------------------------------------------------------------------------------------

DIVERGED = re.compile(r"diverg|non-?finite", re.I)


def test_huge_learning_rate_stops_cleanly(arena):
    """train-huge-lr-diverges: exit 0 or 2 (never 1, never a crash), checkpoints and metrics
    intact, the divergence recorded."""
    out = arena / "t"
    code, stdout, err = run_cli([*DIVERGE, "--out", out])
    assert_no_traceback(code, stdout, err)
    assert code in (0, 2), f"a diverging run must stop cleanly (exit 0 or 2): " \
                           f"{what_it_did(code, stdout, err)}"
    if code != 0:
        said = [ln for ln in lines_of(err) if ln.startswith("gradcheck:")]
        assert len(said) == 1, what_it_did(code, stdout, err)
    files = _assert_checkpoints_load(out)
    assert files and files[0].name == "ckpt_0.pt", [f.name for f in files]
    if (out / "metrics.csv").exists() and (out / "metrics.csv").read_text().strip():
        _assert_metrics_whole(out / "metrics.csv")
    assert not staging_leftovers(out), staging_leftovers(out)
    texts = [stdout, err]
    for f in sorted(out.glob("*.json")):
        try:
            strict_json(f.read_text())
        except ValueError as e:
            pytest.fail(f"{f.name} is not strict JSON: {e}")
        texts.append(f.read_text())
    assert (out / "summary.json").exists(), "no summary.json records how the run ended"
    assert DIVERGED.search((out / "summary.json").read_text()), \
        "summary.json does not mark the divergence"


def test_track_after_divergence(arena):
    """track-after-divergence: probing diverged checkpoints is not a crash nor a violation;
    c10.json is strict JSON."""
    out = arena / "t"
    run_cli([*DIVERGE, "--out", out, "--quiet"])
    if not list(out.glob("ckpt_*.pt")):
        pytest.fail("the diverging training left no checkpoint to track")
    code, stdout, err = run_cli(["track", out, "--batch", "4", "--quiet"])
    assert_no_traceback(code, stdout, err)
    assert code in (0, 2), f"expected exit 0 or 2: {what_it_did(code, stdout, err)}"
    c10 = out / "track" / "c10.json"
    if c10.exists():
        try:
            strict_json(c10.read_text())
        except ValueError as e:
            pytest.fail(f"c10.json is not strict JSON: {e}")


# ------------------------------------------------------------------------------------------------
# Resume: torn metrics rows
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def reference(arena) -> Path:
    ref = arena / "ref"
    code, out, err = run_cli([*TRAIN12, "--out", ref])
    assert code == 0, what_it_did(code, out, err)
    return ref


def _cut_after_step_10(ref: Path, dst: Path, tail: bytes) -> Path:
    """The run as a kill during step 11 or 12 would leave it: checkpoints 0 and 10, metrics up
    to step 10, then ``tail`` (a torn row)."""
    cut = clone(ref, dst)
    (cut / "ckpt_12.pt").unlink()
    lines = (ref / "metrics.csv").read_bytes().splitlines(keepends=True)
    (cut / "metrics.csv").write_bytes(b"".join(lines[:11]) + tail)
    return cut


def _row(ref: Path, step: int) -> bytes:
    return (ref / "metrics.csv").read_bytes().splitlines(keepends=True)[step]


TORN = [
    ("resume-drops-torn-row-cut-in-step-field", lambda ref: b"1"),
    ("resume-drops-torn-row-cut-mid-values", lambda ref: _row(ref, 11)[: len(_row(ref, 11)) // 2]),
    ("resume-drops-zero-filled-tail", lambda ref: b"\x00" * 64),
    ("resume-drops-torn-row-after-a-complete-one",
     lambda ref: _row(ref, 11) + _row(ref, 12)[:7]),
]


@pytest.mark.parametrize("tail", [pytest.param(t, id=i) for i, t in TORN])
def test_resume_drops_torn_metrics_row(tail, arena, reference):
    cut = _cut_after_step_10(reference, arena / "cut", tail(reference))
    code, out, err = run_cli([*TRAIN12, "--out", cut])
    assert code == 0, f"resume failed: {what_it_did(code, out, err)}"
    assert_no_traceback(code, out, err)
    rows = _assert_metrics_whole(cut / "metrics.csv")
    assert rows == _rows(reference / "metrics.csv"), \
        "resumed metrics.csv differs from the uninterrupted run's"
    _same_weights(reference / "ckpt_12.pt", cut / "ckpt_12.pt")


def test_resume_ignores_orphan_temporary_checkpoint(arena, reference):
    """resume-with-orphan-temporary-checkpoint (a kill during an atomic save leaves one)"""
    cut = _cut_after_step_10(reference, arena / "cut", b"")
    (cut / ".ckpt_12.pt.abc123").write_bytes((reference / "ckpt_12.pt").read_bytes()[:100])
    code, out, err = run_cli([*TRAIN12, "--out", cut])
    assert code == 0, f"resume failed: {what_it_did(code, out, err)}"
    assert_no_traceback(code, out, err)
    _same_weights(reference / "ckpt_12.pt", cut / "ckpt_12.pt")


def test_resume_with_another_spec_refused(arena, reference):
    """train-resume-different-spec: exit 2, the run directory untouched."""
    refuse([*TRAIN12, "--width", "16", "--out", reference], arena, any_of=["--out", "width"])


def test_no_resume_refused(arena, reference):
    """train-no-resume-over-checkpoints"""
    refuse([*TRAIN12, "--no-resume", "--out", reference], arena, ["--out"])


# ------------------------------------------------------------------------------------------------
# Interrupts and crashes in the middle of training
# ------------------------------------------------------------------------------------------------

def _fail_on_call(monkeypatch, obj, name, n: int, exc: BaseException):
    orig = getattr(obj, name)
    calls = {"n": 0}

    def wrapped(*a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return orig(*a, **k)
    monkeypatch.setattr(obj, name, wrapped)


def _assert_resumable(cut: Path, reference: Path) -> None:
    assert not staging_leftovers(cut), f"temporary files left: {staging_leftovers(cut)}"
    _assert_checkpoints_load(cut)
    if (cut / "metrics.csv").exists():
        _assert_metrics_whole(cut / "metrics.csv")


def test_interrupt_mid_training(monkeypatch, arena, reference):
    """train-keyboard-interrupt-at-step-11: exit 130, one line, complete checkpoints only; the
    rerun resumes to the uninterrupted weights."""
    from gradcheck.train.gan import Trainer

    _fail_on_call(monkeypatch, Trainer, "train_step", 11, KeyboardInterrupt())
    cut = arena / "cut"
    code, out, err = run_cli([*TRAIN12, "--out", cut])
    assert_interrupted(code, out, err)
    _assert_resumable(cut, reference)
    monkeypatch.undo()
    monkeypatch.chdir(arena)
    code, out, err = run_cli([*TRAIN12, "--out", cut])
    assert code == 0, f"resume after the interrupt failed: {what_it_did(code, out, err)}"
    _same_weights(reference / "ckpt_12.pt", cut / "ckpt_12.pt")


def _torn_save(exc):
    """A torch.save that writes half a file and then raises ``exc`` (on its 2nd call)."""
    real = torch.save
    calls = {"n": 0}

    def save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            buf = io.BytesIO()
            real(obj, buf)
            Path(f).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise exc
        return real(obj, f, *a, **k)
    return save


def test_interrupt_while_saving_checkpoint(monkeypatch, arena, reference):
    """train-keyboard-interrupt-while-saving-checkpoint: no half-written file left."""
    monkeypatch.setattr(torch, "save", _torn_save(KeyboardInterrupt()))
    cut = arena / "cut"
    code, out, err = run_cli([*TRAIN12, "--out", cut])
    assert_interrupted(code, out, err)
    _assert_resumable(cut, reference)


def test_disk_full_while_saving_checkpoint(monkeypatch, arena, reference):
    """train-disk-full-while-saving-checkpoint: one line (exit 2 or 3), no temporary file."""
    monkeypatch.setattr(torch, "save", _torn_save(OSError(errno.ENOSPC,
                                                          "No space left on device")))
    cut = arena / "cut"
    code, out, err = run_cli([*TRAIN12, "--out", cut])
    assert code in (2, 3), f"expected exit 2 or 3: {what_it_did(code, out, err)}"
    assert_no_traceback(code, out, err)
    assert len(lines_of(err)) == 1 and lines_of(err)[0].startswith("gradcheck: "), \
        what_it_did(code, out, err)
    _assert_resumable(cut, reference)


def test_crash_mid_training(monkeypatch, arena, log_dir, reference):
    """train-internal-error-at-step-11: exit 3 with the log; checkpoints stay loadable."""
    from gradcheck.train.gan import Trainer

    _fail_on_call(monkeypatch, Trainer, "train_step", 11, RuntimeError("injected fault"))
    cut = arena / "cut"
    code, out, err = run_cli([*TRAIN12, "--out", cut])
    assert_internal_error(code, out, err, log_dir)
    _assert_resumable(cut, reference)
