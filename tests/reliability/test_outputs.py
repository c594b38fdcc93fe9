"""Output directories: manifests, refusal to overwrite (without --force, or another kind even
with it), output paths checked before any work, faults mid-run leave nothing behind, strict
JSON (issue 9, items 1, 2, 7)."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from .conftest import (
    FIGURES_TINY,
    INTERNAL_PREFIX,
    KINDS,
    PROVE_TINY,
    RUN_TINY,
    TRACK_TINY,
    TRAIN_TINY,
    assert_internal_error,
    assert_no_traceback,
    assert_one_line_error,
    assert_unchanged,
    clone,
    lines_of,
    manifest_kind,
    run_cli,
    snapshot,
    staging_leftovers,
    strict_json,
    what_it_did,
)


def _figure_module(fid: str = "F3") -> str:
    from figures import FIGURES

    return FIGURES[fid]


#: command -> (argv builder given the output dir, the function that starts its work)
COMMANDS = {
    "run": (lambda out: ["run", *RUN_TINY, "--out", out], ("gradcheck.build", "make_model")),
    "train": (lambda out: ["train", *TRAIN_TINY, "--out", out], ("gradcheck.train.gan",
                                                                 "load_data")),
    "prove": (lambda out: ["prove", *PROVE_TINY, "--out", out], ("proofs_numeric.runner",
                                                                 "run_module")),
    "figures": (lambda out: ["figures", *FIGURES_TINY, "--out", out], (None, "compute")),
}


def _guard_work(guard, command: str) -> None:
    module, name = COMMANDS[command][1]
    guard(module or _figure_module(), name)


def _user_dir(arena: Path) -> Path:
    d = arena / "mine"
    (d / "data").mkdir(parents=True)
    (d / "notes.txt").write_text("my notes\n")
    (d / "data" / "x.bin").write_bytes(os.urandom(64))
    return d


def _refuse_with_guard(argv, arena, guard, command, must_contain=(), any_of=("--out",)):
    _guard_work(guard, command)
    before = snapshot(arena)
    code, out, err = run_cli(argv)
    assert not guard.calls, f"the CLI started the work ({guard.calls[0]}) before checking " \
                            f"the output: {what_it_did(code, out, err)}"
    assert code == 2, f"expected exit 2: {what_it_did(code, out, err)}"
    assert_no_traceback(code, out, err)
    assert_one_line_error(err, must_contain, any_of, code=code, out=out)
    assert_unchanged(before, arena, code, out, err)


# ------------------------------------------------------------------------------------------------
# Manifests
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS, ids=[f"manifest-{k}" for k in KINDS])
def test_manifest(kind, artifacts):
    d = {"run": artifacts.run, "train": artifacts.train, "track": artifacts.tracked / "track",
         "prove": artifacts.prove, "figures": artifacts.figures}[kind]
    path = d / "gradcheck.json"
    assert path.exists(), (f"{kind} output has no gradcheck.json "
                           f"(has {sorted(p.name for p in d.iterdir())})")
    m = strict_json(path.read_text())
    assert m.get("kind") == kind and "version" in m, m


# ------------------------------------------------------------------------------------------------
# Overwriting
# ------------------------------------------------------------------------------------------------

OVERWRITE_CASES = [
    ("run-out-existing-run-without-force", "run", "run", False),
    ("run-out-train-dir", "run", "train", False),
    ("run-out-train-dir-force", "run", "train", True),
    ("run-out-track-dir-force", "run", "track", True),
    ("run-out-prove-dir-force", "run", "prove", True),
    ("run-out-figures-dir-force", "run", "figures", True),
    ("run-out-user-dir", "run", "user", False),
    ("run-out-user-dir-force", "run", "user", True),
    ("train-out-run-dir", "train", "run", False),
    ("train-out-track-dir", "train", "track", False),
    ("train-out-prove-dir", "train", "prove", False),
    ("train-out-figures-dir", "train", "figures", False),
    ("train-out-user-dir", "train", "user", False),
    ("prove-out-existing-prove-without-force", "prove", "prove", False),
    ("prove-out-run-dir-force", "prove", "run", True),
    ("prove-out-train-dir-force", "prove", "train", True),
    ("prove-out-user-dir", "prove", "user", False),
    ("prove-out-user-dir-force", "prove", "user", True),
    ("figures-out-existing-figures-without-force", "figures", "figures", False),
    ("figures-out-run-dir-force", "figures", "run", True),
    ("figures-out-train-dir-force", "figures", "train", True),
    ("figures-out-user-dir", "figures", "user", False),
    ("figures-out-user-dir-force", "figures", "user", True),
]


@pytest.mark.parametrize("command, target, force", [pytest.param(c, t, f, id=i)
                                                    for i, c, t, f in OVERWRITE_CASES])
def test_refuses_to_overwrite(command, target, force, arena, kind_dirs, guard):
    out = _user_dir(arena) if target == "user" else kind_dirs[target]
    argv = COMMANDS[command][0](out) + (["--force"] if force else [])
    _refuse_with_guard(argv, arena, guard, command, any_of=("--out", str(out)))


@pytest.mark.parametrize("command", ["run", "prove", "figures"],
                         ids=[f"{c}-out-same-kind-force-replaces" for c in ("run", "prove",
                                                                            "figures")])
def test_force_replaces_same_kind(command, arena, kind_dirs):
    """Control cases: --force replaces an output directory of the same kind (a figures folder
    accumulates figures, so there only the exit code and the manifest are checked)."""
    out = kind_dirs[command]
    (out / "stale.txt").write_text("from an earlier run\n")
    code, stdout, err = run_cli(COMMANDS[command][0](out) + ["--force"])
    assert code == 0, what_it_did(code, stdout, err)
    assert_no_traceback(code, stdout, err)
    if command != "figures":
        assert not (out / "stale.txt").exists(), \
            "exit 0 but the old directory was not replaced (stale.txt survived --force)"
    assert manifest_kind(out) == command, f"no gradcheck.json of kind {command!r} in {out}"
    assert not staging_leftovers(arena), staging_leftovers(arena)


def test_track_over_existing_track_without_force(arena, artifacts, guard):
    """track-rerun-over-existing-track-without-force"""
    run_dir = clone(artifacts.tracked, arena / "t")
    guard("gradcheck.track", "run")
    before = snapshot(arena)
    code, out, err = run_cli(["track", run_dir, *TRACK_TINY])
    assert not guard.calls, f"track probed the checkpoints before refusing to overwrite " \
                            f"{run_dir / 'track'}: {what_it_did(code, out, err)}"
    assert code == 2, f"expected exit 2: {what_it_did(code, out, err)}"
    assert_one_line_error(err, any_of=["--force", "track"], code=code, out=out)
    assert_unchanged(before, arena, code, out, err)


@pytest.mark.parametrize("force", [False, True], ids=["track-over-user-track-folder",
                                                     "track-over-user-track-folder-force"])
def test_track_over_user_folder(force, arena, artifacts, guard):
    run_dir = clone(artifacts.train, arena / "t")
    (run_dir / "track").mkdir()
    (run_dir / "track" / "my_analysis.txt").write_text("do not delete\n")
    guard("gradcheck.track", "run")
    before = snapshot(arena)
    code, out, err = run_cli(["track", run_dir, *TRACK_TINY] + (["--force"] if force else []))
    assert not guard.calls, f"track probed the checkpoints before refusing: " \
                            f"{what_it_did(code, out, err)}"
    assert code == 2, f"expected exit 2: {what_it_did(code, out, err)}"
    assert_one_line_error(err, code=code, out=out)
    assert_unchanged(before, arena, code, out, err)


# ------------------------------------------------------------------------------------------------
# Bad output paths: refused before any work
# ------------------------------------------------------------------------------------------------

def _under_a_file(arena: Path) -> Path:
    (arena / "afile").write_text("a regular file\n")
    return arena / "afile" / "out"


def _under_proc(arena: Path) -> Path:
    return Path("/proc/gradcheck-reliability-test/out")


def _unwritable_parent(arena: Path) -> Path:
    if os.geteuid() == 0:                       # root writes through permissions; sysfs refuses
        return Path("/sys/kernel/gradcheck-reliability-test/out")
    ro = arena / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    return ro / "out"


BAD_PATHS = {"under-a-file": _under_a_file, "under-proc": _under_proc,
             "unwritable-parent": _unwritable_parent}


@pytest.mark.parametrize("command, where", [
    pytest.param(c, w, id=f"{c}-out-{w}") for c in COMMANDS for w in BAD_PATHS])
def test_bad_output_path(command, where, arena, guard):
    out = BAD_PATHS[where](arena)
    try:
        _refuse_with_guard(COMMANDS[command][0](out), arena, guard, command,
                           any_of=("--out", str(out.parent)))
    finally:
        if (arena / "readonly").exists():
            (arena / "readonly").chmod(0o755)


@pytest.mark.parametrize("command", ["run", "train", "prove", "figures"],
                         ids=[f"{c}-out-is-a-file" for c in ("run", "train", "prove",
                                                            "figures")])
def test_out_is_a_file(command, arena, guard):
    (arena / "afile").write_text("precious\n")
    _refuse_with_guard(COMMANDS[command][0](arena / "afile"), arena, guard, command,
                       any_of=("--out", str(arena / "afile")))


@pytest.mark.parametrize("which", [".", ".."], ids=["run-out-cwd-force", "run-out-parent-force"])
def test_run_out_cwd_or_parent(which, arena, guard):
    (arena / "precious.txt").write_text("keep\n")
    _refuse_with_guard(["run", *RUN_TINY, "--out", which, "--force"], arena, guard, "run")


# ------------------------------------------------------------------------------------------------
# Internal errors: exit 3, one line naming the log with the traceback, nothing left behind
# ------------------------------------------------------------------------------------------------

def _boom(*a, **k):
    raise RuntimeError("injected fault (reliability test)")


def _internal(monkeypatch, arena, log_dir, target, argv):
    import importlib

    module, name = target
    monkeypatch.setattr(importlib.import_module(module), name, _boom)
    before = snapshot(arena)
    code, out, err = run_cli(argv)
    assert_internal_error(code, out, err, log_dir)
    assert_unchanged(before, arena, code, out, err)


def test_internal_error_run(monkeypatch, arena, log_dir):
    """internal-error-run-probe"""
    _internal(monkeypatch, arena, log_dir, ("gradcheck.pipeline", "run"),
              ["run", *RUN_TINY, "--out", arena / "out"])


def test_internal_error_run_while_writing(monkeypatch, arena, log_dir):
    """internal-error-run-while-writing: the staged directory is removed."""
    _internal(monkeypatch, arena, log_dir, ("gradcheck.report.run_dir", "write_npz"),
              ["run", *RUN_TINY, "--out", arena / "out"])


def test_internal_error_train(monkeypatch, arena, log_dir):
    """internal-error-train-build"""
    _internal(monkeypatch, arena, log_dir, ("gradcheck.train.gan", "build_discriminator"),
              ["train", *TRAIN_TINY, "--out", arena / "out"])


def test_internal_error_track(monkeypatch, arena, log_dir, artifacts):
    """internal-error-track-probe"""
    run_dir = clone(artifacts.train, arena / "t")
    _internal(monkeypatch, arena, log_dir, ("gradcheck.track", "run"),
              ["track", run_dir, *TRACK_TINY])


def test_internal_error_track_while_writing(monkeypatch, arena, log_dir, artifacts):
    """internal-error-track-while-writing"""
    run_dir = clone(artifacts.train, arena / "t")
    _internal(monkeypatch, arena, log_dir, ("gradcheck.track", "write_json"),
              ["track", run_dir, *TRACK_TINY])


def test_internal_error_prove(monkeypatch, arena, log_dir):
    """internal-error-prove-instance"""
    _internal(monkeypatch, arena, log_dir, ("proofs_numeric.runner", "run_module"),
              ["prove", *PROVE_TINY, "--out", arena / "out"])


def test_internal_error_prove_while_writing(monkeypatch, arena, log_dir):
    """internal-error-prove-while-writing: no half-written prove directory."""
    _internal(monkeypatch, arena, log_dir, ("proofs_numeric.runner", "markdown"),
              ["prove", *PROVE_TINY, "--out", arena / "out"])


def test_internal_error_figures_compute(monkeypatch, arena, log_dir):
    """internal-error-figures-compute"""
    _internal(monkeypatch, arena, log_dir, (_figure_module(), "compute"),
              ["figures", *FIGURES_TINY, "--out", arena / "out"])


def test_internal_error_figures_draw(monkeypatch, arena, log_dir):
    """internal-error-figures-draw: no CSV left without its figure."""
    _internal(monkeypatch, arena, log_dir, (_figure_module(), "draw"),
              ["figures", *FIGURES_TINY, "--out", arena / "out"])


def test_internal_error_log_dir_unusable(monkeypatch, arena, tmp_path):
    """internal-error-log-dir-is-a-file: still one line and exit 3, never a traceback."""
    bad = tmp_path / "not_a_dir"
    bad.write_text("x")
    monkeypatch.setenv("GRADCHECK_LOG_DIR", str(bad))
    monkeypatch.setattr(__import__("gradcheck.pipeline", fromlist=["run"]), "run", _boom)
    before = snapshot(arena)
    code, out, err = run_cli(["run", *RUN_TINY, "--out", arena / "out"])
    assert code == 3, f"expected exit 3: {what_it_did(code, out, err)}"
    assert_one_line_error(err, prefix=INTERNAL_PREFIX, code=code, out=out)
    assert_unchanged(before, arena, code, out, err)


def test_disk_full_while_writing(monkeypatch, arena):
    """run-disk-full-while-writing: ENOSPC is one line (exit 2 or 3), the staging dir removed."""
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(arena / "out"))
    monkeypatch.setattr(__import__("gradcheck.report.run_dir", fromlist=["x"]), "write_npz", full)
    before = snapshot(arena)
    code, out, err = run_cli(["run", *RUN_TINY, "--out", arena / "out"])
    assert code in (2, 3), f"expected exit 2 or 3: {what_it_did(code, out, err)}"
    assert_no_traceback(code, out, err)
    assert len(lines_of(err)) == 1 and lines_of(err)[0].startswith("gradcheck: "), \
        what_it_did(code, out, err)
    assert_unchanged(before, arena, code, out, err)


# ------------------------------------------------------------------------------------------------
# Strict JSON everywhere
# ------------------------------------------------------------------------------------------------

def _all_json(d: Path) -> list[Path]:
    return sorted(Path(d).rglob("*.json"))


@pytest.mark.parametrize("kind", KINDS, ids=[f"strict-json-{k}-outputs" for k in KINDS])
def test_strict_json_of_session_outputs(kind, artifacts):
    d = {"run": artifacts.run, "train": artifacts.train, "track": artifacts.tracked / "track",
         "prove": artifacts.prove, "figures": artifacts.figures}[kind]
    files = _all_json(d)
    for f in files:
        try:
            strict_json(f.read_text())
        except ValueError as e:
            pytest.fail(f"{f.name} is not strict JSON: {e}")


@pytest.mark.parametrize("extra", [
    pytest.param(["--dtype", "float32", "--init", "ssn", "--scale", "4", "--activation", "linear",
                  "--depth", "150"], id="strict-json-float32-overflow-run"),
    pytest.param(["--init", "ssn", "--scale", "1000", "--depth", "110"],
                 id="strict-json-float64-overflow-run"),
    pytest.param(["--bias", "--activation", "tanh", "--init", "sn"], id="strict-json-bias-run"),
])
def test_strict_json_of_edge_runs(extra, arena):
    out = arena / "out"
    code, stdout, err = run_cli(["run", *RUN_TINY, *extra, "--out", out])
    assert code == 0, what_it_did(code, stdout, err)
    assert_no_traceback(code, stdout, err)
    for f in _all_json(out):
        try:
            strict_json(f.read_text())
        except ValueError as e:
            pytest.fail(f"{f.name} is not strict JSON: {e}")


@pytest.mark.parametrize("extra", [
    pytest.param(["--init", "ssn", "--scale", "1000", "--depth", "110"],
                 id="float64-overflow-run-prints-no-warnings"),
    pytest.param(["--dtype", "float32", "--init", "ssn", "--scale", "4", "--activation", "linear",
                  "--depth", "150"], id="float32-overflow-run-prints-no-warnings"),
])
def test_quiet_run_prints_no_warnings(extra, arena):
    """An out-of-range run is a measurement: with --quiet stderr stays empty (no numpy/torch
    RuntimeWarnings)."""
    code, stdout, err = run_cli(["run", *RUN_TINY, *extra, "--out", arena / "out"])
    assert code == 0, what_it_did(code, stdout, err)
    assert err.strip() == "", f"stderr not empty with --quiet ({len(lines_of(err))} lines): " \
                              f"{what_it_did(code, stdout, err)}"


def test_json_flag_prints_strict_json(arena):
    """strict-json-run-json-flag: `run --json` on an overflowing run prints strict JSON."""
    code, stdout, err = run_cli(["run", *[a for a in RUN_TINY if a != "--quiet"], "--json",
                                 "--dtype", "float32", "--init", "ssn", "--scale", "4",
                                 "--activation", "linear", "--depth", "150",
                                 "--out", arena / "out"])
    assert code == 0, what_it_did(code, stdout, err)
    try:
        strict_json(stdout)
    except ValueError as e:
        pytest.fail(f"--json output is not strict JSON: {e}")
