"""Bad training and probing data: refused at load time in one line naming the file, nothing
written, nothing unpickled that is not data (issue 9, item 5)."""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from .conftest import (
    RUN_TINY,
    assert_no_traceback,
    assert_one_line_error,
    assert_unchanged,
    manifest_kind,
    refuse,
    run_cli,
    snapshot,
    what_it_did,
)

#: tiny training on 8x8 images (or 2-D points with --arch mlp)
TAIL = ["--depth", "2", "--channels", "4", "--width", "8", "--z-dim", "4", "--steps", "1",
        "--n-data", "16", "--batch", "4", "--log-every", "1", "--ckpt-every", "1", "--quiet"]
RNG = np.random.default_rng(0)


def _imgs(n=32, c=3, h=8, w=8, dtype=np.float32):
    return RNG.uniform(-1, 1, (n, c, h, w)).astype(dtype)


def _with(arr, idx, value):
    arr = arr.copy()
    arr[idx] = value
    return arr


def _npy(arr):
    def make(path: Path) -> Path:
        np.save(path, arr, allow_pickle=arr.dtype == object)
        return path
    return make


def _raw(data: bytes):
    def make(path: Path) -> Path:
        path.write_bytes(data)
        return path
    return make


def _truncated_npy(path: Path) -> Path:
    buf = io.BytesIO()
    np.save(buf, _imgs())
    path.write_bytes(buf.getvalue()[: 200])
    return path


def _npz(path: Path) -> Path:
    with open(path, "wb") as f:
        np.savez(f, x=_imgs())
    return path


NPY_CASES = [
    ("train-npy-images-with-nan", _npy(_with(_imgs(), (3, 0, 1, 1), np.nan))),
    ("train-npy-images-with-inf", _npy(_with(_imgs(), (5, 2, 0, 7), np.inf))),
    ("train-npy-points-with-nan", _npy(_with(RNG.normal(size=(32, 2)).astype(np.float32),
                                             (4, 1), np.nan))),
    ("train-npy-float64-with-neg-inf", _npy(_with(_imgs(dtype=np.float64), (0, 0, 0, 0),
                                                  -np.inf))),
    ("train-npy-image-side-12-not-power-of-two", _npy(_imgs(h=12, w=12))),
    ("train-npy-image-side-6-not-power-of-two", _npy(_imgs(h=6, w=6))),
    ("train-npy-image-not-square", _npy(_imgs(h=16, w=8))),
    ("train-npy-one-dimensional", _npy(RNG.normal(size=32).astype(np.float32))),
    ("train-npy-three-dimensional", _npy(RNG.normal(size=(32, 3, 16)).astype(np.float32))),
    ("train-npy-five-dimensional", _npy(RNG.normal(size=(32, 1, 3, 8, 8)).astype(np.float32))),
    ("train-npy-no-rows", _npy(np.zeros((0, 3, 8, 8), np.float32))),
    ("train-npy-int64", _npy(np.ones((32, 3, 8, 8), np.int64))),
    ("train-npy-bool", _npy(np.ones((32, 3, 8, 8), bool))),
    ("train-npy-complex", _npy(_imgs().astype(np.complex64))),
    ("train-npy-object-pickle", _npy(np.array([{"a": 1}] * 32, dtype=object))),
    ("train-npy-garbage-bytes", _raw(os.urandom(512))),
    ("train-npy-truncated", _truncated_npy),
    ("train-npy-is-an-npz-archive", _npz),
    ("train-npy-fewer-rows-than-n-data", _npy(_imgs(n=8))),
]


@pytest.mark.parametrize("make", [pytest.param(m, id=i) for i, m in NPY_CASES])
def test_train_refuses_bad_npy(make, arena):
    path = make(arena / "bad.npy")
    refuse(["train", "--data", f"npy:{path}", *TAIL, "--out", arena / "out"], arena,
           any_of=["bad.npy"])


def test_train_npy_missing(arena):
    """train-npy-missing-file"""
    refuse(["train", "--data", f"npy:{arena / 'nope.npy'}", *TAIL, "--out", arena / "out"],
           arena, ["nope.npy"])


def test_train_npy_is_a_directory(arena):
    """train-npy-is-a-directory"""
    (arena / "d.npy").mkdir()
    refuse(["train", "--data", f"npy:{arena / 'd.npy'}", *TAIL, "--out", arena / "out"], arena,
           ["d.npy"])


@pytest.mark.parametrize("arch", [[], ["--arch", "mlp"]],
                         ids=["train-npy-points-n-by-2-default-arch",
                              "train-npy-points-n-by-2-mlp"])
