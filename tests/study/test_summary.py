"""C10 (e)/(f) logic on synthetic metrics, and the grid's scale rule (no training here)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from gradcheck.cli import TRAIN_FLAGS
from gradcheck.spec import SpecError
from gradcheck.study.grid import StudyCell, expand, study_types
from gradcheck.study.summary import (
    cell_table,
    collapsed,
    diverged,
    quality_summary,
    scheme_table,
    table_text,
)
from gradcheck.sweep.cells import encode_rows

STEPS = [10, 20, 30, 40]


@pytest.mark.parametrize("values,final,best,best_step,gone", [
    ([0, 2, 4, 3], 3, 4, 30, False),
    ([0, 4, 4, 1], 1, 4, 20, True),          # first step that reached the best
    ([0, 4, 3, 2], 2, 4, 20, False),         # exactly half: not below it
    ([0, 0, 0, 0], 0, 0, 10, False),         # never any quality: nothing to fall from
    ([1, 4, 3, math.nan], math.nan, 4, 20, True),
])
def test_higher_is_better(values, final, best, best_step, gone):
    q = quality_summary(STEPS, values, higher=True)
    assert (q["best"], q["best_step"], q["collapsed"]) == (best, best_step, gone)
    assert q["final"] == final or (math.isnan(final) and math.isnan(q["final"]))


@pytest.mark.parametrize("values,best,gone", [
    ([10.0, 3.0, 5.0, 6.0], 3.0, False),     # twice the best: not above it
    ([10.0, 3.0, 5.0, 6.5], 3.0, True),      # a distance that more than doubled
    ([10.0, 8.0, 4.0, 2.0], 2.0, False),     # still improving
    ([math.inf, 3.0, 2.5, math.inf], 2.5, True),
])
def test_lower_is_better(values, best, gone):
    q = quality_summary(STEPS, values, higher=False)
    assert (q["best"], q["collapsed"]) == (best, gone)


def test_no_finite_value_is_not_a_collapse():
    assert collapsed(math.nan, math.nan, True) is False
    q = quality_summary(STEPS, [math.nan] * 4, higher=False)
    assert math.isnan(q["best"]) and q["collapsed"] is False


def test_diverged():
    ok = pd.DataFrame({"step": STEPS, "loss_d": [1.0, 0.9, 0.8, 0.7], "loss_g": [0.1] * 4})
    assert not diverged(ok, False)
    assert diverged(ok, True)
    assert diverged(ok.assign(loss_d=[1.0, 0.9, math.inf, 0.7]), False)
    assert diverged(ok.assign(loss_g=[0.1, math.nan, 0.1, 0.1]), False)


def _cell(seed: int, frechet: list[float], proxy: list[float], flagged=False):
    spec = {"steps": 40, "scheme": "sn", "data": "digits", "seed": seed}
    cell = StudyCell((("scheme", "sn"), ("seed", seed)), spec, seed)
    rows = [dict(step=s, loss_d=1.0, loss_g=0.0, digits_frechet=f, image_proxy=p)
            for s, f, p in zip(STEPS, frechet, proxy)]
    return cell, {"metrics": encode_rows(rows), "diverged": flagged, "diverged_at": None,
                  "track": None}


def test_cells_and_table_with_lower_is_better_metrics():
    pairs = [_cell(0, [50.0, 20.0, 30.0, 45.0], [9.0, 8.0, 7.0, 6.0]),   # frechet collapsed
             _cell(1, [50.0, 20.0, 15.0, 16.0], [9.0, 2.0, 7.0, 5.0], flagged=True)]
    cells = [c for c, _ in pairs]
    df = cell_table(cells, {c.key: r for c, r in pairs})
    assert list(df.quality) == ["digits_frechet"] * 2
    assert list(df.collapsed) == [True, False]
    assert list(df.collapsed_image_proxy) == [False, True]    # 5 > 2 * 2
    assert list(df.best_digits_frechet) == [20.0, 15.0]
    assert list(df.diverged) == [False, True]
    t = scheme_table(df, ["scheme"]).iloc[0]
    assert (t.n, t.collapsed, t.diverged, t.tracked) == (2, 1, 1, 0)
    # the diverged seed (cell 1) has no final quality: the final stats are cell 0's alone
    assert list(df.final_digits_frechet.isna()) == [False, True]
    assert t.final_digits_frechet_mean == 45.0 and t.final_digits_frechet_n == 1
    assert math.isnan(t.final_digits_frechet_std)                 # one seed: no spread
    assert (t.final_image_proxy_min, t.final_image_proxy_max) == (6.0, 6.0)
    assert t.best_digits_frechet_mean == pytest.approx((20.0 + 15.0) / 2)   # best keeps both
    head, body = table_text(scheme_table(df, ["scheme"]), ["scheme"])
    assert "(1/2 seeds)" in body[0][head.index("final digits_frechet")]


def test_scale_list_multiplies_only_scaled_schemes():
    types = study_types(TRAIN_FLAGS)
    values = {"scheme": ["lecun", "sn", "bssn", "ssn"], "scale": [1.0, 2.0, 0.5],
              "seeds": [0, 1], "steps": [5]}
    cells = expand(values, types)
    got = [(c.spec["scheme"], c.spec["scale"], c.seed) for c in cells]
    assert len(got) == len(set(got)) == len({c.key for c in cells})
    for scheme in ("lecun", "sn"):
        assert [(s, seed) for n, s, seed in got if n == scheme] == [(1.0, 0), (1.0, 1)]
    for scheme in ("bssn", "ssn"):
        assert sorted((s, seed) for n, s, seed in got if n == scheme) == \
            sorted((s, seed) for s in (1.0, 2.0, 0.5) for seed in (0, 1))
    assert len(got) == 2 + 2 + 6 + 6
    assert [c.coords[-1] for c in cells[:2]] == [("seed", 0), ("seed", 1)]  # seeds last


def test_scale_without_a_scaled_scheme_is_refused():
    types = study_types(TRAIN_FLAGS)
    with pytest.raises(SpecError, match="argument --scale: only"):
        expand({"scheme": ["lecun", "sn"], "scale": [2.0]}, types)
    with pytest.raises(SpecError, match="argument --scale: must be"):
        expand({"scheme": ["lecun", "bssn"], "scale": [-1.0]}, types)


def test_keys_separate_training_from_tracking():
    types = study_types(TRAIN_FLAGS)
    a = expand({"scheme": ["sn"], "seeds": [0]}, types, track={"batch": 64,
                                                               "spectra_inputs": 0})[0]
    b = expand({"scheme": ["sn"], "seeds": [0]}, types, track={"batch": 16,
                                                               "spectra_inputs": 0})[0]
    c = expand({"scheme": ["sn"], "seeds": [1]}, types, track={"batch": 64,
                                                               "spectra_inputs": 0})[0]
    assert a.train_key == b.train_key and a.key != b.key
    assert c.train_key != a.train_key


def test_a_run_that_diverged_before_its_first_metrics_row():
    cell = StudyCell((("scheme", "lecun"), ("seed", 0)), {"steps": 40, "scheme": "lecun"}, 0)
    result = {"metrics": encode_rows([], []), "diverged": True,
              "diverged_at": {"step": 3, "loss_d": None, "loss_g": None}, "track": None}
    df = cell_table([cell], {cell.key: result})
    assert (bool(df.diverged[0]), df.diverged_step[0], df.rows[0]) == (True, 3, 0)
    t = scheme_table(df, ["scheme"]).iloc[0]
    assert (t.n, t.diverged, t.collapsed) == (1, 1, 0)
