"""C8: strict SN shrinks more: ``sigma_R <= ||Conv||_op <= mu sigma_R`` (THEORY §3)."""
from __future__ import annotations

from ..theory.bounds import c8_applicable, c8_r2_applicable
from ._base import Claim, Context, na, row

CLAIMS = (
    Claim("C8", "inequality",
          "sigma_R(K) <= ||Conv_K||_op <= mu sigma_R(K) (and sigma_R2, stride 1)"),
)


def _ratio(a: float, b: float) -> float:
    """``a / b`` with ``0/0 = 0`` (an all-zero kernel satisfies both inequalities)."""
    return a / b if b > 0 else (float("inf") if a > 0 else 0.0)


def check(ctx: Context) -> list[dict]:
    rows, seed = [], ctx.seed
    for t, (info, n) in enumerate(zip(ctx.layers, ctx.result.norms)):
        if info.kind != "conv":
            continue
        H, W = info.input_shape[1:]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = info.kernel, info.stride, info.padding, \
            info.dilation
        if info.padding_mode != "zeros":
            rows.append(na("C8", seed, t, f"padding mode {info.padding_mode}"))
            continue
        if not (c8_applicable(H, kh, sh, ph, dh) and c8_applicable(W, kw, sw, pw, dw)):
            rows.append(na("C8", seed, t, "no output's receptive field lies inside the input"))
            continue
        slack = ctx.tol + 10 * max(n.op_residual, 0.0)
        pairs = [(n.sigma_R, "sigma_R")]
        if c8_r2_applicable(H, kh, sh, ph, dh) and c8_r2_applicable(W, kw, sw, pw, dw):
            pairs.append((n.sigma_R2, "sigma_R2"))
        for s, name in pairs:
            extra = " (stride 1)" if name == "sigma_R2" else ""
            rows.append(row("C8", seed, t, s, n.sigma_op, _ratio(s, n.sigma_op), slack,
                            f"{name} <= ||Conv||_op{extra}"))
            rows.append(row("C8", seed, t, n.sigma_op, info.mu * s,
                            _ratio(n.sigma_op, info.mu * s), slack,
                            f"||Conv||_op <= mu {name} (mu={info.mu:.3f}){extra}"))
    return rows
