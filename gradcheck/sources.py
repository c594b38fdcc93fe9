"""Where a probed model comes from: built in (from the spec), a training checkpoint, or the
user's own ``nn.Module`` (``--model pkg.module:factory [--weights FILE] --input-shape ...``).

Every failure here is a user-input error: it raises ``SpecError`` with one clear line.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch
from torch import nn

from .spec import RunSpec, SpecError, TrainSpec


def user_model(spec: RunSpec) -> nn.Module:
    """Import ``pkg.module:factory``, call it, load ``--weights`` (weights_only) if given."""
    mod_name, fn_name = spec.model.split(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 - the user's import, any failure is input
        raise SpecError(f"argument --model: cannot import {mod_name!r}: "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    factory = getattr(module, fn_name, None)
    if not callable(factory):
        raise SpecError(f"argument --model: {mod_name!r} has no callable {fn_name!r}")
    try:
        model = factory()
    except Exception as e:  # noqa: BLE001
        raise SpecError(f"argument --model: {spec.model}() raised {type(e).__name__}: {e}")
    if not isinstance(model, nn.Module):
        raise SpecError(f"argument --model: {spec.model}() returned {type(model).__name__}, "
                        "not an nn.Module")
    if spec.weights:
        try:
            state = torch.load(spec.weights, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise SpecError(f"argument --weights: cannot read {spec.weights} "
                            f"({str(e).strip().splitlines()[0][:200] if str(e).strip() else e!r})")
        if isinstance(state, dict) and "D" in state and "format" in state:
            state = state["D"]
        try:
            model.load_state_dict(state)
        except Exception as e:  # noqa: BLE001
            raise SpecError(f"argument --weights: does not match {spec.model}: "
                            f"{str(e).strip().splitlines()[0][:200]}")
    return model


def checkpoint_model(spec: RunSpec) -> tuple[nn.Module, TrainSpec, int]:
    """D of a training checkpoint (weights and SN state restored), its TrainSpec and step."""
    from .train.checkpoint import CheckpointError, load_checkpoint
    from .train.gan import build_discriminator, load_data

    try:
        state = load_checkpoint(Path(spec.checkpoint))
        tspec = TrainSpec.from_dict(state["spec"])
        data = load_data(tspec)
        D = build_discriminator(tspec, data[:2])
        D.load_state_dict(state["D"])
    except CheckpointError as e:
        raise SpecError(f"argument --checkpoint: {e}")
    except (RuntimeError, KeyError, TypeError) as e:
        raise SpecError(f"argument --checkpoint: {spec.checkpoint} does not match its spec: "
                        f"{str(e).strip().splitlines()[0][:200]}")
    except SpecError as e:
        raise SpecError(f"argument --checkpoint: {spec.checkpoint}: {e}")
    return D, tspec, int(state["step"])


def checkpoint_inputs(tspec: TrainSpec, batch: int, seed: int) -> torch.Tensor:
    """A batch of the checkpoint's training data, chosen by ``seed``."""
    from .train.gan import load_data

    data = load_data(tspec)
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:batch]
    return data[idx].double()
