"""Data for GAN training and the standard sample-quality metrics of the toy GANs.

Synthetic sets (deterministic given ``seed``, float32 unless ``dtype`` says otherwise):

* ``ring``   — ``(n, 2)``: the ring of 8 Gaussians (radius 2, std 0.02);
* ``grid``   — ``(n, 2)``: the 5x5 grid of Gaussians centred at {-4,-2,0,2,4}^2 (std 0.05);
* ``shapes`` — ``(n, 3, 32, 32)`` procedural images in [-1, 1] (a stand-in for CIFAR-10 that needs
  no download).

Real images offline: ``digits`` (scikit-learn's 8x8 digits at 16x16,
:mod:`gradcheck.train.digits`).
File sets: ``load_cifar10_tarball`` (the CIFAR-10 *python* tarball) and ``load_npy``.
``make_dataset("ring" | "grid" | "shapes" | "digits" | "cifar10:PATH" | "npy:PATH", n, seed)``
picks one.

Metrics (independent of THEORY): :func:`mode_stats` (modes covered and share of high-quality
samples, as in VEEGAN / PacGAN) for ring and grid, and :func:`image_proxy`, a cheap Fréchet
distance between Gaussian fits of fixed simple image features — a proxy, *not* FID.

Every input problem raises :class:`DataError` with one line naming the file or argument.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

DATASETS = ("ring", "grid", "shapes")
#: real image sets that ship with an optional package (see :mod:`gradcheck.train.digits`)
REAL_DATASETS = ("digits",)
FILE_PREFIXES = ("cifar10:", "npy:")
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"{CIFAR_DIR}/data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = (f"{CIFAR_DIR}/test_batch",)


class DataError(ValueError):
    """Bad data or data argument; the message is one line naming the file or argument."""


# ------------------------------------------------------------------------------------------------
# Argument checks
# ------------------------------------------------------------------------------------------------

def _int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise DataError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def _float(name: str, value, positive: bool = True) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise DataError(f"{name} must be a finite number {'>' if positive else '>='} 0; "
                        f"got {value!r}")
    return v


def _dtype(dtype) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise DataError(f"dtype must be a floating torch.dtype; got {dtype!r}")
    return dtype


def _one_line(exc: BaseException, width: int = 160) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text if len(text) <= width else text[:width] + '...'}"


# ------------------------------------------------------------------------------------------------
# 2-D mixtures
# ------------------------------------------------------------------------------------------------

def ring_centres(modes: int = 8, radius: float = 2.0, dtype=torch.float64) -> torch.Tensor:
    """``(modes, 2)``: centre ``k`` at angle ``2 pi k / modes`` on the circle of ``radius``."""
    modes, radius = _int("modes", modes), _float("radius", radius)
    ang = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return (radius * torch.stack([ang.cos(), ang.sin()], 1)).to(_dtype(dtype))


def grid_centres(side: int = 5, spacing: float = 2.0, dtype=torch.float64) -> torch.Tensor:
    """``(side**2, 2)``: centre ``k = i * side + j`` at ``(spacing * (i - c), spacing * (j - c))``.

    ``c = (side - 1) / 2``, so the default is the grid {-4, -2, 0, 2, 4}^2.
    """
    side, spacing = _int("side", side), _float("spacing", spacing)
    axis = spacing * (torch.arange(side, dtype=torch.float64) - (side - 1) / 2)
    return torch.cartesian_prod(axis, axis).reshape(side * side, 2).to(_dtype(dtype))


def _mixture(centres: torch.Tensor, n: int, seed: int, std: float, dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(int(seed))
    k = torch.randint(0, centres.shape[0], (n,), generator=gen)
    noise = torch.randn((n, 2), generator=gen, dtype=torch.float64)
    return (centres[k] + std * noise).to(_dtype(dtype))


def ring(n: int, seed: int, modes: int = 8, radius: float = 2.0, std: float = 0.02,
         dtype=torch.float32) -> torch.Tensor:
    """``(n, 2)`` samples of the ring of ``modes`` Gaussians (modes equally likely).

    Example:
        >>> ring(4, seed=0).shape
        torch.Size([4, 2])
    """
    n, std = _int("n", n), _float("std", std, positive=False)
    return _mixture(ring_centres(modes, radius), n, seed, std, dtype)


def grid(n: int, seed: int, side: int = 5, spacing: float = 2.0, std: float = 0.05,
         dtype=torch.float32) -> torch.Tensor:
    """``(n, 2)`` samples of the ``side x side`` grid of Gaussians (modes equally likely)."""
    n, std = _int("n", n), _float("std", std, positive=False)
    return _mixture(grid_centres(side, spacing), n, seed, std, dtype)


# ------------------------------------------------------------------------------------------------
# Procedural images
# ------------------------------------------------------------------------------------------------

def _soft(inside: torch.Tensor, size: int) -> torch.Tensor:
    """Signed distance (>0 inside, in [-1, 1]-units) -> coverage with a one-pixel soft edge."""
    return (0.5 + inside * (size / 2)).clamp_(0.0, 1.0)


def shapes(n: int, seed: int, size: int = 32, channels: int = 3,
           dtype=torch.float32) -> torch.Tensor:
    """``(n, channels, size, size)`` procedural images in [-1, 1], deterministic given ``seed``.

    Each image: a two-colour linear-gradient background, one foreground figure (a disc, a rotated
    square, a ring or a patch of stripes; random colour, position, size and angle, anti-aliased
    edges), a soft Gaussian blob of a fourth colour, and grey pixel noise of std 0.02. Vectorised:
    10k 32x32 images take about half a second on one CPU core.

    Example:
        >>> x = shapes(2, seed=0)
        >>> tuple(x.shape), bool(x.min() >= -1), bool(x.max() <= 1)
        ((2, 3, 32, 32), True, True)
    """
    n, size, channels = _int("n", n), _int("size", size, 4), _int("channels", channels)
    dt = _dtype(dtype)
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.rand((n, 12), generator=gen, dtype=torch.float64).to(dt)
    col = (torch.rand((n, channels, 4), generator=gen, dtype=torch.float64) * 2 - 1).to(dt)
    kind = torch.randint(0, 4, (n,), generator=gen)
    # Per-pixel weights of the colours: background A, background B, figure, blob, and noise.
    w = torch.empty((n, 5, size, size), dtype=dt)
    w[:, 4] = torch.randn((n, size, size), generator=gen, dtype=dt)   # (normal_ on a view is slow)

    def p(j, lo, hi, idx=slice(None)):      # parameter j in [lo, hi), shape (len, 1, 1)
        return (lo + (hi - lo) * u[idx, j]).view(-1, 1, 1)

    ax = (torch.arange(size, dtype=dt) + 0.5) * (2 / size) - 1
    y, x = ax.view(1, size, 1), ax.view(1, 1, size)
    t = (0.5 + 0.35 * p(0, -1, 1) * x) + 0.35 * p(1, -1, 1) * y            # background gradient
    bw2 = 2 * p(10, 0.1, 0.4).square()                                    # blob (separable)
    blob = (p(11, 0, 0.8) * torch.exp(-(x - p(8, -0.8, 0.8)).square() / bw2)) * \
        torch.exp(-(y - p(9, -0.8, 0.8)).square() / bw2)
    mask = w[:, 2]
    for k in range(4):                      # compute each figure only for the images that have it
        sel = (kind == k).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        dx, dy, r = x - p(2, -0.5, 0.5, sel), y - p(3, -0.5, 0.5, sel), p(4, 0.2, 0.6, sel)
        if k in (1, 3):                     # coordinates rotated by the figure's angle
            ang = p(5, 0, math.pi, sel)
            rx = dx * ang.cos() + dy * ang.sin()
        if k != 1:
            dist = (dx.square() + dy.square()).sqrt_()
        if k == 0:                                                              # disc
            inside = r - dist
        elif k == 1:                                                            # rotated square
            ry = dy * ang.cos() - dx * ang.sin()
            inside = 0.8 * r - torch.maximum(rx.abs_(), ry.abs_())
        elif k == 2:                                                            # ring
            inside = p(6, 0.1, 0.15, sel) - (dist - r).abs_()
        else:                                                # stripes clipped to a disc
            freq = math.pi * p(6, 2, 6, sel)
            wave = torch.sin(freq * rx + p(7, 0, 2 * math.pi, sel)).div_(freq)
            inside = torch.minimum(wave, 1.3 * r - dist)
        mask[sel] = _soft(inside, size)
    # Alpha compositing background -> figure -> blob, as weights on the colours; then one
    # batched matmul (n, C, 5) @ (n, 5, S*S) instead of many full-size colour passes.
    torch.mul(1 - blob, mask, out=w[:, 2])
    w[:, 3] = blob
    keep = (1 - blob).mul_(0.8) - w[:, 2] * 0.8
    torch.mul(keep, t, out=w[:, 1])
    torch.sub(keep, w[:, 1], out=w[:, 0])
    colours = torch.cat([col, torch.full((n, channels, 1), 0.02, dtype=dt)], 2)
    img = torch.bmm(colours, w.view(n, 5, size * size)).view(n, channels, size, size)
    return img.clamp_(-1.0, 1.0)


# ------------------------------------------------------------------------------------------------
# CIFAR-10 (python tarball)
# ------------------------------------------------------------------------------------------------

def _allowed_globals() -> dict[tuple[str, str], object]:
    reconstruct = np.empty(0).__reduce__()[0]               # numpy's _reconstruct, any version
    frombuffer = np.zeros(1, np.uint8).__reduce_ex__(5)[0]  # protocol-5 array rebuild
    import _codecs
    table: dict[tuple[str, str], object] = {}
    for mod in ("builtins", "__builtin__"):
        for name, obj in (("dict", dict), ("list", list), ("bytes", bytes), ("str", str),
                          ("int", int)):
            table[(mod, name)] = obj
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = reconstruct
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(mod, "_frombuffer")] = frombuffer
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    table[("_codecs", "encode")] = _codecs.encode           # bytes in protocol-2 pickles
    return table


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle referred to a global outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a CIFAR batch needs; anything else is refused."""

    _allowed = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise _ForbiddenGlobal(f"{module}.{name}") from None


