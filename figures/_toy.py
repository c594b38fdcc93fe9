"""The toy GAN runs shared by F5, F6 and F7: ring-of-8 data, MLP D and G (THEORY C10).

One training spec per (scheme, scale, seed) and figure size; the runs are cached under
``OUT/runs`` (``figures._engine.trained_run``), so F5 and F6 train each scheme once. Quick and
full mode train with the measured 2-D defaults of ``gradcheck train --data ring`` (4000 steps,
batch 512, 2 D steps, lr 1e-3 decaying linearly, Adam betas (0, 0.9); README "Training the toy
GANs"), under which SN/BSN GANs learn the ring: quick one seed, full three.
"""
from __future__ import annotations

from gradcheck.spec import TrainSpec

#: per size: TrainSpec fields other than scheme / scale / seed, and the seeds.
TOY = {
    "tiny": (dict(steps=60, log_every=10, ckpt_every=30, n_data=1000, width=32, batch=32,
                  lr=1e-3), (0,)),
    "quick": (dict(log_every=50, ckpt_every=500), (0,)),
    "full": (dict(log_every=50, ckpt_every=500), (0, 1, 2)),
}
#: probe batch of ``gradcheck track`` per size
TRACK_BATCH = {"tiny": 8, "quick": 64, "full": 128}


def toy_spec(size: str, scheme: str, scale: float = 1.0, seed: int = 0) -> TrainSpec:
    fields, _ = TOY[size]
    return TrainSpec(data="ring", scheme=scheme, scale=scale, seed=seed, **fields)


def toy_seeds(size: str) -> tuple[int, ...]:
    return TOY[size][1]
