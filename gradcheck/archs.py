"""Architecture registry: one :class:`Arch` record per built-in discriminator (torch-free).

``gradcheck.spec`` (defaults, derived fields, validation), ``gradcheck.build`` (probe models)
and ``gradcheck.train.gan`` (training discriminators) ask :data:`ARCHS` instead of branching on
the architecture name. The records read a ``RunSpec`` / ``TrainSpec`` by attribute only (no
import of ``gradcheck.spec``, which imports this module); ``spec.resolved_depth`` is the depth
with the architecture's default filled in.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .spec import RunSpec, TrainSpec

ACTIVATIONS = ("relu", "lrelu", "tanh", "linear")
OUTPUTS = ("identity", "sigmoid")


def resnet_downsamples(blocks: int, image_size: int) -> tuple[bool, ...]:
    """Which of the ``blocks`` residual blocks of :func:`gradcheck.models.resnet` halve the
    spatial size: the first always, the second if the result stays >= 4x4, no other.

    Raises:
        ValueError: ``blocks < 1``, or ``image_size`` not a multiple of 4 or below 8.
    """
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1; got {blocks}")
    if image_size < 8 or image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4 and >= 8; got {image_size}")
    return tuple(i == 0 or (i == 1 and image_size // 4 >= 4) for i in range(blocks))


def resnet_layer_count(blocks: int, image_size: int) -> int:
    """Number of Linear/Conv2d modules of the ResNet D (3 per pooling block, 2 otherwise, +1)."""
    return sum(3 if d else 2 for d in resnet_downsamples(blocks, image_size)) + 1



def _builder(module: str, name: str):
    """``name`` of ``gradcheck.models.<module>``, imported on first call (torch-free import)."""
    def build(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(f"gradcheck.models.{module}"), name)(
            *args, **kwargs)
    return build


mlp, conv_stack = _builder("mlp", "mlp"), _builder("conv", "conv_stack")
sngan, resnet = _builder("sngan", "sngan"), _builder("resnet", "resnet")


@dataclass(frozen=True)
class Arch:
    """How one architecture is built, shaped, counted and validated.

    Attributes:
        name: the ``--arch`` value.
        build: RunSpec -> the model (default float dtype, no scheme applied).
        train_build: (TrainSpec resolved, per-sample data shape) -> the training D.
        input_shape: RunSpec -> per-sample input shape.
        n_layers: RunSpec -> number of Linear/Conv2d modules (probe layers L).
        default_depth: ``--depth`` when left out (probe runs; training defaults to 4).
        fixed_depth: the only allowed ``--depth`` (None: free).
        min_depth: smallest ``--depth``.
        max_depth: largest ``--depth``.
        default_activation: ``--activation`` when left out.
        images: takes ``(C, H, W)`` images (else flat vectors).
        fixed_image_size: input size regardless of ``--image-size`` (None: ``--image-size``).
        problem: RunSpec -> one-line SpecError message for an unbuildable spec, or None.
        help: a short description (what ``--depth`` counts).
    """

    name: str
    build: Callable[[RunSpec], "nn.Module"]
    train_build: Callable[[TrainSpec, tuple[int, ...]], "nn.Module"]
    input_shape: Callable[[RunSpec], tuple[int, ...]]
    n_layers: Callable[[RunSpec], int]
    default_depth: int
    fixed_depth: int | None
    min_depth: int
    max_depth: int
    default_activation: str
    images: bool
    fixed_image_size: int | None = None
    problem: Callable[[RunSpec], str | None] = lambda spec: None
    help: str = ""


def _image(spec: RunSpec) -> tuple[int, ...]:
    return (3, spec.image_size, spec.image_size)


def _resnet_problem(spec: RunSpec) -> str | None:
    try:
        resnet_downsamples(1, spec.image_size)
    except ValueError:
        return (f"argument --image-size: the resnet architecture needs a multiple of 4 that is "
                f">= 8 (e.g. 16 or 32); got {spec.image_size}")
    return None


def _args(s: RunSpec) -> tuple[str, float, str, bool]:
    """(activation, slope, output, bias) of a RunSpec."""
    return s.resolved_activation, s.slope, s.output, s.bias


ARCHS: dict[str, Arch] = {a.name: a for a in (
    Arch("mlp",
         build=lambda s: mlp(s.resolved_depth, s.width, s.resolved_input_dim, *_args(s)),
         train_build=lambda t, shape: mlp(t.depth, t.width, shape[0], t.activation, t.slope),
         input_shape=lambda s: (s.resolved_input_dim,),
         n_layers=lambda s: s.resolved_depth,
         default_depth=10, fixed_depth=None, min_depth=1, max_depth=1000,
         default_activation="relu", images=False,
         help="MLP, --depth Linear layers"),
    Arch("conv",
         build=lambda s: conv_stack(s.resolved_depth, s.channels, s.image_size, 3,
                                    s.stride_every, *_args(s)),
         train_build=lambda t, shape: conv_stack(t.depth, t.channels, shape[-1], shape[0],
                                                 stride_every=2, activation=t.activation,
                                                 slope=t.slope),
         input_shape=_image, n_layers=lambda s: s.resolved_depth,
         default_depth=6, fixed_depth=None, min_depth=2, max_depth=1000,
         default_activation="lrelu", images=True,
         help="plain conv stack, --depth layers"),
    Arch("sngan",
         build=lambda s: sngan(*_args(s)),
         train_build=lambda t, shape: sngan(t.activation, t.slope, in_channels=shape[0],
                                            image_size=shape[-1]),
         input_shape=lambda s: (3, 32, 32), n_layers=lambda s: 8,
         default_depth=8, fixed_depth=8, min_depth=8, max_depth=8,
         default_activation="lrelu", images=True, fixed_image_size=32,
         help="the paper's CIFAR-10 CNN; fixed depth 8"),
    Arch("resnet",
         build=lambda s: resnet(s.resolved_depth, s.channels, s.image_size, 3, *_args(s)),
         train_build=lambda t, shape: resnet(t.depth, t.channels, shape[-1], shape[0],
                                             t.activation, t.slope),
         input_shape=_image,
         n_layers=lambda s: resnet_layer_count(s.resolved_depth, s.image_size),
         default_depth=4, fixed_depth=None, min_depth=1, max_depth=64,
         default_activation="relu", images=True, problem=_resnet_problem,
         help="SNGAN ResNet, --depth residual blocks"),
)}


__all__ = ["ARCHS", "Arch"]
