"""The scheme registry: one record per scheme, consistent with THEORY §1 and with the code that
reads it (spec validation, CLI help, the parametrizations, the claims)."""
from __future__ import annotations

import math

import pytest
import torch

from gradcheck.schemes import SPECTRAL_SCHEMES, apply_scheme, kaiming_gain
from gradcheck.schemes.registry import DIVISORS, NAMES, SCHEMES, Scheme, get
from gradcheck.schemes.spectral import SN_KINDS, scaling_of
from gradcheck.spec import RunSpec, SpecError, validate

EPS = torch.finfo(torch.float64).eps


def test_nine_schemes_of_theory_in_order():
    assert NAMES == ("lecun", "xavier", "kaiming", "orthogonal", "sn", "sn-conv", "bsn", "ssn",
                     "bssn")


@pytest.mark.parametrize("name", NAMES)
def test_record_is_consistent(name):
    s = SCHEMES[name]
    assert s.spectral == (s.divisor is not None) == (name in SPECTRAL_SCHEMES)
    assert s.divisor is None or s.divisor in DIVISORS
    assert SN_KINDS.get(name) == s.divisor
    assert s.unit_norm == (s.spectral and not s.takes_scale)
    assert s.c(1.7) == (1.7 if s.takes_scale else 1.0)
    # THEORY §1 raw std
    n_in, n_out, g = 300, 200, kaiming_gain("relu", 0.0)
    want = {"xavier": math.sqrt(2 / (n_in + n_out)), "kaiming": g / math.sqrt(n_in)}.get(
        s.raw, 1 / math.sqrt(n_in))
    assert s.raw_std(n_in, n_out, g) == pytest.approx(want, rel=4 * EPS)


@pytest.mark.parametrize("name", NAMES)
def test_spec_and_scheme_application_read_the_record(name):
    s = SCHEMES[name]
    scale = 1.5 if s.takes_scale else 1.0
    validate(RunSpec(init=name, scale=scale))
    if not s.takes_scale:
        with pytest.raises(SpecError, match="take a scale"):
            validate(RunSpec(init=name, scale=1.5))
    model = torch.nn.Sequential(torch.nn.Linear(6, 5, bias=False)).double()
    apply_scheme(model, name, torch.zeros(1, 6, dtype=torch.float64), scale=scale)
    sc = scaling_of(model[0])
    assert (sc is not None) == s.spectral
    if sc is not None:
        assert sc.kind == s.divisor and sc.scale == scale
        assert float(torch.linalg.matrix_norm(model[0].weight, 2)) == pytest.approx(
            scale, rel=1e-12)


def test_square_dense_shrink_is_half_times_c():
    """THEORY C6b: a square dense layer has r = 1/2 (SN, BSN), c/2 (SSN, BSSN)."""
    for name in ("sn", "bsn", "ssn", "bssn", "sn-conv"):
        s = SCHEMES[name]
        r, _ = s.shrink_prediction(256, 256, 1, False, 1.4, sigma_scheme=math.nan)
        assert r == pytest.approx(s.c(1.4) / 2, rel=4 * EPS)
    assert math.isnan(SCHEMES["lecun"].shrink_prediction(8, 8, 1, False, 1.0, 1.0)[0])


def test_unknown_scheme_names_the_allowed_values():
    with pytest.raises(ValueError, match="lecun, xavier"):
        get("sc-conv")


def test_a_new_record_alone_defines_a_scheme():
    """The tenth-scheme trace: a record with an existing divisor ('sc-conv' = c W/||Conv||_op)
    gives its raw std, C7 variance, C6a shrink and C6b prediction with no other code."""
    sc = Scheme("sc-conv", "lecun", "sn-conv", True, "scaled strict SN", "c W / ||Conv_W||_op")
    assert sc.spectral and not sc.unit_norm and sc.gaussian
    assert sc.weight_variance((16, 8, 3, 3), 72, 144, 1.0, sigma_scheme=2.0, scale=1.5) == \
        pytest.approx(1.5 ** 2 / (72 * 4.0), rel=4 * EPS)
    assert sc.shrink(2.0, 1.5) == 0.75
    r, note = sc.shrink_prediction(8, 16, 3, True, 1.5, sigma_scheme=2.0)
    assert r == 0.75 and "Conv" in note
