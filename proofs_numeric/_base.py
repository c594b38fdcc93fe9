"""The frame every claim module plugs into.

A claim module (``proofs_numeric/cN_*.py``) defines:

- ``CLAIMS``: ``{sub_id: kind}`` for the (sub-)claims it checks, e.g. ``{"C1": "inequality"}``;
- ``sample(rng: numpy.random.Generator) -> dict``: the parameters of one random instance
  (JSON-able: ints, floats, strings, bools, lists), drawn inside the claims' premises so that
  the instance yields asserted rows;
- ``instance(params: dict) -> list[Result]``: build the instance (model and inputs), probe it,
  and run the claim's own check ``gradcheck.claims.cN_*.check(ctx)`` on it (one check, many
  callers); :func:`from_rows` turns the check's rows into frozen ``Result`` rows. Where the
  proofs experiment is genuinely a different one (an expectation over many draws, a prediction
  averaged over samples, a worst case), it uses the claims module's functions (``bound``,
  ``graph_bound``, ``r_hat``, ``mean_field`` ...) rather than a copy of the formula. Nothing
  random happens inside ``instance`` that ``params`` does not seed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

KINDS = ("inequality", "identity", "prediction")
#: machine epsilon of float64, the dtype of every instance
EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Result:
    """One checked row: ``ratio = lhs / rhs``; ``holds`` is None for predictions.

    ``verdict`` is the verdict of the ``gradcheck.claims`` check that produced the row (None:
    computed here from ``ratio`` and ``tol``). A check may combine several comparisons in one
    row (C11: both inequalities) or add a measured slack to ``tol`` (C8: the Lanczos residual),
    so its verdict is kept rather than recomputed.
    """

    claim: str
    kind: str
    lhs: float
    rhs: float
    tol: float                      # relative slack used for ``holds`` (0 for predictions)
    params: dict = field(default_factory=dict)
    note: str = ""
    verdict: bool | None = None

    @property
    def ratio(self) -> float:
        if self.rhs == 0:
            return 1.0 if self.lhs == 0 else math.inf
        return self.lhs / self.rhs

    @property
    def holds(self) -> bool | None:
        """inequality: ratio <= 1 + tol; identity: |ratio - 1| <= tol; prediction: None
        (rows from a claims check: that check's verdict)."""
        from gradcheck.claims import identity_holds, inequality_holds

        if self.kind not in ("inequality", "identity"):
            return None
        if self.verdict is not None:
            return bool(self.verdict)
        if self.kind == "inequality":
            return inequality_holds(self.ratio, self.tol)
        return identity_holds(self.ratio, self.tol)

    def row(self) -> dict:
        d = asdict(self)
        d.pop("verdict")
        d.update(ratio=self.ratio, holds=self.holds)
        return d


def inequality(claim: str, lhs: float, rhs: float, tol: float, params: dict,
               note: str = "") -> Result:
    return Result(claim, "inequality", float(lhs), float(rhs), float(tol), params, note)


def identity(claim: str, lhs: float, rhs: float, tol: float, params: dict,
             note: str = "") -> Result:
    return Result(claim, "identity", float(lhs), float(rhs), float(tol), params, note)


def prediction(claim: str, measured: float, predicted: float, params: dict,
               note: str = "") -> Result:
    return Result(claim, "prediction", float(measured), float(predicted), 0.0, params, note)


# -- the bridge to gradcheck.claims ----------------------------------------------------------
def context(model, x, scheme: str | None, scale: float = 1.0, seed: int = 0, *, twin=None,
            c6a_k: float = 1.0, hessians: bool = True, opts=None, **extra):
    """Probe ``model`` on ``x`` (float64, no spectra) and return the claims' ``Context``.

    ``scheme``/``scale`` are the provenance (:class:`gradcheck.claims.Setting`; None: unknown);
    ``hessians=False`` leaves the model out of the context, so the claims that need it (C2a,
    C3, C4, C11-H) say "not applicable: no model" and cost nothing.
    """
    from gradcheck.claims import Context, Setting
    from gradcheck.probe import ProbeOptions, probe

    res = probe(model, x, opts or ProbeOptions(spectra=False))
    return Context(res, Setting(scheme, scale, EPS), seed, model if hessians else None, x,
                   twin, c6a_k, extra=dict(extra))


def layer_label(ctx, t: int) -> str:
    """``layer t (kind shape)`` of a probed layer, ``network`` for model-level rows."""
    if t < 0 or t >= len(ctx.layers):
        return "network"
    info = ctx.layers[t]
    return f"layer {t} ({info.kind} {tuple(info.weight_shape)})"


def asserted(row: dict) -> bool:
    """The row carries a verdict (True/False), i.e. it is neither a prediction nor a
    "not applicable" / overflow row."""
    return isinstance(row["holds"], (bool, np.bool_))


def from_rows(rows: list[dict], ctx, params: dict, tol: float | None = None,
              keep=None) -> list[Result]:
    """:class:`Result` rows of a claims check's rows (the checks-table dicts).

    Asserted rows keep the check's verdict, with ``tol`` (default ``ctx.tol``) as the reported
    slack; predictions become predictions; rows without a verdict of an asserted kind ("not
    applicable: ...", overflow) are dropped: they never become a Result with a verdict.
    ``keep(row)`` (optional) selects rows further (e.g. the layers where a prediction is
    meaningful).
    """
    tol = ctx.tol if tol is None else float(tol)
    out = []
    for r in rows:
        if keep is not None and not keep(r):
            continue
        note = f"{layer_label(ctx, int(r['layer']))}: {r['note']}"
        if r["kind"] == "prediction":
            if not str(r["note"]).startswith("not applicable"):
                out.append(prediction(r["claim"], r["lhs"], r["rhs"], params, note))
        elif asserted(r):
            out.append(Result(r["claim"], r["kind"], float(r["lhs"]), float(r["rhs"]), tol,
                              params, note, bool(r["holds"])))
    return out


def not_applicable(rows: list[dict]) -> list[dict]:
    """The "not applicable" rows of a check (what :func:`from_rows` drops)."""
    return [r for r in rows if str(r["note"]).startswith("not applicable")]
