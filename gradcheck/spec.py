"""``RunSpec``: the frozen, validated description of one ``gradcheck run``.

Every validation and its message lives here: one line that names the argument and the allowed
values. ``SpecError`` is turned into exit code 2 by the CLI.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields, replace

from .archs import ACTIVATIONS, ARCHS, OUTPUTS
from .schemes import MODES, SCHEMES
from .schemes.registry import SCALED_SCHEMES
from .schemes.registry import SCHEMES as SCHEME_RECORDS

#: how Jacobian spectra are computed (gradcheck.probe.budget)
SPECTRA_MODES = ("auto", "full", "topk")

INPUTS = ("gaussian", "ring", "grid", "shapes")
#: data-set inputs read from a file (``npy:PATH`` with shape (N, *input_shape))
FILE_INPUTS = ("npy:", "cifar10:")
DTYPES = ("float64", "float32")
DEVICES = ("cpu", "cuda", "auto")


class SpecError(ValueError):
    """Bad user input; the message is one line naming the argument and the allowed values."""


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's numbers (same spec + seed -> identical files)."""

    arch: str = "mlp"                 # one of ARCHS (gradcheck.archs)
    depth: int | None = None          # Linear/Conv2d layers L (sngan: fixed 8; resnet: blocks)
    width: int = 128                  # mlp hidden width
    input_dim: int | None = None      # mlp input size (None: width; 2 for ring/grid)
    channels: int = 16                # conv/resnet: channels of every conv layer
    image_size: int = 16              # conv/resnet: input height = width (sngan: 32)
    stride_every: int = 3             # conv: stride 2 on every k-th conv (0: never)
    init: str = "lecun"               # one of SCHEMES (THEORY §1)
    scale: float = 1.0                # c for ssn / bssn
    activation: str | None = None     # relu | lrelu | tanh | linear (None: arch default)
    slope: float = 0.1                # leaky-ReLU slope alpha
    output: str = "identity"          # identity | sigmoid
    bias: bool = False                # theory is bias-free; with biases claims are n/a
    sn_mode: str = "exact"            # exact (SVD/Lanczos) | power (authors' estimator)
    power_iterations: int = 1         # power steps per training-mode forward (power mode)
    batch: int = 64                   # inputs per seed
    inputs: str = "gaussian"          # gaussian | ring | grid | shapes | npy:PATH | cifar10:PATH
    seeds: tuple[int, ...] = (0,)     # one model + batch per seed
    dtype: str = "float64"            # float64 (default for every check) | float32
    device: str = "cpu"               # cpu | cuda | auto
    spectra_inputs: int = 16          # inputs that get Jacobian spectra (0: none)
    operator_inputs: int = 1          # ... of which get matrix-free (conv) spectra
    topk: int = 3                     # k of top-k / bottom-k where full spectra are too big
    spectra: str = "auto"             # auto | full | topk (gradcheck.probe.budget)
    budget_seconds: float = 10.0      # auto: estimated seconds the spectra may take
    checkpoint: str | None = None     # probe D of a training checkpoint (arch etc. from it)
    model: str | None = None          # probe a user model: 'pkg.module:factory'
    weights: str | None = None        # state_dict file for --model (weights_only load)
    model_input: tuple[int, ...] | None = None  # --input-shape C,H,W (or N) for --model

    # -- derived ------------------------------------------------------------------------
    @property
    def resolved_activation(self) -> str:
        return self.activation or ARCHS[self.arch].default_activation

    @property
    def resolved_depth(self) -> int:
        """``--depth`` with the architecture's default (resnet: residual blocks)."""
        a = ARCHS[self.arch]
        return int(a.fixed_depth or self.depth or a.default_depth)

    @property
    def n_layers(self) -> int:
        """Number of Linear/Conv2d layers L of the built-in model."""
        return int(ARCHS[self.arch].n_layers(self))

    @property
    def resolved_input_dim(self) -> int:
        if self.input_dim:
            return self.input_dim
        return 2 if self.inputs in ("ring", "grid") else self.width

    @property
    def source(self) -> str:
        """'builtin', 'checkpoint' or 'model'."""
        return "checkpoint" if self.checkpoint else "model" if self.model else "builtin"

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.model_input:
            return tuple(self.model_input)
        return tuple(ARCHS[self.arch].input_shape(self))

    def resolved(self) -> "RunSpec":
        """A copy with every None default filled in (what spec.json stores); a checkpoint or
        user-model spec is stored as given (the model defines the rest)."""
        if self.source != "builtin":
            return self
        a = ARCHS[self.arch]
        return replace(self, depth=self.resolved_depth, activation=self.resolved_activation,
                       input_dim=None if a.images else self.resolved_input_dim,
                       image_size=a.fixed_image_size or self.image_size)

    def to_json(self) -> str:
        return json.dumps(asdict(self.resolved()), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            train = sorted(set(unknown) & {f.name for f in fields(TrainSpec)})
            hint = f" (a train spec? {', '.join(train)} are train fields)" if train else ""
            raise SpecError(f"spec: unknown field(s) {', '.join(unknown)}{hint}; allowed: "
                            f"{', '.join(sorted(names))}")
        return validate(cls(**_json_types(cls, d, "spec")))


def _json_types(cls, d: dict, what: str) -> dict:
    """Check every field of a spec file against its declared type, as JSON gives it.

    A bool is a bool (``"bias": "false"`` is refused, not read as true), an int an int (not a
    bool or a float), a float a number, a str a string, a tuple a list of ints; ``| None`` fields
    also take null. Lists become tuples. Raises SpecError naming the field.
    """
    out = dict(d)
    for f in fields(cls):
        if f.name not in d:
            continue
        v, ann = d[f.name], str(f.type).replace(" ", "")
        optional = ann.endswith("|None")
        base = ann[:-len("|None")] if optional else ann
        if v is None and optional:
            continue
        ok = {"bool": isinstance(v, bool),
              "int": isinstance(v, int) and not isinstance(v, bool),
              "float": isinstance(v, (int, float)) and not isinstance(v, bool),
              "str": isinstance(v, str),
              "tuple[int,...]": isinstance(v, (list, tuple)) and all(
                  isinstance(x, int) and not isinstance(x, bool) for x in v)}.get(base)
        if ok is None:                   # a type this check does not know: leave it to validate
            continue
        if not ok:
            want = {"tuple[int,...]": "a list of integers", "int": "an integer",
                    "float": "a number", "bool": "true or false", "str": "a string"}[base]
            raise SpecError(f"{what}: field {f.name!r} must be {want}"
                            f"{' or null' if optional else ''}; got {json.dumps(v)[:60]}")
        if base == "tuple[int,...]":
            out[f.name] = tuple(v)
    return out


#: the same caps for run, train, track and sweep (a field a spec lacks is not checked)
CAPS = {"width": 16384, "channels": 2048, "batch": 65536, "image_size": 1024,
        "input_dim": 1 << 20, "spectra_inputs": 65536, "operator_inputs": 1024, "topk": 1024,
        "power_iterations": 10000, "z_dim": 4096, "steps": 10_000_000, "n_data": 10_000_000,
        "d_steps": 1000, "log_every": 10_000_000, "ckpt_every": 10_000_000}


def _caps(spec) -> None:
    for name, cap in CAPS.items():
        val = getattr(spec, name, None)
        if isinstance(val, int) and not isinstance(val, bool) and val > cap:
            raise SpecError(f"argument --{name.replace('_', '-')}: must be <= {cap}; got {val}")


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise SpecError(f"argument --{name}: must be one of {', '.join(allowed)}; got {value!r}")


def _int_at_least(name: str, value, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise SpecError(f"argument --{name}: must be an integer >= {lo}; got {value!r}")


#: the most values one list- or range-valued flag may expand to (seeds, sweep/study lists)
MAX_LIST = 100_000


def parse_seeds(text: str) -> tuple[int, ...]:
    """'3' -> (3,), '0-4' -> (0..4), '1,5,7' -> (1, 5, 7)."""
    out: list[int] = []
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise SpecError(f"argument --seeds: must be N, A-B (A <= B) or a comma list of "
                            f"non-negative integers; got {text!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi - lo + len(out) >= MAX_LIST:        # before expanding: a typo like 0-99999999
            raise SpecError(f"argument --seeds: at most {MAX_LIST} seeds; got {text!r}")
        out.extend(range(lo, hi + 1))
    if len(set(out)) != len(out):
        raise SpecError(f"argument --seeds: repeated seed in {text!r}")
    return tuple(out)


def validate(spec: RunSpec) -> RunSpec:
    """Check every field; return the spec or raise :class:`SpecError` (one clear line)."""
    _choice("arch", spec.arch, ARCHS)
    _choice("init", spec.init, SCHEMES)
    if spec.activation is not None:
        _choice("activation", spec.activation, ACTIVATIONS)
    _choice("output", spec.output, OUTPUTS)
    _choice("sn-mode", spec.sn_mode, MODES)
    if not (isinstance(spec.inputs, str) and (spec.inputs in INPUTS or any(
            spec.inputs.startswith(p) and len(spec.inputs) > len(p) for p in FILE_INPUTS))):
        raise SpecError(f"argument --inputs: must be one of {', '.join(INPUTS)}, "
                        f"{', '.join(p + 'PATH' for p in FILE_INPUTS)}; got {spec.inputs!r}")
    _choice("dtype", spec.dtype, DTYPES)
    _choice("device", spec.device, DEVICES)
    _depth(spec.arch, spec.depth, " layers; leave --depth out")
    for name in ("width", "channels", "batch", "power_iterations", "topk"):
        _int_at_least(name.replace("_", "-"), getattr(spec, name), 1)
    _int_at_least("image-size", spec.image_size, 1)
    _int_at_least("stride-every", spec.stride_every, 0)
    _int_at_least("spectra-inputs", spec.spectra_inputs, 0)
    _int_at_least("operator-inputs", spec.operator_inputs, 0)
    if spec.input_dim is not None:
        _int_at_least("input-dim", spec.input_dim, 1)
    _choice("spectra", spec.spectra, SPECTRA_MODES)
    for name in ("scale", "slope", "budget_seconds"):
        val = getattr(spec, name)
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
            raise SpecError(f"argument --{name.replace('_', '-')}: must be a finite number; "
                            f"got {val!r}")
    if spec.budget_seconds <= 0:
        raise SpecError(f"argument --budget-seconds: must be > 0; got {spec.budget_seconds!r}")
    if spec.scale <= 0:
        raise SpecError(f"argument --scale: must be > 0; got {spec.scale!r}")
    if spec.scale != 1.0 and not SCHEME_RECORDS[spec.init].takes_scale:
        raise SpecError(f"argument --scale: only {', '.join(SCALED_SCHEMES)} take a scale; "
                        f"--init is {spec.init!r}")
    if not 0.0 <= spec.slope <= 1.0:
        raise SpecError(f"argument --slope: must be in [0, 1]; got {spec.slope!r}")
    if not spec.seeds or any(not isinstance(s, int) or s < 0 for s in spec.seeds):
        raise SpecError(f"argument --seeds: must be non-negative integers; got {spec.seeds!r}")
    _caps(spec)
    if len(spec.seeds) > 1000 or max(spec.seeds) >= 2 ** 32:
        raise SpecError("argument --seeds: at most 1000 seeds, each < 2**32")
    if spec.source != "builtin":
        defaults = RunSpec()
        fixed = ("arch", "depth", "width", "input_dim", "channels", "image_size", "stride_every",
                 "init", "scale", "bias", "sn_mode", "power_iterations")
        if spec.checkpoint:
            fixed += ("activation", "slope", "output", "inputs")
        given = [f for f in fixed if getattr(spec, f) != getattr(defaults, f)]
        if given:
            src = "--checkpoint (the model comes from it)" if spec.checkpoint else \
                "--model (the model is yours)"
            raise SpecError(f"argument --{given[0].replace('_', '-')}: does not apply with {src}")
    if spec.model_input is not None and not spec.model:
        raise SpecError("argument --input-shape: goes with --model (built-in models know their "
                        "input shape)")
    if spec.checkpoint and spec.model:
        raise SpecError("arguments --checkpoint and --model: give at most one of them")
    if spec.weights and not spec.model:
        raise SpecError("argument --weights: goes with --model")
    if spec.model:
        if not re.fullmatch(r"[\w.]+:\w+", spec.model):
            raise SpecError(f"argument --model: must be 'pkg.module:factory'; got {spec.model!r}")
        if not spec.model_input:
            raise SpecError("argument --input-shape: required with --model (e.g. 3,32,32 or 64)")
    if spec.model_input is not None and (not spec.model_input or any(
            not isinstance(v, int) or v < 1 for v in spec.model_input)):
        raise SpecError(f"argument --input-shape: must be positive integers like 3,32,32; "
                        f"got {spec.model_input!r}")
    if spec.source != "builtin" and spec.inputs in ("ring", "grid"):
        raise SpecError("argument --inputs: ring/grid are for built-in MLPs (a checkpoint is "
                        "probed on its training data; a --model takes gaussian, shapes, npy: "
                        "or cifar10: inputs)")
    if spec.inputs in ("ring", "grid") and (spec.arch != "mlp" or spec.resolved_input_dim != 2):
        raise SpecError(f"argument --inputs: {spec.inputs} data is 2-D and needs --arch mlp "
                        "with --input-dim 2 (or left out)")
    problem = ARCHS[spec.arch].problem(spec) if spec.source == "builtin" else None
    if problem:
        raise SpecError(problem)
    return spec


def _depth(arch: str, depth, fixed_tail: str = "") -> None:
    """Validate ``--depth`` for ``arch`` (None: the architecture's default)."""
    a = ARCHS[arch]
    if a.fixed_depth is not None and depth not in (None, a.fixed_depth):
        raise SpecError(f"argument --depth: the {arch} architecture has a fixed depth of "
                        f"{a.fixed_depth}{fixed_tail}")
    if depth is not None:
        _int_at_least("depth", depth, a.min_depth)
        if depth > a.max_depth:
            raise SpecError(f"argument --depth: must be <= {a.max_depth} for --arch {arch}; "
                            f"got {depth}")



TRAIN_SCHEMES = SCHEMES          # every scheme of the registry trains
TOY_DATA = ("ring", "grid")
IMAGE_DATA = ("shapes", "digits")


#: defaults of the fields left None that differ between 2-D (toy) and image data: chosen by
#: measurement for the toy GANs (README "Training": ring of 8 Gaussians, every scheme), the
#: authors' settings for images
TOY_DEFAULTS = dict(z_dim=2, lr=1e-3, steps=4000, batch=512, d_steps=2, lift=1.0,
                    lr_decay="linear", beta1=0.0, beta2=0.9)
IMAGE_DEFAULTS = dict(z_dim=64, lr=1e-4, steps=2000, batch=64, d_steps=1, lift=0.0,
                      lr_decay="none", beta1=0.5, beta2=0.999)
#: learning-rate schedules of ``gradcheck train --lr-decay`` (a function of the step only, so a
#: resumed run follows the same schedule)
LR_DECAYS = ("none", "linear")


@dataclass(frozen=True)
class TrainSpec:
    """A GAN training run (hinge loss, Adam; image defaults follow the authors' code, 2-D
    defaults were measured, see :data:`TOY_DEFAULTS`)."""

    data: str = "ring"                # ring | grid | shapes | digits | cifar10:PATH | npy:
    arch: str | None = None           # D: one of ARCHS (None: mlp for 2-D, conv else)
    depth: int | None = None          # D depth (None: 4; sngan fixed 8; resnet: blocks)
    width: int = 128                  # D width (mlp) / G width
    channels: int = 32                # D channels (conv, resnet)
    activation: str | None = None     # D activation (None: the arch's default_activation)
    slope: float = 0.1
    scheme: str = "sn"                # D scaling (CLI --init, alias --scheme); lecun/xavier/
    #                                   kaiming/orthogonal = unnormalised
    scale: float = 1.0                # c for ssn / bssn
    sn_mode: str = "power"            # power (authors': persistent vectors) | exact
    power_iterations: int = 1
    z_dim: int | None = None          # None: 2-D data 2, images 64
    steps: int | None = None          # None: 2-D data 4000, images 2000
    batch: int | None = None          # None: 2-D data 512, images 64
    lr: float | None = None           # Adam lr of D and G (None: 2-D data 1e-3, images 1e-4)
    beta1: float | None = None        # Adam betas (None: 2-D data 0 / 0.9, images 0.5 / 0.999)
    beta2: float | None = None
    d_steps: int | None = None        # D steps per G step (None: 2-D data 2, images 1)
    lr_decay: str | None = None       # none | linear: lr * (1 - step / steps) for D and G
    #                                   (None: 2-D data linear, images none)
    n_data: int = 10000               # data set size (digits: capped at 1797)
    log_every: int = 50
    ckpt_every: int = 500
    seed: int = 0
    lift: float | None = None         # 2-D data: D sees (x, lift), a constant input coordinate
    #                                   that stands in for a first-layer bias (None: 2-D 1, images
    #                                   0 = none); the D stays a bias-free chain (THEORY premise)

    @property
    def is_toy(self) -> bool:
        """Flat (point) data: the ring / grid sets, or an ``npy:`` file of shape (N, 2)."""
        if self.data in TOY_DATA:
            return True
        if isinstance(self.data, str) and self.data.startswith("npy:"):
            try:
                import numpy as np

                return np.load(self.data[4:], mmap_mode="r", allow_pickle=False).ndim == 2
            except Exception:  # noqa: BLE001 - unreadable: the loader says why, later
                return False
        return False

    def resolved(self) -> "TrainSpec":
        arch = self.arch or ("mlp" if self.is_toy else "conv")
        a = ARCHS[arch]
        defaults = TOY_DEFAULTS if self.is_toy else IMAGE_DEFAULTS
        filled = {k: v if getattr(self, k) is None else getattr(self, k)
                  for k, v in defaults.items()}
        return replace(self, arch=arch, depth=a.fixed_depth or self.depth or 4,
                       activation=self.activation or a.default_activation, **filled)

    def to_dict(self) -> dict:
        return asdict(self.resolved())

    @classmethod
    def from_dict(cls, d: dict) -> "TrainSpec":
        """A validated spec from a spec.json / checkpoint dict.

        ``init`` is accepted for ``scheme`` (the CLI's name). A dict without ``lift`` was written
        before the field existed, when D took the bare 2-D input: it loads with ``lift = 0``.
        """
        d = dict(d)
        if "init" in d:
            if "scheme" in d and d["scheme"] != d["init"]:
                raise SpecError(f"train spec: fields 'init' and 'scheme' name the same setting; "
                                f"got {d['init']!r} and {d['scheme']!r}")
            d["scheme"] = d.pop("init")
        names = {f.name for f in fields(cls)}
        if "lift" not in d and set(d) >= names - {"lift", "lr_decay"}:
            d["lift"] = 0.0            # a resolved spec from before the field: D saw bare x
        if "lr_decay" not in d and set(d) >= names - {"lr_decay"}:
            d["lr_decay"] = "none"     # a resolved spec from before the field: constant lr
        unknown = sorted(set(d) - names)
        if unknown:
            raise SpecError(f"train spec: unknown field(s) {', '.join(unknown)}")
        return validate_train(cls(**_json_types(cls, d, "train spec")))


def validate_train(spec: TrainSpec) -> TrainSpec:
    """Check every field of a TrainSpec; return it resolved or raise SpecError."""
    if not (isinstance(spec.data, str) and (spec.data in TOY_DATA + IMAGE_DATA or
                                            spec.data.startswith(("cifar10:", "npy:")))):
        raise SpecError(f"argument --data: must be one of {', '.join(TOY_DATA + IMAGE_DATA)}, "
                        f"cifar10:PATH or npy:PATH; got {spec.data!r}")
    if spec.arch is not None:
        _choice("arch", spec.arch, ARCHS)
    if spec.activation is not None:
        _choice("activation", spec.activation, ACTIVATIONS)
    _choice("init", spec.scheme, TRAIN_SCHEMES)
    _choice("sn-mode", spec.sn_mode, MODES)
    if spec.lr_decay is not None:
        _choice("lr-decay", spec.lr_decay, LR_DECAYS)
    for name in ("steps", "batch", "d_steps", "lr", "lift", "z_dim", "beta1", "beta2"):
        v = getattr(spec, name)                                     # None: resolved below
        want = (int, float) if name in ("lr", "lift", "beta1", "beta2") else int
        if v is not None and (isinstance(v, bool) or not isinstance(v, want)):
            raise SpecError(f"argument --{name.replace('_', '-')}: must be a number; got {v!r}")
    r = spec.resolved()
    flat = [n for n, a in ARCHS.items() if not a.images]
    if spec.is_toy and ARCHS[r.arch].images:
        raise SpecError(f"argument --arch: {spec.data} data is 2-D and needs --arch "
                        f"{' or '.join(flat)}")
    if not spec.is_toy and not ARCHS[r.arch].images:
        image = [n for n, a in ARCHS.items() if a.images]
        raise SpecError(f"argument --arch: image data {spec.data!r} needs --arch "
                        f"{', '.join(image[:-1])} or {image[-1]}")
    _depth(r.arch, spec.depth)
    for name in ("width", "channels", "steps", "batch", "d_steps", "n_data", "log_every",
                 "ckpt_every", "power_iterations"):
        _int_at_least(name.replace("_", "-"), getattr(r, name), 1)
    _int_at_least("seed", spec.seed, 0)
    if spec.seed >= 2 ** 32:
        raise SpecError(f"argument --seed: must be < 2**32; got {spec.seed}")
    if spec.z_dim is not None:
        _int_at_least("z-dim", spec.z_dim, 1)
    _caps(r)
    for name in ("lr", "beta1", "beta2", "scale", "slope", "lift"):
        v = getattr(r, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SpecError(f"argument --{name}: must be a finite number; got {v!r}")
    if r.lr <= 0 or r.scale <= 0:
        raise SpecError("arguments --lr and --scale: must be > 0")
    if r.lift < 0 or r.lift > 1e6:
        raise SpecError(f"argument --lift: must be in [0, 1e6] (0: D sees the bare data); "
                        f"got {r.lift!r}")
    if r.lift and not spec.is_toy:
        raise SpecError(f"argument --lift: only 2-D (point) data takes a lift coordinate; "
                        f"image data {spec.data!r} needs --lift 0 or none")
    if not (0 <= r.beta1 < 1 and 0 <= r.beta2 < 1):
        raise SpecError("arguments --beta1/--beta2: must be in [0, 1)")
    if spec.scale != 1.0 and not SCHEME_RECORDS[spec.scheme].takes_scale:
        raise SpecError(f"argument --scale: only {', '.join(SCALED_SCHEMES)} take a scale; "
                        f"--init is {spec.scheme!r}")
    return r


__all__ = ["ARCHS", "INPUTS", "DTYPES", "DEVICES", "RunSpec", "SpecError", "TrainSpec",
           "TOY_DEFAULTS", "IMAGE_DEFAULTS", "LR_DECAYS", "parse_seeds", "validate",
           "validate_train"]
