"""THEORY C9: BSN / BSSN — identical to SN on dense layers, Xavier-like on conv layers.

Each instance has two parts, each probed and checked by :func:`gradcheck.claims.c9_bsn.check`.

- ``C9a`` (identity, asserted): a random bias-free MLP (depth 1-5, widths 1-64, any activation,
  identity or sigmoid output) drawn under a BSN-divisor scheme of the registry (bsn, bssn) and
  under its SN partner (sn, ssn: same raw draw, same ``c``) with the same seed. Rows: the
  check's per layer ``sigma_R2(W) = sigma_R(W)``; and the consequence "BSN == SN exactly" (not
  drawn by the check): per layer, at the input farthest from equality, ``||dD/dW_t||`` (BSN)
  ``=`` (SN) from the probe engine, and the outputs ``||D||``. Slack for those two: the
  size-based ``ctx.tol`` times the cancellation factor
  :func:`gradcheck.probe.conditioning.conditioning` of the SN net (if the two divisors differ by
  rounding, the two nets' sums round differently).
- ``C9b`` (prediction, not asserted): a random chain of 1-4 conv layers (channels 8-128
  log-uniform — the C5 value behind the prediction is asymptotic — square kernels 1-5, leaky
  ReLU 0.1, then a 1x1 conv head on a 1x1 output) under the same scheme (exact sigma). The
  check's rows per conv layer: measured = realised per-entry rms of the weight used divided by
  Xavier's ``sqrt(2/(fan_in + fan_out))``; predicted = ``c`` times
  :func:`gradcheck.theory.bsn.bsn_xavier_constant` (C5 for both reshapes); kept for layers whose
  reshaped weight has both dimensions >= ``C9B_MIN_DIM`` = 8 (not the 1-channel head). The note
  gives the C9 gradient-control number ``sum_l |log chi_l|`` over the conv layers, ``chi`` the
  C7 gains of :func:`gradcheck.claims.c7_meanfield.mean_field`, under this scheme and under its
  SN partner — reported, never asserted.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from gradcheck.claims import c9_bsn as claim
from gradcheck.claims.c7_meanfield import mean_field
from gradcheck.models import Discriminator, mlp
from gradcheck.probe.conditioning import conditioning
from gradcheck.schemes import apply_scheme
from gradcheck.schemes.registry import SCHEMES
from gradcheck.theory.bsn import gradient_control

from ._base import EPS, context, from_rows, identity, layer_label

CLAIMS = {c.id: c.kind for c in claim.CLAIMS}
#: each BSN-divisor scheme of the registry and its SN partner (same raw draw and scale)
PAIRS = {n: next(m for m, t in SCHEMES.items() if t.divisor == "sn" and t.raw == s.raw
                 and t.takes_scale == s.takes_scale)
         for n, s in SCHEMES.items() if s.divisor == "bsn"}
ACTIVATIONS = ("relu", "lrelu", "tanh", "linear")
C9B_SLOPE = 0.1               # the conv chain's leaky ReLU
C9B_MIN_DIM = 8
C9B_INPUTS = 2
INPUT_SEED_OFFSET = 10_000   # inputs independent of the weights' raw draw
__all__ = ["CLAIMS", "PAIRS", "ACTIVATIONS", "EPS", "sample", "dense_pair", "conv_chain",
           "instance"]


def sample(rng: np.random.Generator) -> dict:
    n_conv = int(rng.integers(1, 5))
    return dict(
        depth=int(rng.integers(1, 6)), widths=[int(w) for w in rng.integers(1, 65, size=6)],
        activation=str(rng.choice(ACTIVATIONS)), slope=float(rng.uniform(0, 1)),
        output=str(rng.choice(["identity", "sigmoid"])), scheme=str(rng.choice(list(PAIRS))),
        scale=float(rng.uniform(0.5, 2.0)), seed=int(rng.integers(0, 2**31)),
        channels=[int(round(math.exp(rng.uniform(math.log(8), math.log(128)))))
                  for _ in range(n_conv + 1)],
        kernels=[int(k) for k in rng.integers(1, 6, size=n_conv)])


def _inputs(p: dict, shape: tuple, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(p["seed"] + INPUT_SEED_OFFSET)
    return torch.randn((n, *shape), generator=gen, dtype=torch.float64)


def dense_pair(p: dict) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    """The C9a MLP under the BSN scheme and under its SN partner (same seed), and 6 inputs."""
    w = p["widths"]
    x = _inputs(p, (w[0],), 6)
    models = []
    for scheme in (p["scheme"], PAIRS[p["scheme"]]):
        m = mlp(p["depth"], w[1], w[0], p["activation"], p["slope"], p["output"]).double()
        models.append(apply_scheme(m, scheme, x, seed=p["seed"], scale=p["scale"],
                                   activation=p["activation"], slope=p["slope"]).eval())
    return models[0], models[1], x


def conv_chain(p: dict, scheme: str) -> tuple[nn.Module, torch.Tensor]:
    """The C9b conv chain under ``scheme`` (raw draw from ``p['seed']``) and its inputs: convs
    ``channels[i] -> channels[i+1]`` (kernel ``kernels[i]``, no padding, leaky ReLU 0.1), then a
    1x1 conv to one channel on the 1x1 output."""
    ch, ks = p["channels"], p["kernels"]
    layers: list[nn.Module] = []
    for i, k in enumerate(ks):
        layers += [nn.Conv2d(ch[i], ch[i + 1], k, bias=False), nn.LeakyReLU(C9B_SLOPE)]
    model = Discriminator(*layers, nn.Conv2d(ch[-1], 1, 1, bias=False), nn.Flatten()).double()
    size = 1 + sum(k - 1 for k in ks)
    x = _inputs(p, (ch[0], size, size), C9B_INPUTS)
    apply_scheme(model, scheme, x, seed=p["seed"], scale=p["scale"], activation="lrelu",
                 slope=C9B_SLOPE)
    return model.eval(), x


def _conv_context(p: dict, scheme: str):
    model, x = conv_chain(p, scheme)
    return context(model, x, scheme, p["scale"], p["seed"], hessians=False)


def _sum_log_chi(ctx, n_conv: int) -> float:
    _, mf = mean_field(ctx, float((ctx.x ** 2).mean()))
    chi = mf.chi[:n_conv]
    return gradient_control(np.ones(len(chi)), chi)[1]


def bsn_equals_sn(ctx, p: dict, sn: nn.Module) -> list:
    """C9a's consequence: the BSN net's gradients and outputs equal the SN partner's."""
    x = ctx.x
    rs = context(sn, x, PAIRS[p["scheme"]], p["scale"], p["seed"], hessians=False).result
    rb = ctx.result
    K = conditioning(sn, x)
    tol = ctx.tol * K
    out = []
    for t in range(len(rb.layers)):
        a, b = rb.grads.weight_grad[t], rs.grads.weight_grad[t]
        j = int(np.argmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
        out.append(identity("C9a", a[j], b[j], tol, p,
                            f"{layer_label(ctx, t)}: ||dD/dW_t|| {p['scheme']} = "
                            f"{PAIRS[p['scheme']]}; conditioning K={K:.3g}"))
    out.append(identity("C9a", np.linalg.norm(rb.grads.D), np.linalg.norm(rs.grads.D), tol, p,
                        "network: output ||D||"))
    return out


def instance(p: dict) -> list:
    """The instance's rows (the runner pins one torch/BLAS thread: these problems are small)."""
    bsn, sn, x = dense_pair(p)
    dense = context(bsn, x, p["scheme"], p["scale"], p["seed"], hessians=False)
    out = from_rows(claim.check(dense), dense, p, keep=lambda r: r["claim"] == "C9a")
    out += bsn_equals_sn(dense, p, sn)

    conv = _conv_context(p, p["scheme"])
    n_conv = len(p["kernels"])
    control = (f"sum|log chi| {p['scheme']} {_sum_log_chi(conv, n_conv):.3g} vs "
               f"{PAIRS[p['scheme']]} "
               f"{_sum_log_chi(_conv_context(p, PAIRS[p['scheme']]), n_conv):.3g}")

    def keep(r: dict) -> bool:
        info = conv.layers[int(r["layer"])]
        return r["claim"] == "C9b" and min(info.weight_shape[0], info.fan_in) >= C9B_MIN_DIM
    return out + [replace(r, note=f"{r.note}; {control}")
                  for r in from_rows(claim.check(conv), conv, p, keep=keep)]