def test_train_npy_points(arch, arena):
    """(N, 2) point clouds either train (exit 0, a training directory) or are refused in one
    line with nothing written."""
    path = arena / "pts.npy"
    np.save(path, RNG.normal(size=(32, 2)).astype(np.float32))
    before = snapshot(arena)
    code, out, err = run_cli(["train", "--data", f"npy:{path}", *arch, *TAIL,
                              "--out", arena / "out"])
    assert_no_traceback(code, out, err)
    assert code in (0, 2), f"expected exit 0 or 2: {what_it_did(code, out, err)}"
    if code == 2:
        assert_one_line_error(err, any_of=["pts.npy", "--data", "--arch"], code=code, out=out)
        assert_unchanged(before, arena, code, out, err)
    else:
        assert (arena / "out" / "ckpt_1.pt").exists(), "exit 0 but no checkpoint"


# ------------------------------------------------------------------------------------------------
# CIFAR-10 tarballs
# ------------------------------------------------------------------------------------------------

class Evil:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _batch(data) -> bytes:
    return pickle.dumps({b"data": data, b"labels": [0] * len(data)}, protocol=2)


def _cifar_good_batch() -> bytes:
    return _batch(RNG.integers(0, 255, (4, 3072), dtype=np.uint8))


def _cifar(members_fn):
    def make(path: Path) -> Path:
        return _tar(path, members_fn(path))
    return make


D = "cifar-10-batches-py"
CIFAR_CASES = [
    ("train-cifar-not-a-tarball", _raw(os.urandom(1024))),
    ("train-cifar-empty-file", _raw(b"")),
    ("train-cifar-missing-members", _cifar(lambda p: {f"{D}/data_batch_1": _cifar_good_batch()})),
    ("train-cifar-malicious-pickle", _cifar(lambda p: {
        f"{D}/data_batch_{i}": pickle.dumps(Evil(p.parent / "PWNED")) if i == 1 else
        _cifar_good_batch() for i in range(1, 6)})),
    ("train-cifar-wrong-array-layout", _cifar(lambda p: {
        f"{D}/data_batch_{i}": _batch(np.zeros((4, 100), np.uint8)) for i in range(1, 6)})),
    ("train-cifar-truncated-pickle", _cifar(lambda p: {
        f"{D}/data_batch_{i}": _cifar_good_batch()[:50] for i in range(1, 6)})),
]


@pytest.mark.parametrize("make", [pytest.param(m, id=i) for i, m in CIFAR_CASES])
def test_train_refuses_bad_cifar(make, arena):
    path = make(arena / "cifar.tar.gz")
    refuse(["train", "--data", f"cifar10:{path}", "--depth", "2", "--channels", "4",
            "--steps", "1", "--n-data", "4", "--batch", "4", "--quiet", "--out", arena / "out"],
           arena, ["cifar.tar.gz"])
    assert not (arena / "PWNED").exists(), "the malicious pickle ran"


def test_train_cifar_missing(arena):
    """train-cifar-missing-file"""
    refuse(["train", "--data", f"cifar10:{arena / 'nope.tar.gz'}", "--quiet",
            "--out", arena / "out"], arena, ["nope.tar.gz"])


# ------------------------------------------------------------------------------------------------
# run --inputs npy:
# ------------------------------------------------------------------------------------------------

RUN_NPY_CASES = [
    ("run-inputs-npy-with-nan", _npy(_with(RNG.normal(size=(16, 8)), (2, 3), np.nan))),
    ("run-inputs-npy-with-inf", _npy(_with(RNG.normal(size=(16, 8)), (0, 0), np.inf))),
    ("run-inputs-npy-wrong-shape", _npy(RNG.normal(size=(16, 5)))),
    ("run-inputs-npy-garbage", _raw(os.urandom(300))),
]


@pytest.mark.parametrize("make", [pytest.param(m, id=i) for i, m in RUN_NPY_CASES])
def test_run_refuses_bad_npy_inputs(make, arena):
    path = make(arena / "bad.npy")
    refuse(["run", *RUN_TINY, "--inputs", f"npy:{path}", "--out", arena / "out"], arena,
           any_of=["bad.npy"])


def test_train_on_good_npy_images(arena):
    """Control case: power-of-two float images train; the directory is a training run."""
    path = arena / "good.npy"
    np.save(path, _imgs())
    code, out, err = run_cli(["train", "--data", f"npy:{path}", *TAIL, "--out", arena / "out"])
    assert code == 0, what_it_did(code, out, err)
    assert_no_traceback(code, out, err)
    assert (arena / "out" / "ckpt_1.pt").exists()
    assert manifest_kind(arena / "out") == "train", "no gradcheck.json of kind 'train'"
