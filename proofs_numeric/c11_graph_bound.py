"""THEORY C11, C11-H: the gradient and Hessian bounds on random residual graphs (and chains).

An instance is a random bias-free discriminator, probed by the engine and checked by
:func:`gradcheck.claims.c11_graph_bound.check` (F and B from the recorded graph, the layers'
measured operator norms and the exact norms of the pooling maps):

- ``structure='residual'`` (:class:`ResidualNet`), dense or conv: a stem layer, 1-3 residual
  blocks ``h + f(h)`` (identity skip) or ``P(h) + f(h)`` with a 1x1 shortcut ``P`` (always when
  the width changes), ``f`` = 1 or 2 pre-activation layers (conv: ``k x k``, ``k`` 1 or 3,
  zero padding ``k // 2``), an optional 2x2 average pooling at the end of a conv block (both
  branches), then the activation, global sum or mean pooling (conv), a dense head, identity or
  sigmoid output;
- ``structure='chain'``: the C1 module's random chains (only flatten between the layers), where
  C11 must reduce to C1. Extra rows ``C11-chain`` (identity, ``1e-12`` relative): per layer,
  at the input farthest from equality, C11's bound ``graph_bound(ctx) ||x||`` against C1's
  ``bound(ctx)`` (:mod:`gradcheck.claims.c1_gradient_bound`), on chains whose recorded graph has
  no parameter-free map other than flatten / reshape (a pooling of norm < 1 would make C11's
  bound smaller than C1's, not equal).

Activations: ReLU or leaky ReLU (piecewise linear, so that C11-H applies too); any of the
registry's schemes (applied by :func:`gradcheck.schemes.apply_scheme`, exact sigma). Rows: C11
per layer (both of its inequalities asserted by the check at the worst of the inputs); C11-H per
layer on the check's Hessian input (exactly 0 for an identity output).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gradcheck.claims import c1_gradient_bound as c1
from gradcheck.claims import c11_graph_bound as claim
from gradcheck.models import Discriminator, make_activation, make_output
from gradcheck.schemes import apply_scheme
from gradcheck.schemes.registry import NAMES
from gradcheck.schemes.registry import SCHEMES as RECORDS

from ._base import context, from_rows, identity, layer_label
from .c1_gradient_bound import chain_layers, input_generator

CLAIMS = {**{c.id: c.kind for c in claim.CLAIMS}, "C11-chain": "identity"}
SCHEMES = NAMES
ACTIVATIONS = ("relu", "lrelu")
#: relative tolerance of C11's bound against C1's on a chain (they differ by rounding only)
CHAIN_RTOL = 1e-12
N_INPUTS = 4


def sample(rng: np.random.Generator) -> dict:
    """One random instance (residual graph 3 times in 4, chain otherwise)."""
    conv = bool(rng.random() < 0.5)
    n_blocks = int(rng.integers(1, 4))
    return dict(
        structure="residual" if rng.random() < 0.75 else "chain", conv=conv,
        seed=int(rng.integers(0, 2**31)),
        in_channels=int(rng.integers(1, 4)), image=int(rng.integers(4, 9)),
        input_dim=int(rng.integers(1, 17)), stem_kernel=int(rng.choice([1, 3])),
        blocks=[dict(width=int(rng.integers(1, 7 if conv else 25)),
                     shortcut=bool(rng.random() < 0.4), inner=int(rng.integers(1, 3)),
                     kernel=int(rng.choice([1, 3])), pool=bool(conv and rng.random() < 0.4))
                for _ in range(n_blocks)],
        width=int(rng.integers(1, 7 if conv else 25)),
        pooling=str(rng.choice(["sum", "mean"])),
        activation=str(rng.choice(ACTIVATIONS)), slope=float(rng.uniform(0, 1)),
        output=str(rng.choice(["identity", "sigmoid"])), scheme=str(rng.choice(SCHEMES)),
        scale=float(rng.uniform(0.5, 2.0)),
        # the chain's parameters (the C1 module's chain_layers)
        depth=int(rng.integers(1, 5)), widths=[int(w) for w in rng.integers(1, 17, size=6)],
        kernels=[int(k) for k in rng.integers(1, 5, size=6)],
        strides=[int(s) for s in rng.integers(1, 3, size=6)],
        paddings=[int(q) for q in rng.integers(0, 3, size=6)])


def _layer(conv: bool, c_in: int, c_out: int, k: int = 1) -> nn.Module:
    if conv:
        return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
    return nn.Linear(c_in, c_out, bias=False)


class Block(nn.Module):
    """``P(h) + f(h)``: ``f`` = ``inner`` pre-activation layers, ``P`` the identity or a 1x1
    shortcut layer, both branches ending in a 2x2 average pooling if ``pool``."""

    def __init__(self, conv: bool, c_in: int, spec: dict, activation: str, slope: float):
        super().__init__()
        c_out, k = spec["width"], spec["kernel"]
        self.acts = nn.ModuleList(make_activation(activation, slope)
                                  for _ in range(spec["inner"]))
        self.f = nn.ModuleList(_layer(conv, c_in if i == 0 else c_out, c_out, k)
                               for i in range(spec["inner"]))
        self.shortcut = _layer(conv, c_in, c_out) if spec["shortcut"] or c_in != c_out else None
        self.pool = spec["pool"]

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # noqa: D102 - see the class
        r = h
        for act, layer in zip(self.acts, self.f):
            r = layer(act(r))
        s = h if self.shortcut is None else self.shortcut(h)
        if self.pool:
            r, s = F.avg_pool2d(r, 2), F.avg_pool2d(s, 2)
        return r + s


class ResidualNet(nn.Module):
    """Stem, residual blocks, activation, global sum/mean pooling (conv), dense head, output."""

    def __init__(self, p: dict):
        super().__init__()
        self.conv = p["conv"]
        c = p["in_channels"] if self.conv else p["input_dim"]
        self.stem = _layer(self.conv, c, p["width"], p["stem_kernel"] if self.conv else 1)
        c, size, blocks = p["width"], p["image"], []
        for spec in p["blocks"]:
            spec = dict(spec, pool=spec["pool"] and self.conv and size >= 2)
            blocks.append(Block(self.conv, c, spec, p["activation"], p["slope"]))
            c, size = spec["width"], size // 2 if spec["pool"] else size
        self.blocks = nn.ModuleList(blocks)
        self.act = make_activation(p["activation"], p["slope"])
        self.pooling = p["pooling"]
        self.head = nn.Linear(c, 1, bias=False)
        self.out = make_output(p["output"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - see the class
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        h = self.act(h)
        if self.conv:
            h = h.sum(dim=(2, 3)) if self.pooling == "sum" else h.mean(dim=(2, 3))
        return self.out(self.head(h)).reshape(x.shape[0])


def build(p: dict) -> tuple[nn.Module, torch.Tensor]:
    """The instance's model (float64, scheme applied) and ``N_INPUTS`` Gaussian inputs."""
    if p["structure"] == "chain":
        layers, shape = chain_layers(p, p["depth"], p["in_channels"])
        model = Discriminator(*layers, make_output(p["output"])).double()
    else:
        model = ResidualNet(p).double()
        shape = (p["in_channels"], p["image"], p["image"]) if p["conv"] else (p["input_dim"],)
    x = torch.randn((N_INPUTS, *shape), generator=input_generator(p["seed"]),
                    dtype=torch.float64)
    apply_scheme(model, p["scheme"], x, seed=p["seed"], scale=RECORDS[p["scheme"]].c(p["scale"]),
                 activation=p["activation"], slope=p["slope"])
    return model.eval(), x


