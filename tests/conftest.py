"""Shared test cases: small typed factories of float64 discriminators and their inputs.

Each :class:`NetCase` is a recipe (no tensors are built at import time); fixtures turn cases into
``(model, x)`` pairs with the seeds held in fixtures (STYLE.md §4). The comparison helper
:func:`assert_rel_close` prints the worst index, the ratio got/expected and the tolerance
(STYLE.md §8).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import torch
from torch import nn

from gradcheck.models import Discriminator, conv_stack, mlp
from gradcheck.schemes import apply_scheme
from gradcheck.schemes.registry import NAMES as SCHEME_NAMES

EPS = float(torch.finfo(torch.float64).eps)


# ------------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NetCase:
    """A float64 discriminator recipe and the shape of one input.

    ``build(seed)`` returns a fresh float64 model (all randomness from ``seed``); ``wrap`` is an
    optional post-processing step (a weight scheme, torch's spectral norm) applied to the model
    with an example batch.
    """

    name: str
    build: Callable[[int], nn.Module]
    input_shape: tuple[int, ...]
    batch: int = 3
    wrap: Callable[[nn.Module, torch.Tensor, int], nn.Module] | None = None
    bias_free: bool = True      # THEORY §0: the clean bounds need no bias
    output: str = "identity"    # output activation (lambda_L = 1 identity, 1/4 sigmoid)
    tags: tuple[str, ...] = field(default=())
    scale: float = 1.0          # the SN-family constant c (ssn / bssn), 1 otherwise

    def inputs(self, seed: int, batch: int | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(10_000 + seed)
        return torch.randn((batch or self.batch,) + self.input_shape, generator=gen,
                           dtype=torch.float64)

    def make(self, seed: int) -> tuple[nn.Module, torch.Tensor]:
        model = self.build(seed)
        x = self.inputs(seed)
        if self.wrap is not None:
            model = self.wrap(model, x, seed)
        return model, x


def _seeded(fn: Callable[[], nn.Module]) -> Callable[[int], nn.Module]:
    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return fn().double()
    return build


def mlp_case(activation: str = "relu", depth: int = 3, width: int = 5, input_dim: int = 4,
             output: str = "identity", bias: bool = False, slope: float = 0.2,
             batch: int = 3) -> NetCase:
    """An :func:`gradcheck.models.mlp` case with PyTorch-default (uniform) weights."""
    name = f"mlp-{activation}-d{depth}-w{width}-in{input_dim}-{output}" + ("-bias" if bias else "")
    return NetCase(name, _seeded(lambda: mlp(depth, width, input_dim, activation, slope, output,
                                             bias)),
                   (input_dim,), batch, bias_free=not bias, output=output, tags=("dense",))


def conv_case(depth: int = 3, channels: int = 3, image_size: int = 5, in_channels: int = 2,
              stride_every: int = 0, activation: str = "lrelu", output: str = "identity",
              bias: bool = False, batch: int = 3) -> NetCase:
    """A :func:`gradcheck.models.conv_stack` case (3x3 kernels, zero padding 1)."""
    name = (f"conv-{activation}-d{depth}-c{channels}-s{image_size}-stride{stride_every}-{output}"
            + ("-bias" if bias else ""))
    return NetCase(name, _seeded(lambda: conv_stack(depth, channels, image_size, in_channels,
                                                    stride_every, activation, 0.1, output, bias)),
                   (in_channels, image_size, image_size), batch, bias_free=not bias,
                   output=output, tags=("conv",))


def custom_conv_case(name: str, convs: list, in_shape: tuple[int, int, int],
                     activation: Callable[[], nn.Module] = lambda: nn.LeakyReLU(0.1),
                     batch: int = 3) -> NetCase:
    """A hand-built :class:`Discriminator`: each entry of ``convs`` is either a dict of
    ``nn.Conv2d`` kwargs (``out`` = out_channels; bias-free), followed by ``activation``, or a
    zero-argument factory of a parameter-free module (e.g. ``nn.AvgPool2d``); then Flatten and
    a dense head to one output."""
    def make() -> nn.Module:
        layers: list[nn.Module] = []
        c = in_shape[0]
        for kw in convs:
            if callable(kw):
                layers.append(kw())
                continue
            layers += [nn.Conv2d(c, kw["out"], **{k: v for k, v in kw.items() if k != "out"},
                                 bias=False), activation()]
            c = kw["out"]
        body = nn.Sequential(*layers)
        with torch.no_grad():
            n = body(torch.zeros(1, *in_shape)).numel()
        return Discriminator(*layers, nn.Flatten(), nn.Linear(n, 1, bias=False))
    return NetCase(name, _seeded(make), in_shape, batch, tags=("conv", "custom"))


def with_scheme(case: NetCase, scheme: str, scale: float = 1.0,
                activation: str = "lrelu", slope: float = 0.1) -> NetCase:
    """``case`` with its weights drawn / normalised by ``apply_scheme`` (exact sigma)."""
    def wrap(model, x, seed):
        return apply_scheme(model, scheme, x, seed=seed, scale=scale, activation=activation,
                            slope=slope, mode="exact")
    suffix = f"{scheme}" + (f"x{scale}" if scale != 1.0 else "")
    c = scale if scheme in ("ssn", "bssn") else 1.0
    return NetCase(f"{case.name}+{suffix}", case.build, case.input_shape, case.batch, wrap,
                   case.bias_free, case.output, case.tags + (scheme,), scale=c)


def with_torch_sn(case: NetCase, legacy: bool = False) -> NetCase:
    """``case`` with torch's spectral norm (parametrization, or the legacy hook) on every
    Linear/Conv2d; a few training-mode forwards move its power-iteration vectors off their
    initial values so that eval mode sees a non-trivial ``u, v``."""
    def wrap(model, x, seed):
        torch.manual_seed(seed)
        for m in [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]:
            if legacy:
                torch.nn.utils.spectral_norm(m)
            else:
                torch.nn.utils.parametrizations.spectral_norm(m)
        model.train()
        with torch.no_grad():
            for _ in range(2):
                model(x)
        return model
    suffix = "legacy-sn" if legacy else "torch-sn"
    return NetCase(f"{case.name}+{suffix}", case.build, case.input_shape, case.batch, wrap,
                   case.bias_free, case.output, case.tags + (suffix,))


# The catalogue. Kept small: every case is compared against dense float64 brute force.
MLP_CASES = [
    mlp_case("relu"),
    mlp_case("lrelu", slope=0.2),
    mlp_case("tanh", depth=4),
    mlp_case("linear"),
    mlp_case("relu", width=1, input_dim=3),            # width 1
    mlp_case("relu", depth=1, input_dim=6),            # a single dense row
    mlp_case("tanh", output="sigmoid", bias=True),     # sigmoid output and biases
    mlp_case("lrelu", output="sigmoid", batch=5),
]

CONV_CASES = [
    conv_case(stride_every=1),                         # every conv stride 2
    conv_case(depth=4, stride_every=2, activation="relu"),
    conv_case(activation="tanh", output="sigmoid", bias=True),
    custom_conv_case("conv1x1", [dict(out=3, kernel_size=1), dict(out=2, kernel_size=1)],
                     (2, 3, 3)),
    custom_conv_case("stride3-pad0", [dict(out=3, kernel_size=2, stride=3, padding=0),
                                      dict(out=2, kernel_size=3, stride=1, padding=1)],
                     (2, 7, 7)),
    custom_conv_case("stride-gt-kernel", [dict(out=3, kernel_size=1, stride=3)], (2, 7, 7)),
    custom_conv_case("pad-same", [dict(out=3, kernel_size=3, padding="same"),
                                  dict(out=2, kernel_size=5, padding="same")], (2, 4, 4)),
    custom_conv_case("k4-s2-pad1", [dict(out=3, kernel_size=4, stride=2, padding=1),
                                    dict(out=2, kernel_size=3, stride=1, padding=0)], (2, 6, 6)),
    custom_conv_case("dilation2", [dict(out=3, kernel_size=3, dilation=2, padding=2),
                                   dict(out=2, kernel_size=2, stride=2, dilation=2)], (2, 6, 6)),
    custom_conv_case("circular-reflect", [dict(out=3, kernel_size=3, padding=1,
                                               padding_mode="circular"),
                                          dict(out=2, kernel_size=3, padding=1,
                                               padding_mode="reflect")], (2, 4, 4)),
    custom_conv_case("avgpool", [dict(out=3, kernel_size=3, padding=1),
                                 lambda: nn.AvgPool2d(2),
                                 dict(out=2, kernel_size=1)], (2, 4, 4)),
]

SCHEME_CASES = [
    with_scheme(mlp_case("lrelu", slope=0.1), "sn"),
    with_scheme(mlp_case("lrelu", slope=0.1), "bsn"),
    with_scheme(conv_case(stride_every=2), "sn"),
    with_scheme(conv_case(stride_every=2), "bsn"),
    with_scheme(conv_case(stride_every=2), "sn-conv"),
    with_scheme(conv_case(stride_every=2), "ssn", scale=1.7),
    with_scheme(conv_case(stride_every=2), "bssn", scale=1.7),
    with_torch_sn(conv_case(stride_every=2)),
    with_torch_sn(conv_case(stride_every=2), legacy=True),
    with_torch_sn(mlp_case("relu")),
    with_torch_sn(mlp_case("relu"), legacy=True),
]

ALL_CASES = MLP_CASES + CONV_CASES + SCHEME_CASES


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def seed() -> int:
    """Seed of every model draw and input draw in a test (one place to change it)."""
    return 7


@pytest.fixture(params=ALL_CASES, ids=lambda c: c.name)
def net_and_input(request, seed):
    """``(case, model, x)`` for every case in :data:`ALL_CASES`."""
    case: NetCase = request.param
    model, x = case.make(seed)
    return case, model, x


@pytest.fixture(scope="module")
def single_blas_thread():
    """Pin torch to one BLAS/OpenMP thread for a module, then restore.

    The nets here are tiny; with two threads on a loaded two-core machine torch's thread pool
    (and its contention with ARPACK's, on the Lanczos paths) made one probe take 5-8 s instead
    of 0.02 s (measured)."""
    from gradcheck._threads import single_threaded

    with single_threaded():
        yield


# ------------------------------------------------------------------------------------------------
# Diagnosing comparisons
# ------------------------------------------------------------------------------------------------

def assert_rel_close(got, want, rtol: float, what: str, atol: float = 0.0) -> None:
    """Assert ``|got - want| <= atol + rtol |want|`` elementwise (NaN never passes).

    The failure message names the worst index (largest excess over the tolerance), the two
    values, their ratio, and both tolerances.
    """
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}"
    if got.size == 0:
        return
    allowed = atol + rtol * np.abs(want)
    err = np.abs(got - want)
    excess = np.where(np.isfinite(err), err - allowed, np.inf)
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    if excess[worst] > 0:
        g, w = float(got[worst]), float(want[worst])
        ratio = g / w if w != 0 else math.inf
        raise AssertionError(
            f"{what}: worst index {tuple(int(i) for i in worst)}: got {g!r}, expected {w!r}, "
            f"ratio {ratio!r}, |diff| {float(err[worst])!r} > allowed {float(allowed[worst])!r} "
            f"(rtol={rtol:.1e}, atol={atol:.1e}); "
            f"{int(np.sum(excess > 0))} of {got.size} entries out of tolerance")


# ------------------------------------------------------------------------------------------------
# Hypothesis strategy shared by the property tests (tests/proofs)
# ------------------------------------------------------------------------------------------------

ALL_SCHEMES = SCHEME_NAMES            # every scheme of the registry (hypothesis strategies)


def _net_params(draw, conv=None, activations=("relu", "lrelu", "tanh", "linear"),
                outputs=("identity", "sigmoid"), schemes=ALL_SCHEMES):
    """Parameters of a random net for ``proofs_numeric.c1_gradient_bound.build``: dense or
    conv, depth 1-6, widths 1-32 (conv channels 1-8), kernels 1-5, strides 1-3, paddings 0-2."""
    from hypothesis import strategies as st

    conv = draw(st.booleans()) if conv is None else conv
    six = lambda lo, hi: st.lists(st.integers(lo, hi), min_size=6, max_size=6)  # noqa: E731
    return dict(
        conv=conv, depth=draw(st.integers(1, 6)), seed=draw(st.integers(0, 2 ** 31 - 1)),
        widths=draw(six(1, 8 if conv else 32)), kernels=draw(six(1, 5)),
        strides=draw(six(1, 3)), paddings=draw(six(0, 2)), image=draw(st.integers(5, 10)),
        activation=draw(st.sampled_from(activations)), slope=draw(st.floats(0.0, 1.0)),
        output=draw(st.sampled_from(outputs)), scheme=draw(st.sampled_from(schemes)),
        scale=draw(st.floats(0.5, 2.0)))


def net_params(**defaults):
    """``net_params(activations=..., outputs=..., schemes=..., conv=...)`` -> a strategy
    factory whose keyword defaults are these (callers may override them)."""
    from hypothesis import strategies as st

    strategy = st.composite(_net_params)
    return lambda **kw: strategy(**{**defaults, **kw})
