"""The built-in discriminators have the shapes the paper and THEORY §0 describe."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gradcheck.models import SNGAN_CONVS, conv_stack, mlp, sngan


def _probe_layers(m):
    return [x for x in m if isinstance(x, (nn.Linear, nn.Conv2d))]


def test_sngan_matches_the_paper():
    m = sngan()
    convs = [x for x in m if isinstance(x, nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in convs] == list(SNGAN_CONVS)
    assert [(3, 1, 64), (4, 2, 64), (3, 1, 128), (4, 2, 128), (3, 1, 256), (4, 2, 256),
            (3, 1, 512)] == list(SNGAN_CONVS)
    acts = [x for x in m if isinstance(x, nn.LeakyReLU)]
    assert len(acts) == 7 and all(a.negative_slope == 0.1 for a in acts)
    head = _probe_layers(m)[-1]
    assert isinstance(head, nn.Linear) and head.in_features == 4 * 4 * 512
    # TF 'same' padding: 32 -> 32 -> 16 -> 16 -> 8 -> 8 -> 4 -> 4
    sizes, h = [], torch.zeros(1, 3, 32, 32)
    for layer in m:
        h = layer(h)
        if isinstance(layer, nn.Conv2d):
            sizes.append(h.shape[-1])
    assert sizes == [32, 16, 16, 8, 8, 4, 4]
    assert m(torch.zeros(5, 3, 32, 32)).shape == (5,)
    assert all(c.bias is None for c in _probe_layers(m))


@pytest.mark.parametrize("act, cls", [("relu", nn.ReLU), ("lrelu", nn.LeakyReLU),
                                      ("tanh", nn.Tanh), ("linear", nn.Identity)])
def test_mlp_structure(act, cls):
    m = mlp(depth=4, width=7, input_dim=3, activation=act, output="sigmoid", bias=True)
    lin = _probe_layers(m)
    assert [(layer.in_features, layer.out_features) for layer in lin] == [
        (3, 7), (7, 7), (7, 7), (7, 1)]
    assert all(layer.bias is not None for layer in lin)
    assert sum(isinstance(x, cls) for x in m) >= 3 and isinstance(m[-1], nn.Sigmoid)
    assert m(torch.zeros(2, 3)).shape == (2,)


def test_mlp_depth_one_is_a_single_linear_map():
    m = mlp(depth=1, width=99, input_dim=5)
    assert len(_probe_layers(m)) == 1 and _probe_layers(m)[0].in_features == 5


def test_conv_stack_strides_and_head():
    m = conv_stack(depth=7, channels=4, image_size=16, stride_every=2)
    convs = [x for x in m if isinstance(x, nn.Conv2d)]
    assert len(convs) == 6 and [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2]
    assert _probe_layers(m)[-1].in_features == 4 * 2 * 2
    assert m(torch.zeros(3, 3, 16, 16)).shape == (3,)


def test_bad_activation_names_the_choices():
    with pytest.raises(ValueError, match="relu, lrelu, tanh, linear"):
        mlp(2, 4, 4, activation="gelu")