def make_context(p: dict, hessians: bool = True):
    """The probed instance as the claims' ``Context`` (``hessians=False``: no C11-H rows)."""
    model, x = build(p)
    return context(model, x, p["scheme"], p["scale"], p["seed"], hessians=hessians)


def flatten_only_chain(ctx) -> bool:
    """The recorded graph is a chain whose only parameter-free maps are flatten / reshape."""
    return ctx.facts.chain and not ctx.facts.linear_maps


def chain_rows(ctx, p: dict) -> list:
    """``C11-chain``: on a flatten-only chain C11's bound equals C1's (per layer, worst input)."""
    if not flatten_only_chain(ctx):
        return []
    ours = claim.graph_bound(ctx)[:, None] * ctx.result.grads.x_norm[None, :]
    theirs = c1.bound(ctx)
    out = []
    for t in range(len(ctx.layers)):
        j = int(np.argmax(np.abs(ours[t] - theirs[t]) / np.maximum(theirs[t], 1e-300)))
        out.append(identity("C11-chain", ours[t, j], theirs[t, j], CHAIN_RTOL, p,
                            f"{layer_label(ctx, t)}: C11's mu F B ||x|| = C1's lambda_L mu "
                            "||x|| prod_(i!=t) ||W_i||_op on a chain"))
    return out


def instance(p: dict) -> list:
    """The rows of one instance (the runner pins one thread: the nets are tiny)."""
    ctx = make_context(p)
    return from_rows(claim.check(ctx), ctx, p) + chain_rows(ctx, p)
