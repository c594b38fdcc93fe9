"""THEORY C1, C1a, C1-SN: the per-layer gradient bound on random dense and conv nets.

An instance is a random bias-free net (dense or conv, 1-6 layers, random widths, kernels,
strides, paddings, activation, output, scheme); lhs = the probe engine's per-input
``||dD/dW_t||_F``, rhs = ``gradcheck.theory.bounds.c1_bound`` from the measured operator norms.
One row per (layer, worst input).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gradcheck.models import Discriminator, make_activation, make_output
from gradcheck.probe import ProbeOptions, probe
from gradcheck.schemes import apply_scheme
from gradcheck.theory.bounds import c1_bound, chain_tol, lambda_L

from ._base import identity, inequality

CLAIMS = {"C1": "inequality", "C1a": "identity", "C1-SN": "inequality"}
SCHEMES = ("lecun", "xavier", "kaiming", "orthogonal", "sn", "sn-conv", "bsn", "ssn", "bssn")


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


def build(p: dict) -> tuple[nn.Module, torch.Tensor]:
    """The random instance's model (float64, scheme applied) and 8 Gaussian inputs."""
    # inputs from their own stream: the weights are drawn from manual_seed(seed), and sharing
    # it would make x[0] the first row of the first layer's draw (ReLU inputs at a kink)
    gen = torch.Generator().manual_seed(
        int(np.random.SeedSequence([p["seed"], 1]).generate_state(1)[0]))
    layers, shape = chain_layers(p, p["depth"], int(p["widths"][0] % 4 + 1))
    model = Discriminator(*layers, make_output(p["output"])).double()
    x = torch.randn((8, *shape), generator=gen, dtype=torch.float64)
    scale = p["scale"] if p["scheme"] in ("ssn", "bssn") else 1.0
    apply_scheme(model, p["scheme"], x, seed=p["seed"], scale=scale,
                 activation=p["activation"], slope=p["slope"])
    return model, x


def instance(p: dict) -> list:
    model, x = build(p)
    res = probe(model, x, ProbeOptions(spectra=False))
    g, L = res.grads, len(res.layers)
    ops = np.array([n.sigma_op for n in res.norms])
    mu = np.array([i.mu for i in res.layers])
    lam = lambda_L(p["output"])
    tol = chain_tol(res.layers, float(torch.finfo(torch.float64).eps))
    bound = c1_bound(g.x_norm, ops, mu, lam)
    out = []
    for t in range(L):
        j = int(np.argmax(g.weight_grad[t] / np.maximum(bound[t], 1e-300)))
        out.append(inequality("C1", g.weight_grad[t, j], bound[t, j], tol, p, f"layer {t}"))
        if res.layers[t].kind == "linear":
            j = int(np.argmax(np.abs(g.weight_grad[t] - g.delta[t] * g.h_norm[t])))
            out.append(identity("C1a", g.weight_grad[t, j], g.delta[t, j] * g.h_norm[t, j],
                                tol, p, f"layer {t}"))
    if p["scheme"] in ("sn", "bsn", "sn-conv") and not p["conv"]:
        for t in range(L):
            j = int(np.argmax(g.weight_grad[t] / g.x_norm))
            out.append(inequality("C1-SN", g.weight_grad[t, j], lam * g.x_norm[j], tol, p,
                                  f"layer {t}"))
    return out
