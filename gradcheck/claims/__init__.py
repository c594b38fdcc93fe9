"""Every claim of THEORY.md, one module per claim family, and the one way to check them.

``REGISTRY`` maps a claim ID to its :class:`Claim` (kind, statement, premises, needs);
``check_all(ctx)`` runs every module's ``check`` in claim order and returns the checks-table
rows. ``run``, ``prove`` (proofs_numeric), the property tests, ``track`` and the figures call
these checks; no claim logic lives anywhere else. C10 (empirical, over training checkpoints) is
checked by :mod:`gradcheck.track` and registered here for its kind and statement.
"""
from __future__ import annotations

import numpy as np

from . import (
    c1_gradient_bound,
    c2_equal_allocation,
    c3_sn_map_gradient,
    c4_hessian_bound,
    c5_gaussian_opnorm,
    c6_sn_lecun,
    c7_meanfield,
    c8_strict_sn,
    c9_bsn,
    c11_graph_bound,
)
from ._base import (
    CHECK_COLUMNS,
    KINDS,
    PREMISES,
    Claim,
    Context,
    Setting,
    failed_premise,
    identity_holds,
    inequality_holds,
    na,
    row,
)

MODULES = (c1_gradient_bound, c2_equal_allocation, c3_sn_map_gradient, c4_hessian_bound,
           c5_gaussian_opnorm, c6_sn_lecun, c7_meanfield, c8_strict_sn, c9_bsn, c11_graph_bound)
C10 = Claim("C10", "empirical",
            "SN keeps control throughout training; LeCun only at the start; (e) quality and "
            "(f) stability per scheme over seeds")
REGISTRY: dict[str, Claim] = {c.id: c for m in MODULES for c in m.CLAIMS}
REGISTRY["C10"] = C10
CLAIMS = REGISTRY          # the name gradcheck exported before the claims package
_MODEL_LEVEL = (c2_equal_allocation, c3_sn_map_gradient, c4_hessian_bound)


def check_all(ctx: Context, progress=None) -> list[dict]:
    """All checks of one seed, in claim order (rows with :data:`CHECK_COLUMNS`).

    ``progress(msg)``, if given, hears of every claim module that took over a second (the
    model-level ones re-measure the model: minutes on a large one)."""
    import time

    t_all = time.perf_counter()
    finite = bool(np.isfinite(ctx.result.grads.weight_grad).all())
    model = ctx.model
    was = getattr(model, "training", False)
    if model is not None:
        model.eval()
    rows: list[dict] = []
    try:
        for i, m in enumerate(MODULES):
            t0 = time.perf_counter()
            if finite or m not in _MODEL_LEVEL:
                rows += m.check(ctx)
                took = time.perf_counter() - t0
                if progress and took > 1.0:
                    ids = ", ".join(c.id for c in m.CLAIMS)
                    progress(f"claims {ids} checked in {took:.1f} s ({i + 1}/{len(MODULES)} "
                             f"modules, {time.perf_counter() - t_all:.0f} s so far)")
                continue
            # non-finite gradients: the claims that re-measure on the model are skipped
            # (overflow where their premises hold, not applicable where they do not)
            note = ("overflow: non-finite gradients (explosion in this dtype); model "
                    "checks skipped")
            for c in m.CLAIMS:
                if "model" not in c.needs:
                    rows += [r for r in m.check(ctx) if r["claim"] == c.id]
                    continue
                why = failed_premise(c, ctx)
                rows.append(na(c.id, ctx.seed, -1, why) if why else
                            row(c.id, ctx.seed, -1, np.inf, np.nan, np.nan, note=note))
    finally:
        if model is not None:
            model.train(was)
    return rows


__all__ = ["CHECK_COLUMNS", "KINDS", "PREMISES", "REGISTRY", "CLAIMS", "MODULES", "Claim",
           "Context", "Setting", "check_all", "failed_premise", "identity_holds",
           "inequality_holds"]
