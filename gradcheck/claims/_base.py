"""What every claim module shares: the claim record, the check context, premises, rows, verdicts.

A claim module (``cN_*.py``) declares its :class:`Claim` records (kind, statement, premises,
needs) and one ``check(ctx) -> list[dict]``. Premises are names of functions in
:data:`PREMISES`, evaluated on the measured :class:`~gradcheck.probe.facts.ModelFacts` and the
provenance in :class:`Setting`; a claim whose premise fails yields "not applicable: <reason>"
rows and never a verdict. Rows have the checks-table columns :data:`CHECK_COLUMNS`; the kind of a
row is always its claim's registry kind (:func:`row`). The verdict of each kind is defined once:
:func:`inequality_holds`, :func:`identity_holds` (predictions and empirical claims get none).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

CHECK_COLUMNS = ["claim", "kind", "seed", "layer", "lhs", "rhs", "ratio", "holds", "note"]
KINDS = ("inequality", "identity", "prediction", "empirical")


@dataclass(frozen=True)
class Claim:
    """One claim of THEORY.md."""

    id: str
    kind: str                         # one of KINDS
    statement: str
    premises: tuple[str, ...] = ()    # names in PREMISES, checked in this order
    needs: tuple[str, ...] = ()       # extra measurements: 'model', 'lecun_twin'


@dataclass(frozen=True)
class Setting:
    """Provenance the measurements cannot tell: the scheme the weights were drawn with."""

    scheme: str | None        # a scheme name; None for a model of unknown provenance
    scale: float = 1.0
    eps: float = float(np.finfo(np.float64).eps)   # machine epsilon of the probe dtype
    trained: bool = False     # weights moved by training: no longer the scheme's Gaussians

    @property
    def record(self):
        """The scheme's registry record (None: unknown provenance)."""
        from ..schemes.registry import SCHEMES

        return SCHEMES.get(self.scheme) if self.scheme else None


@dataclass(frozen=True)
class Context:
    """Everything a claim's ``check`` may read: measurements, facts, provenance, extras."""

    result: object                    # gradcheck.probe.ProbeResult (with .facts)
    setting: Setting
    seed: int = 0
    model: object = None              # the nn.Module, for claims that need 'model'
    x: object = None                  # its inputs (B, ...)
    twin: object = None               # C6a's LeCun twin ProbeResult
    c6a_k: float = 1.0                # measured cancellation factor (C6a tolerance)
    extra: dict = field(default_factory=dict)

    @property
    def facts(self):
        return self.result.facts

    @property
    def layers(self):
        return self.result.layers

    @cached_property
    def tol(self) -> float:
        from ..theory.bounds import chain_tol

        return chain_tol(self.result.layers, self.setting.eps)

    @property
    def output(self) -> str | None:
        return self.facts.output

    @property
    def lam(self) -> float:
        from ..theory.bounds import LAMBDA_L

        return LAMBDA_L.get(self.facts.output, 1.0)

    @property
    def activation(self) -> str | None:
        return self.facts.activation

    @property
    def slope(self) -> float:
        return self.facts.slope


def hessians(ctx: Context, n_inputs: int):
    """``(L, n)`` Hessian operator norms w.r.t. each layer's effective weight on the first
    ``n`` inputs, measured once per context (C4 and C11-H share them).

    Raises:
        ProbeError: a layer the Hessian cannot reach.
    """
    from ..probe.hessian import weight_hessian_opnorms

    n = min(n_inputs, len(ctx.x))
    key = ("hessians", n)
    if key not in ctx.extra:
        cols = [weight_hessian_opnorms(ctx.model, ctx.x[i:i + 1]) for i in range(n)]
        ctx.extra[key] = np.array(cols).T
    return ctx.extra[key]