def _read_batch(path: str, raw: bytes, member: str) -> tuple[np.ndarray, list]:
    where = f"{path}: member {member}"
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _ForbiddenGlobal as exc:
        raise DataError(f"{where}: refused to unpickle: forbidden global {exc} (only trusted "
                        f"CIFAR-10 batches of arrays, lists and dicts are loaded)") from None
    except Exception as exc:                # pickle raises many types on bad input
        raise DataError(f"{where}: cannot unpickle ({_one_line(exc)})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a dict, got {type(obj).__name__}")
    data, labels = obj.get(b"data", obj.get("data")), obj.get(b"labels", obj.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{where}: missing key b'data' or b'labels'; has {sorted(map(repr, obj))}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = data.dtype if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: b'data' must be a uint8 array; got {kind}")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] == 0:
        raise DataError(f"{where}: b'data' has shape {tuple(data.shape)}, expected (N, 3072)")
    if not isinstance(labels, list) or len(labels) != data.shape[0]:
        got = len(labels) if isinstance(labels, list) else type(labels).__name__
        raise DataError(f"{where}: b'labels' must be a list of {data.shape[0]} labels; got {got}")
    return data, labels


def load_cifar10_tarball(path, train: bool = True, limit: int | None = None,
                         dtype=torch.float32) -> torch.Tensor:
    """``(N, 3, 32, 32)`` CIFAR-10 images scaled to [-1, 1] from ``cifar-10-python.tar.gz``.

    ``train=True`` reads ``cifar-10-batches-py/data_batch_1`` .. ``_5`` (all five must be in the
    archive), ``train=False`` reads ``test_batch``; ``limit`` keeps the first ``limit`` images and
    stops reading batches once it has them. Members are read into memory, never extracted.

    Security: the batches are Python pickles. Load only a trusted CIFAR tarball. Unpickling goes
    through a restricted ``Unpickler`` that resolves only ``dict``/``list``/``bytes``/``str``/
    ``int``, ``_codecs.encode`` and numpy's array reconstruction (``_reconstruct``, ``ndarray``,
    ``dtype``, ``_frombuffer``); a pickle that refers to anything else (``os.system``, ...) is
    refused with :class:`DataError` before it can run.

    Raises:
        DataError: missing or unreadable file, not a tar archive, missing member, bad pickle or
            wrong array layout — one line naming the file (and member) and what is wrong.
    """
    path, dt = os.fspath(path), _dtype(dtype)
    limit = None if limit is None else _int("limit", limit)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    wanted = CIFAR_TRAIN if train else CIFAR_TEST
    images: list[np.ndarray] = []
    count = 0
    try:
        with tarfile.open(path, mode="r:*") as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
            missing = [w for w in wanted if w not in members or not members[w].isfile()]
            if missing:
                raise DataError(f"{path}: missing member {missing[0]} "
                                f"(not a CIFAR-10 python tarball?)")
            for name in wanted:
                fh = tar.extractfile(members[name])
                data, _ = _read_batch(path, fh.read(), name)
                images.append(data)
                count += data.shape[0]
                if limit is not None and count >= limit:
                    break
    except DataError:
        raise
    except tarfile.ReadError as exc:
        detail = "not a tar or compressed tar file" if "could not be opened" in str(exc) else \
            _one_line(exc)
        raise DataError(f"{path}: not a readable tar archive ({detail})") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable tar archive ({_one_line(exc)})") from None
    data = np.concatenate(images)[:limit].reshape(-1, 3, 32, 32)
    return torch.from_numpy(data).to(dt).div_(127.5).sub_(1.0)


# ------------------------------------------------------------------------------------------------
# .npy
# ------------------------------------------------------------------------------------------------

def load_npy(path, dtype=torch.float32) -> torch.Tensor:
    """A tensor from a ``.npy`` file holding ``(N, 2)`` points or ``(N, C, H, W)`` images.

    uint8 arrays are scaled to [-1, 1] (``x / 127.5 - 1``); float arrays are used as they are.
    Loaded with ``allow_pickle=False``.

    Raises:
        DataError: missing or corrupt file, a pickle or ``.npz``, wrong shape or dtype, no rows,
            NaN or infinite values.
    """
    path, dt = os.fspath(path), _dtype(dtype)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:                # numpy raises ValueError, EOFError, OSError, ...
        raise DataError(f"{path}: not a readable .npy file ({_one_line(exc)})") from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise DataError(f"{path}: is an .npz archive; expected a single .npy array")
    if not ((arr.ndim == 2 and arr.shape[1] == 2) or arr.ndim == 4) or 0 in arr.shape:
        raise DataError(f"{path}: array has shape {arr.shape}; expected (N, 2) points or "
                        f"(N, C, H, W) images with N >= 1")
    if arr.dtype == np.uint8:
        return torch.from_numpy(arr).to(dt).div_(127.5).sub_(1.0)
    if arr.dtype.kind != "f":
        raise DataError(f"{path}: dtype {arr.dtype} not supported; expected uint8 or float")
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: array holds {int((~np.isfinite(arr)).sum())} NaN/inf values")
    return torch.from_numpy(np.ascontiguousarray(arr)).to(dt)


# ------------------------------------------------------------------------------------------------
# Selection by name
# ------------------------------------------------------------------------------------------------

def make_dataset(name: str, n: int | None, seed: int, dtype=torch.float32) -> torch.Tensor:
    """The data set called ``name``: one of ``DATASETS``, ``"digits"``, ``"cifar10:PATH"`` or
    ``"npy:PATH"``.

    Synthetic sets draw ``n`` samples from ``seed``. ``digits`` has 1797 images: ``n`` >= 1797
    (or None) gives all of them, a smaller ``n`` that many distinct ones chosen by ``seed``.
    File sets return ``n`` distinct rows chosen by ``seed`` (``n=None``: every row, in file
    order); asking for more rows than the file holds is a :class:`DataError`.
    """
    allowed = ", ".join(DATASETS + REAL_DATASETS + tuple(p + "PATH" for p in FILE_PREFIXES))
    if not isinstance(name, str):
        raise DataError(f"dataset must be a string, one of {allowed}; got {name!r}")
    if name in DATASETS:
        if n is None:
            raise DataError(f"dataset {name!r} is synthetic: n must be given")
        return {"ring": ring, "grid": grid, "shapes": shapes}[name](n, seed, dtype=dtype)
    if name == "digits":
        from .digits import load_digits_dataset

        return load_digits_dataset(n, seed, dtype=dtype)
    prefix = next((p for p in FILE_PREFIXES if name.startswith(p)), None)
    if prefix is None or not name[len(prefix):]:
        raise DataError(f"unknown dataset {name!r}; allowed: {allowed}")
    path = name[len(prefix):]
    data = load_cifar10_tarball(path, dtype=dtype) if prefix == "cifar10:" else \
        load_npy(path, dtype=dtype)
    if n is None:
        return data
    n = _int("n", n)
    if n > data.shape[0]:
        raise DataError(f"{path}: asked for n={n} rows but the file holds {data.shape[0]}")
    gen = torch.Generator().manual_seed(int(seed))
    return data[torch.randperm(data.shape[0], generator=gen)[:n]]


# ------------------------------------------------------------------------------------------------
# Sample-quality metrics
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModeStats:
    """Mode coverage of 2-D samples of a Gaussian mixture (ring / grid)."""

    n_modes: int                    # number of mixture components
    modes_covered: int              # modes with >= min_count high-quality samples
    high_quality: float             # share of samples within k_std * std of their nearest centre
    n_samples: int
    counts: tuple[int, ...]         # high-quality samples per mode
    mode_kl: float                  # KL(high-quality mode histogram || uniform); nan if none


def mode_stats(samples, centres, std: float, k_std: float = 3.0,
               min_count: int = 1) -> ModeStats:
    """Mode coverage and sample quality, the standard toy-GAN metrics (VEEGAN, PacGAN).

    A sample is *high quality* when within ``k_std * std`` of its nearest centre; a mode is
    *covered* when at least ``min_count`` high-quality samples have it as nearest centre.
    Non-finite samples count as low quality. For true samples of an isotropic 2-D Gaussian the
    high-quality share is ``P(chi2_2 <= k_std**2) = 1 - exp(-k_std**2 / 2)`` (0.9889 at 3).

    Args:
        samples: ``(n, 2)`` tensor or array.
        centres: ``(K, 2)`` mode centres (:func:`ring_centres`, :func:`grid_centres`).
        std: the per-coordinate standard deviation of each mode.
    """
    x = torch.as_tensor(samples).detach().to("cpu", torch.float64)
    c = torch.as_tensor(centres).detach().to("cpu", torch.float64)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1] or x.shape[0] == 0 or \
            c.shape[0] == 0:
        raise DataError(f"samples (n, d) and centres (K, d) must agree; got {tuple(x.shape)} "
                        f"and {tuple(c.shape)}")
    thr = _float("k_std", k_std) * _float("std", std)
    min_count = _int("min_count", min_count)
    dist = torch.cdist(x, c)
    best, nearest = dist.min(1)
    good = best <= thr                      # nan/inf distances compare False
    counts = torch.bincount(nearest[good], minlength=c.shape[0])
    total = int(counts.sum())
    if total:
        p = counts[counts > 0].double() / total
        kl = float((p * (p * c.shape[0]).log()).sum())
    else:
        kl = math.nan
    return ModeStats(n_modes=int(c.shape[0]), modes_covered=int((counts >= min_count).sum()),
                     high_quality=total / x.shape[0], n_samples=int(x.shape[0]),
                     counts=tuple(int(k) for k in counts), mode_kl=kl)


