"""``--data digits`` (scikit-learn's digits at 16x16) and the ``digits_frechet`` score.

The classifier is trained once per module into a shared cache directory and copied into each
test's own ``$GRADCHECK_CACHE_DIR`` (tmp_path), so only the corrupt-cache test retrains.
"""
from __future__ import annotations

import builtins
import csv
import math
import shutil

import pytest
import scipy.linalg
import torch

from gradcheck.cli import main
from gradcheck.train import digits
from gradcheck.train.data import DataError, gaussian_frechet, make_dataset

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def trained_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADCHECK_CACHE_DIR", str(root))
    try:
        digits.load_classifier()
        path = digits.classifier_path()
    finally:
        mp.undo()
    assert path.is_file()
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch, trained_cache):
    """A per-test cache directory holding a copy of the trained classifier."""
    d = tmp_path / "cache"
    d.mkdir()
    shutil.copy(trained_cache, d / trained_cache.name)
    monkeypatch.setenv("GRADCHECK_CACHE_DIR", str(d))
    return d / trained_cache.name


def test_digits_loader_shape_range_determinism():
    x = digits.digits_images()
    assert x.shape == (1797, 1, 16, 16) and x.dtype == torch.float32
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert torch.equal(x, digits.digits_images())
    # bilinear resize of the raw 8x8 values (0..16), scaled by x / 8 - 1
    raw, _ = digits._raw_digits()
    ref = torch.nn.functional.interpolate(raw[:3, None], size=(16, 16), mode="bilinear",
                                          align_corners=False) / 8 - 1
    assert torch.allclose(x[:3].double(), ref, atol=1e-6)
    # n_data: >= 1797 gives all images in order; smaller: distinct seeded subset
    assert torch.equal(make_dataset("digits", 10000, seed=0), x)
    a, b = make_dataset("digits", 100, seed=3), make_dataset("digits", 100, seed=3)
    assert a.shape == (100, 1, 16, 16) and torch.equal(a, b)
    assert not torch.equal(a, make_dataset("digits", 100, seed=4))


def test_missing_sklearn_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(DataError, match=r"pip install 'gradcheck\[data\]'"):
        digits.digits_images()
    rc = main(["train", "--data", "digits", "--steps", "2", "--quiet", "--out",
               str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "pip install 'gradcheck[data]'" in err, err
    assert not (tmp_path / "run" / "metrics.csv").exists()


@pytest.mark.parametrize("d,seed", [(2, 0), (10, 1), (64, 2)])
def test_gaussian_frechet_vs_sqrtm(d, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.randn((d, d), generator=g, dtype=torch.float64) for _ in range(2))
    c1 = a @ a.T / d + 0.05 * torch.eye(d, dtype=torch.float64)
    c2 = b @ b.T / d + 0.05 * torch.eye(d, dtype=torch.float64)
    mu1, mu2 = (torch.randn(d, generator=g, dtype=torch.float64) for _ in range(2))
    covmean = scipy.linalg.sqrtm(c1.numpy() @ c2.numpy()).real
    ref = float((mu1 - mu2).square().sum()) + float(c1.trace() + c2.trace()) \
        - 2 * covmean.trace()
    got = gaussian_frechet(mu1, c1, mu2, c2)
    assert math.isclose(got, ref, rel_tol=1e-8, abs_tol=1e-9 * d), (got, ref)


def test_classifier_cache_written_reused_and_corrupt_retrained(cache, trained_cache):
    x = digits.digits_images()[:300]
    m1 = digits.load_classifier()
    f1 = digits.digits_features(x, m1)
    assert f1.shape == (300, 64)
    assert digits.held_out_accuracy(m1, *(lambda r: (digits._resize(r[0]), r[1]))(
        digits._raw_digits())) == pytest.approx(digits.CLASSIFIER_ACCURACY, abs=0.01)
    # reused: same file, same features; the name holds the version and the data hash
    assert digits.classifier_path() == cache
    assert f"_v{digits.CLASSIFIER_VERSION}_" in cache.name
    before = cache.read_bytes()
    assert torch.equal(digits.digits_features(x, digits.load_classifier()), f1)
    assert cache.read_bytes() == before
    # corrupt: retrained (deterministically) and the file rewritten
    cache.write_bytes(b"not a torch file")
    f2 = digits.digits_features(x, digits.load_classifier())
    assert torch.allclose(f2, f1, rtol=1e-6, atol=1e-8)
    assert cache.read_bytes() != b"not a torch file"
    torch.load(cache, weights_only=True)
    # the score: real vs real is small, noise is far
    real = digits.digits_images()
    floor = digits.digits_frechet(real[:256], real, m1)
    noise = digits.digits_frechet(torch.rand((256, 1, 16, 16)) * 2 - 1, real, m1)
    assert 0 < floor < 50 < 10 * floor < noise


def test_train_digits_writes_digits_frechet(cache, tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--data", "digits", "--init", "sn", "--steps", "5", "--log-every", "5",
               "--quiet", "--out", str(out)])
    assert rc == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert rows and "digits_frechet" in rows[-1] and "image_proxy" in rows[-1]
    assert 0 < float(rows[-1]["digits_frechet"]) < math.inf
