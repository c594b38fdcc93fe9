"""True FID: the FID Inception's layout (pytorch-fid's file), loading, features, the distance,
the reference-statistics cache, and ``gradcheck fid`` end to end on a tiny training run.

The network runs on CPU at 299x299 only on 2 images; the pipeline tests use the smallest input
the architecture allows (75x75, via ``size=`` / ``INPUT_SIZE``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from gradcheck.cli import main as cli_main
from gradcheck.spec import SpecError, TrainSpec, validate_train
from gradcheck.train import fid as fidmod
from gradcheck.train.fid import (
    cached_stats,
    fid,
    fid_features,
    fid_from_stats,
    inception_input,
    reference_stats,
    run_fid,
)
from gradcheck.train.gan import train
from gradcheck.train.inception import (
    FEATURES,
    MIN_SIZE,
    FIDInceptionV3,
    _avg3,
    check_state_dict,
    load_fid_inception,
)

EPS64 = float(torch.finfo(torch.float64).eps)
EPS32 = float(torch.finfo(torch.float32).eps)

# Written from pytorch-fid's architecture (torchvision's inception_v3 body with the FID blocks),
# independently of gradcheck's module: key -> shape of the tensor in
# pt_inception-2015-12-05-6726825d.pth. Channel arithmetic: Mixed_5b/c/d take 192/256/288
# (= 64 + 64 + 96 + pool 32/64/64), Mixed_6b..e take 768, Mixed_7b 1280 (= 320 + 192 + 768),
# Mixed_7c 2048 (= 320 + 2*384 + 2*384 + 192).
REFERENCE_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.weight": (32,),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_2a_3x3.conv.weight": (32, 32, 3, 3),
    "Conv2d_2b_3x3.conv.weight": (64, 32, 3, 3),
    "Conv2d_3b_1x1.conv.weight": (80, 64, 1, 1),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1),
    "Mixed_5b.branch5x5_1.conv.weight": (48, 192, 1, 1),
    "Mixed_5b.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_5b.branch3x3dbl_3.conv.weight": (96, 96, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5c.branch_pool.conv.weight": (64, 256, 1, 1),
    "Mixed_5d.branch3x3dbl_1.conv.weight": (64, 288, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6a.branch3x3dbl_3.conv.weight": (96, 96, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6b.branch7x7dbl_5.conv.weight": (192, 128, 1, 7),
    "Mixed_6c.branch7x7dbl_2.conv.weight": (160, 160, 7, 1),
    "Mixed_6e.branch7x7_3.conv.weight": (192, 192, 7, 1),
    "Mixed_6e.branch_pool.conv.weight": (192, 768, 1, 1),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch1x1.conv.weight": (320, 1280, 1, 1),
    "Mixed_7b.branch3x3_2a.conv.weight": (384, 384, 1, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "Mixed_7c.branch_pool.bn.running_var": (192,),
}
#: 94 conv+BN layers: stem 5, 3 A blocks x 7, B 4, 4 C blocks x 10, D 6, 2 E blocks x 9
N_CONVS = 5 + 3 * 7 + 4 + 4 * 10 + 6 + 2 * 9
#: torchvision's inception_v3 has 27,161,264 parameters; without AuxLogits (conv0 192*... :
#: 768*128 + 2*128, conv1 128*768*25 + 2*768, fc 768*1000 + 1000 = 3,326,696) and without the
#: 1000-way fc (2048*1000 + 1000 = 2,049,000) that leaves the FID body's 21,785,568.
N_PARAMS = 27_161_264 - 3_326_696 - 2_049_000


def _random_inception(seed: int = 0) -> FIDInceptionV3:
    """Random weights with He-normal convs and jittered BN, so activations stay O(1)."""
    gen = torch.Generator().manual_seed(seed)
    m = FIDInceptionV3()
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            fan_in = mod.weight[0].numel()
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) *
                             math.sqrt(2.0 / fan_in))
        elif isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            mod.running_var.copy_(1 + 0.1 * torch.rand(c, generator=gen))
            mod.bias.copy_(0.1 * torch.randn(c, generator=gen))
    return m


@pytest.fixture(scope="module")
def model():
    return _random_inception(0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("weights") / "random_inception.pth"
    torch.save(model.state_dict(), path)
    return path


# -- layout ---------------------------------------------------------------------------------------

def test_state_dict_matches_pytorch_fid_layout(model):
    sd = model.state_dict()
    for key, shape in REFERENCE_SHAPES.items():
        assert key in sd, key
        assert tuple(sd[key].shape) == shape, (key, tuple(sd[key].shape), shape)
    convs = [k for k in sd if k.endswith(".conv.weight")]
    assert len(convs) == N_CONVS
    assert len(sd) == 6 * N_CONVS            # conv.weight + bn.{weight,bias,mean,var,count}
    assert not any(k.startswith(("AuxLogits", "fc.")) for k in sd)
    assert sum(p.numel() for p in model.parameters()) == N_PARAMS == 21_785_568
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_fid_block_variants():
    """TensorFlow's pools: padding not counted in the averages; Mixed_7c max-pools."""
    m = FIDInceptionV3()
    assert (m.Mixed_7b.pool, m.Mixed_7c.pool) == ("avg", "max")
    ones = torch.ones(1, 2, 5, 5)
    torch.testing.assert_close(_avg3(ones), ones, rtol=0, atol=0)   # corners 4/9 if counted