def image_features(images: torch.Tensor, dim: int = 32, seed: int = 0) -> torch.Tensor:
    """``(n, 2C + dim)`` fixed features: per-channel mean and std, and a seeded Gaussian random
    projection (to ``dim``) of the images average-pooled to 8x8. Float64."""
    x = torch.as_tensor(images).detach().to("cpu", torch.float64)
    if x.ndim != 4 or x.shape[0] < 2:
        raise DataError(f"images must be (n >= 2, C, H, W); got {tuple(x.shape)}")
    pooled = F.adaptive_avg_pool2d(x, 8).flatten(1)
    gen = torch.Generator().manual_seed(int(seed))
    proj = torch.randn((pooled.shape[1], _int("dim", dim)), generator=gen, dtype=torch.float64)
    flat = x.flatten(2)
    return torch.cat([flat.mean(2), flat.std(2), pooled @ proj / math.sqrt(pooled.shape[1])], 1)


def gaussian_frechet(mu1, cov1, mu2, cov2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between ``N(mu1, cov1)`` and ``N(mu2, cov2)``:
    ``|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1^{1/2} cov2 cov1^{1/2})^{1/2})``, via symmetric
    eigendecompositions (float64; tiny negative eigenvalues from rounding are clipped)."""
    mu1, mu2, c1, c2 = (torch.as_tensor(a, dtype=torch.float64) for a in (mu1, mu2, cov1, cov2))
    w, v = torch.linalg.eigh((c1 + c1.T) / 2)
    s1 = (v * w.clamp(min=0).sqrt()) @ v.T
    m = s1 @ ((c2 + c2.T) / 2) @ s1
    cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + c1.trace() + c2.trace() - 2 * cross)


def image_proxy(fake: torch.Tensor, real: torch.Tensor, dim: int = 32, seed: int = 0) -> float:
    """A cheap image-quality *proxy*: the Fréchet distance between Gaussian fits of
    :func:`image_features` of ``fake`` and ``real`` (both ``(n, C, H, W)``, same C, H, W).

    This is **not FID**: the features are fixed pixel statistics, not Inception activations, so
    numbers are comparable only with each other (same ``dim``, ``seed``, data and sample sizes).
    Like FID it is biased upwards by finite samples: two independent samples of the same
    distribution give a small positive value that shrinks like ``1/n``.
    """
    f, r = torch.as_tensor(fake), torch.as_tensor(real)
    if f.ndim != 4 or r.ndim != 4 or f.shape[1:] != r.shape[1:]:
        raise DataError(f"fake and real must be (n, C, H, W) with the same C, H, W; got "
                        f"{tuple(f.shape)} and {tuple(r.shape)}")
    return frechet_of_features(image_features(f, dim, seed), image_features(r, dim, seed))


def feature_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean (d,), covariance (d, d))`` of ``(n, d)`` features, float64 (unbiased, n - 1)."""
    x = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise DataError(f"features must be (n >= 2, d); got {tuple(x.shape)}")
    return x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])


def frechet_of_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """:func:`gaussian_frechet` between the Gaussian fits (:func:`feature_stats`) of two
    feature sets ``(n_a, d)`` and ``(n_b, d)``; ``inf`` when either holds a non-finite value.
    The formula behind :func:`image_proxy`, the digits score and FID."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return math.inf
    return gaussian_frechet(*feature_stats(a), *feature_stats(b))
