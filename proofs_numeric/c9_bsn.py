"""THEORY C9: BSN / BSSN — identical to SN on dense layers, Xavier-like on conv layers.

Each instance has two parts.

- ``C9a`` (identity, asserted): a random bias-free MLP (depth 1-5, widths 1-64, any activation,
  identity or sigmoid output) drawn under bsn and under sn (or bssn and ssn with the same ``c``)
  with the same seed. Rows: per layer ``sigma_R2(W) = sigma_R(W)`` of the raw weight (slack
  ``10 (m + n) eps``: two SVDs of the same matrix and its transpose); per layer, at the input
  farthest from equality, ``||dD/dW_t||`` (BSN) ``=`` (SN) from the probe engine; the outputs
  ``||D||``. Slack for the last two: :func:`gradcheck.theory.bounds.inequality_tol` times the
  cancellation factor :func:`gradcheck.probe.conditioning.conditioning` of the SN net (the
  divisors differ by rounding, so the two nets' sums round differently).
- ``C9b`` (prediction, not asserted): a random chain of 1-4 conv layers (channels 8-128
  log-uniform — the C5 value behind the prediction is asymptotic — square kernels 1-5) under bsn or bssn (exact sigma). Per layer: measured =
  realised per-entry rms of the weight used divided by Xavier's ``sqrt(2/(fan_in + fan_out))``;
  predicted = ``c`` times :func:`gradcheck.theory.bsn.bsn_xavier_constant` (C5 for both
  reshapes). The note gives the C9 gradient-control number ``sum_l |log chi_l|`` (C7 gains
  ``chi = kappa v f``, leaky ReLU 0.1, stride 1) of the chain under this scheme and under SN /
  SSN with the same ``c`` — reported, never asserted.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from gradcheck.models import mlp
from gradcheck.probe import ProbeOptions, probe
from gradcheck.schemes import apply_scheme
from gradcheck.schemes.sigma import sigma_R, sigma_R2
from gradcheck.theory.bounds import chain_tol
from gradcheck.theory.bsn import bsn_xavier_constant, effective_std, gradient_control, xavier_std

from ._base import identity, prediction
from gradcheck.probe.conditioning import conditioning

CLAIMS = {"C9a": "identity", "C9b": "prediction"}
EPS = float(torch.finfo(torch.float64).eps)
PAIRS = {"bsn": "sn", "bssn": "ssn"}
ACTIVATIONS = ("relu", "lrelu", "tanh", "linear")
KAPPA_LRELU01 = (1 + 0.1 ** 2) / 2
INPUT_SEED_OFFSET = 10_000   # inputs independent of the weights' raw draw


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


def _c(p: dict) -> float:
    return p["scale"] if p["scheme"] in ("ssn", "bssn") else 1.0


def dense_pair(p: dict) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    """The C9a MLP under the BSN scheme and under its SN partner (same seed), and 6 inputs."""
    w = p["widths"]
    x = torch.randn((6, w[0]), generator=torch.Generator().manual_seed(p["seed"]
                                                                       + INPUT_SEED_OFFSET),
                    dtype=torch.float64)
    models = []
    for scheme in (p["scheme"], PAIRS[p["scheme"]]):
        m = mlp(p["depth"], w[1], w[0], p["activation"], p["slope"], p["output"]).double()
        models.append(apply_scheme(m, scheme, x, seed=p["seed"], scale=p["scale"],
                                   activation=p["activation"], slope=p["slope"]).eval())
    return models[0], models[1], x


def conv_chain(p: dict, scheme: str) -> list[torch.Tensor]:
    """Effective weights of the C9b conv chain under ``scheme`` (raw draw from ``p['seed']``)."""
    ch, ks = p["channels"], p["kernels"]
    body = nn.Sequential(*[nn.Conv2d(ch[i], ch[i + 1], ks[i], bias=False) for i in range(len(ks))])
    apply_scheme(body.double(), scheme, None, seed=p["seed"], scale=p["scale"])
    with torch.no_grad():
        return [m.weight.detach() for m in body]


def _sum_log_chi(weights: list[torch.Tensor]) -> float:
    chi = [KAPPA_LRELU01 * effective_std(w.numpy()) ** 2 * w.shape[0] * w.shape[2] * w.shape[3]
           for w in weights]
    return gradient_control(np.ones(len(chi)), chi)[1]


def instance(p: dict) -> list:
    """The instance's rows (the runner pins one torch/BLAS thread: these problems are small)."""
    out = []
    bsn, sn, x = dense_pair(p)
    for t, m in enumerate(x for x in bsn.modules() if isinstance(x, nn.Linear)):
        raw = m.parametrizations["weight"].original.detach()
        out.append(identity("C9a", float(sigma_R2(raw)), float(sigma_R(raw)),
                            10 * sum(raw.shape) * EPS, p, f"layer {t}: sigma_R2 = sigma_R (dense)"))
    opts = ProbeOptions(spectra=False)
    rb, rs = probe(bsn, x, opts), probe(sn, x, opts)
    L = len(rb.layers)
    K = conditioning(sn, x)
    tol = chain_tol(rb.layers, EPS) * K
    for t in range(L):
        a, b = rb.grads.weight_grad[t], rs.grads.weight_grad[t]
        j = int(np.argmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
        out.append(identity("C9a", a[j], b[j], tol, p,
                            f"layer {t}: ||dD/dW_t|| {p['scheme']} = {PAIRS[p['scheme']]}; "
                            f"conditioning K={K:.3g}"))
    out.append(identity("C9a", np.linalg.norm(rb.grads.D), np.linalg.norm(rs.grads.D), tol, p,
                        "output ||D||"))

    weights = conv_chain(p, p["scheme"])
    control = (f"sum|log chi| {p['scheme']} {_sum_log_chi(weights):.3g} vs "
               f"{PAIRS[p['scheme']]} {_sum_log_chi(conv_chain(p, PAIRS[p['scheme']])):.3g}")
    for t, w in enumerate(weights):
        c_out, c_in, k = w.shape[0], w.shape[1], w.shape[2]
        meas = effective_std(w.numpy()) / xavier_std(c_in * k * k, c_out * k * k)
        out.append(prediction("C9b", meas, _c(p) * bsn_xavier_constant(c_in, c_out, k), p,
                              f"conv {t} {tuple(w.shape)}: BSN std / Xavier std; {control}"))
    return out
