"""GAN training (hinge loss, Adam; for images one D step per G step and a constant lr, as in
the authors' code; 2-D data: 2 D steps and a linearly decaying lr, measured).

Deterministic: all randomness (weights, data order, z) comes from the spec's seed through
explicit ``torch.Generator`` objects whose states are checkpointed, so an interrupted run that
resumes from its last checkpoint ends with exactly the weights of an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._threads import single_threaded
from ..models.registry import ARCHS
from ..schemes import apply_scheme
from ..schemes.init import parametric_layers
from ..schemes.sigma import sigma_R
from ..spec import TrainSpec
from .checkpoint import CheckpointError, checkpoint_files, load_checkpoint, save_checkpoint
from .generators import ConvGenerator, mlp_generator


def load_data(spec: TrainSpec) -> torch.Tensor:
    """The training set as D sees it: a float32 CPU tensor (generated, or loaded from
    cifar10:/npy:); 2-D data with ``spec.lift`` > 0 gets the constant coordinate appended,
    ``(n, 3)``, as every D input does (:func:`lift`)."""
    from .data import make_dataset

    return lift(make_dataset(spec.data, spec.n_data, spec.seed).float(), spec.lift or 0.0)


def lift(x: torch.Tensor, value: float) -> torch.Tensor:
    """``x`` with the constant column ``value`` appended (``value`` 0: ``x`` unchanged).

    A bias-free ReLU D is positively homogeneous, ``D(a x) = a D(x)``: on 2-D data it cannot
    tell radius 2 from radius 20 and its GAN does not learn (README, "Training"). A constant
    input coordinate gives the first layer the offset a bias would, and keeps D a bias-free
    chain on its (lifted) input, so C1 and the other bias-free claims still apply to it.
    """
    if not value:
        return x
    return torch.cat([x, x.new_full((x.shape[0], 1), float(value))], 1)


def data_dims(spec: TrainSpec, sample: torch.Tensor) -> int:
    """Coordinates of a flat sample that are data (the lift coordinate excluded)."""
    return sample.shape[1] - (1 if spec.lift else 0)


def build_discriminator(spec: TrainSpec, sample: torch.Tensor) -> nn.Module:
    """D of ``spec`` (scheme applied, float32); ``sample`` is one batch of data (shape).

    The architecture comes from :data:`gradcheck.models.registry.ARCHS` (``spec`` resolved);
    image architectures (conv, sngan, resnet) take the channels and size of ``sample``.
    """
    from .data import DataError

    act, shape = spec.activation, tuple(sample.shape[1:])
    try:
        D = ARCHS[spec.arch].train_build(spec, shape).double()
    except ValueError as e:                     # e.g. resnet on images of an unfit size
        raise DataError(f"{spec.data}: samples of shape {'x'.join(map(str, shape))} do not fit "
                        f"--arch {spec.arch} ({e})") from None
    apply_scheme(D, spec.scheme, sample[:2].double(), seed=spec.seed, scale=spec.scale,
                 activation=act, slope=spec.slope, mode=spec.sn_mode,
                 n_power_iterations=spec.power_iterations)
    return D.float()


def build_generator(spec: TrainSpec, sample: torch.Tensor) -> nn.Module:
    torch.manual_seed(spec.seed + 1)          # G uses torch's default init, seeded
    if spec.is_toy:
        return mlp_generator(spec.z_dim, spec.width, 3, data_dims(spec, sample), spec.lift)
    side = sample.shape[-1]
    if sample.ndim != 4 or sample.shape[-2] != side or side < 4 or side & (side - 1):
        from .data import DataError

        raise DataError(f"{spec.data}: samples of shape {'x'.join(map(str, sample.shape[1:]))};"
                        " the image generator needs square images whose side is a power of two "
                        ">= 4 (e.g. 3x32x32)")
    return ConvGenerator(spec.z_dim, sample.shape[-1], sample.shape[1], min(spec.width, 128))


def raw_weight(layer: nn.Module) -> torch.Tensor:
    p = getattr(layer, "parametrizations", None)
    return p["weight"].original if p is not None and "weight" in p else layer.weight


def input_grad_norms(D: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-input ``||dD/dx||`` (eval mode: the power iteration does not move)."""
    was = D.training
    D.eval()
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x)
    D.train(was)
    return g.reshape(len(x), -1).norm(dim=1)


