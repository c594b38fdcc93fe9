"""Models the probe engine must refuse, with a :class:`ProbeError` that names the problem."""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from gradcheck.models import Discriminator
from gradcheck.probe import ProbeError, ProbeOptions, probe


class WithEmbedding(nn.Module):
    """Token ids ``(B,)`` -> embedding -> dense head: the Embedding has a weight parameter."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 1, bias=False)

    def forward(self, ids):
        return self.head(self.emb(ids)).reshape(ids.shape[0])


class SharedLayer(nn.Module):
    """One Linear applied twice (weight sharing)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3, bias=False)
        self.head = nn.Linear(3, 1, bias=False)

    def forward(self, x):
        return self.head(self.lin(self.lin(x))).reshape(x.shape[0])


def _x(*shape, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture
def bad_models(seed):
    """``name -> (model, input, regex the message must match)``."""
    return {
        "no-probe-layer": (Discriminator(nn.Flatten(), nn.Tanh()), _x(3, 1, seed=seed),
                           r"no probe-able layer"),
        "embedding": (WithEmbedding(), torch.tensor([1, 4, 7]), r"'emb'.*Embedding"),
        "two-outputs": (nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)),
                        _x(3, 4, seed=seed), r"\(3, 2\)"),
        "grouped-conv": (Discriminator(nn.Conv2d(4, 4, 3, groups=2, bias=False), nn.Flatten(),
                                       nn.Linear(4 * 2 * 2, 1, bias=False)),
                         _x(3, 4, 4, 4, seed=seed), r"'0'.*groups=2"),
        "weight-sharing": (SharedLayer(), _x(3, 3, seed=seed), r"'lin'.*more than once"),
    }


@pytest.mark.parametrize("name", ["no-probe-layer", "embedding", "two-outputs",
                                  "grouped-conv", "weight-sharing"])
def test_unprobeable_model_raises_probe_error_naming_the_problem(bad_models, name):
    model, x, pattern = bad_models[name]
    model = model.double()
    with pytest.raises(ProbeError) as info:
        probe(model, x, ProbeOptions(spectra=False))
    message = str(info.value)
    assert re.search(pattern, message), f"{name}: message {message!r} does not match {pattern!r}"


def test_probe_error_is_a_value_error():
    assert issubclass(ProbeError, ValueError)


def test_probe_restores_training_mode_after_an_error(bad_models):
    model, x, _ = bad_models["two-outputs"]
    model.double().train()
    with pytest.raises(ProbeError):
        probe(model, x, ProbeOptions(spectra=False))
    assert model.training
