"""Strict spec.json: every field checked with its JSON type, unknown fields and foreign specs
refused naming the field, unreadable files refused naming --spec (issue 9, item 4)."""
from __future__ import annotations

import json

import pytest

from .conftest import assert_no_traceback, refuse, run_cli, what_it_did

TAIL = ["--no-plots", "--quiet"]


def _base(artifacts) -> dict:
    return json.loads((artifacts.run / "spec.json").read_text())


def _set(**kv):
    def mutate(d):
        d.update(kv)
        return json.dumps(d)
    return mutate


def _raw(key, literal):
    """Put a raw JSON token (NaN, 1e400, ...) as the value of ``key``."""
    def mutate(d):
        d[key] = "@@RAW@@"
        return json.dumps(d).replace('"@@RAW@@"', literal)
    return mutate


def _drop_and_add(**kv):
    def mutate(d):
        d.update(kv)
        return json.dumps(d)
    return mutate


FIELD_CASES = [
    ("spec-bias-string-false", _set(bias="false"), ["bias"], []),
    ("spec-bias-integer", _set(bias=1), ["bias"], []),
    ("spec-bias-null", _set(bias=None), ["bias"], []),
    ("spec-checkpoint-integer", _set(checkpoint=5), ["checkpoint"], []),
    ("spec-checkpoint-list", _set(checkpoint=["a.pt"]), ["checkpoint"], []),
    ("spec-depth-string", _set(depth="3"), ["depth"], []),
    ("spec-depth-float", _set(depth=3.0), ["depth"], []),
    ("spec-depth-overflowing-number", _raw("depth", "1e400"), ["depth"], []),
    ("spec-width-boolean", _set(width=True), ["width"], []),
    ("spec-width-null", _set(width=None), ["width"], []),
    ("spec-width-object", _set(width={"a": 1}), ["width"], []),
    ("spec-seeds-string", _set(seeds="0"), ["seeds"], []),
    ("spec-seeds-negative", _set(seeds=[-1]), ["seeds"], []),
    ("spec-seeds-float", _set(seeds=[0.5]), ["seeds"], []),
    ("spec-seeds-empty", _set(seeds=[]), ["seeds"], []),
    ("spec-scale-string", _set(scale="1.0"), ["scale"], []),
    ("spec-scale-bare-nan", _raw("scale", "NaN"), [], ["scale", "--spec"]),
    ("spec-slope-bare-infinity", _raw("slope", "Infinity"), [], ["slope", "--spec"]),
    ("spec-init-integer", _set(init=3), ["init"], []),
    ("spec-activation-integer", _set(activation=5), ["activation"], []),
    ("spec-dtype-list", _set(dtype=["float64"]), ["dtype"], []),
    ("spec-inputs-null", _set(inputs=None), ["inputs"], []),
    ("spec-model-input-string", _set(model_input="3,32,32"), [],
     ["model_input", "input-shape", "input_shape"]),
    ("spec-weights-integer", _set(weights=7), ["weights"], []),
    ("spec-unknown-field", _drop_and_add(bogus_field=1), ["bogus_field"], []),
]


@pytest.mark.parametrize("mutate, names, any_of", [pytest.param(m, n, a, id=i)
                                                   for i, m, n, a in FIELD_CASES])
def test_bad_spec_field(mutate, names, any_of, arena, artifacts):
    spec = arena / "spec.json"
    spec.write_text(mutate(_base(artifacts)))
    refuse(["run", "--spec", spec, *TAIL, "--out", arena / "out"], arena, names, any_of)


TRAIN_ONLY = ("data", "scheme", "steps", "lr", "beta1", "beta2", "d_steps", "n_data",
              "log_every", "ckpt_every", "seed", "z_dim")


def test_train_spec_given_to_run(arena, artifacts):
    """spec-train-spec-to-run: a training run's spec.json is not a probe spec."""
    spec = arena / "spec.json"
    spec.write_bytes((artifacts.train / "spec.json").read_bytes())
    refuse(["run", "--spec", spec, *TAIL, "--out", arena / "out"], arena, any_of=TRAIN_ONLY)


@pytest.mark.parametrize("content", [
    pytest.param(b"[1, 2]", id="spec-not-an-object"),
    pytest.param(b'{"arch": ', id="spec-invalid-json"),
    pytest.param(b"", id="spec-empty-file"),
    pytest.param(bytes(range(256)) * 4, id="spec-binary-garbage"),
    pytest.param(b'"mlp"', id="spec-json-string"),
    pytest.param(b"null", id="spec-json-null"),
])
def test_unreadable_spec(content, arena):
    spec = arena / "spec.json"
    spec.write_bytes(content)
    refuse(["run", "--spec", spec, *TAIL, "--out", arena / "out"], arena, ["--spec"])


def test_spec_is_a_directory(arena):
    (arena / "adir").mkdir()
    refuse(["run", "--spec", arena / "adir", *TAIL, "--out", arena / "out"], arena, ["--spec"])


def test_spec_missing(arena):
    refuse(["run", "--spec", arena / "missing.json", *TAIL, "--out", arena / "out"], arena,
           ["--spec"])


def test_flag_beside_spec_still_validated(arena, artifacts):
    """spec-override-depth-zero: a flag given beside --spec overrides it and is validated."""
    spec = arena / "spec.json"
    spec.write_bytes((artifacts.run / "spec.json").read_bytes())
    refuse(["run", "--spec", spec, "--depth", "0", *TAIL, "--out", arena / "out"], arena,
           ["--depth"])


def test_good_spec_reruns(arena, artifacts):
    """Control case: the run's own spec.json is accepted and reproduces its layers.csv."""
    spec = arena / "spec.json"
    spec.write_bytes((artifacts.run / "spec.json").read_bytes())
    code, out, err = run_cli(["run", "--spec", spec, *TAIL, "--out", arena / "out"])
    assert code == 0, what_it_did(code, out, err)
    assert_no_traceback(code, out, err)
    assert (arena / "out" / "layers.csv").read_bytes() == \
        (artifacts.run / "layers.csv").read_bytes()