class Trainer:
    """One training run in ``out`` (metrics.csv, ckpt_<step>.pt, spec.json) on ``device``.

    Device-agnostic: data, models and noise are made on the CPU (the training generator is a
    CPU ``torch.Generator``) and moved, so a CUDA run draws the same batches and noise as a CPU
    run; checkpoints hold CPU tensors and resume on either device.
    """

    def __init__(self, spec: TrainSpec, out: Path, progress: bool = True,
                 device: str | torch.device = "cpu"):
        self.spec, self.out, self.progress = spec, Path(out), progress
        self.device = torch.device(device)
        data = load_data(spec)
        self.gen = torch.Generator().manual_seed(spec.seed + 2)
        self.D = build_discriminator(spec, data[:2]).to(self.device)
        self.G = build_generator(spec, data[:2]).to(self.device)
        self.data = data.to(self.device)
        betas = (spec.beta1, spec.beta2)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=spec.lr, betas=betas)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=spec.lr, betas=betas)
        self.step = 0
        self.layers = parametric_layers(self.D)

    # -- state ------------------------------------------------------------------------------
    def state(self) -> dict:
        return dict(spec=self.spec.to_dict(), step=self.step, D=self.D.state_dict(),
                    G=self.G.state_dict(), opt_D=self.opt_D.state_dict(),
                    opt_G=self.opt_G.state_dict(), rng=self.gen.get_state())

    def restore(self, state: dict) -> None:
        if state["spec"] != self.spec.to_dict():
            diff = [f"{k}: {state['spec'].get(k)!r} -> {v!r}"
                    for k, v in self.spec.to_dict().items() if state["spec"].get(k) != v]
            raise CheckpointError("the run directory holds checkpoints of a different training "
                                  f"spec ({'; '.join(diff)}); use a new --out")
        try:
            self.D.load_state_dict(state["D"])
            self.G.load_state_dict(state["G"])
            self.opt_D.load_state_dict(state["opt_D"])
            self.opt_G.load_state_dict(state["opt_G"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint does not match its spec's models: "
                                  f"{str(e).splitlines()[0][:200]}") from None
        self.gen.set_state(state["rng"])
        self.step = int(state["step"])

    def resume(self) -> bool:
        """Restore from the last checkpoint in ``out``, if any; trim metrics after it."""
        files = checkpoint_files(self.out)
        if not files:
            return False
        self.restore(load_checkpoint(files[-1]))
        metrics = self.out / "metrics.csv"
        if metrics.exists():
            rows = list(csv.reader(metrics.open()))
            if rows:
                # rows after the checkpoint, and a torn row (killed mid-write: wrong width or
                # an unparsable step) are dropped
                width = len(rows[0])
                keep = [rows[0]] + [r for r in rows[1:] if len(r) == width and
                                    r[0].isdigit() and int(r[0]) <= self.step]
                with metrics.open("w", newline="") as f:
                    csv.writer(f).writerows(keep)
        return True

    # -- one step ---------------------------------------------------------------------------
    def _batch(self) -> torch.Tensor:
        idx = torch.randint(0, len(self.data), (self.spec.batch,), generator=self.gen)
        return self.data[idx.to(self.device)]

    def _z(self) -> torch.Tensor:
        z = torch.randn(self.spec.batch, self.spec.z_dim, generator=self.gen)
        return z.to(self.device)

    def lr_at(self, step: int) -> float:
        """The Adam learning rate of D and G during G step ``step`` (0-based): ``spec.lr``, or
        ``spec.lr * (1 - step / spec.steps)`` under ``lr_decay = "linear"`` (a function of the
        step only: a resumed run follows the same schedule)."""
        s = self.spec
        return s.lr * (1 - step / s.steps) if s.lr_decay == "linear" else s.lr

    def train_step(self) -> dict:
        D, G, s = self.D, self.G, self.spec
        lr = self.lr_at(self.step)
        for opt in (self.opt_D, self.opt_G):
            for group in opt.param_groups:
                group["lr"] = lr
        D.train()
        G.train()
        for _ in range(s.d_steps):
            real, z = self._batch(), self._z()
            with torch.no_grad():
                fake = G(z)
            loss_d = F.relu(1 - D(real)).mean() + F.relu(1 + D(fake)).mean()
            self.opt_D.zero_grad(set_to_none=True)
            loss_d.backward()
            grads = [float(raw_weight(layer).grad.norm()) for layer in self.layers]
            self.opt_D.step()
        D.eval()                                 # no power-iteration update during the G step
        loss_g = -D(G(self._z())).mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        self.D.zero_grad(set_to_none=True)
        self.step += 1
        return dict(loss_d=float(loss_d.detach()), loss_g=float(loss_g.detach()), grads=grads,
                    real=real)

    def metrics_row(self, info: dict) -> dict:
        with torch.no_grad():
            fake = self.G(self._eval_z())
        row = dict(step=self.step, loss_d=info["loss_d"], loss_g=info["loss_g"])
        for i, layer in enumerate(self.layers):
            row[f"raw_sigma_{i}"] = float(sigma_R(raw_weight(layer).detach().cpu().double()))
        for i, g in enumerate(info["grads"]):
            row[f"grad_{i}"] = g
        row["input_grad_real"] = float(input_grad_norms(self.D, info["real"]).mean())
        row["input_grad_fake"] = float(input_grad_norms(self.D, fake[: self.spec.batch]).mean())
        row.update(self.quality(fake))
        return row

    def _eval_z(self) -> torch.Tensor:
        # a fixed evaluation noise batch, independent of the training generator's stream
        g = torch.Generator().manual_seed(self.spec.seed + 3)
        z = torch.randn(1000 if self.spec.is_toy else 256, self.spec.z_dim, generator=g)
        return z.to(self.device)

    def quality(self, fake: torch.Tensor) -> dict:
        from . import data

        fake = fake.detach().cpu()
        if self.spec.is_toy:
            fake = fake[:, :data_dims(self.spec, fake)]        # the lift coordinate is not data
        if self.spec.data == "ring":
            st = data.mode_stats(fake, data.ring_centres(8, 2.0), 0.02)
        elif self.spec.data == "grid":
            st = data.mode_stats(fake, data.grid_centres(5, 2.0), 0.05)
        elif self.spec.is_toy:        # other point clouds: Frechet distance of Gaussian fits
            real = self.data[:len(fake), :fake.shape[1]].cpu().double()
            f = fake.double()
            return dict(point_frechet=float(data.gaussian_frechet(
                f.mean(0).numpy(), np.cov(f.T.numpy()), real.mean(0).numpy(),
                np.cov(real.T.numpy()))))
        else:
            row = dict(image_proxy=float(data.image_proxy(fake, self.data[:len(fake)].cpu())))
            if self.spec.data == "digits":
                row["digits_frechet"] = self._digits_frechet(fake)
            return row
        return dict(modes_covered=st.modes_covered, high_quality=st.high_quality)

    def _digits_frechet(self, fake: torch.Tensor) -> float:
        """:func:`gradcheck.train.digits.digits_frechet` of ``fake`` vs all 1797 digits (the
        classifier and the real features are computed once per trainer)."""
        from . import digits

        if getattr(self, "_digits_ref", None) is None:
            model = digits.load_classifier()
            self._digits_ref = (model, digits.digits_features(digits.digits_images(), model))
        model, real = self._digits_ref
        return digits.frechet_of_features(digits.digits_features(fake, model), real)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, stop_at: int | None = None) -> None:
        """Train to ``spec.steps`` (or ``stop_at``), logging and checkpointing as specified."""
        from tqdm import tqdm

        end = min(self.spec.steps, stop_at or self.spec.steps)
        metrics = self.out / "metrics.csv"
        bar = tqdm(total=end, initial=self.step, disable=not self.progress, unit="step",
                   desc="train", mininterval=1.0)
        writer_file = metrics.open("a", newline="")
        if metrics.stat().st_size and not metrics.read_bytes().endswith(b"\n"):
            writer_file.write("\n")            # never glue a new row onto a torn one
        writer = None
        if self.step == 0:                      # the initial discriminator, for C10
            save_checkpoint(self.out / "ckpt_0.pt", self.state())
        self.diverged = None
        (self.out / "summary.json").unlink(missing_ok=True)    # rewritten at the end
        try:
            while self.step < end:
                info = self.train_step()
                if not all(math.isfinite(v) for v in (info["loss_d"], info["loss_g"])):
                    # a measurement for C10(f), not a crash: stop, keep what was written, and
                    # say so in summary.json (the last checkpoint is the last finite state)
                    self.diverged = dict(step=self.step, loss_d=info["loss_d"],
                                         loss_g=info["loss_g"])
                    from ..report.io import write_json

                    write_json(dict(diverged=True, **self.diverged), self.out / "summary.json")
                    break
                if self.step % self.spec.log_every == 0 or self.step == end:
                    row = self.metrics_row(info)
                    if writer is None:
                        writer = csv.DictWriter(writer_file, fieldnames=list(row))
                        if metrics.stat().st_size == 0:
                            writer.writeheader()
                    writer.writerow(row)
                    writer_file.flush()
                    bar.set_postfix(loss_d=f"{info['loss_d']:.3f}", loss_g=f"{info['loss_g']:.3f}")
                if self.step % self.spec.ckpt_every == 0 or self.step == self.spec.steps:
                    save_checkpoint(self.out / f"ckpt_{self.step}.pt", self.state())
                bar.update(1)
        finally:
            bar.close()
            writer_file.close()
        if self.diverged is None and self.step >= self.spec.steps:
            from ..report.io import write_json

            write_json(dict(diverged=False, step=self.step, device=self.device.type),
                       self.out / "summary.json")


def train(spec: TrainSpec, out: Path, resume: bool = True, progress: bool = True,
          stop_at: int | None = None, device: str | torch.device = "cpu") -> Trainer:
    """Train (resuming from the last checkpoint in ``out`` if asked); return the trainer.

    ``device``: a torch device (``"cpu"``, ``"cuda"``); resolve ``"auto"`` with
    :func:`gradcheck.build.resolve_device` first.
    """
    out = Path(out)
    t = Trainer(spec, out, progress, device)    # loads the data first: bad input writes nothing
    if resume and checkpoint_files(out):
        t.resume()
    out.mkdir(parents=True, exist_ok=True)
    from ..report.io import write_manifest

    write_manifest(out, "train")
    (out / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n")
    t0 = time.perf_counter()
    # small MLP GANs: thread start-up costs more than the tiny matmuls gain (7x on 2 cores)
    small = spec.arch == "mlp" and t.device.type == "cpu"
    with single_threaded() if small else contextlib.nullcontext():
        t.run(stop_at)
    t.seconds = time.perf_counter() - t0
    return t


__all__ = ["Trainer", "train", "build_discriminator", "build_generator", "load_data", "lift"]
