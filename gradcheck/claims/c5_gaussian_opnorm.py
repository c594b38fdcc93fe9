"""C5: the spectral norm of a Gaussian matrix (THEORY §3); per layer, the raw weights' ratio."""
from __future__ import annotations

from ..schemes import kaiming_gain
from ..theory.meanfield import gaussian_opnorm
from ..theory.randmat import gordon_lower, gordon_upper
from ._base import Claim, Context, failed_premise, na, row

CLAIMS = (
    Claim("C5", "inequality",
          "s max(E||g_m||, E||g_n||) <= E||W||_op <= s (sqrt m + sqrt n) (Gordon)",
          ("gaussian",)),
    Claim("C5-ratio", "prediction", "||W||_op / (s (sqrt m + sqrt n)) -> 1 (Bai-Yin)",
          ("gaussian",)),
)
C5, C5_RATIO = CLAIMS


def raw_std(ctx: Context, info) -> float:
    """Std of the Gaussian raw draw behind a layer (SN family: LeCun raw weights)."""
    gain = kaiming_gain(ctx.activation, ctx.slope)
    return ctx.setting.record.raw_std(info.fan_in, info.fan_out, gain)


def check(ctx: Context) -> list[dict]:
    """C5-ratio rows (C5 itself is an expectation: proved over samples by proofs_numeric)."""
    why = failed_premise(C5_RATIO, ctx)
    if why:
        return [na("C5-ratio", ctx.seed, t, why) for t in range(len(ctx.layers))]
    rows = []
    for t, (info, n) in enumerate(zip(ctx.layers, ctx.result.norms)):
        m, fan_in = info.weight_shape[0], info.fan_in
        s = raw_std(ctx, info)
        pred = gaussian_opnorm(m, fan_in, s)
        rows.append(row("C5-ratio", ctx.seed, t, n.raw_sigma_R, pred, n.raw_sigma_R / pred,
                        note=f"raw sigma_R / s(sqrt m + sqrt n); Gordon bounds on E: "
                             f"[{gordon_lower(m, fan_in, s):.4g}, "
                             f"{gordon_upper(m, fan_in, s):.4g}]"))
    return rows