def hessian_rows(ctx: Context, claim: Claim, n_inputs: int, bound) -> list[dict]:
    """Rows of a Hessian bound (C4, C11-H): ``||H_{W_t} D||_op`` measured once per context
    (:func:`hessians`) against ``bound(t, n) -> (n,)``; with identity output the Hessian of a
    piecewise-linear net must be exactly 0."""
    from ..probe.layers import ProbeError

    seed, L = ctx.seed, len(ctx.layers)
    why = failed_premise(claim, ctx) or ("" if ctx.model is not None else "no model")
    if not why:
        try:
            H = hessians(ctx, n_inputs)
        except ProbeError as e:
            why = f"Hessian not measurable: {e}"
    if why:
        return [na(claim.id, seed, t, why) for t in range(L)]
    rows = []
    for t in range(L):
        h = H[t]
        if ctx.facts.output == "identity":
            rows.append(row(claim.id, seed, t, float(h.max()), 0.0,
                            1.0 if h.max() == 0 else math.inf, holds=bool(h.max() == 0),
                            note="identity output: the Hessian is exactly 0"))
        else:
            lhs, rhs, r = worst_ratio(h, bound(t, len(h)))
            rows.append(row(claim.id, seed, t, lhs, rhs, r, ctx.tol,
                            f"||H_W D||_op on {len(h)} input(s), sigmoid output"))
    return rows


# -- premises ------------------------------------------------------------------------------
def _homogeneous(ctx: Context) -> str:
    bad = ctx.facts.activation_kinds() - {"relu", "lrelu"}
    if bad:
        return f"activation {', '.join(sorted(bad))} is not positively homogeneous"
    if ctx.facts.output != "identity":
        return f"output activation {ctx.facts.output} is not homogeneous"
    return ""


def _piecewise_linear(ctx: Context) -> str:
    bad = ctx.facts.activation_kinds() - {"relu", "lrelu", "hardtanh", "relu6"}
    return f"activation {', '.join(sorted(bad))} is not piecewise linear" if bad else ""


def _sn_family(ctx: Context) -> str:
    rec = ctx.setting.record
    return "" if rec is not None and rec.spectral else "not an SN-family scheme"


def _gaussian(ctx: Context) -> str:
    rec = ctx.setting.record
    if rec is None:
        return "weights of unknown provenance"
    if ctx.setting.trained:
        return "trained weights are no longer the scheme's Gaussian draw"
    return "" if rec.gaussian else f"{rec.name} weights are not Gaussian"


def _unit_norm_dense(ctx: Context) -> str:
    """Measured: every layer dense with ``||W||_op = 1`` (to the derived tolerance)."""
    if any(i.kind != "linear" for i in ctx.layers):
        return "conv layers: SN_w operator norms can exceed 1 (C8); see C1"
    off = [(t, n.sigma_op) for t, n in enumerate(ctx.result.norms)
           if not abs(n.sigma_op - 1) <= ctx.tol]
    if off:
        t, s = off[0]
        return (f"layers are not at spectral norm 1 (measured ||W_{t}||_op = {s:.6g}"
                + (f", and {len(off) - 1} more" if len(off) > 1 else "") + ")")
    return ""


def _known_gain(ctx: Context) -> str:
    rec = ctx.setting.record
    if rec is not None and rec.raw == "kaiming" and \
            ctx.facts.activation not in ("relu", "lrelu", "tanh", "linear"):
        return "Kaiming gain unknown for mixed or unidentified activations"
    return ""


def _mean_field(ctx: Context) -> str:
    if ctx.facts.activation not in ("relu", "lrelu", "tanh", "linear"):
        return "no mean-field prediction for mixed or unidentified activations"
    return ctx.facts.bad_output() or _known_gain(ctx)


PREMISES: dict[str, Callable[[Context], str]] = {
    "chain": lambda c: c.facts.not_chain(),
    "supported_nodes": lambda c: c.facts.bad_node(),
    "bias_free": lambda c: c.facts.with_bias(),
    "known_output": lambda c: c.facts.bad_output(),
    "maps_norm_le_1": lambda c: c.facts.expansive_maps(),
    "homogeneous": _homogeneous,
    "piecewise_linear": _piecewise_linear,
    "sn_family": _sn_family,
    "gaussian": lambda c: _gaussian(c) or _known_gain(c),
    "unit_norm_dense": _unit_norm_dense,
    "mean_field": _mean_field,
}


