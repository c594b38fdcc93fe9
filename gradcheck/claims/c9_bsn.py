"""C9a, C9b: BSN / BSSN (THEORY §3)."""
from __future__ import annotations

import math

import numpy as np

from ..theory.bsn import bsn_xavier_constant, xavier_std
from ._base import Claim, Context, failed_premise, identity_ratio, na, row

CLAIMS = (
    Claim("C9a", "identity", "dense layers: sigma_R = sigma_R2, so BSN == SN"),
    Claim("C9b", "prediction",
          "BSN's effective std tracks Xavier's up to a per-layer constant; spread and "
          "sum |log chi| reported per scheme", ("sn_family", "gaussian")),
)
C9A, C9B = CLAIMS


def check(ctx: Context) -> list[dict]:
    rows, seed = [], ctx.seed
    rec = ctx.setting.record
    why = failed_premise(C9B, ctx) or ("" if rec.divisor == "bsn" else
                                       f"{rec.name} does not divide by the BSN sigma")
    bsn = not why
    for t, (info, n) in enumerate(zip(ctx.layers, ctx.result.norms)):
        if info.kind == "linear":
            _, _, r = identity_ratio(np.array([n.sigma_R]), np.array([n.sigma_R2]))
            rows.append(row("C9a", seed, t, n.sigma_R, n.sigma_R2, r, ctx.tol,
                            "dense: sigma_R == sigma_R2"))
        if bsn:
            k = int(round(math.sqrt(info.kernel[0] * info.kernel[1])))
            eff = n.frobenius / math.sqrt(math.prod(info.weight_shape))
            meas = eff / xavier_std(info.fan_in, info.fan_out)
            pred = rec.c(ctx.setting.scale) * bsn_xavier_constant(info.weight_shape[1],
                                                                  info.weight_shape[0], k)
            rows.append(row("C9b", seed, t, meas, pred, meas / pred,
                            note="BSN effective std / Xavier std vs its predicted constant"))
        else:
            rows.append(na("C9b", seed, t, why))
    return rows
