"""spec -> model (+ scheme) and inputs, deterministically from the seed."""
from __future__ import annotations

import math

import torch
from torch import nn

from ._device import resolve_device  # noqa: F401 - re-exported (gradcheck.build.resolve_device)
from .models.registry import ARCHS
from .schemes import apply_scheme
from .spec import RunSpec

DTYPE = {"float64": torch.float64, "float32": torch.float32}


def make_inputs(spec: RunSpec, seed: int) -> torch.Tensor:
    """A batch of inputs ``(batch, *input_shape)`` in float64 (cast by the caller).

    gaussian: i.i.d. N(0, 1) entries. ring: the 8-Gaussian ring of radius 2, std 0.02.
    grid: the 5x5 grid of Gaussians at {-4,-2,0,2,4}^2, std 0.05.
    """
    gen = torch.Generator().manual_seed(10_000 + int(seed))
    B = spec.batch
    if spec.inputs == "gaussian":
        return torch.randn((B, *spec.input_shape), generator=gen, dtype=torch.float64)
    if spec.inputs not in ("ring", "grid"):
        return dataset_inputs(spec.inputs, B, seed, tuple(spec.input_shape))
    if spec.inputs == "ring":
        k = torch.randint(0, 8, (B,), generator=gen)
        ang = 2 * math.pi * k.double() / 8
        centres, std = 2.0 * torch.stack([ang.cos(), ang.sin()], 1), 0.02
    else:
        k = torch.randint(0, 25, (B,), generator=gen)
        centres, std = torch.stack([(k // 5).double() * 2 - 4, (k % 5).double() * 2 - 4], 1), 0.05
    return centres + std * torch.randn((B, 2), generator=gen, dtype=torch.float64)


def dataset_inputs(name: str, batch: int, seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """``batch`` rows of the data set ``name`` (shapes, npy:PATH, cifar10:PATH) chosen by
    ``seed``, float64; a shape that does not fit the model is a one-line ``SpecError``."""
    from .spec import SpecError
    from .train.data import DataError, make_dataset, shapes

    try:
        if name == "shapes":
            if len(shape) != 3 or shape[1] != shape[2]:
                raise DataError(f"shapes are square images; the model takes {shape}")
            x = shapes(batch, 10_000 + int(seed), size=shape[1], channels=shape[0])
        else:
            x = make_dataset(name, batch, 10_000 + int(seed))
    except DataError as e:
        raise SpecError(f"argument --inputs: {e}") from None
    if tuple(x.shape[1:]) != tuple(shape):
        raise SpecError(f"argument --inputs: {name} holds samples of shape "
                        f"{'x'.join(map(str, x.shape[1:]))}; the model takes "
                        f"{'x'.join(map(str, shape))}")
    return x.double()


def make_model(spec: RunSpec, seed: int, init: str | None = None) -> nn.Module:
    """The discriminator of ``spec`` with its scheme (or ``init`` instead) applied, float64."""
    act = spec.resolved_activation
    model = ARCHS[spec.arch].build(spec).to(torch.float64)
    example = torch.zeros((1, *spec.input_shape), dtype=torch.float64)
    apply_scheme(model, init or spec.init, example, seed=seed, scale=spec.scale,
                 activation=act, slope=spec.slope, mode=spec.sn_mode,
                 n_power_iterations=spec.power_iterations)
    return model.eval()