def failed_premise(claim: Claim, ctx: Context) -> str:
    """The reason the first failing premise of ``claim`` gives, or '' if all hold."""
    for name in claim.premises:
        why = PREMISES[name](ctx)
        if why:
            return why
    return ""


# -- verdicts ------------------------------------------------------------------------------
def inequality_holds(ratio: float, tol: float) -> bool:
    """An inequality ``lhs <= rhs`` holds when ``lhs/rhs <= 1 + tol``."""
    return bool(ratio <= 1 + tol)


def identity_holds(ratio: float, tol: float) -> bool:
    """An identity ``lhs == rhs`` holds when ``|lhs/rhs - 1| <= tol``."""
    return bool(abs(ratio - 1) <= tol)


def violated_claims(checks) -> tuple[str, ...]:
    """Claims with a row whose verdict is False (checks table, in memory or read from CSV),
    in registry order: the one definition of 'a claim is violated' (exit code 1)."""
    from . import REGISTRY

    bad = set(checks.claim[checks.holds.astype(str) == "False"])
    order = {c: i for i, c in enumerate(REGISTRY)}
    return tuple(sorted(bad, key=lambda c: order.get(c, len(order))))


def verdict_line(violated) -> str:
    return "violated: " + ", ".join(violated) if violated else "all asserted claims hold"


# -- rows ----------------------------------------------------------------------------------
def _kind(claim_id: str) -> str:
    from . import REGISTRY

    return REGISTRY[claim_id].kind


def row(claim: str, seed: int, layer: int, lhs, rhs, ratio, tol: float | None = None,
        note: str = "", holds=None) -> dict:
    """One checks-table row; the verdict of an asserted kind is computed here from ``tol``."""
    kind = _kind(claim)
    if holds is None and tol is not None and kind in ("inequality", "identity"):
        holds = inequality_holds(ratio, tol) if kind == "inequality" else \
            identity_holds(ratio, tol)
    return dict(claim=claim, kind=kind, seed=seed, layer=layer, lhs=float(lhs),
                rhs=float(rhs), ratio=float(ratio), holds="" if holds is None else holds,
                note=note)


def na(claim: str, seed: int, layer: int, why: str) -> dict:
    """A "not applicable" row: no verdict, the reason in the note."""
    return row(claim, seed, layer, math.nan, math.nan, math.nan, note="not applicable: " + why)


def overflow(claim: str, seed: int, layer: int, values) -> dict | None:
    """A row saying the measurement overflowed (float32 explosion), or None if all finite."""
    bad = int((~np.isfinite(np.asarray(values))).sum())
    if not bad:
        return None
    return row(claim, seed, layer, math.inf, math.nan, math.nan,
               note=f"overflow: {bad} per-input values outside this dtype's range (explosion "
                    "or vanishing)")


def worst_ratio(lhs: np.ndarray, rhs: np.ndarray) -> tuple[float, float, float]:
    """(lhs, rhs, lhs/rhs) at the input with the largest ratio; 0/0 counts as ratio 0."""
    lhs, rhs = np.asarray(lhs, dtype=float), np.asarray(rhs, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(rhs > 0, lhs / rhs, np.where(lhs > 0, np.inf, 0.0))
    j = int(np.argmax(r))
    return lhs[j], rhs[j], r[j]


def identity_ratio(lhs: np.ndarray, rhs: np.ndarray) -> tuple[float, float, float]:
    """(lhs, rhs, lhs/rhs) at the input farthest from equality; 0 == 0 counts as ratio 1."""
    lhs, rhs = np.asarray(lhs, dtype=float), np.asarray(rhs, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(rhs != 0, lhs / rhs, np.where(lhs == 0, 1.0, np.inf))
    j = int(np.argmax(np.abs(r - 1)))
    return lhs[j], rhs[j], r[j]


__all__ = ["CHECK_COLUMNS", "KINDS", "Claim", "Setting", "Context", "PREMISES",
           "failed_premise", "inequality_holds", "identity_holds", "row", "na", "overflow",
           "worst_ratio", "identity_ratio"]
