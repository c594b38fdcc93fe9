"""Training checkpoints: atomic writes, ``torch.load(..., weights_only=True)`` reads.

A checkpoint is a dict of tensors, state dicts and plain values only:
``format``, ``spec`` (the resolved TrainSpec as a dict), ``step``, ``D``, ``G``, ``opt_D``,
``opt_G``, ``rng`` (the training generator's state).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

FORMAT = "gradcheck-checkpoint/1"
KEYS = ("format", "spec", "step", "D", "G", "opt_D", "opt_G", "rng")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match what it claims to be."""


def _canonical(obj):
    """A fresh copy with no shared sub-objects, so that pickling it gives the same bytes for
    equal states whether they were built by training or by a resume (pickle memoises shared
    objects, and a restored optimiser shares differently: 25 bytes apart, tensors equal)."""
    if isinstance(obj, dict):
        return {_canonical(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_canonical(v) for v in obj)
    if isinstance(obj, torch.Tensor):                # CPU tensors: loadable without CUDA
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, str):
        return "".join(obj)              # a new str object, never a shared one
    return obj


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    from ..report.io import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(_canonical(dict(state, format=FORMAT)), tmp)


def safe_load(path: Path):
    """``torch.load(path, weights_only=True)`` with torch's warnings kept off stderr.

    Raises:
        ValueError: one line saying why it cannot be read — never torch's advice to retry
            with ``weights_only=False`` (that would execute arbitrary code from the file).
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure: the file is not loadable
        text = " ".join(str(e).split()) or type(e).__name__
        i = text.find("WeightsUnpickler error:")
        if i >= 0:                # keep torch's diagnosis, drop its advice to disable safety
            detail = text[i + len("WeightsUnpickler error:"):].split(" Check the doc")[0]
            why = (f"not a plain tensor file ({detail.strip()[:120]}): it is corrupt or holds "
                   "objects that weights_only=True refuses for safety")
        elif "weights_only" in text:
            why = "it holds objects that weights_only=True refuses for safety"
        else:
            why = text[:160]
        raise ValueError(f"cannot be read safely: {why}") from None


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint with ``weights_only=True``; CheckpointError (one line) on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        state = safe_load(path)
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a gradcheck training checkpoint "
                              f"(expected format {FORMAT!r})")
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path}: missing {', '.join(missing)}")
    types = dict(spec=dict, step=int, D=dict, G=dict, opt_D=dict, opt_G=dict, rng=torch.Tensor)
    for k, t in types.items():
        v = state[k]
        if not isinstance(v, t) or (t is int and isinstance(v, bool)):
            raise CheckpointError(f"checkpoint {path}: field {k!r} is {type(v).__name__}, "
                                  f"expected {t.__name__}")
    for k in ("D", "G"):
        bad = [n for n, v in state[k].items() if not isinstance(n, str) or
               not isinstance(v, torch.Tensor)]
        if bad:
            raise CheckpointError(f"checkpoint {path}: {k} holds a non-tensor entry {bad[0]!r}")
    if state["step"] < 0:
        raise CheckpointError(f"checkpoint {path}: negative step {state['step']}")
    return state


def checkpoint_files(run_dir: Path) -> list[Path]:
    """``ckpt_<step>.pt`` files of a training run, by step."""
    files = [p for p in Path(run_dir).glob("ckpt_*.pt") if re.fullmatch(r"ckpt_\d+\.pt", p.name)]
    return sorted(files, key=lambda p: int(p.stem.split("_")[1]))
