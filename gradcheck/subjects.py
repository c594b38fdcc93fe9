"""The subject of a run: where a probed model comes from: built in (from the spec), a training
checkpoint, or the user's own ``nn.Module``
(``--model pkg.module:factory [--weights FILE] --input-shape ...``).

Every failure here is a user-input error: it raises ``SpecError`` with one clear line.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .claims import Setting
from .spec import RunSpec, SpecError, TrainSpec


def _lines(e: BaseException, n: int = 3) -> str:
    """The first ``n`` non-empty lines of an error, joined (state-dict errors name the key on
    the second line)."""
    parts = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(parts[:n])[:400] or type(e).__name__


def user_model(spec: RunSpec, seed: int = 0) -> nn.Module:
    """Import ``pkg.module:factory``, call it, load ``--weights`` (weights_only) if given."""
    mod_name, fn_name = spec.model.split(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(mod_name)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's import: any failure is input
        raise SpecError(f"argument --model: cannot import {mod_name!r}: "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    factory = getattr(module, fn_name, None)
    if not callable(factory):
        raise SpecError(f"argument --model: {mod_name!r} has no callable {fn_name!r}")
    try:
        with torch.random.fork_rng():          # same spec + seed -> same default init
            torch.manual_seed(seed)
            model = factory()
    except (Exception, SystemExit) as e:  # noqa: BLE001
        raise SpecError(f"argument --model: {spec.model}() raised {type(e).__name__}: {e}"
                        ) from None
    if not isinstance(model, nn.Module):
        raise SpecError(f"argument --model: {spec.model}() returned {type(model).__name__}, "
                        "not an nn.Module")
    if spec.weights:
        from .train.checkpoint import safe_load

        try:
            state = safe_load(spec.weights)
        except (ValueError, OSError) as e:
            raise SpecError(f"argument --weights: {spec.weights} {e}") from None
        if isinstance(state, dict) and "D" in state and "format" in state:
            state = state["D"]                          # a gradcheck training checkpoint
        for key in ("state_dict", "model_state_dict", "model"):   # layouts people save
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
        if not isinstance(state, dict):
            raise SpecError(f"argument --weights: {spec.weights} holds a "
                            f"{type(state).__name__}, not a state dict")
        try:
            model.load_state_dict(state)
        except Exception as e:  # noqa: BLE001
            raise SpecError(f"argument --weights: does not match {spec.model}: {_lines(e)}"
                            ) from None
    return model


def checkpoint_model(spec: RunSpec) -> tuple[nn.Module, TrainSpec, int]:
    """D of a training checkpoint (weights and SN state restored), its TrainSpec and step."""
    from .train.checkpoint import CheckpointError, load_checkpoint
    from .train.data import DataError
    from .train.gan import build_discriminator, load_data

    try:
        state = load_checkpoint(Path(spec.checkpoint))
        tspec = TrainSpec.from_dict(state["spec"])
        data = load_data(tspec)
        D = build_discriminator(tspec, data[:2])
        D.load_state_dict(state["D"])
    except CheckpointError as e:
        raise SpecError(f"argument --checkpoint: {e}") from None
    except DataError as e:
        raise SpecError(f"argument --checkpoint: its training data cannot be loaded ({e}); "
                        "restore the file at that path to probe on the data it was trained on"
                        ) from None
    except (RuntimeError, KeyError, TypeError) as e:
        raise SpecError(f"argument --checkpoint: {spec.checkpoint} does not match its spec: "
                        f"{_lines(e)}") from None
    except SpecError as e:
        raise SpecError(f"argument --checkpoint: {spec.checkpoint}: {e}") from None
    return D, tspec, int(state["step"])


def checkpoint_inputs(tspec: TrainSpec, batch: int, seed: int) -> torch.Tensor:
    """A batch of the checkpoint's training data, chosen by ``seed``."""
    from .train.data import DataError
    from .train.gan import load_data

    try:
        data = load_data(tspec)
    except DataError as e:
        raise SpecError(f"argument --checkpoint: its training data cannot be loaded ({e}); "
                        "restore the file at that path to probe on the data it was trained on"
                        ) from None
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:batch]
    return data[idx].double()


def trial_forward(model: nn.Module, x: torch.Tensor, what: str) -> None:
    """Run the user's model once on one input; any failure is a one-line input error."""
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            out = model(x[:1])
            model.train(was)
    except Exception as e:  # noqa: BLE001 - the user's forward
        raise SpecError(f"argument {what}: the model's forward failed on an input of shape "
                        f"{tuple(x.shape[1:])}: {type(e).__name__}: {_lines(e, 1)}") from None
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise SpecError(f"argument {what}: the model must return a floating-point tensor of one "
                        f"score per input; it returned {type(out).__name__}"
                        + (f" of dtype {out.dtype}" if isinstance(out, torch.Tensor) else ""))


# -- the subject of one seed ------------------------------------------------------------------
@dataclass(frozen=True)
class Subject:
    """What one seed probes: the model, its inputs, the provenance the claims need."""

    model: nn.Module
    x: torch.Tensor
    setting: Setting
    source: str                          # builtin | checkpoint | model
    description: str                     # in words, for headers and titles
    twin_model: nn.Module | None = None  # C6a's LeCun twin (built-in SN-family models)

    def describe(self, result=None) -> str:
        """The description, with the probed layer count of a user model once known."""
        if result is None or self.source != "model":
            return self.description
        return f"{self.description}: {len(result.layers)} probe layers, input " \
               f"{'x'.join(map(str, self.x.shape[1:]))}"


def subject(spec: RunSpec, seed: int, say=None) -> Subject:
    """The one place that turns a built-in spec, a checkpoint or a user model into a subject.

    Inputs: Gaussian noise (built-in and user models), the ring / grid toy sets (built-in MLPs),
    or the checkpoint's training data. Models and inputs are cast to the spec's device/dtype.
    """
    from .build import DTYPE, make_inputs, make_model, resolve_device
    from .schemes.registry import SCHEMES

    say = say or (lambda m: None)
    dev, dt = resolve_device(spec.device), DTYPE[spec.dtype]
    eps = float(torch.finfo(dt).eps)
    twin = None
    if spec.source == "builtin":
        model = make_model(spec, seed)
        x = make_inputs(spec, seed)
        setting = Setting(spec.init, spec.scale, eps)
        if SCHEMES[spec.init].spectral:
            twin = make_model(spec, seed, init="lecun").to(device=dev, dtype=dt)
        desc = f"{spec.arch} ({spec.n_layers} layers, init {spec.init}" + \
            (f", scale {spec.scale:g}" if SCHEMES[spec.init].takes_scale else "") + ")"
    elif spec.source == "checkpoint":
        model, tspec, step = checkpoint_model(spec)
        x = checkpoint_inputs(tspec, spec.batch, seed)
        setting = Setting(tspec.scheme, tspec.scale, eps, trained=True)
        desc = f"checkpoint {Path(spec.checkpoint).name} (step {step}): {tspec.arch} D " \
               f"trained with {tspec.scheme}"
    else:
        model = user_model(spec, seed)
        x = make_inputs(spec, seed)
        trial_forward(model.double(), x, "--model/--input-shape")
        setting = Setting(None, 1.0, eps)
        desc = f"{type(model).__name__} ({spec.model})"
    model = model.to(device=dev, dtype=dt).eval()
    return Subject(model, x.to(device=dev, dtype=dt), setting, spec.source, desc, twin)
