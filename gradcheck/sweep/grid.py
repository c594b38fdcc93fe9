"""Grids: run flags given as lists or ranges, or a JSON / TOML grid file -> cells.

A cell is one validated :class:`~gradcheck.spec.RunSpec` with one seed; it is keyed by the hash
of its resolved spec (plus what else changes its numbers: a scheme applied to a ``--model``, the
light option, the thread count), so the same cell in two grids is computed once. No torch here:
a bad grid is answered before anything heavy is imported.

Syntax on the command line: ``--init lecun,sn,bsn`` (a comma list), ``--depth 2,5,10`` or
``--depth 2-6`` (integer ranges, both ends included, mixable: ``2-4,10``), ``--seeds 0-9``.
A grid file holds one JSON object / TOML table of spec fields (``depth`` or ``--depth``
spelling), each a value or a list of values (``seeds`` also as ``"0-9"``)::

    init = ["lecun", "sn", "bsn"]
    depth = [2, 5, 10, 20, 50]
    width = 128
    seeds = "0-2"
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..spec import MAX_LIST, RunSpec, SpecError, parse_seeds

#: bumped whenever a cell's stored result changes meaning (old cells are then recomputed)
CELL_FORMAT = 1


@dataclass(frozen=True)
class Cell:
    """One grid cell: the resolved spec (one seed) and its coordinates in the grid."""

    coords: tuple[tuple[str, object], ...]   # (field, value) per grid axis, 'seed' last
    spec: dict                               # RunSpec resolved, as JSON gives it; seeds [seed]
    seed: int
    scheme: str | None = None                # applied to a --model's raw weights (None: as is)
    scale: float = 1.0                       # c of that scheme (ssn / bssn)
    light: bool = False                      # skip the model-level claims (C2a, C3, C4, ...)
    threads: int = 1                         # torch / BLAS threads while the cell computes

    def identity(self) -> dict:
        """Everything that determines the cell's numbers (what its key hashes)."""
        from .. import __version__

        return {"format": CELL_FORMAT, "gradcheck": __version__, "spec": self.spec,
                "scheme": self.scheme, "scale": self.scale, "light": self.light,
                "threads": self.threads}

    @property
    def key(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def payload(self) -> dict:
        """What a worker receives: plain JSON-able data (the spec dict, never tensors)."""
        return {**self.identity(), "key": self.key, "seed": self.seed}

    def label(self) -> str:
        return ", ".join(f"{k}={_show(v)}" for k, v in self.coords)


def _show(v) -> str:
    if isinstance(v, tuple):
        return ",".join(map(str, v))
    return str(v)


class FieldTypes:
    """Which RunSpec field each run flag sets and the type of its values."""

    def __init__(self, run_flags: dict):
        self.flag_of = {field: flag for flag, (field, _, _) in run_flags.items()}
        self.type_of = {field: typ for _, (field, typ, _) in run_flags.items()}
        self.flag_of["bias"], self.type_of["bias"] = "--bias", bool
        #: axis order of the grid: the run flags' order, seeds last
        self.order = [f for f in self.flag_of if f != "seeds"] + ["seeds"]

    def kind(self, field: str) -> str:
        typ = self.type_of[field]
        if field == "seeds":
            return "seeds"
        if field == "model_input":
            return "shape"
        return {int: "int", float: "float", str: "str", bool: "bool"}.get(typ, "str")


def _err(flag: str, msg: str) -> SpecError:
    return SpecError(f"argument {flag}: {msg}")


def parse_values(field: str, text: str, types: FieldTypes) -> list:
    """The values of one flag given on the command line as a list or range."""
    flag, kind = types.flag_of[field], types.kind(field)
    text = str(text)
    if kind == "seeds":
        return list(parse_seeds(text))
    if kind == "shape":
        try:
            return [tuple(int(v) for v in text.split(","))]
        except ValueError:
            raise _err(flag, f"must be positive integers like 3,32,32; got {text!r}") from None
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(p == "" for p in parts):
        raise _err(flag, f"empty element in the list {text!r}")
    out: list = []
    for p in parts:
        if kind == "int":
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", p)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise _err(flag, f"empty range {p!r} (A-B needs A <= B)")
                if hi - lo + len(out) >= MAX_LIST:      # before expanding the range
                    raise _err(flag, f"at most {MAX_LIST} values; got {text!r}")
                out.extend(range(lo, hi + 1))
                continue
            try:
                out.append(int(p))
            except ValueError:
                raise _err(flag, f"invalid int value {p!r} (a comma list of integers or "
                                 "ranges A-B)") from None
        elif kind == "float":
            try:
                out.append(float(p))
            except ValueError:
                raise _err(flag, f"invalid number {p!r} (a comma list of numbers)") from None
        else:
            out.append(p)
    return _unique(flag, out, text)


def _unique(flag: str, values: list, text) -> list:
    seen = []
    for v in values:
        if v in seen:
            raise _err(flag, f"repeated value {v!r} in {text!r}")
        seen.append(v)
    if not seen:
        raise _err(flag, f"no values in {text!r}")
    return seen


def _file_values(field: str, value, types: FieldTypes, where: str) -> list:
    """The values of one grid-file entry (a value or a list), type-checked."""
    flag, kind = types.flag_of[field], types.kind(field)
    bad = lambda want: SpecError(f"argument --grid: {where}: field {field!r} must be {want}; "  # noqa: E731
                                 f"got {json.dumps(value, default=str)[:60]}")
    if kind == "seeds":
        if isinstance(value, str):
            return list(parse_seeds(value))
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise bad('a non-negative integer, a list of them or a range "A-B"')
        return list(parse_seeds(",".join(map(str, items))))
    if kind == "shape":
        items = [value] if isinstance(value, list) and all(
            isinstance(v, int) for v in value) else value
        if not isinstance(items, list) or not items or not all(
                isinstance(s, list) and s and all(isinstance(v, int) and not isinstance(v, bool)
                                                  for v in s) for s in items):
            raise bad("a list of positive integers (or a list of such lists)")
        return _unique(flag, [tuple(s) for s in items], value)
    items = value if isinstance(value, list) else [value]
    out: list = []
    for v in items:
        if kind == "int" and isinstance(v, str):
            try:
                out.extend(parse_values(field, v, types))
            except SpecError as e:
                msg = str(e).split(": ", 1)[-1]
                raise SpecError(f"argument --grid: {where}: field {field!r}: {msg}") from None
        elif kind == "int" and not (isinstance(v, int) and not isinstance(v, bool)):
            raise bad("an integer, a list of integers or a range string \"A-B\"")
        elif kind == "float" and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
            raise bad("a number or a list of numbers")
        elif kind == "bool" and not isinstance(v, bool):
            raise bad("true, false or a list of them")
        elif kind == "str" and not isinstance(v, str):
            raise bad("a string or a list of strings")
        else:
            out.append(float(v) if kind == "float" else v)
    return _unique(flag, out, value)


def read_grid_file(path: Path, types: FieldTypes) -> dict[str, list]:
    """``{field: [values]}`` from a JSON or TOML grid file (SpecError naming the file)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as e:
        raise SpecError(f"argument --grid: cannot read {path}: {e.strerror or e}") from None
    is_toml = path.suffix.lower() == ".toml"
    try:
        if is_toml:
            try:
                import tomllib
            except ImportError:                       # Python < 3.11
                try:
                    import tomli as tomllib
                except ImportError:
                    raise SpecError("argument --grid: reading TOML needs Python >= 3.11 or the "
                                    "tomli package; give a JSON grid file instead") from None
            data = tomllib.loads(text.decode("utf-8"))
        else:
            data = json.loads(text.decode("utf-8"))
    except SpecError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        what = "TOML" if is_toml else "JSON"
        msg = " ".join(str(e).split())[:160]
        raise SpecError(f"argument --grid: {path} is not valid {what}: {msg}") from None
    if not isinstance(data, dict):
        raise SpecError(f"argument --grid: {path} must hold one object/table of spec fields; "
                        f"got a {type(data).__name__}")
    out: dict[str, list] = {}
    for key, value in data.items():
        field = str(key).lstrip("-").replace("-", "_")
        field = {"input_shape": "model_input"}.get(field, field)
        if field not in types.flag_of:
            raise SpecError(f"argument --grid: {path}: unknown field {key!r}; allowed: "
                            f"{', '.join(sorted(types.flag_of))}")
        out[field] = _file_values(field, value, types, str(path))
    return out


def expand(values: dict[str, list], types: FieldTypes, light: bool = False,
           threads: int = 1, reschemed: bool = False) -> list[Cell]:
    """Every combination of ``values`` (grid axes in the run flags' order, seeds last) as a
    validated :class:`Cell`.

    ``reschemed`` (compare/sweep with ``--model``): ``init`` and ``scale`` are not spec fields
    of the user's model; they become the scheme applied to its raw weights. A scale given for a
    scheme that takes none is not applied (the cell is the same as at scale 1).
    """
    from ..schemes.registry import SCHEMES

    values = dict(values)
    values.setdefault("seeds", [0])
    axes = [f for f in types.order if f in values]
    cells = []
    for combo in itertools.product(*(values[f] for f in axes)):
        d = dict(zip(axes, combo))
        seed = d.pop("seeds")
        coords = tuple((f, v) for f, v in zip(axes, combo) if f != "seeds") + (("seed", seed),)
        scheme, scale = None, 1.0
        init = d.get("init")
        if init is not None and init not in SCHEMES:
            raise _err("--init", f"must be one of {', '.join(SCHEMES)}; got {init!r}")
        if reschemed and "model" in d:
            scheme = d.pop("init", None)
            scale = float(d.pop("scale", 1.0))
            if scheme is None or not SCHEMES[scheme].takes_scale:
                scale = 1.0
        elif "scale" in d and init is not None and not SCHEMES[init].takes_scale:
            d["scale"] = 1.0
        d["seeds"] = [seed]
        try:
            spec = RunSpec.from_dict(d)
        except SpecError as e:
            where = ", ".join(f"{k}={_show(v)}" for k, v in coords)
            raise SpecError(f"{e} (grid cell {where})") from None
        except TypeError as e:
            raise SpecError(f"argument --grid: {e}") from None
        cells.append(Cell(coords, json.loads(spec.to_json()), seed, scheme, scale, light,
                          threads))
    return cells


__all__ = ["CELL_FORMAT", "Cell", "FieldTypes", "parse_values", "read_grid_file", "expand"]