# -- loading --------------------------------------------------------------------------------------

def test_load_round_trip_and_forward_299(model, weights):
    loaded = load_fid_inception(weights, "cpu")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        a, b = loaded(x), loaded(x)
    assert a.shape == (2, FEATURES) and a.dtype == torch.float32
    assert torch.isfinite(a).all() and float(a.abs().mean()) > 1e-3
    assert torch.equal(a, b)


def test_standard_file_layout_loads(model, tmp_path):
    """The released file's shape: 1008-way fc.* (dropped) and no BN counters (filled)."""
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    sd = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
    clean = check_state_dict(sd, "w")
    assert set(clean) == set(model.state_dict())
    assert all(v.dtype == torch.float32 for k, v in clean.items()
               if not k.endswith("num_batches_tracked"))


def _one_line_error(path, *fragments):
    with pytest.raises(SpecError) as e:
        load_fid_inception(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("argument --weights: "), msg
    for f in fragments:
        assert f in msg, (f, msg)


def test_bad_weights_files(model, tmp_path):
    sd = model.state_dict()
    _one_line_error(tmp_path / "absent.pth", "no such file", "pt_inception-2015-12-05")
    (tmp_path / "random.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    _one_line_error(tmp_path / "random.pth", "cannot be read safely")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    _one_line_error(tmp_path / "list.pth", "holds a list object, not a state_dict")
    wrong = dict(sd, **{"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 1, 3, 3)})
    torch.save(wrong, tmp_path / "shape.pth")
    _one_line_error(tmp_path / "shape.pth", "Conv2d_1a_3x3.conv.weight", "32x1x3x3", "32x3x3x3")


def test_bad_state_dicts_named():
    sd = FIDInceptionV3().state_dict()
    cases = [
        ({k: v for k, v in sd.items() if k != "Mixed_6c.branch7x7_2.conv.weight"},
         ["missing 1 ", "470 weight entries", "Mixed_6c.branch7x7_2.conv.weight"]),
        (dict(sd, **{"AuxLogits.fc.weight": torch.zeros(1008, 768)}),
         ["AuxLogits.fc.weight", "torchvision"]),
        (dict(sd, **{"extra.weight": torch.zeros(1)}), ["1 key(s)", "extra.weight"]),
        (dict(sd, **{"Mixed_5b.branch1x1.bn.bias": torch.full((64,), math.nan)}),
         ["Mixed_5b.branch1x1.bn.bias", "non-finite"]),
        ({"state_dict": sd}, ["'state_dict' is not a tensor"]),
    ]
    for bad, fragments in cases:
        with pytest.raises(SpecError) as e:
            check_state_dict(bad, "argument --weights: f")
        msg = str(e.value)
        assert "\n" not in msg and all(f in msg for f in fragments), (fragments, msg)


# -- features -------------------------------------------------------------------------------------

def test_inception_input_is_pytorch_fids_transform():
    """pytorch-fid: u in [0, 1] -> resize -> 2u - 1; here x = 2u - 1 in [-1, 1] -> resize."""
    u = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    ref = 2 * nn.functional.interpolate(u, size=(299, 299), mode="bilinear",
                                        align_corners=False) - 1
    torch.testing.assert_close(inception_input(2 * u - 1), ref, rtol=0, atol=8 * EPS32)
    gray = inception_input(torch.full((1, 1, 16, 16), 0.5), 80)
    assert gray.shape == (1, 3, 80, 80)
    torch.testing.assert_close(gray, torch.full_like(gray, 0.5), rtol=0, atol=4 * EPS32)
    # clamped to [-1, 1] before the resize: 3.0 gives what 1.0 gives (a constant image resizes
    # to itself up to the float32 rounding of the bilinear weights)
    top = inception_input(torch.full((1, 3, 8, 8), 3.0), 75)
    assert torch.equal(top, inception_input(torch.full((1, 3, 8, 8), 1.0), 75))
    torch.testing.assert_close(top, torch.ones_like(top), rtol=0, atol=4 * EPS32)
    with pytest.raises(ValueError):
        inception_input(torch.zeros(1, 2, 8, 8))


def test_fid_features_batches_and_min_size(model):
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    a = fid_features(x, model, batch=3, size=MIN_SIZE)
    b = fid_features(x, model, batch=2, size=MIN_SIZE)
    assert a.shape == (3, FEATURES) and a.dtype == torch.float64 and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert torch.equal(a, fid_features(x, model, batch=3, size=MIN_SIZE))
    with pytest.raises(ValueError, match="H, W >= 75"):
        model(torch.zeros(1, 3, MIN_SIZE - 1, MIN_SIZE - 1))


# -- the distance ---------------------------------------------------------------------------------

def _sqrtm_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


@pytest.mark.parametrize("seed", [0, 1])
def test_fid_vs_scipy_sqrtm(seed):
    gen = torch.Generator().manual_seed(seed)
    d = 24
    a = torch.randn(200, d, generator=gen, dtype=torch.float64) @ \
        torch.randn(d, d, generator=gen, dtype=torch.float64)
    b = 0.7 * torch.randn(150, d, generator=gen, dtype=torch.float64) + 0.3
    got, want = fid(a, b), _sqrtm_fid(a.numpy(), b.numpy())
    assert abs(got - want) <= 1e-8 * abs(want), (got, want, got / want)
    mu1, c1 = a.mean(0), torch.cov(a.T)
    mu2, c2 = b.mean(0), torch.cov(b.T)
    assert abs(fid_from_stats(mu1, c1, mu2, c2) - got) <= 1e-12 * abs(got)


def test_fid_of_a_set_with_itself_is_zero():
    """Full rank: rounding only, ``1e3 d eps tr(C)``. Rank-deficient (n < d, as FID with fewer
    samples than 2048 features): the d - n + 1 zero eigenvalues of ``C^1/2 C C^1/2`` come out as
    rounding noise of size ``~d eps lam_max^2`` whose square roots add up to at most
    ``d sqrt(d eps) lam_max`` — the formula's (and scipy sqrtm's) floor, not a bug."""
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(300, 16, generator=gen, dtype=torch.float64)
    assert abs(fid(a, a)) <= 1e3 * 16 * EPS64 * float(torch.cov(a.T).trace()), fid(a, a)
    n, d = 5, 64
    a = torch.randn(n, d, generator=gen, dtype=torch.float64)
    lam_max = float(torch.linalg.eigvalsh(torch.cov(a.T))[-1])
    assert abs(fid(a, a)) <= d * math.sqrt(d * EPS64) * lam_max, (fid(a, a), lam_max)
    bad = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    bad[0, 0] = math.nan
    assert fid(bad, bad.nan_to_num()) == math.inf


# -- the cache ------------------------------------------------------------------------------------

def test_reference_stats_cached_and_repaired(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADCHECK_CACHE_DIR", str(tmp_path / "cache"))
    real = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    mu, cov, hit = reference_stats(real, model, "a" * 64, size=MIN_SIZE)
    assert not hit and mu.shape == (FEATURES,) and cov.shape == (FEATURES, FEATURES)
    mu2, cov2, hit2 = reference_stats(real, model, "a" * 64, size=MIN_SIZE)
    assert hit2 and torch.equal(mu, mu2) and torch.equal(cov, cov2)
    path, _ = cached_stats(real, "a" * 64, MIN_SIZE)
    assert path.parent == tmp_path / "cache"
    for other in (cached_stats(real, "b" * 64, MIN_SIZE)[0], cached_stats(real[:3], "a" * 64,
                                                                          MIN_SIZE)[0],
                  cached_stats(real, "a" * 64, MIN_SIZE + 1)[0]):
        assert other != path                  # weights, data and size are in the key
    path.write_bytes(b"damaged")
    _, _, hit3 = reference_stats(real, model, "a" * 64, size=MIN_SIZE)
    assert not hit3 and cached_stats(real, "a" * 64, MIN_SIZE)[1] is not None


# -- gradcheck fid end to end ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "shapes"
    spec = validate_train(TrainSpec(data="shapes", steps=4, log_every=2, ckpt_every=2, batch=8,
                                    n_data=64))
    train(spec, out, progress=False)
    return out


def test_cli_end_to_end(image_run, weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fidmod, "INPUT_SIZE", MIN_SIZE)        # the pipeline, at 75x75
    monkeypatch.setenv("GRADCHECK_CACHE_DIR", str(tmp_path / "cache"))
    csv_path = image_run / "fid.csv"
    (tmp_path / "junk.pth").write_bytes(b"\x80\x04not a pickle")
    args = ["fid", str(image_run), "--samples", "4", "--steps", "last", "--quiet"]
    assert cli_main([*args, "--weights", str(tmp_path / "junk.pth")]) == 2
    assert "--weights" in capsys.readouterr().err and not csv_path.exists()
    assert cli_main([*args, "--weights", str(weights)]) == 0
    import pandas as pd

    df = pd.read_csv(csv_path)
    assert list(df.columns) == ["step", "fid", "samples", "real_n", "weights_sha256"]
    assert df.step.tolist() == [4] and (df.samples == 4).all() and (df.real_n == 64).all()
    assert np.isfinite(df.fid).all() and (df.fid > 0).all()
    assert df.weights_sha256.str.len().eq(64).all()
    before = csv_path.read_bytes()
    assert cli_main([*args, "--weights", str(weights)]) == 2          # no --force
    assert "--force" in capsys.readouterr().err and csv_path.read_bytes() == before
    for bad in (["--steps", "3"], ["--samples", "1"], ["--device", "tpu"]):
        assert cli_main(["fid", str(image_run), "--weights", str(weights), "--force", *bad]) == 2
        assert csv_path.read_bytes() == before


def test_run_fid_api_feeds_the_distance_the_right_statistics(image_run, model, weights,
                                                             tmp_path, monkeypatch):
    """run_fid's distance is taken between the statistics of G's fixed-noise samples and of the
    seeded real subset (the distance itself is tested above; recorded here, not recomputed:
    each 2048-d Frechet costs seconds)."""
    monkeypatch.setenv("GRADCHECK_CACHE_DIR", str(tmp_path / "cache"))
    seen = []
    monkeypatch.setattr(fidmod, "fid_from_stats", lambda *st: seen.append(st) or 1.5)
    csv_path = image_run / "fid.csv"
    before = csv_path.read_bytes() if csv_path.exists() else None
    rows = run_fid(image_run, weights, samples=4, steps=[2, 4], real=16, size=MIN_SIZE,
                   write=False)
    assert [r["step"] for r in rows] == [2, 4] and all(r["fid"] == 1.5 for r in rows)
    assert all(r["real_n"] == 16 and r["samples"] == 4 for r in rows)
    assert (csv_path.read_bytes() if csv_path.exists() else None) == before   # write=False
    plan = fidmod.plan_fid(image_run, weights, samples=4, steps="2,4", real=16, force=True,
                           size=MIN_SIZE)
    real = fid_features(plan.real, model, size=MIN_SIZE)
    for (mu_f, cov_f, mu_r, cov_r), G in zip(seen, plan.generators):
        fake = fid_features(torch.cat(list(fidmod._samples(G, plan.spec, plan))), model,
                            size=MIN_SIZE)
        for got, want in ((mu_f, fake.mean(0)), (cov_f, torch.cov(fake.T)),
                          (mu_r, real.mean(0)), (cov_r, torch.cov(real.T))):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_refuses_point_runs_and_other_dirs(tmp_path, weights, capsys):
    ring = tmp_path / "ring"
    train(validate_train(TrainSpec(data="ring", steps=2, log_every=1, ckpt_every=2, n_data=64,
                                   batch=16, depth=2, width=8)), ring, progress=False)
    assert cli_main(["fid", str(ring), "--weights", str(weights)]) == 2
    assert "2-D points" in capsys.readouterr().err and not (ring / "fid.csv").exists()
    (tmp_path / "plain").mkdir()
    assert cli_main(["fid", str(tmp_path / "plain"), "--weights", str(weights)]) == 2
    assert "not a gradcheck training run" in capsys.readouterr().err
    assert cli_main(["fid", str(tmp_path / "plain")]) == 2            # --weights is required


@pytest.mark.parametrize("flag", ["--samples", "--real", "--batch"])
def test_huge_counts_are_refused_before_any_work(tmp_path, capsys, flag):
    from gradcheck._entry import main as entry

    code = entry(["fid", str(tmp_path), "--weights", str(tmp_path / "w.pth"), flag,
                  "1000000000000"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and flag in err, err
    assert not (tmp_path / "fid.csv").exists()
