"""True FID of a training run's generators, with Inception weights the user supplies as a file.

``gradcheck fid RUN_DIR --weights FILE`` (Python: :func:`run_fid`) computes the Fréchet
Inception Distance of the generator of chosen checkpoints ``RUN_DIR/ckpt_<step>.pt`` of a
gradcheck image training run against the run's own training data, and writes
``RUN_DIR/fid.csv`` (``step, fid, samples, real_n, weights_sha256``).

**Standard FID only with the standard weights.** The numbers are FID as the literature reports it
only with pytorch-fid's weights file ``pt_inception-2015-12-05-6726825d.pth`` (the TensorFlow FID
Inception ported to PyTorch), which you download yourself from
https://github.com/mseitzer/pytorch-fid/releases (``fid_weights``); gradcheck never downloads
anything. Any other file with the same keys and shapes (e.g. random weights) loads too and gives
a Fréchet distance in *its* features; ``weights_sha256`` in fid.csv says which file was used, and
a file whose sha256 does not start with ``6726825d`` (the hash prefix in the standard file's
name) gets a note on stderr.

**Pipeline** (pytorch-fid's, for images that are already floats): images ``(N, C, H, W)`` in
[-1, 1], as gradcheck's generators and data sets produce them, are clamped to [-1, 1], grayscale
repeated to 3 channels, resized to 299x299 (bilinear, ``align_corners=False``) and fed to
:class:`~gradcheck.train.inception.FIDInceptionV3` directly — pytorch-fid maps its [0, 1] input by
``2x - 1`` to this same range — giving 2048 features per image, float32 on the chosen device;
means and covariances (``n - 1``) in float64; the distance is
:func:`gradcheck.train.data.frechet_of_features` (the formula the digits proxy and the image
proxy use, tested against scipy's ``sqrtm``). Images are not quantised to 8 bits (pytorch-fid on
saved PNG files would be). On CUDA, TF32 is switched off for the Inception forward.

**Samples.** ``--samples`` images from the generator in eval mode (BatchNorm running
statistics, so a sample does not depend on the batch it was drawn in), from the noise of
``torch.Generator().manual_seed(spec.seed + 4)`` — the same noise for every checkpoint of a run.
The reference statistics are those of the run's training set (``load_data(spec)``; ``--real N``:
a fixed seeded subset of N), computed once and cached in ``$GRADCHECK_CACHE_DIR`` (default
``~/.cache/gradcheck``) under a key of the weights file's sha256, the sha256 of the real images'
bytes, N and the input size; the cache is read with ``weights_only=True`` and a damaged entry is
recomputed.

**Bias.** FID from finite samples is biased upwards, strongly so below a few thousand samples
(the 2048x2048 covariance of 1000 samples has rank at most 999): compare values only at equal
``--samples`` (and equal ``--real``). Cost: one Inception forward is ~6 GFLOP per image at
299x299, about 0.2 s per image on two CPU cores; the progress lines on stderr give an ETA.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .._device import resolve_device
from ..spec import SpecError, TrainSpec
from .data import feature_stats, frechet_of_features, gaussian_frechet

#: the input side of the FID network
INPUT_SIZE = 299
STATS_FORMAT = "gradcheck-fid-stats/1"
#: the sample noise comes from torch.Generator().manual_seed(spec.seed + NOISE_SEED_OFFSET)
NOISE_SEED_OFFSET = 4
#: the --real subset comes from torch.Generator().manual_seed(REAL_SUBSET_SEED)
REAL_SUBSET_SEED = 0
COLUMNS = ("step", "fid", "samples", "real_n", "weights_sha256")
CSV_NAME = "fid.csv"


# ------------------------------------------------------------------------------------------------
# Features and the distance
# ------------------------------------------------------------------------------------------------

def inception_input(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """``(B, 1 | 3, H, W)`` in [-1, 1] -> ``(B, 3, size, size)`` float32: clamped, grayscale
    repeated to 3 channels, bilinear resize (``align_corners=False``) unless already that size."""
    x = torch.as_tensor(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"FID takes images (n, 1 or 3, H, W); got {tuple(x.shape)}")
    x = x.float().clamp(-1.0, 1.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


@contextlib.contextmanager
def _no_tf32(device: torch.device):
    """Full float32 convolutions and matmuls on CUDA inside the block (restored afterwards)."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def fid_features(images: torch.Tensor, model: nn.Module, batch: int = 50,
                 size: int = INPUT_SIZE, progress=None) -> torch.Tensor:
    """``(N, 2048)`` float64 CPU Inception features of ``images`` ``(N, 1 | 3, H, W)`` in [-1, 1].

    Runs ``model`` (a :class:`~gradcheck.train.inception.FIDInceptionV3`) on its own device, in
    chunks of ``batch`` images; ``size`` is the input side (299 for FID; tests use less, >= 75).
    ``progress(k)`` is called after each chunk with the number of images it held.
    """
    device = next(model.parameters()).device
    out = []
    with torch.no_grad(), _no_tf32(device):
        for i in range(0, len(images), batch):
            x = inception_input(images[i:i + batch].to(device), size)
            out.append(model(x).to("cpu", torch.float64))
            if progress is not None:
                progress(len(x))
    if not out:
        raise ValueError("FID needs at least one image")
    return torch.cat(out)


