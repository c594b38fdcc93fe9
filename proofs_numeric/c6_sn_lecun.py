"""THEORY C6: the SN family is the LeCun network up to a per-layer shrink.

An instance is a random bias-free, positively homogeneous net (dense or conv, 1-5 layers;
relu / leaky relu / linear inside, identity output) under one of sn, bsn, ssn, bssn, sn-conv
(exact sigma), and its LeCun twin drawn with the same seed, hence the same raw directions ``Z``.
Both are probed by the engine on the same 6 Gaussian inputs.

- ``C6a`` (identity, asserted): per layer ``t``, at the input farthest from equality,
  ``||dD/dW_t||(SN) = prod_{i != t} r_hat_i ||dD/dW_t||(LeCun)`` with
  ``r_hat_i = c / sigma_scheme_i`` (raw std ``s_i = 1/sqrt(fan_in_i)``, so
  ``r_hat_i = c s_i sqrt(fan_in_i) / sigma_scheme_i``); plus one row for the output,
  ``D(SN) = prod_i r_hat_i D(LeCun)`` (norm over the inputs). Slack: the size-based
  :func:`gradcheck.theory.bounds.inequality_tol` (float64) times :func:`conditioning`, which
  is 1 unless some layer's sums cancel (then the two nets' roundings legitimately differ by
  more: found on a 9 -> 1 layer whose output was ~600x smaller than its terms).
- ``C6b`` (prediction, not asserted): per layer, the measured ``r_hat_i`` (realised sigma) vs
  :func:`gradcheck.theory.meanfield.shrink_prediction`, for layers whose reshaped weight has
  both dimensions >= ``C6B_MIN_DIM`` = 8: the C5 value behind the prediction is asymptotic
  (Bai–Yin), and below that it predicts nothing (a 1 x 1 layer has ``r = 1/|z|``, whose mean is
  infinite; a ``1 x n`` head has ``r/pred = (1 + 1/sqrt n) sqrt(n)/||g_n||``). Conv layers
  under sn-conv are skipped (THEORY gives no closed form for ``||Conv||_op``); a dense layer
  under sn-conv is SN exactly and is compared with the SN prediction.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gradcheck.models import Discriminator
from gradcheck.schemes.registry import SCHEMES
from gradcheck.probe import ProbeOptions, probe
from gradcheck.probe.conditioning import conditioning
from gradcheck.schemes import apply_scheme
from gradcheck.theory.bounds import chain_tol, prod_except
from gradcheck.theory.meanfield import shrink_prediction

from ._base import identity, prediction
from .c1_gradient_bound import chain_layers

CLAIMS = {"C6a": "identity", "C6b": "prediction"}
SN_SCHEMES = ("sn", "bsn", "ssn", "bssn", "sn-conv")
HOMOGENEOUS = ("relu", "lrelu", "linear")
EPS = float(torch.finfo(torch.float64).eps)
N_INPUTS = 6
C6B_MIN_DIM = 8
#: Inputs are drawn from seed + this offset: with the weights' own seed they would equal the
#: first rows of the first layer's raw Gaussian draw Z (strongly aligned with W_1).
INPUT_SEED_OFFSET = 10_000


def sample(rng: np.random.Generator) -> dict:
    conv = bool(rng.random() < 0.5)
    return dict(
        conv=conv, depth=int(rng.integers(1, 6)), seed=int(rng.integers(0, 2**31)),
        widths=[int(w) for w in rng.integers(1, 9 if conv else 65, size=6)],
        kernels=[int(k) for k in rng.integers(1, 6, size=6)],
        strides=[int(s) for s in rng.integers(1, 4, size=6)],
        paddings=[int(p) for p in rng.integers(0, 3, size=6)],
        image=int(rng.integers(4, 10)),
        activation=str(rng.choice(HOMOGENEOUS)), slope=float(rng.uniform(0, 1)),
        scheme=str(rng.choice(SN_SCHEMES)), scale=float(rng.uniform(0.5, 2.0)))


def architecture(p: dict) -> tuple[Discriminator, tuple[int, ...]]:
    """Bias-free model (float64, PyTorch init, not yet drawn) and the shape of one input.

    Conv: ``in_channels`` (default ``widths[5] % 3 + 1``) input channels, ``depth - 1`` square
    convs (layers that would not fit the image are dropped), then Flatten and a dense head;
    dense: ``depth`` Linear layers, widths from ``p['widths']``. The
    output activation is the identity (C6a needs homogeneity).
    """
    layers, shape = chain_layers(p, p["depth"] - 1,
                                 p.get("in_channels") or p["widths"][5] % 3 + 1)
    return Discriminator(*layers).double(), shape


def build(p: dict, scheme: str) -> tuple[nn.Module, torch.Tensor]:
    """The instance's model under ``scheme`` (same seed -> same raw ``Z``) and its inputs."""
    model, shape = architecture(p)
    gen = torch.Generator().manual_seed(p["seed"] + INPUT_SEED_OFFSET)
    x = torch.randn((N_INPUTS, *shape), generator=gen, dtype=torch.float64)
    apply_scheme(model, scheme, x, seed=p["seed"], scale=p["scale"], activation=p["activation"],
                 slope=p["slope"])
    return model, x


def _c(p: dict) -> float:
    return SCHEMES[p["scheme"]].c(p["scale"])


def _worst_identity(lhs: np.ndarray, rhs: np.ndarray) -> int:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(rhs != 0, lhs / rhs, np.where(lhs == 0, 1.0, np.inf))
    return int(np.argmax(np.abs(r - 1)))


def instance(p: dict) -> list:
    """The instance's rows (the runner pins one torch/BLAS thread: these problems are small)."""
    sn_model, x = build(p, p["scheme"])
    lecun_model, _ = build(p, "lecun")
    opts = ProbeOptions(spectra=False)
    sn, lc = probe(sn_model, x, opts), probe(lecun_model, x, opts)
    L = len(sn.layers)
    K = conditioning(lecun_model, x)
    tol = chain_tol(sn.layers, EPS) * K
    r = np.array([_c(p) / n.sigma_scheme for n in sn.norms])
    scale = prod_except(r)
    out = []
    for t in range(L):
        a, b = sn.grads.weight_grad[t], scale[t] * lc.grads.weight_grad[t]
        j = _worst_identity(a, b)
        out.append(identity("C6a", a[j], b[j], tol, p,
                            f"layer {t}: ||dD/dW_t||(SN) = prod_(i!=t) r_hat_i ||dD/dW_t||(LeCun)"
                            f"; conditioning K={K:.3g}"))
    d_sn, d_lc = np.linalg.norm(sn.grads.D), float(np.prod(r)) * np.linalg.norm(lc.grads.D)
    out.append(identity("C6a", d_sn, d_lc, tol, p,
                        f"output: ||D(SN)|| = prod_i r_hat_i ||D(LeCun)||; conditioning K={K:.3g}"))
    for t, info in enumerate(sn.layers):
        conv = info.kind == "conv"
        c_out, c_in = info.weight_shape[:2]
        if (p["scheme"] == "sn-conv" and conv) or min(c_out, info.fan_in) < C6B_MIN_DIM:
            continue
        kind = "sn" if p["scheme"] == "sn-conv" else SCHEMES[p["scheme"]].divisor
        pred = shrink_prediction(kind, c_in, c_out, info.kernel[0], _c(p))
        out.append(prediction("C6b", r[t], pred, p,
                              f"layer {t} ({info.kind} {tuple(info.weight_shape)}): measured "
                              f"r_hat = c/sigma (realised) vs C5-based r"))
    return out
