"""The frame every claim module plugs into.

A claim module (``proofs_numeric/cN_*.py``) defines:

- ``CLAIMS``: ``{sub_id: kind}`` for the (sub-)claims it checks, e.g. ``{"C1": "inequality"}``;
- ``sample(rng: numpy.random.Generator) -> dict``: the parameters of one random instance
  (JSON-able: ints, floats, strings, bools, lists);
- ``instance(params: dict) -> list[Result]``: build the instance, compute lhs with the probe
  engine (or an oracle) and rhs with ``gradcheck.theory``, return one frozen ``Result`` per
  (sub-)claim row. Nothing random happens inside ``instance`` that ``params`` does not seed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

KINDS = ("inequality", "identity", "prediction")


@dataclass(frozen=True)
class Result:
    """One checked row: ``ratio = lhs / rhs``; ``holds`` is None for predictions."""

    claim: str
    kind: str
    lhs: float
    rhs: float
    tol: float                      # relative slack used for ``holds`` (0 for predictions)
    params: dict = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float:
        if self.rhs == 0:
            return 1.0 if self.lhs == 0 else math.inf
        return self.lhs / self.rhs

    @property
    def holds(self) -> bool | None:
        """inequality: ratio <= 1 + tol; identity: |ratio - 1| <= tol; prediction: None."""
        from gradcheck.claims import identity_holds, inequality_holds

        if self.kind == "inequality":
            return inequality_holds(self.ratio, self.tol)
        if self.kind == "identity":
            return identity_holds(self.ratio, self.tol)
        return None

    def row(self) -> dict:
        d = asdict(self)
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