def fid(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """FID between two feature sets ``(n_a, 2048)``, ``(n_b, 2048)``: the Fréchet distance of
    their Gaussian fits (:func:`gradcheck.train.data.frechet_of_features`); ``inf`` if any
    feature is non-finite."""
    return frechet_of_features(feats_a, feats_b)


def fid_from_stats(mu1, cov1, mu2, cov2) -> float:
    """FID from ``(mean, covariance)`` pairs (cached reference statistics); ``inf`` when any
    entry is non-finite."""
    ts = [torch.as_tensor(t, dtype=torch.float64) for t in (mu1, cov1, mu2, cov2)]
    if not all(bool(torch.isfinite(t).all()) for t in ts):
        return math.inf
    return gaussian_frechet(*ts)


# ------------------------------------------------------------------------------------------------
# Reference statistics of the real data, cached
# ------------------------------------------------------------------------------------------------

def tensor_sha256(x: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes."""
    x = x.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{x.dtype}|{tuple(x.shape)}|".encode())
    h.update(x.numpy().tobytes())
    return h.hexdigest()


def stats_cache_path(weights_sha256: str, data_sha256: str, n: int, size: int) -> Path:
    """The cache file of the reference statistics for these weights, real images, n and size."""
    from .digits import cache_dir

    key = hashlib.sha256(f"{STATS_FORMAT}|{weights_sha256}|{data_sha256}|{n}|{size}".encode())
    return cache_dir() / f"fid_stats_{key.hexdigest()[:24]}.pt"


def _read_stats(path: Path, n: int):
    from .checkpoint import safe_load

    try:
        st = safe_load(path)
        mu, cov = st["mu"], st["cov"]
        ok = (st.get("format") == STATS_FORMAT and st.get("n") == n and
              isinstance(mu, torch.Tensor) and isinstance(cov, torch.Tensor) and
              mu.shape == (cov.shape[0],) and cov.shape == (mu.shape[0], mu.shape[0]) and
              bool(torch.isfinite(mu).all()) and bool(torch.isfinite(cov).all()))
        return (mu.double(), cov.double()) if ok else None
    except Exception:  # noqa: BLE001 - any unreadable / mismatched cache entry: recompute
        return None


def _write_stats(path: Path, mu: torch.Tensor, cov: torch.Tensor, n: int) -> None:
    from ..report.io import atomic_path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(dict(format=STATS_FORMAT, mu=mu, cov=cov, n=n), tmp)
    except OSError:
        pass                                # unwritable cache: recompute next time


def reference_stats(real: torch.Tensor, model: nn.Module, weights_sha256: str, batch: int = 50,
                    size: int = INPUT_SIZE, progress=None, cached=None
                    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(mean, covariance, from_cache)`` of the Inception features of ``real``: from the
    cache when an entry for (weights, these exact images, n, size) exists, else computed and
    cached. ``cached``: the result of :func:`cached_stats` when the caller already has it."""
    path, hit = cached if cached is not None else cached_stats(real, weights_sha256, size)
    if hit is not None:
        return hit[0], hit[1], True
    mu, cov = feature_stats(fid_features(real, model, batch, size, progress))
    _write_stats(path, mu, cov, len(real))
    return mu, cov, False


def cached_stats(real: torch.Tensor, weights_sha256: str, size: int = INPUT_SIZE):
    """``(cache path, (mean, cov) or None)`` for the reference statistics of ``real``."""
    path = stats_cache_path(weights_sha256, tensor_sha256(real), len(real), size)
    return path, (_read_stats(path, len(real)) if path.is_file() else None)


# ------------------------------------------------------------------------------------------------
# Validation: everything is checked before any work or write
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FidPlan:
    """A validated ``gradcheck fid`` job."""

    run_dir: Path
    spec: TrainSpec
    steps: tuple[int, ...]
    generators: tuple[nn.Module, ...]   # one per step, eval mode, on ``device``
    real: torch.Tensor                  # (real_n, C, H, W) CPU float32
    model: nn.Module                    # the FID Inception, on ``device``
    weights: Path
    weights_sha256: str
    device: torch.device
    samples: int
    batch: int
    size: int


#: the largest --samples / --real / --batch accepted (a typo such as 10000000000 is refused
#: before any work; 1e6 Inception forwards are already ~2 days of CPU)
MAX_IMAGES = 1_000_000


def _int_arg(name: str, value, low: int, high: int = MAX_IMAGES) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"argument {name}: must be an integer in [{low}, {high}]; "
                        f"got {value!r}")
    return value


def parse_steps(text: str, available: list[int]) -> tuple[int, ...]:
    """``all`` | ``last`` | a comma list of steps, each of which must have a checkpoint."""
    text = str(text).strip()
    if text == "all":
        return tuple(available)
    if text == "last":
        return (available[-1],)
    try:
        steps = [int(s) for s in text.split(",")]
    except ValueError:
        raise SpecError(f"argument --steps: must be all, last or a comma list of steps; got "
                        f"{text!r}") from None
    have = set(available)
    missing = [s for s in steps if s not in have]
    if missing:
        shown = ", ".join(map(str, available[:12])) + (", ..." if len(available) > 12 else "")
        raise SpecError(f"argument --steps: no checkpoint for step(s) "
                        f"{', '.join(map(str, missing))}; the run has steps {shown}")
    return tuple(sorted(set(steps)))


def _load_generators(run_dir: Path, steps, device):
    from .checkpoint import CheckpointError, load_checkpoint
    from .data import DataError
    from .gan import build_generator, load_data

    spec, real, gens = None, None, []
    for step in steps:
        path = run_dir / f"ckpt_{step}.pt"
        try:
            state = load_checkpoint(path)
            s = TrainSpec.from_dict(state["spec"])
        except (CheckpointError, SpecError) as e:
            raise SpecError(f"argument RUN_DIR: {e}") from None
        if spec is None:
            spec = s
            if spec.is_toy:
                raise SpecError(f"argument RUN_DIR: {run_dir} is a run on 2-D points (--data "
                                f"{spec.data}); FID needs an image run (shapes, digits, "
                                "cifar10:, npy: images)")
            try:
                real = load_data(spec)
            except DataError as e:
                raise SpecError(f"argument RUN_DIR: its training data cannot be loaded ({e})"
                                ) from None
            if real.ndim != 4 or real.shape[1] not in (1, 3):
                raise SpecError(f"argument RUN_DIR: FID needs 1- or 3-channel images; the run's "
                                f"data has shape {'x'.join(map(str, real.shape[1:]))}")
        elif s != spec:
            raise SpecError(f"argument RUN_DIR: {path.name} holds a different training spec than "
                            f"ckpt_{steps[0]}.pt; not one run")
        try:
            with torch.random.fork_rng(devices=[]):     # build_generator seeds torch's RNG
                G = build_generator(spec, real[:2])
            G.load_state_dict(state["G"])
        except DataError as e:
            raise SpecError(f"argument RUN_DIR: {e}") from None
        except (RuntimeError, KeyError, TypeError, ValueError) as e:
            raise SpecError(f"argument RUN_DIR: {path.name}: G does not match its spec: "
                            f"{' '.join(str(e).split())[:160]}") from None
        gens.append(G.requires_grad_(False).eval().to(device))
    return spec, real, gens


def plan_fid(run_dir, weights, samples: int = 1000, batch: int = 50, steps="all",
             device: str = "cpu", real: int | None = None, force: bool = False,
             size: int = INPUT_SIZE) -> FidPlan:
    """Check every input (cheap checks first); SpecError with one line on the first problem."""
    from ..report.io import dir_kind
    from .checkpoint import checkpoint_files
    from .inception import MIN_SIZE, check_weights_path, file_sha256, load_fid_inception

    samples = _int_arg("--samples", samples, 2)
    batch = _int_arg("--batch", batch, 1)
    if real is not None:
        real = _int_arg("--real", real, 2)
    size = _int_arg("size", size, MIN_SIZE, 4096)
    dev = resolve_device(device)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SpecError(f"argument RUN_DIR: {run_dir} is not a directory")
    if dir_kind(run_dir) != "train":
        raise SpecError(f"argument RUN_DIR: {run_dir} is not a gradcheck training run")
    files = checkpoint_files(run_dir)
    if not files:
        raise SpecError(f"argument RUN_DIR: no ckpt_<step>.pt files in {run_dir}")
    chosen = parse_steps(steps, [int(f.stem.split("_")[1]) for f in files])
    out = run_dir / CSV_NAME
    if out.is_dir() or out.is_symlink():
        raise SpecError(f"argument RUN_DIR: {out} exists and is not a regular file")
    if out.exists() and not force:
        raise SpecError(f"argument RUN_DIR: {out} exists; pass --force to overwrite it")
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise SpecError(f"argument RUN_DIR: cannot write {out} (no write access to {run_dir})")
    weights = check_weights_path(weights)    # cheap, before the data and generators load
    spec, data, gens = _load_generators(run_dir, chosen, dev)
    if real is not None:
        if real > len(data):
            raise SpecError(f"argument --real: {real} exceeds the run's {len(data)} training "
                            "images")
        gen = torch.Generator().manual_seed(REAL_SUBSET_SEED)
        data = data[torch.randperm(len(data), generator=gen)[:real]]
    model = load_fid_inception(weights, dev)
    return FidPlan(run_dir=run_dir, spec=spec, steps=chosen, generators=tuple(gens), real=data,
                   model=model, weights=weights, weights_sha256=file_sha256(weights), device=dev,
                   samples=samples, batch=batch, size=size)


# ------------------------------------------------------------------------------------------------
# The job
# ------------------------------------------------------------------------------------------------

class _Progress:
    """``fid: <what> 1200/4000 images, 95 s, ETA 3m40s`` on stderr, at most every 2 s."""

    def __init__(self, total: int, say):
        self.total, self.done, self.say = total, 0, say
        self.t0 = self.last = time.perf_counter()
        self.what = ""

    def __call__(self, k: int) -> None:
        self.done += k
        now = time.perf_counter()
        if self.say is None or (now - self.last < 2.0 and self.done < self.total):
            return
        self.last = now
        el = now - self.t0
        eta = el / self.done * (self.total - self.done) if self.done else math.nan
        self.say(f"fid: {self.what}: {self.done}/{self.total} images, {_dur(el)}, "
                 f"ETA {_dur(eta)}")


def _dur(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    return f"{s:.0f} s" if s < 90 else f"{int(s // 60)}m{int(s % 60):02d}s"


def _samples(G: nn.Module, spec: TrainSpec, plan: FidPlan):
    """The fixed evaluation noise, in chunks of ``plan.batch``, through G (eval mode)."""
    z = torch.randn(plan.samples, spec.z_dim,
                    generator=torch.Generator().manual_seed(spec.seed + NOISE_SEED_OFFSET))
    with torch.no_grad():
        for i in range(0, plan.samples, plan.batch):
            yield G(z[i:i + plan.batch].to(plan.device))


def execute(plan: FidPlan, say=None) -> list[dict]:
    """FID rows (one per step) of a validated plan; nothing is written."""
    from .inception import STANDARD_FILE, STANDARD_SHA256_PREFIX

    sha = plan.weights_sha256
    if say is not None and not sha.startswith(STANDARD_SHA256_PREFIX):
        say(f"fid: note: {plan.weights.name} (sha256 {sha[:12]}...) is not {STANDARD_FILE} "
            f"(sha256 {STANDARD_SHA256_PREFIX}...): the values are Frechet distances in its "
            "features, not standard FID")
    cached = cached_stats(plan.real, sha, plan.size)
    total = plan.samples * len(plan.steps) + (0 if cached[1] is not None else len(plan.real))
    prog = _Progress(total, say)
    prog.what = f"reference statistics ({len(plan.real)} training images)"
    mu_r, cov_r, hit = reference_stats(plan.real, plan.model, sha, plan.batch, plan.size, prog,
                                       cached)
    if hit and say:
        say(f"fid: reference statistics of {len(plan.real)} training images from the cache "
            f"({cached[0]})")
    rows = []
    for step, G in zip(plan.steps, plan.generators):
        prog.what = f"step {step} ({plan.samples} samples)"
        feats = torch.cat([fid_features(x, plan.model, plan.batch, plan.size, prog)
                           for x in _samples(G, plan.spec, plan)])
        value = math.inf
        if bool(torch.isfinite(feats).all()):
            value = fid_from_stats(*feature_stats(feats), mu_r, cov_r)
        rows.append(dict(step=step, fid=value, samples=plan.samples, real_n=len(plan.real),
                         weights_sha256=sha))
    return rows


def write_rows(rows: list[dict], path: Path) -> None:
    """fid.csv atomically (temporary file in the same folder, then rename); floats with 17
    significant digits."""
    from ..report.io import atomic_path

    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "fid": f"{r['fid']:.17g}"})


