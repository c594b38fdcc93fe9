"""Atomic, deterministic writes of a run directory.

A run directory is staged in a hidden sibling and renamed into place only when complete, so an
error never leaves a half-written output directory. Files are byte-identical for the same spec
and seed (CSV floats with 17 significant digits, zip entries with a fixed timestamp); only
``timings.json`` records wall-clock time.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from .._proc import pid_alive

#: every directory gradcheck writes carries this manifest: {"kind": ..., "version": ...}
MANIFEST = "gradcheck.json"
KINDS = ("run", "train", "track", "prove", "figures", "sweep", "compare", "study")


def write_manifest(directory: Path, kind: str) -> None:
    """Mark ``directory`` as written by gradcheck's ``kind`` subcommand."""
    from .. import __version__

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    (Path(directory) / MANIFEST).write_text(
        json.dumps({"kind": kind, "version": __version__}, indent=2, sort_keys=True) + "\n")


def dir_kind(directory: Path) -> str | None:
    """The kind of a gradcheck output directory: its manifest, or for directories written
    before manifests existed, what its files say; None for anything else."""
    d = Path(directory)
    try:
        meta = json.loads((d / MANIFEST).read_text())
        if isinstance(meta, dict) and meta.get("kind") in KINDS:
            return meta["kind"]
        return None
    except (OSError, ValueError):
        pass
    if any(d.glob("ckpt_*.pt")) or (d / "metrics.csv").exists():
        return "train"
    if (d / "spec.json").exists() and (d / "layers.csv").exists():
        return "run"
    if (d / "prove.csv").exists():
        return "prove"
    if any(d.glob("f[1-8].csv")):
        return "figures"
    return None


def holds_checkpoints(directory: Path) -> bool:
    return any(Path(directory).glob("ckpt_*.pt"))


def remove_stale_staging(final: Path) -> None:
    """Delete staging siblings ``.<name>.tmp-<pid>-*`` left by killed processes."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    for p in final.parent.glob(f".{final.name}.tmp-*"):
        parts = p.name[len(f".{final.name}.tmp-"):].split("-", 1)
        if parts[0].isdigit() and int(parts[0]) != os.getpid() and not pid_alive(int(parts[0])):
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(final: Path, overwrite: bool = False, kind: str | None = None):
    """Yield a temporary directory that becomes ``final`` when the block exits cleanly.

    ``kind`` writes the manifest. An existing ``final`` is replaced only with ``overwrite``,
    only if it is of the same kind, and never if it holds checkpoints. Files and directories
    follow the umask.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)              # mkdtemp makes 0700; follow the umask
    try:
        yield tmp
        if kind is not None:
            write_manifest(tmp, kind)
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} exists")
            if kind is not None and any(final.iterdir()) and dir_kind(final) != kind:
                raise FileExistsError(f"{final} is not a {kind} directory")
            if holds_checkpoints(final):
                raise FileExistsError(f"{final} holds checkpoints")
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: Path):
    """A temporary file ``.<name>.tmp-<pid>-<random>`` beside ``path`` to write in the block;
    renamed onto ``path`` when the block ends without error (readers never see a torn file) and
    removed otherwise. The file's mode follows the umask (``mkstemp`` makes 0600).

    The varying part comes after the name's last dot, so ``torch.save``, which names its archive
    after the file's stem (``.<name>``), writes the same bytes whatever the temporary name.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, float_format="%.17g", lineterminator="\n")


def strict_json(obj):
    """``obj`` with every NaN / +-inf float replaced by None and a sibling ``<key>_nonfinite``
    naming what it was (strict JSON: no bare NaN / Infinity)."""
    import math

    def fix(v):
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if isinstance(x, (float, np.floating)) and not math.isfinite(float(x)):
                    out[k] = None
                    out[f"{k}_nonfinite"] = "nan" if math.isnan(float(x)) else \
                        ("inf" if float(x) > 0 else "-inf")
                else:
                    out[k] = fix(x)
            return out
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        if isinstance(v, (float, np.floating)):
            return float(v) if math.isfinite(float(v)) else None
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, np.bool_):
            return bool(v)
        return v
    return fix(obj)


def write_json(obj, path: Path) -> None:
    """Strict JSON (NaN / inf as null with a ``<key>_nonfinite`` reason), sorted keys."""
    Path(path).write_text(json.dumps(strict_json(obj), indent=2, sort_keys=True,
                                     allow_nan=False) + "\n")


def write_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Like ``np.savez`` but with fixed zip timestamps (byte-identical across runs)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, buf.getvalue())


def unique_dir(base: Path) -> Path:
    """``base`` if free, else ``base-2``, ``base-3``, ..."""
    if not base.exists():
        return base
    k = 2
    while Path(f"{base}-{k}").exists():
        k += 1
    return Path(f"{base}-{k}")
