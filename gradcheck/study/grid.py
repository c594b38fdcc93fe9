"""Study grids: train flags given as lists or ranges (or a ``--grid`` file) x seeds -> cells.

A cell is one validated, resolved :class:`~gradcheck.spec.TrainSpec` (its ``seed`` set) plus
what else changes its numbers: the torch/BLAS thread count, the device, and the ``track``
options. It has two keys:

* ``train_key``: the hash of the training identity (cell format, gradcheck version, resolved
  spec, threads, device); the run directory is ``OUT/runs/<train_key>/``, so changing only the
  track options reuses the trained checkpoints;
* ``key``: the hash of the training identity plus the track options; the finished result is
  ``OUT/cells/<key>.json``.

``--scale`` values other than 1 combine only with the schemes that take a scale
(``SCHEME_RECORDS[name].takes_scale``: ssn, bssn); every other scheme gets one cell at scale 1
(never one per scale value). No torch here: a bad grid is answered before anything heavy is
imported.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..schemes.registry import SCALED_SCHEMES
from ..schemes.registry import SCHEMES as SCHEME_RECORDS
from ..spec import SpecError, TrainSpec, validate_train
from ..sweep.grid import FieldTypes, parse_values, read_grid_file

#: bumped whenever a study cell's stored result changes meaning (old cells are recomputed)
STUDY_FORMAT = 1
#: the seeds of a study when ``--seeds`` is not given
DEFAULT_SEEDS = "0-2"


def _hash(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class StudyCell:
    """One training run of a study and the options of its ``track``."""

    coords: tuple[tuple[str, object], ...]   # (field, value) per grid axis, ('seed', s) last
    spec: dict                               # TrainSpec resolved (TrainSpec.to_dict())
    seed: int
    threads: int = 1                         # torch / BLAS threads while the cell computes
    device: str = "cpu"                      # resolved torch device type (cpu | cuda)
    track: dict | None = None                # {"batch", "spectra_inputs"}; None: --no-track

    def train_identity(self) -> dict:
        """Everything that determines the trained checkpoints and metrics.csv."""
        from .. import __version__

        return {"format": STUDY_FORMAT, "gradcheck": __version__, "spec": self.spec,
                "threads": self.threads, "device": self.device}

    def identity(self) -> dict:
        """Everything that determines the cell's stored result (what ``key`` hashes)."""
        return {**self.train_identity(), "track": self.track}

    @property
    def train_key(self) -> str:
        return _hash(self.train_identity())

    @property
    def key(self) -> str:
        return _hash(self.identity())

    def payload(self, out: Path, plots: bool) -> dict:
        """What a worker receives: plain JSON-able data (the spec dict, never tensors).

        ``run_dir`` is absolute (a Dask worker sees it only on a shared filesystem; the cell
        result carries everything the study's tables need)."""
        run_dir = Path(out).resolve() / "runs" / self.train_key
        return {**self.identity(), "key": self.key, "train_key": self.train_key,
                "seed": self.seed, "run_dir": str(run_dir), "plots": bool(plots)}

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.coords)


def study_types(train_flags: dict) -> FieldTypes:
    """The field types of a study grid: every train flag but ``--seed``, plus ``--seeds``.

    ``init`` (the CLI's name of the ``scheme`` field) is accepted in a grid file too."""
    flags = {f: v for f, v in train_flags.items() if v[0] != "seed"}
    flags["--seeds"] = ("seeds", str, "seeds")
    types = FieldTypes(flags)
    for d in (types.flag_of, types.type_of):
        d.pop("bias", None)
    types.order = [f for f in types.order if f != "bias"]
    types.flag_of["init"], types.type_of["init"] = "--init", str     # grid-file alias only
    return types


def read_study_grid(path: Path, types: FieldTypes) -> dict[str, list]:
    """``{field: [values]}`` of a JSON / TOML study grid file (``init`` -> ``scheme``)."""
    values = read_grid_file(path, types)
    if "init" in values:
        if "scheme" in values:
            raise SpecError(f"argument --grid: {path}: fields 'init' and 'scheme' name the same "
                            "setting; give one")
        values["scheme"] = values.pop("init")
    return values


def _check_scales(values: dict[str, list]) -> None:
    scales = values.get("scale")
    if scales is None:
        return
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) \
                or s <= 0:
            raise SpecError(f"argument --scale: must be finite numbers > 0; got {s!r}")
    if all(float(s) == 1.0 for s in scales):
        return
    schemes = values.get("scheme", [TrainSpec().scheme])
    known = [s for s in schemes if s in SCHEME_RECORDS]
    if len(known) == len(schemes) and not any(SCHEME_RECORDS[s].takes_scale for s in known):
        raise SpecError(f"argument --scale: only {', '.join(SCALED_SCHEMES)} take a scale and "
                        f"--init lists none of them (got {', '.join(schemes)})")


def expand(values: dict[str, list], types: FieldTypes, threads: int = 1, device: str = "cpu",
           track: dict | None = None) -> list[StudyCell]:
    """Every combination of ``values`` (axes in the train flags' order, seeds last) as a
    validated :class:`StudyCell`, in grid order, without duplicates.

    A cell whose scheme takes no scale is built at scale 1 whatever ``--scale`` lists (once:
    the other scale values would repeat it). SpecError names the flag and the cell.
    """
    values = dict(values)
    values.setdefault("seeds", list(parse_values("seeds", DEFAULT_SEEDS, types)))
    values.setdefault("scheme", [TrainSpec().scheme])        # always an axis of the table
    _check_scales(values)
    axes = [f for f in types.order if f in values]
    cells, seen = [], set()
    for combo in itertools.product(*(values[f] for f in axes)):
        d = dict(zip(axes, combo))
        seed = d.pop("seeds")
        scheme = d.get("scheme", TrainSpec().scheme)
        if "scale" in d and scheme in SCHEME_RECORDS and not SCHEME_RECORDS[scheme].takes_scale:
            d["scale"] = 1.0
        if "scale" in d:
            d["scale"] = float(d["scale"])
        coords = tuple((f, d[f]) for f in axes if f != "seeds") + (("seed", seed),)
        try:
            spec = validate_train(TrainSpec(**d, seed=seed))
        except SpecError as e:
            where = ", ".join(f"{k}={v}" for k, v in coords)
            raise SpecError(f"{e} (study cell {where})") from None
        except TypeError as e:
            raise SpecError(f"argument --grid: {e}") from None
        cell = StudyCell(coords, spec.to_dict(), int(seed), int(threads), device, track)
        if cell.key not in seen:
            seen.add(cell.key)
            cells.append(cell)
    return cells


__all__ = ["STUDY_FORMAT", "DEFAULT_SEEDS", "StudyCell", "study_types", "read_study_grid",
           "expand"]