def run_fid(run_dir, weights, samples: int = 1000, batch: int = 50, steps="all",
            device: str = "cpu", real: int | None = None, force: bool = False, progress=None,
            size: int = INPUT_SIZE, write: bool = True) -> list[dict]:
    """FID of the generators of a training run; writes ``RUN_DIR/fid.csv`` unless ``write``
    is False; returns the rows (``step, fid, samples, real_n, weights_sha256``).

    ``steps``: ``"all"``, ``"last"``, a comma list or a list of ints; ``real``: size of the
    seeded subset of the training set used as reference (None: all of it); ``progress``: a
    callable taking one line of text. Every input is validated before any work (SpecError).
    """
    if not isinstance(steps, str):
        steps = ",".join(str(int(s)) for s in steps)
    plan = plan_fid(run_dir, weights, samples, batch, steps, device, real,
                    force=force or not write, size=size)
    rows = execute(plan, progress)
    if write:
        write_rows(rows, plan.run_dir / CSV_NAME)
    return rows


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # noqa: D102 - one line, no usage dump
        raise SpecError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gradcheck fid",
                description="Frechet Inception Distance of the generators of a gradcheck image "
                "training run against its training data, with the FID Inception weights you "
                "supply as a file; writes RUN_DIR/fid.csv (step, fid, samples, real_n, "
                "weights_sha256).",
                epilog="Standard FID needs pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
                "(download it from https://github.com/mseitzer/pytorch-fid/releases; gradcheck "
                "downloads nothing). FID is biased upwards at small sample counts: compare "
                "values only at equal --samples. About 0.2 s per image on two CPU cores. "
                "exit codes: 0 written; 2 usage or input error (one line, nothing written); "
                "3 internal error; 130 interrupted")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a gradcheck train --out")
    p.add_argument("--weights", type=Path, required=True, metavar="FILE",
                   help="FID Inception state_dict (pt_inception-2015-12-05-6726825d.pth), "
                   "loaded with weights_only=True")
    p.add_argument("--samples", type=int, default=1000,
                   help="generated images per checkpoint (default 1000)")
    p.add_argument("--real", type=int, default=None, metavar="N",
                   help="reference: a seeded subset of N training images (default: all)")
    p.add_argument("--batch", type=int, default=50, help="images per Inception forward "
                   "(default 50)")
    p.add_argument("--steps", default="all", help="all | last | a comma list of checkpoint "
                   "steps (default all)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--force", action="store_true", help="overwrite an existing RUN_DIR/fid.csv")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def table(rows: list[dict]) -> str:
    """The rows as a small text table."""
    lines = [f"{'step':>8}  {'fid':>12}  {'samples':>7}  {'real_n':>7}"]
    lines += [f"{r['step']:>8}  {r['fid']:>12.4f}  {r['samples']:>7}  {r['real_n']:>7}"
              for r in rows]
    return "\n".join(lines)


