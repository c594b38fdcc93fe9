"""RunSpec: every validation lives in one place and names the argument and the choices."""
from __future__ import annotations

import json

import pytest

from gradcheck.spec import RunSpec, SpecError, parse_seeds, validate


def test_parse_seeds():
    assert parse_seeds("3") == (3,)
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("1,5,7-8") == (1, 5, 7, 8)
    for bad in ("", "a", "4-2", "1,1", "-1"):
        with pytest.raises(SpecError, match="--seeds"):
            parse_seeds(bad)


def test_resolved_round_trip():
    spec = validate(RunSpec(arch="conv", init="bssn", scale=1.3, seeds=(0, 2)))
    again = RunSpec.from_dict(json.loads(spec.to_json()))
    assert again == spec.resolved()
    assert again.depth == 6 and again.activation == "lrelu"


@pytest.mark.parametrize("kw, needle", [
    (dict(arch="vgg"), "--arch: must be one of mlp, conv, sngan, resnet; got 'vgg'"),
    (dict(init="he"), "--init: must be one of lecun, xavier, kaiming, orthogonal, sn, "
                      "sn-conv, bsn, ssn, bssn"),
    (dict(depth=0), "--depth: must be an integer >= 1"),
    (dict(arch="conv", depth=1), "--depth: must be an integer >= 2"),
    (dict(width=0), "--width"),
    (dict(batch=-3), "--batch"),
    (dict(scale=0.0, init="ssn"), "--scale: must be > 0"),
    (dict(scale=float("inf"), init="ssn"), "--scale: must be a finite number"),
    (dict(slope=1.5), "--slope: must be in [0, 1]"),
    (dict(dtype="float16"), "--dtype"),
    (dict(device="tpu"), "--device"),
    (dict(sn_mode="fast"), "--sn-mode"),
    (dict(seeds=()), "--seeds"),
    (dict(inputs="grid", width=8, input_dim=3), "--inputs"),
])
def test_validation_messages(kw, needle):
    with pytest.raises(SpecError) as e:
        validate(RunSpec(**kw))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_field_in_spec_file():
    with pytest.raises(SpecError, match="unknown field"):
        RunSpec.from_dict({"arch": "mlp", "colour": "red"})


def test_huge_ranges_are_refused_before_they_are_expanded():
    """A typo such as --seeds 0-999999999 is one line (exit 2), not a MemoryError (exit 3)."""
    from gradcheck.cli import RUN_FLAGS
    from gradcheck.spec import MAX_LIST, parse_seeds
    from gradcheck.sweep.grid import FieldTypes, parse_values

    assert len(parse_seeds(f"0-{MAX_LIST - 1}")) == MAX_LIST
    for text in (f"0-{MAX_LIST}", "0-999999999999", f"0-5,10-{MAX_LIST + 4}"):
        with pytest.raises(SpecError, match="at most"):
            parse_seeds(text)
    with pytest.raises(SpecError, match="--width: at most"):
        parse_values("width", "1-99999999999", FieldTypes(RUN_FLAGS))


@pytest.mark.parametrize("argv", [["--seeds", "0-999999999"], ["--width", "1-99999999999"]])
def test_study_and_sweep_refuse_huge_ranges_with_exit_2(tmp_path, capsys, argv):
    from gradcheck._entry import main

    for command in ("study", "sweep"):
        out = tmp_path / command
        assert main([command, *argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "at most" in err, err
        assert not out.exists()
