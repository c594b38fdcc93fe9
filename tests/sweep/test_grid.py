"""Grid expansion: lists, ranges and grid files -> validated cells keyed by their spec."""
from __future__ import annotations

import json

import pytest

from gradcheck.cli import RUN_FLAGS
from gradcheck.spec import SpecError
from gradcheck.sweep.grid import FieldTypes, expand, parse_values, read_grid_file

TYPES = FieldTypes(RUN_FLAGS)
RUN_FLAGS_FLAG = {f: flag for flag, (f, _, _) in RUN_FLAGS.items()}


def test_lists_and_ranges():
    assert parse_values("depth", "2-4,10", TYPES) == [2, 3, 4, 10]
    assert parse_values("init", "lecun, sn,bsn", TYPES) == ["lecun", "sn", "bsn"]
    assert parse_values("scale", "0.5,1.5", TYPES) == [0.5, 1.5]
    assert parse_values("seeds", "0-2,7", TYPES) == [0, 1, 2, 7]
    assert parse_values("model_input", "3,8,8", TYPES) == [(3, 8, 8)]


@pytest.mark.parametrize("field,text,names", [
    ("depth", "5-2", "empty range"), ("depth", "2,,3", "empty element"),
    ("depth", "2,2", "repeated"), ("depth", "two", "invalid int"),
    ("scale", "1.0-2.0", "invalid number"), ("seeds", "3-1", "--seeds")])
def test_bad_lists_name_the_flag(field, text, names):
    with pytest.raises(SpecError) as e:
        parse_values(field, text, TYPES)
    assert names in str(e.value) and RUN_FLAGS_FLAG[field] in str(e.value)


def test_grid_axes_order_and_one_seed_per_cell():
    cells = expand({"seeds": [0, 1], "depth": [2, 3], "init": ["lecun", "sn"]}, TYPES)
    assert len(cells) == 8
    # run-flag order (depth before init), seeds last and fastest
    assert [dict(c.coords)["seed"] for c in cells[:2]] == [0, 1]
    assert [k for k, _ in cells[0].coords] == ["depth", "init", "seed"]
    assert all(c.spec["seeds"] == [c.seed] for c in cells)
    assert len({c.key for c in cells}) == 8


def test_same_spec_same_key_in_another_grid():
    a = expand({"init": ["lecun", "sn"], "depth": [2]}, TYPES)
    b = expand({"init": ["sn"], "depth": [2, 3], "width": [128]}, TYPES)   # width 128: default
    assert a[1].key == b[0].key
    assert a[0].key != a[1].key


def test_scale_of_an_unscaled_scheme_is_not_applied():
    cells = expand({"init": ["lecun", "bssn"], "scale": [1.0, 2.0]}, TYPES)
    by = {(dict(c.coords)["init"], dict(c.coords)["scale"]): c for c in cells}
    assert by["lecun", 1.0].key == by["lecun", 2.0].key          # one computation
    assert by["bssn", 1.0].key != by["bssn", 2.0].key
    assert by["bssn", 2.0].spec["scale"] == 2.0


def test_unknown_scheme_and_bad_cell_name_the_argument():
    with pytest.raises(SpecError, match="argument --init: must be one of"):
        expand({"init": ["lecun", "nosuch"]}, TYPES)
    with pytest.raises(SpecError, match=r"argument --depth.*grid cell"):
        expand({"arch": ["sngan"], "depth": [3]}, TYPES)


def test_json_and_toml_grid_files_give_the_flags_cells(tmp_path):
    j = tmp_path / "g.json"
    j.write_text(json.dumps({"init": ["lecun", "sn"], "--depth": "2-3", "width": 16,
                             "seeds": "0-1"}))
    t = tmp_path / "g.toml"
    t.write_text('init = ["lecun", "sn"]\ndepth = [2, 3]\nwidth = 16\nseeds = [0, 1]\n')
    flags = {"init": parse_values("init", "lecun,sn", TYPES),
             "depth": parse_values("depth", "2-3", TYPES), "width": [16],
             "seeds": parse_values("seeds", "0-1", TYPES)}
    want = [c.key for c in expand(flags, TYPES)]
    assert [c.key for c in expand(read_grid_file(j, TYPES), TYPES)] == want
    assert [c.key for c in expand(read_grid_file(t, TYPES), TYPES)] == want


@pytest.mark.parametrize("text,name,names", [
    ("{not json", "g.json", "not valid JSON"), ("[1, 2]", "g.json", "one object"),
    ('{"depht": 3}', "g.json", "unknown field 'depht'"),
    ('{"depth": true}', "g.json", "must be an integer"),
    ('{"bias": "false"}', "g.json", "true, false"),
    ("depth = [2,", "g.toml", "not valid TOML")])
def test_bad_grid_files(tmp_path, text, name, names):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(SpecError) as e:
        read_grid_file(p, TYPES)
    assert str(e.value).startswith("argument --grid:") and names in str(e.value)
    assert "\n" not in str(e.value)