def main(argv: list[str], check_out_dir=None) -> int:
    """``gradcheck fid RUN_DIR --weights FILE ...``; 0 when fid.csv is written.

    ``check_out_dir`` (handed in by ``gradcheck.cli``) is not needed: fid.csv goes into an
    existing training run, which :func:`plan_fid` checks itself.
    """
    from .._errors import preload

    ns = build_parser().parse_args(argv)
    say = None if ns.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    preload()
    plan = plan_fid(ns.run_dir, ns.weights, ns.samples, ns.batch, ns.steps, ns.device, ns.real,
                    ns.force, size=INPUT_SIZE)
    if say:
        say(f"fid: {len(plan.steps)} checkpoint(s) of {plan.run_dir} ({plan.spec.data}), "
            f"{plan.samples} samples each, {len(plan.real)} real images, {plan.device.type}")
    rows = execute(plan, say)
    out = plan.run_dir / CSV_NAME
    write_rows(rows, out)
    print(table(rows))
    print(f"written: {out} (weights sha256 {plan.weights_sha256[:12]}...; FID from "
          f"{plan.samples} samples is biased upwards: compare only at equal --samples)")
    return 0


__all__ = ["fid_features", "fid", "fid_from_stats", "reference_stats", "cached_stats",
           "run_fid", "plan_fid", "execute", "inception_input", "main", "INPUT_SIZE", "COLUMNS"]
