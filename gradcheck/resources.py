"""Memory estimates checked before any allocation (torch-free).

``check_resources(spec)`` estimates the peak memory of a built-in run from its spec — weights
(model, SN raw and effective weights, C6a's LeCun twin), per-input activations and their
gradients (the tape keeps inputs, outputs and their clones), the chunk of per-sample weight
gradients, and the chain path's Jacobian matrices — and refuses a run that cannot fit in the
memory available, naming the estimate and the flag to change. It is an upper-bound style
estimate (factors of ~2 either way); it exists to refuse the impossible in under a second, not
to predict the peak exactly.
"""
from __future__ import annotations

import math
import os

#: the engine's chunk bound for per-sample weight gradients (elements), ProbeOptions default
GRAD_CHUNK_ELEMENTS = 1 << 24
#: inputs per chunk on the chain Jacobian path, JacobianOptions default
JAC_CHUNK = 16


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else physical memory, else 2**62."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def _layers(spec) -> tuple[list[int], list[int], bool]:
    """(parameter count per layer, per-input output elements per layer, dense chain?)."""
    L = spec.n_layers
    if spec.arch == "mlp":
        dims = [spec.resolved_input_dim] + [spec.width] * (L - 1) + [1]
        return [a * b for a, b in zip(dims, dims[1:])], dims[1:], True
    if spec.arch == "sngan":                 # (kernel, c_out, output side) of the 7 convs
        convs = ((3, 64, 32), (4, 64, 16), (3, 128, 16), (4, 128, 8), (3, 256, 8),
                 (4, 256, 4), (3, 512, 4))
        c_in, params, outs = 3, [], []
        for k, c, s in convs:
            params.append(k * k * c_in * c)
            outs.append(c * s * s)
            c_in = c
        return params + [outs[-1]], outs + [1], False
    c, s, params, outs = spec.channels, spec.image_size, [], []
    every = spec.stride_every if spec.arch == "conv" else 0
    for i in range(L - 1):                   # conv: stride 2 every k; resnet: <= 2 halvings
        if (every and (i + 1) % every == 0) or (spec.arch == "resnet" and i in (2, 5)):
            s = max(1, s // 2)
        params.append(9 * (3 if i == 0 else c) * c)
        outs.append(c * s * s)
    return params + [c * s * s], outs + [1], False


def estimate(spec) -> dict[str, float]:
    """Estimated peak bytes of a built-in run, by component."""
    bytes_per = 8 if spec.dtype == "float64" else 4
    params, outs, dense = _layers(spec)
    P, A = sum(params), sum(outs) + math.prod(spec.input_shape)
    weights = 3 * P * bytes_per
    activations = 4 * spec.batch * A * bytes_per     # h, z (+ clones) and their gradients
    grads = min(GRAD_CHUNK_ELEMENTS, max(params) * spec.batch) * bytes_per * 2
    jac = 0.0
    if dense and spec.spectra_inputs:
        n = min(spec.spectra_inputs, spec.batch, JAC_CHUNK)
        widest = max(params)
        jac = n * (P + 2 * widest) * bytes_per        # per-layer matrices + running product
    return dict(weights=weights, activations=activations, gradients=grads, jacobians=jac,
                total=weights + activations + grads + jac)


_FLAG = {"weights": "--width", "activations": "--batch", "gradients": "--batch",
         "jacobians": "--spectra-inputs"}


def check_resources(spec, available: int | None = None) -> None:
    """Raise SpecError when a built-in run cannot fit in memory (checkpoint / user model: no
    estimate is possible before loading them; they are not checked here)."""
    from .spec import SpecError

    if spec.source != "builtin":
        return
    est = estimate(spec)
    avail = available_bytes() if available is None else available
    if est["total"] <= 0.8 * avail:
        return
    order = ("weights", "activations", "jacobians", "gradients")
    alone = [k for k in order if est[k] > 0.8 * avail]      # a part that cannot fit by itself
    big = alone[0] if alone else max(order, key=lambda k: est[k])
    flag = _FLAG[big] if not (big == "weights" and spec.arch != "mlp") else "--channels"
    parts = ", ".join(f"{k} {est[k] / 2**30:.3g}" for k in ("weights", "activations",
                                                           "gradients", "jacobians") if est[k])
    raise SpecError(f"argument {flag}: the run needs about {est['total'] / 2**30:.3g} GiB of "
                    f"memory ({parts} GiB) but {avail / 2**30:.3g} GiB are available; lower "
                    f"{flag} (--depth, --width/--channels, --batch and --spectra-inputs all "
                    "shrink it)")


def train_estimate(spec) -> dict[str, float]:
    """Estimated peak bytes of ``gradcheck train`` (float32 weights, gradients and two Adam
    moments for D and G; activations of one batch), from the resolved TrainSpec."""
    r = spec.resolved()
    side = 32
    if isinstance(r.data, str) and r.data.startswith("npy:"):
        try:
            import numpy as np

            side = int(np.load(r.data[4:], mmap_mode="r", allow_pickle=False).shape[-1])
        except Exception:  # noqa: BLE001 - the loader reports unreadable files
            pass
    if r.is_toy:
        d_params = r.depth * r.width * r.width
        acts = r.depth * r.width
    else:
        d_params = r.depth * 16 * r.channels * r.channels + r.channels * side * side
        acts = r.depth * r.channels * side * side
    g_params = 3 * min(r.width, 128) ** 2 * (1 if r.is_toy else 16) + r.z_dim * r.width
    weights = 4 * 4 * (d_params + g_params)                 # weights, grads, 2 Adam moments
    activations = 4 * 4 * r.batch * acts
    return dict(weights=weights, activations=activations, total=weights + activations)


def check_train_resources(spec, available: int | None = None) -> None:
    """Raise SpecError when a training run cannot fit in memory (before loading data)."""
    from .spec import SpecError

    est = train_estimate(spec)
    avail = available_bytes() if available is None else available
    if est["total"] <= 0.8 * avail:
        return
    flag = "--width" if spec.resolved().is_toy else "--channels"
    if est["activations"] > est["weights"]:
        flag = "--batch"
    raise SpecError(f"argument {flag}: training needs about {est['total'] / 2**30:.3g} GiB of "
                    f"memory (weights and optimiser state {est['weights'] / 2**30:.3g}, "
                    f"activations {est['activations'] / 2**30:.3g} GiB) but "
                    f"{avail / 2**30:.3g} GiB are available; lower {flag} (or --depth)")


__all__ = ["available_bytes", "estimate", "check_resources", "train_estimate",
           "check_train_resources"]
