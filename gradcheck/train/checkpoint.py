"""Training checkpoints: atomic writes, ``torch.load(..., weights_only=True)`` reads.

A checkpoint is a dict of tensors, state dicts and plain values only:
``format``, ``spec`` (the resolved TrainSpec as a dict), ``step``, ``D``, ``G``, ``opt_D``,
``opt_G``, ``rng`` (the training generator's state).
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import torch

FORMAT = "gradcheck-checkpoint/1"
KEYS = ("format", "spec", "step", "D", "G", "opt_D", "opt_G", "rng")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match what it claims to be."""


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(dict(state, format=FORMAT), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint with ``weights_only=True``; CheckpointError (one line) on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a corrupt checkpoint
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path}: cannot be read ({first[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a gradcheck training checkpoint "
                              f"(expected format {FORMAT!r})")
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path}: missing {', '.join(missing)}")
    return state


def checkpoint_files(run_dir: Path) -> list[Path]:
    """``ckpt_<step>.pt`` files of a training run, by step."""
    files = [p for p in Path(run_dir).glob("ckpt_*.pt") if re.fullmatch(r"ckpt_\d+\.pt", p.name)]
    return sorted(files, key=lambda p: int(p.stem.split("_")[1]))
