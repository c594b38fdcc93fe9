"""Tests of ``gradcheck.train.data``: synthetic sets, file loaders, sample-quality metrics.

Statistical tolerances are derived from the sample size (stated in each test). For a 2-D
isotropic Gaussian with per-coordinate std ``s`` the squared distance to the centre over ``s^2``
is chi2 with 2 degrees of freedom, so the share of samples within ``3 s`` is
``P(chi2_2 <= 9) = 1 - exp(-9 / 2) = 0.98889``; binomial sd ``sqrt(p (1 - p) / n)``.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import tarfile

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from gradcheck.train.data import (
    CIFAR_DIR,
    DATASETS,
    DataError,
    ModeStats,
    gaussian_frechet,
    grid,
    grid_centres,
    image_features,
    image_proxy,
    load_cifar10_tarball,
    load_npy,
    make_dataset,
    mode_stats,
    ring,
    ring_centres,
    shapes,
)

P_3STD = 1 - math.exp(-4.5)           # P(chi2_2 <= 9): share of true samples within 3 std
Z = 5.0                               # tolerance in binomial standard deviations (~6e-7 two-sided)
EPS64 = float(torch.finfo(torch.float64).eps)

MIXTURES = {                          # name -> (sampler, centres factory, std)
    "ring": (ring, lambda: ring_centres(8, 2.0), 0.02),
    "grid": (grid, lambda: grid_centres(5, 2.0), 0.05),
}


def mixture(name: str):
    sample, centres, std = MIXTURES[name]
    return sample, centres(), std


@pytest.fixture(params=[0, 1])
def seed(request):
    return request.param


def binom_tol(p: float, n: int) -> float:
    return Z * math.sqrt(p * (1 - p) / n)


def assert_one_line(err: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and msg, f"message must be one non-empty line: {msg!r}"
    for needle in needles:
        assert needle in msg, f"{needle!r} not in message {msg!r}"


# ------------------------------------------------------------------------------------------------
# 2-D mixtures
# ------------------------------------------------------------------------------------------------

def test_centres_known_answers():
    r = ring_centres(8, 2.0)
    torch.testing.assert_close(r[0], torch.tensor([2.0, 0.0], dtype=torch.float64),
                               rtol=0, atol=10 * EPS64)
    torch.testing.assert_close(r[2], torch.tensor([0.0, 2.0], dtype=torch.float64),
                               rtol=0, atol=10 * EPS64)
    torch.testing.assert_close(r.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64),
                               rtol=0, atol=10 * EPS64)
    g = grid_centres(5, 2.0)
    assert g.shape == (25, 2)
    # centre k = (i, j) with k = 5 i + j, as in gradcheck.build.make_inputs
    expected = torch.tensor([[2.0 * (k // 5) - 4, 2.0 * (k % 5) - 4] for k in range(25)],
                            dtype=torch.float64)
    torch.testing.assert_close(g, expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_mixture_shape_dtype_determinism(name, seed):
    sample = MIXTURES[name][0]
    a, b = sample(300, seed), sample(300, seed)
    assert a.shape == (300, 2) and a.dtype == torch.float32
    assert torch.equal(a, b), "same seed must give identical samples"
    assert not torch.equal(a, sample(300, seed + 1)), "different seeds must differ"
    assert sample(5, seed, dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_true_samples_near_centres(name, seed):
    """Share within 3 std ~ P(chi2_2 <= 9); each mode's share ~ 1/K; residual std ~ std."""
    sample, centres, std = mixture(name)
    n, K = 20_000, centres.shape[0]
    x = sample(n, seed, dtype=torch.float64)
    d, k = torch.cdist(x, centres).min(1)
    share = float((d <= 3 * std).double().mean())
    assert abs(share - P_3STD) <= binom_tol(P_3STD, n), \
        f"{name}: share within 3 std {share:.5f} vs {P_3STD:.5f} (tol {binom_tol(P_3STD, n):.5f})"
    freq = torch.bincount(k, minlength=K).double() / n
    worst = int((freq - 1 / K).abs().argmax())
    assert abs(freq[worst] - 1 / K) <= binom_tol(1 / K, n), \
        f"{name}: mode {worst} share {float(freq[worst]):.4f} vs {1 / K:.4f}"
    # residual std over the 2n coordinates: relative sd of a std estimate is 1/sqrt(2 * 2n)
    got = float((x - centres[k]).std())
    assert abs(got / std - 1) <= Z / math.sqrt(4 * n), f"{name}: residual std {got} vs {std}"


