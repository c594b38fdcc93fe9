"""The SNGAN-style ResNet discriminator: structure, an independent forward, schemes, spec rules."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_rel_close
from torch import nn

from gradcheck.build import make_model
from gradcheck.models import resnet
from gradcheck.models.registry import ARCHS
from gradcheck.models.resnet import resnet_downsamples
from gradcheck.schemes import SCHEMES, apply_scheme, parametric_layers
from gradcheck.spec import RunSpec, SpecError, TrainSpec, validate, validate_train

ACT = {"relu": F.relu, "lrelu": lambda h: F.leaky_relu(h, 0.1), "tanh": torch.tanh,
       "linear": lambda h: h}


def _layers(m: nn.Module) -> list[nn.Module]:
    return [x for x in m.modules() if isinstance(x, (nn.Linear, nn.Conv2d))]


def _by_hand(m, x: torch.Tensor, act) -> torch.Tensor:
    """SNGAN ResNet D forward written out with F.conv2d on the model's weights (the pooling
    rule restated here, not read off the model)."""
    pool = lambda h: F.avg_pool2d(h, 2)  # noqa: E731
    conv = lambda h, c: F.conv2d(h, c.weight, c.bias, padding=c.padding)  # noqa: E731
    h = x
    for i, b in enumerate(m.blocks):
        if i == 0:                                   # optimised block
            h = pool(conv(act(conv(h, b.c1)), b.c2)) + conv(pool(h), b.c_sc)
            continue
        r = conv(act(conv(act(h), b.c1)), b.c2)
        if i == 1 and h.shape[-1] >= 8:             # block 2 pools while the result is >= 4x4
            h = pool(r) + pool(conv(h, b.c_sc))
        else:                                        # identity shortcut (equal channels)
            assert b.c_sc is None
            h = r + h
    return F.linear(act(h).sum(dim=(2, 3)), m.head.weight, m.head.bias).reshape(len(x))


def test_default_is_sngan_32():
    m = resnet()
    assert resnet_downsamples(4, 32) == (True, True, False, False)
    convs = [x for x in _layers(m) if isinstance(x, nn.Conv2d)]
    assert [(c.kernel_size[0], c.in_channels, c.out_channels) for c in convs] == [
        (3, 3, 128), (3, 128, 128), (1, 3, 128), (3, 128, 128), (3, 128, 128), (1, 128, 128),
        (3, 128, 128), (3, 128, 128), (3, 128, 128), (3, 128, 128)]
    assert m.blocks[2].c_sc is None and m.blocks[3].c_sc is None
    assert isinstance(m.head, nn.Linear) and m.head.in_features == 128
    sizes, h = [], torch.zeros(1, 3, 32, 32)
    for b in m.blocks:
        h = b(h)
        sizes.append(h.shape[-1])
    assert sizes == [16, 8, 8, 8]
    assert m(torch.zeros(5, 3, 32, 32)).shape == (5,)
    assert not [n for n, _ in m.named_parameters() if "bias" in n]
    assert all(layer.bias is not None for layer in _layers(resnet(2, 4, 8, bias=True)))


@pytest.mark.parametrize("size, want", [(8, (True, False, False)), (12, (True, False, False)),
                                        (16, (True, True, False)), (64, (True, True, False))])
def test_downsampling_rule(size, want):
    assert resnet_downsamples(3, size) == want
    for bad in (4, 6, 18, 30):
        with pytest.raises(ValueError, match="multiple of 4"):
            resnet_downsamples(3, bad)


@pytest.mark.parametrize("kw", [dict(), dict(image_size=32, depth=2), dict(image_size=8),
                                dict(image_size=12, depth=1, channels=5)])
def test_layer_count_matches_registry(kw):
    spec = validate(RunSpec(arch="resnet", **kw))
    m = ARCHS["resnet"].build(spec)
    assert len(_layers(m)) == len(parametric_layers(m)) == ARCHS["resnet"].n_layers(spec)
    assert spec.n_layers == ARCHS["resnet"].n_layers(spec)
    assert m(torch.zeros(2, *spec.input_shape)).shape == (2,)
    assert not any(layer.bias is not None for layer in _layers(m))


@pytest.mark.parametrize("act", list(ACT))
@pytest.mark.parametrize("size, blocks, bias", [(16, 4, False), (8, 3, True), (32, 2, False)])
def test_forward_equals_hand_computation(act, size, blocks, bias):
    torch.manual_seed(0)
    m = resnet(blocks, 6, size, 2, act, 0.1, bias=bias).double()
    x = torch.randn(3, 2, size, size, dtype=torch.float64)
    with torch.no_grad():
        assert_rel_close(m(x), _by_hand(m, x, ACT[act]), 1e-12, f"resnet {act} {size}")


def test_sigmoid_output_and_float32():
    m = resnet(2, 4, 8, output="sigmoid").float()
    y = m(torch.randn(4, 3, 8, 8))
    assert y.dtype == torch.float32 and y.shape == (4,) and bool(((y > 0) & (y < 1)).all())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_applies(scheme):
    m = resnet(3, 4, 16).double()
    x = torch.randn(5, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    apply_scheme(m, scheme, x[:1], seed=0, scale=1.5 if scheme in ("ssn", "bssn") else 1.0)
    assert bool(torch.isfinite(m(x)).all())
    spec = validate(RunSpec(arch="resnet", init=scheme, depth=2, channels=4, image_size=8))
    assert bool(torch.isfinite(make_model(spec, 0)(x[:, :, :8, :8])).all())


@pytest.mark.parametrize("kw, needle", [
    (dict(depth=0), "argument --depth: must be an integer >= 1"),
    (dict(depth=65), "argument --depth: must be <= 64"),
    (dict(image_size=18), "argument --image-size: the resnet architecture needs a multiple of 4"),
    (dict(image_size=4), "argument --image-size: the resnet architecture needs a multiple of 4"),
])
def test_spec_refuses(kw, needle):
    with pytest.raises(SpecError) as e:
        validate(RunSpec(arch="resnet", **kw))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_spec_defaults_and_resolved():
    spec = validate(RunSpec(arch="resnet"))
    r = spec.resolved()
    assert (r.depth, r.activation, r.channels, r.image_size, r.input_dim) == \
        (4, "relu", 16, 16, None)
    assert spec.n_layers == 11 and spec.input_shape == (3, 16, 16)
    assert RunSpec.from_dict(r.__dict__) == r


def test_train_spec_accepts_resnet_on_images():
    t = validate_train(TrainSpec(data="shapes", arch="resnet", channels=4))
    assert (t.depth, t.activation) == (4, "relu")
    with pytest.raises(SpecError, match="--arch"):
        validate_train(TrainSpec(data="ring", arch="resnet"))
    with pytest.raises(SpecError, match="--depth: must be an integer >= 1"):
        validate_train(TrainSpec(data="shapes", arch="resnet", depth=0))


def test_trains_and_reloads_from_a_checkpoint(tmp_path):
    from gradcheck.subjects import checkpoint_model
    from gradcheck.train.gan import build_discriminator, train

    t = validate_train(TrainSpec(data="shapes", arch="resnet", depth=2, channels=4, width=16,
                                 steps=2, batch=4, n_data=16, log_every=1, ckpt_every=2))
    run = train(t, tmp_path, progress=False)
    assert len(run.layers) == 3 + 3 + 1       # 32 -> 16 -> 8: both blocks pool
    D, tspec, step = checkpoint_model(RunSpec(checkpoint=str(tmp_path / "ckpt_2.pt")))
    assert step == 2 and tspec == t and isinstance(D, type(build_discriminator(t, run.data[:2])))
    x = run.data[:3]
    with torch.no_grad():
        assert torch.equal(D.eval()(x), run.D.eval()(x))


def test_unfit_training_images_are_a_data_error():
    from gradcheck.train.data import DataError
    from gradcheck.train.gan import build_discriminator

    t = validate_train(TrainSpec(data="shapes", arch="resnet", channels=4))
    with pytest.raises(DataError, match="3x4x4 do not fit --arch resnet"):
        build_discriminator(t, torch.zeros(2, 3, 4, 4))
