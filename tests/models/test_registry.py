"""Every architecture record builds a model that matches its own layer count and input shape."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gradcheck.build import make_model
from gradcheck.models.registry import ARCHS
from gradcheck.spec import RunSpec, TrainSpec, validate, validate_train

#: small, fast settings per architecture (sngan is fixed-size)
SMALL = dict(width=8, channels=4, image_size=8, stride_every=2)


def _count(m: nn.Module) -> int:
    return sum(isinstance(x, (nn.Linear, nn.Conv2d)) for x in m.modules())


@pytest.mark.parametrize("name", list(ARCHS))
@pytest.mark.parametrize("depth", [None, 3])
def test_record_builds_what_it_describes(name, depth):
    a = ARCHS[name]
    if a.fixed_depth is not None and depth is not None:
        depth = a.fixed_depth
    spec = validate(RunSpec(arch=name, depth=depth, **SMALL))
    model = a.build(spec)
    assert _count(model) == a.n_layers(spec) == spec.n_layers
    assert spec.input_shape == a.input_shape(spec)
    assert len(spec.input_shape) == (3 if a.images else 1)
    y = model(torch.zeros((2, *a.input_shape(spec))))
    assert y.shape == (2,)
    assert spec.resolved().depth == (a.fixed_depth or depth or a.default_depth)
    assert spec.resolved_activation == a.default_activation
    # float64 with the scheme, as a probe run builds it
    d = make_model(spec, 0)
    assert d(torch.zeros((2, *spec.input_shape), dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("name", list(ARCHS))
def test_train_build_takes_the_data_shape(name):
    a = ARCHS[name]
    shape = (3, 32, 32) if a.images else (2,)
    t = validate_train(TrainSpec(data="shapes" if a.images else "ring", arch=name, width=8,
                                 channels=4, depth=None if a.fixed_depth else 2))
    D = a.train_build(t, shape)
    assert D(torch.zeros((2, *shape))).shape == (2,)


def test_depth_bounds_come_from_the_record():
    for a in ARCHS.values():
        assert a.min_depth <= a.default_depth <= a.max_depth
        if a.fixed_depth is not None:
            assert a.min_depth == a.fixed_depth == a.max_depth
