"""THEORY C1, C1a, C1-SN: the per-layer gradient bound on random dense and conv chains.

An instance is a random bias-free chain (dense or conv, 1-6 layers, random widths, kernels,
strides, paddings, activation, output, any scheme of the registry); it is probed by the engine
and checked by :func:`gradcheck.claims.c1_gradient_bound.check`: C1 per layer at the worst of 8
inputs (rhs = that module's ``bound(ctx)`` from the measured operator norms), C1a per dense
layer, C1-SN per layer for the unit-norm schemes on dense chains (on conv chains the check says
"not applicable" and the row is dropped).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gradcheck.claims import c1_gradient_bound as claim
from gradcheck.models import Discriminator, make_activation, make_output
from gradcheck.schemes import apply_scheme
from gradcheck.schemes.registry import NAMES
from gradcheck.schemes.registry import SCHEMES as RECORDS

from ._base import context, from_rows

CLAIMS = {c.id: c.kind for c in claim.CLAIMS}
#: every scheme of the registry
SCHEMES = NAMES


def sample(rng: np.random.Generator) -> dict:
    conv = bool(rng.random() < 0.5)
    return dict(
        conv=conv, depth=int(rng.integers(1, 5)), seed=int(rng.integers(0, 2**31)),
        widths=[int(w) for w in rng.integers(1, 33, size=6)],
        kernels=[int(k) for k in rng.integers(1, 5, size=6)],
        strides=[int(s) for s in rng.integers(1, 3, size=6)],
        paddings=[int(p) for p in rng.integers(0, 3, size=6)],
        image=int(rng.integers(6, 13)),
        activation=str(rng.choice(["relu", "lrelu", "tanh", "linear"])),
        slope=float(rng.uniform(0, 1)), output=str(rng.choice(["identity", "sigmoid"])),
        scheme=str(rng.choice(SCHEMES)), scale=float(rng.uniform(0.5, 2.0)))


def chain_layers(p: dict, n_conv: int, in_channels: int) -> tuple[list[nn.Module], tuple]:
    """Bias-free layers of a random chain and the shape of one input (shared by the claim
    modules). Conv (``p['conv']``): up to ``n_conv`` convs (layers that would not fit the image
    are dropped), Flatten, dense head; dense: ``p['depth']`` Linear layers."""
    layers: list[nn.Module] = []
    if p["conv"]:
        c, size = in_channels, p["image"]
        shape = (c, size, size)
        for i in range(n_conv):
            k, s = p["kernels"][i], p["strides"][i]
            pad = min(p["paddings"][i], k - 1)
            if size + 2 * pad < k:
                break
            layers += [nn.Conv2d(c, p["widths"][i], k, stride=s, padding=pad, bias=False),
                       make_activation(p["activation"], p["slope"])]
            c, size = p["widths"][i], (size + 2 * pad - k) // s + 1
        return layers + [nn.Flatten(), nn.Linear(c * size * size, 1, bias=False)], shape
    n = p["widths"][0]
    for i in range(1, p["depth"]):
        layers += [nn.Linear(n, p["widths"][i], bias=False),
                   make_activation(p["activation"], p["slope"])]
        n = p["widths"][i]
    return layers + [nn.Linear(n, 1, bias=False)], (p["widths"][0],)


def input_generator(seed: int) -> torch.Generator:
    """The inputs' own stream: the weights are drawn from ``manual_seed(seed)``, and sharing it
    would make ``x[0]`` the first row of the first layer's draw (ReLU inputs at a kink)."""
    return torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))


def build(p: dict) -> tuple[nn.Module, torch.Tensor]:
    """The random instance's model (float64, scheme applied) and 8 Gaussian inputs."""
    layers, shape = chain_layers(p, p["depth"], int(p["widths"][0] % 4 + 1))
    model = Discriminator(*layers, make_output(p["output"])).double()
    x = torch.randn((8, *shape), generator=input_generator(p["seed"]), dtype=torch.float64)
    apply_scheme(model, p["scheme"], x, seed=p["seed"], scale=RECORDS[p["scheme"]].c(p["scale"]),
                 activation=p["activation"], slope=p["slope"])
    return model, x


def make_context(p: dict, hessians: bool = False):
    """The probed instance as the claims' ``Context`` (provenance: the sampled scheme)."""
    model, x = build(p)
    return context(model, x, p["scheme"], p["scale"], p["seed"], hessians=hessians)


def instance(p: dict) -> list:
    ctx = make_context(p)
    return from_rows(claim.check(ctx), ctx, p)