# ------------------------------------------------------------------------------------------------
# mode_stats
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_mode_stats_true_samples_cover_all_modes(name, seed):
    sample, centres, std = mixture(name)
    n, K = 8_000, centres.shape[0]
    st = mode_stats(sample(n, seed), centres, std)
    assert isinstance(st, ModeStats) and st.n_modes == K and st.n_samples == n
    assert st.modes_covered == K
    assert abs(st.high_quality - P_3STD) <= binom_tol(P_3STD, n), \
        f"{name}: high_quality {st.high_quality:.5f} vs {P_3STD:.5f}"
    assert sum(st.counts) == round(st.high_quality * n)
    # 2 m KL(p_hat || uniform) -> chi2_{K-1} for m multinomial draws (Wilks)
    m = sum(st.counts)
    bound = scipy.stats.chi2.ppf(1 - 1e-6, K - 1) / (2 * m)
    assert 0 <= st.mode_kl <= bound, f"{name}: mode_kl {st.mode_kl:.2e} > {bound:.2e}"


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_mode_stats_collapsed_to_one_mode(name, seed):
    sample, centres, std = mixture(name)
    n, K = 4_000, centres.shape[0]
    x = sample(n, seed, dtype=torch.float64)
    collapsed = x - centres[torch.cdist(x, centres).argmin(1)] + centres[3]
    st = mode_stats(collapsed, centres, std)
    assert st.modes_covered == 1 and st.counts[3] == sum(st.counts)
    assert abs(st.high_quality - P_3STD) <= binom_tol(P_3STD, n)
    assert math.isclose(st.mode_kl, math.log(K), rel_tol=10 * EPS64)   # point mass vs uniform


def test_mode_stats_far_and_nan_samples_are_low_quality():
    centres = ring_centres()
    x = torch.full((10, 2), 100.0)
    x[:3] = math.nan
    x[3] = math.inf
    st = mode_stats(x, centres, 0.02)
    assert (st.modes_covered, st.high_quality, sum(st.counts)) == (0, 0.0, 0)
    assert math.isnan(st.mode_kl)


def test_mode_stats_min_count_and_bad_input():
    centres = ring_centres()
    x = torch.cat([centres[:1].repeat(5, 1), centres[1:2]])      # 5 at mode 0, 1 at mode 1
    assert mode_stats(x, centres, 0.02).modes_covered == 2
    assert mode_stats(x, centres, 0.02, min_count=2).modes_covered == 1
    with pytest.raises(DataError) as err:
        mode_stats(torch.zeros(4, 3), centres, 0.02)
    assert_one_line(err, "(4, 3)", "(8, 2)")
    with pytest.raises(DataError) as err:
        mode_stats(x, centres, 0.0)
    assert_one_line(err, "std")


# ------------------------------------------------------------------------------------------------
# shapes
# ------------------------------------------------------------------------------------------------

