"""THEORY C6: the SN family is the LeCun network up to a per-layer shrink.

An instance is a random bias-free, positively homogeneous net (dense or conv, 1-5 layers;
relu / leaky relu / linear inside, identity output) under one of the registry's SN-family
schemes (exact sigma), and its LeCun twin drawn with the same seed, hence the same raw
directions ``Z``. Both are probed by the engine on the same 6 Gaussian inputs and checked by
:func:`gradcheck.claims.c6_sn_lecun.check` with the twin and the cancellation factor ``K`` of
:func:`conditioning`:

- ``C6a`` (identity, asserted): per layer ``t``, at the input farthest from equality,
  ``||dD/dW_t||(SN) = prod_{i != t} r_hat_i ||dD/dW_t||(LeCun)`` with
  ``r_hat_i = c / sigma_scheme_i`` (:func:`gradcheck.claims.c6_sn_lecun.r_hat`). Slack: the
  size-based ``ctx.tol`` times ``K``, which is 1 unless some layer's sums cancel (then the two
  nets' roundings legitimately differ by more: found on a 9 -> 1 layer whose output was ~600x
  smaller than its terms). One more row the check does not draw: the output,
  ``D(SN) = prod_i r_hat_i D(LeCun)`` (norm over the inputs), with the same ``r_hat``.
- ``C6b`` (prediction, not asserted): per layer, the measured ``r_hat_i`` (realised sigma) vs
  the check's prediction, kept for layers whose reshaped weight has both dimensions >=
  ``C6B_MIN_DIM`` = 8: the C5 value behind the prediction is asymptotic (Bai–Yin), and below
  that it predicts nothing (a 1 x 1 layer has ``r = 1/|z|``, whose mean is infinite; a
  ``1 x n`` head has ``r/pred = (1 + 1/sqrt n) sqrt(n)/||g_n||``). Conv layers whose divisor is
  ``||Conv||_op`` (sn-conv) are dropped too: THEORY gives no closed form, and the check's
  "prediction" there is ``r_hat`` itself; a dense layer under sn-conv is SN exactly and is
  compared with the SN prediction.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gradcheck.claims import c6_sn_lecun as claim
from gradcheck.claims import failed_premise
from gradcheck.models import Discriminator
from gradcheck.probe import ProbeOptions, probe
from gradcheck.probe.conditioning import conditioning
from gradcheck.schemes import apply_scheme
from gradcheck.schemes.registry import SCHEMES, SPECTRAL_SCHEMES

from ._base import EPS, context, from_rows, identity
from .c1_gradient_bound import chain_layers

CLAIMS = {c.id: c.kind for c in claim.CLAIMS}
#: the SN family of the registry (C6's premise)
SN_SCHEMES = SPECTRAL_SCHEMES
#: activations of the model builder inside C6a's premise (positively homogeneous)
HOMOGENEOUS = ("relu", "lrelu", "linear")
N_INPUTS = 6
C6B_MIN_DIM = 8
#: Inputs are drawn from seed + this offset: with the weights' own seed they would equal the
#: first rows of the first layer's raw Gaussian draw Z (strongly aligned with W_1).
INPUT_SEED_OFFSET = 10_000
__all__ = ["CLAIMS", "SN_SCHEMES", "HOMOGENEOUS", "EPS", "conditioning", "sample",
           "architecture", "build", "make_context", "instance"]


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


def make_context(p: dict):
    """The SN-family net probed as the claims' ``Context``, with its LeCun twin (the scheme's raw
    draw, same seed) and ``K``."""
    sn_model, x = build(p, p["scheme"])
    lecun_model, _ = build(p, SCHEMES[p["scheme"]].raw)      # the raw draw: LeCun
    twin = probe(lecun_model, x, ProbeOptions(spectra=False))
    return context(sn_model, x, p["scheme"], p["scale"], p["seed"], twin=twin,
                   c6a_k=conditioning(lecun_model, x))


def _c6b_meaningful(ctx):
    """Rows kept: C6a; C6b where the asymptotic prediction says something (module docstring)."""
    rec = SCHEMES[ctx.setting.scheme]

    def keep(r: dict) -> bool:
        if r["claim"] != "C6b":
            return True
        info = ctx.layers[int(r["layer"])]
        if rec.divisor == "sn-conv" and info.kind == "conv":
            return False
        return min(info.weight_shape[0], info.fan_in) >= C6B_MIN_DIM
    return keep


def output_row(ctx, p: dict, tol: float) -> list:
    """C6a on the outputs: ``||D(SN)|| = prod_i r_hat_i ||D(LeCun)||`` (where C6a applies)."""
    if failed_premise(claim.C6A, ctx) or ctx.twin is None:
        return []
    r = np.array([claim.r_hat(ctx, n) for n in ctx.result.norms])
    d_sn = np.linalg.norm(ctx.result.grads.D)
    d_lc = float(np.prod(r)) * np.linalg.norm(ctx.twin.grads.D)
    return [identity("C6a", d_sn, d_lc, tol, p, f"network: ||D(SN)|| = prod_i r_hat_i "
                     f"||D(LeCun)||; conditioning K={ctx.c6a_k:.3g}")]


def instance(p: dict) -> list:
    """The instance's rows (the runner pins one torch/BLAS thread: these problems are small)."""
    ctx = make_context(p)
    tol = ctx.tol * max(ctx.c6a_k, 1.0)          # the C6a check's slack
    return from_rows(claim.check(ctx), ctx, p, tol, keep=_c6b_meaningful(ctx)) + \
        output_row(ctx, p, tol)