def test_shapes_shape_range_determinism(seed):
    x = shapes(200, seed)
    assert x.shape == (200, 3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert torch.equal(x, shapes(200, seed))
    assert not torch.equal(x, shapes(200, seed + 1))
    assert shapes(3, seed, dtype=torch.float64).dtype == torch.float64
    assert shapes(4, seed, size=16, channels=1).shape == (4, 1, 16, 16)


def test_shapes_are_varied():
    x = shapes(500, 0, dtype=torch.float64)
    per_image_std = x.flatten(1).std(1)
    assert float(per_image_std.min()) > 0.02, "every image has structure beyond the noise"
    dist = torch.cdist(x.flatten(1), x.flatten(1))
    dist.fill_diagonal_(math.inf)
    # nearest other image at least ~ the noise floor sqrt(2 * 3072) * 0.02 = 2.2 away
    assert float(dist.min()) > 2.0, "no two images are (nearly) the same"
    chan_mean = x.mean((2, 3))
    assert float(chan_mean.std(0).min()) > 0.2, "colours vary across images"


# ------------------------------------------------------------------------------------------------
# image_proxy and its Fréchet distance
# ------------------------------------------------------------------------------------------------

def _spd(d: int, seed: int) -> torch.Tensor:
    a = torch.randn((d, d), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


@pytest.mark.parametrize("d", [1, 3, 12])
def test_gaussian_frechet_matches_sqrtm_oracle(d, seed):
    c1, c2 = _spd(d, seed), _spd(d, seed + 100)
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
    cross = scipy.linalg.sqrtm(c1.numpy() @ c2.numpy()).real.trace()
    ref = d + float(c1.trace() + c2.trace()) - 2 * cross
    got = gaussian_frechet(mu1, c1, mu2, c2)
    assert math.isclose(got, ref, rel_tol=1e-9, abs_tol=1e3 * d * EPS64), f"{got} vs {ref}"


def test_gaussian_frechet_known_answers():
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 4.0, 1.0])
    mu = torch.tensor([0.0, 1.0, 2.0])
    # commuting (diagonal) covariances: |dmu|^2 + sum (sqrt a - sqrt b)^2 = 5 + (1 + 0 + 4)
    got = gaussian_frechet(mu, torch.diag(a), torch.zeros(3), torch.diag(b))
    assert math.isclose(got, 10.0, rel_tol=0, abs_tol=100 * EPS64 * 18)
    c = _spd(6, 0)
    assert abs(gaussian_frechet(torch.zeros(6), c, torch.zeros(6), c)) <= 1e3 * 6 * EPS64 * \
        float(c.trace())


def test_image_proxy_same_distribution_small_noise_large():
    n = 1_000
    real, real2 = shapes(n, 1), shapes(n, 2)
    noise = torch.rand((n, 3, 32, 32), generator=torch.Generator().manual_seed(3)) * 2 - 1
    same = image_proxy(real2, real)
    far = image_proxy(noise, real)
    collapsed = image_proxy(real2[:1].repeat(n, 1, 1, 1), real)
    f = image_features(real)
    d, tr = f.shape[1], float(torch.cov(f.T).trace())
    # finite-sample bias: the mean term alone is 2 tr(S)/n in expectation, the covariance term
    # is O(d tr(S)/n); allow (2 + d) tr(S)/n
    assert 0 < same <= (2 + d) * tr / n, f"same-distribution proxy {same:.4f} > {(2 + d) * tr / n}"
    assert far >= 50 * same, f"noise proxy {far:.4f} not >> same-distribution {same:.4f}"
    assert collapsed >= 50 * same, f"collapsed proxy {collapsed:.4f} vs {same:.4f}"
    assert abs(image_proxy(real, real)) <= 1e3 * d * EPS64 * tr
    assert math.isclose(image_proxy(real, noise), far, rel_tol=1e-9)   # symmetric


def test_image_proxy_bad_input():
    x = shapes(4, 0)
    with pytest.raises(DataError) as err:
        image_proxy(x, shapes(4, 0, size=16))
    assert_one_line(err, "(4, 3, 16, 16)")
    with pytest.raises(DataError):
        image_proxy(x[:1], x)
    bad = x.clone()
    bad[0, 0, 0, 0] = math.nan
    assert image_proxy(bad, x) == math.inf


# ------------------------------------------------------------------------------------------------
# CIFAR-10 python tarball
# ------------------------------------------------------------------------------------------------

PER_BATCH = 3


def _batch(seed: int, n: int = PER_BATCH) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"batch %d" % seed,
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [b"img_%d.png" % i for i in range(n)]}


def _write_tar(path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"{CIFAR_DIR}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return str(path)


def _cifar_members(protocol: int = pickle.DEFAULT_PROTOCOL) -> tuple[dict, dict]:
    batches = {f"data_batch_{i}": _batch(i) for i in range(1, 6)}
    batches["test_batch"] = _batch(99)
    return batches, {k: pickle.dumps(v, protocol=protocol) for k, v in batches.items()}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_round_trips_pixels(tmp_path, protocol):
    batches, raw = _cifar_members(protocol)
    path = _write_tar(tmp_path / "cifar-10-python.tar.gz", raw)
    x = load_cifar10_tarball(path)
    train = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert x.shape == (5 * PER_BATCH, 3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    back = ((x.double() + 1) * 127.5).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(back.reshape(-1, 3072), train)
    # layout: row = 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    i, c, h, w = 4, 2, 5, 17
    assert back[i, c, h, w] == train[i, c * 1024 + h * 32 + w]
    test = load_cifar10_tarball(path, train=False, dtype=torch.float64)
    assert test.shape == (PER_BATCH, 3, 32, 32) and test.dtype == torch.float64
    np.testing.assert_array_equal(((test + 1) * 127.5).round().numpy().reshape(-1, 3072),
                                  batches["test_batch"][b"data"])
    first4 = load_cifar10_tarball(path, limit=4)
    assert torch.equal(first4, x[:4])


def _expect_cifar_error(path, *needles):
    with pytest.raises(DataError) as err:
        load_cifar10_tarball(path)
    assert_one_line(err, str(path), *needles)
    return err


def test_cifar_missing_file_and_corrupt_archive(tmp_path):
    _expect_cifar_error(tmp_path / "nope.tar.gz", "no such file")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(os.urandom(4096))
    _expect_cifar_error(junk, "not a readable tar archive")
    _, raw = _cifar_members()
    good = _write_tar(tmp_path / "good.tar.gz", raw)
    blob = open(good, "rb").read()
    cut = tmp_path / "truncated.tar.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    _expect_cifar_error(cut, "tar archive")
    bad_gz = tmp_path / "badgz.tar.gz"
    bad_gz.write_bytes(gzip.compress(b"not a tar file at all" * 100))
    _expect_cifar_error(bad_gz, "not a readable tar archive")


def test_cifar_missing_member(tmp_path):
    _, raw = _cifar_members()
    del raw["data_batch_3"]
    _expect_cifar_error(_write_tar(tmp_path / "c.tar.gz", raw), "missing member",
                        "data_batch_3")


@pytest.mark.parametrize("change, needle", [
    (lambda b: b.update({b"data": b[b"data"][:, :3000]}), "(3, 3000)"),
    (lambda b: b.update({b"data": b[b"data"].reshape(3, 3, 1024)}), "(3, 3, 1024)"),
    (lambda b: b.update({b"data": b[b"data"].astype(np.float32)}), "float32"),
    (lambda b: b.update({b"labels": b[b"labels"][:2]}), "b'labels'"),
    (lambda b: b.pop(b"data"), "missing key"),
])
def test_cifar_wrong_layout(tmp_path, change, needle):
    batches, raw = _cifar_members()
    change(batches["data_batch_2"])
    raw["data_batch_2"] = pickle.dumps(batches["data_batch_2"])
    _expect_cifar_error(_write_tar(tmp_path / "c.tar.gz", raw), "data_batch_2", needle)


def test_cifar_not_a_pickle_or_not_a_dict(tmp_path):
    _, raw = _cifar_members()
    raw["data_batch_1"] = b"\x80\x04garbage"
    _expect_cifar_error(_write_tar(tmp_path / "a.tar.gz", raw), "data_batch_1", "cannot unpickle")
    _, raw = _cifar_members()
    raw["data_batch_1"] = pickle.dumps([1, 2, 3])
    _expect_cifar_error(_write_tar(tmp_path / "b.tar.gz", raw), "expected a dict")


class _Evil:
    """Unpickles to ``func(*args)``: the classic pickle code-execution payload."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "builtins.getattr"])
def test_cifar_malicious_pickle_is_refused(tmp_path, payload):
    marker = tmp_path / "pwned"
    evil = {"os.system": _Evil(os.system, (f"touch {marker}",)),
            "builtins.eval": _Evil(eval, (f"open({str(marker)!r}, 'w').close()",)),
            "builtins.getattr": _Evil(getattr, ("text", "upper"))}[payload]
    batches, raw = _cifar_members()
    raw["data_batch_1"] = pickle.dumps({b"data": evil, b"labels": []})
    err = _expect_cifar_error(_write_tar(tmp_path / "c.tar.gz", raw), "forbidden global",
                              payload.split(".")[1])
    assert "data_batch_1" in str(err.value)
    assert not marker.exists(), "the payload must never run"


# ------------------------------------------------------------------------------------------------
# .npy
# ------------------------------------------------------------------------------------------------

def test_npy_happy_paths(tmp_path):
    pts = np.random.default_rng(0).normal(size=(7, 2))
    np.save(tmp_path / "pts.npy", pts)
    got = load_npy(tmp_path / "pts.npy", dtype=torch.float64)
    torch.testing.assert_close(got, torch.from_numpy(pts), rtol=0, atol=0)
    assert load_npy(tmp_path / "pts.npy").dtype == torch.float32
    img = np.random.default_rng(1).integers(0, 256, (4, 3, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "img.npy", img)
    x = load_npy(tmp_path / "img.npy", dtype=torch.float64)
    torch.testing.assert_close(x, torch.from_numpy(img).double() / 127.5 - 1,
                               rtol=0, atol=10 * EPS64)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    np.save(tmp_path / "f16.npy", np.zeros((2, 1, 4, 4), np.float16))
    assert load_npy(tmp_path / "f16.npy").shape == (2, 1, 4, 4)


@pytest.mark.parametrize("make, needle", [
    (lambda p: np.save(p, np.zeros((5, 3))), "(5, 3)"),
    (lambda p: np.save(p, np.zeros((5, 3, 4))), "(5, 3, 4)"),
    (lambda p: np.save(p, np.zeros((0, 2))), "(0, 2)"),
    (lambda p: np.save(p, np.zeros((5, 2), np.int32)), "int32"),
    (lambda p: np.save(p, np.array([[0.0, math.nan]] * 3)), "NaN"),
    (lambda p: np.save(p, np.array([[0.0, math.inf]] * 3)), "NaN/inf"),
    (lambda p: np.save(p, np.array([[{}, 1]] * 2, dtype=object)), "not a readable .npy"),
    (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "not a readable .npy"),
    (lambda p: p.write_bytes(pickle.dumps([1, 2])), "not a readable .npy"),
    (lambda p: np.savez(open(p, "wb"), a=np.zeros((3, 2))), ".npz"),
])
def test_npy_bad_files(tmp_path, make, needle):
    path = tmp_path / "bad.npy"
    make(path)
    with pytest.raises(DataError) as err:
        load_npy(path)
    assert_one_line(err, str(path), needle)


def test_npy_truncated_and_missing(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.zeros((100, 2)))
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DataError) as err:
        load_npy(path)
    assert_one_line(err, "not a readable .npy")
    with pytest.raises(DataError) as err:
        load_npy(tmp_path / "missing.npy")
    assert_one_line(err, "no such file")


# ------------------------------------------------------------------------------------------------
# make_dataset
# ------------------------------------------------------------------------------------------------

def test_make_dataset_synthetic(seed):
    assert DATASETS == ("ring", "grid", "shapes")
    assert torch.equal(make_dataset("ring", 50, seed), ring(50, seed))
    assert torch.equal(make_dataset("grid", 50, seed), grid(50, seed))
    assert torch.equal(make_dataset("shapes", 5, seed), shapes(5, seed))
    assert make_dataset("ring", 5, seed, dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("name", ["rings", "cifar10", "npy:", "", "Ring"])
def test_make_dataset_unknown_name(name):
    with pytest.raises(DataError) as err:
        make_dataset(name, 10, 0)
    assert_one_line(err, repr(name), "ring, grid, shapes, digits, cifar10:PATH, npy:PATH")


def test_make_dataset_files(tmp_path):
    pts = np.arange(20.0).reshape(10, 2)
    np.save(tmp_path / "p.npy", pts)
    name = f"npy:{tmp_path / 'p.npy'}"
    assert torch.equal(make_dataset(name, None, 0), torch.from_numpy(pts).float())
    sub = make_dataset(name, 4, 7)
    assert sub.shape == (4, 2) and torch.equal(sub, make_dataset(name, 4, 7))
    assert len({tuple(r.tolist()) for r in sub}) == 4, "rows are distinct"
    with pytest.raises(DataError) as err:
        make_dataset(name, 11, 0)
    assert_one_line(err, "n=11", "10")
    with pytest.raises(DataError) as err:
        make_dataset("ring", None, 0)
    assert_one_line(err, "n must be given")
    _, raw = _cifar_members()
    path = _write_tar(tmp_path / "c.tar.gz", raw)
    x = make_dataset(f"cifar10:{path}", 6, 0)
    assert x.shape == (6, 3, 32, 32)
    full = load_cifar10_tarball(path)
    assert all(any(torch.equal(r, f) for f in full) for r in x), "rows come from the file"
