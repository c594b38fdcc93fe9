"""The FID network: InceptionV3 as TensorFlow's FID code ran it, in pytorch-fid's layout.

:class:`FIDInceptionV3` maps ``(N, 3, H, W)`` images in [-1, 1] (``H, W >= 75``; FID uses
299x299) to the ``(N, 2048)`` activations of the final adaptive average pool, the features FID
is defined on. It is torchvision's ``inception_v3`` body (no auxiliary classifier, no logits)
with the four changes of the TensorFlow graph that pytorch-fid's ``FIDInception*`` blocks
reproduce: the 3x3 average pools of the A, C and first E blocks leave the zero padding out of
the mean (``count_include_pad=False``), and the last E block (``Mixed_7c``) max-pools in its
pool branch. Every convolution is bias-free and followed by BatchNorm (eps 0.001) and ReLU.

The module names are those of the weights file pytorch-fid downloads,
``pt_inception-2015-12-05-6726825d.pth`` (a plain state_dict, from
https://github.com/mseitzer/pytorch-fid/releases): ``Conv2d_1a_3x3.conv.weight``,
``Conv2d_1a_3x3.bn.running_var``, ``Mixed_5b.branch5x5_1.conv.weight``, ... 21,785,568
parameters. :func:`load_fid_inception` reads such a file with ``torch.load(...,
weights_only=True)`` and loads it with ``strict=True`` after two explicit allowances: the file's
``fc.weight`` / ``fc.bias`` (the 1008-way logits, not used by FID) are dropped, and BatchNorm's
``num_batches_tracked`` counters (not used in eval mode) may be absent. Anything else that does
not match raises :class:`~gradcheck.spec.SpecError` with one line naming the problem.

Random-weight models (tests) have the same state-dict keys and shapes, so a saved
``FIDInceptionV3().state_dict()`` loads too; only the standard file gives standard FID.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import SpecError

#: features per image (the final average pool)
FEATURES = 2048
#: the smallest input side the network's stride-2 stages leave at least one pixel for
MIN_SIZE = 75
#: keys of the weights file that FID does not use; dropped before the strict load
IGNORED_KEYS = ("fc.weight", "fc.bias")
#: the hash prefix in the name of pytorch-fid's file (torch.hub names files by their sha256)
STANDARD_SHA256_PREFIX = "6726825d"
STANDARD_FILE = "pt_inception-2015-12-05-6726825d.pth"


class ConvBN(nn.Module):
    """``Conv2d`` (no bias) -> ``BatchNorm2d`` (eps 0.001) -> ReLU; state-dict ``conv.*``,
    ``bn.*`` (torchvision's ``BasicConv2d``)."""

    def __init__(self, c_in: int, c_out: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x):  # noqa: D102
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool with TensorFlow's SAME padding: padded zeros not counted."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max3(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


class MixedA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-pool-1x1 -> 224 + pool."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 64, 1)
        self.branch5x5_1 = ConvBN(c_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(c_in, pool_features, 1)

    def forward(self, x):  # noqa: D102
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg3(x))], 1)


class ReduceB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | max-pool/2 -> 480 + c_in."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x):  # noqa: D102
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class MixedC(nn.Module):
    """17x17 block (Mixed_6b..e) with factorised 7x7s of ``c7`` channels -> 768."""

    def __init__(self, c_in: int, c7: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch1x1 = ConvBN(c_in, 192, 1)
        self.branch7x7_1 = ConvBN(c_in, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, **row)
        self.branch7x7_3 = ConvBN(c7, 192, **col)
        self.branch7x7dbl_1 = ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, **col)
        self.branch7x7dbl_3 = ConvBN(c7, c7, **row)
        self.branch7x7dbl_4 = ConvBN(c7, c7, **col)
        self.branch7x7dbl_5 = ConvBN(c7, 192, **row)
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x):  # noqa: D102
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x))], 1)


class ReduceD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max-pool/2 -> 512 + c_in."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(c_in, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x):  # noqa: D102
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class MixedE(nn.Module):
    """8x8 block (Mixed_7b, Mixed_7c) with split 1x3 / 3x1 heads -> 2048.

    ``pool``: ``"avg"`` (Mixed_7b, padding not counted) or ``"max"`` (Mixed_7c: the TensorFlow
    FID graph max-pools here, unlike the Inception paper)."""

    def __init__(self, c_in: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max'; got {pool!r}")
        self.pool = pool
        row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        self.branch1x1 = ConvBN(c_in, 320, 1)
        self.branch3x3_1 = ConvBN(c_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, **row)
        self.branch3x3_2b = ConvBN(384, 384, **col)
        self.branch3x3dbl_1 = ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, **row)
        self.branch3x3dbl_3b = ConvBN(384, 384, **col)
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x):  # noqa: D102
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _max3(x) if self.pool == "max" else _avg3(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(s), self.branch3x3_2b(s),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
                          self.branch_pool(pooled)], 1)

    def extra_repr(self) -> str:  # noqa: D102
        return f"pool={self.pool}"


class FIDInceptionV3(nn.Module):
    """``(N, 3, H, W)`` in [-1, 1], ``H, W >= 75`` -> ``(N, 2048)`` pool features (float32).

    Built in eval mode with ``requires_grad`` off; PyTorch's default initialisation (random
    weights) until a state_dict is loaded (:func:`load_fid_inception`).
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = MixedA(192, 32)
        self.Mixed_5c = MixedA(256, 64)
        self.Mixed_5d = MixedA(288, 64)
        self.Mixed_6a = ReduceB(288)
        self.Mixed_6b = MixedC(768, 128)
        self.Mixed_6c = MixedC(768, 160)
        self.Mixed_6d = MixedC(768, 160)
        self.Mixed_6e = MixedC(768, 192)
        self.Mixed_7a = ReduceD(768)
        self.Mixed_7b = MixedE(1280, "avg")
        self.Mixed_7c = MixedE(2048, "max")
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"FIDInceptionV3 takes (N, 3, H, W) with H, W >= {MIN_SIZE}; got "
                             f"{tuple(x.shape)}")
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


# ------------------------------------------------------------------------------------------------
# Loading a weights file
# ------------------------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _few(names, k: int = 3) -> str:
    names = sorted(names)
    more = f" (and {len(names) - k} more)" if len(names) > k else ""
    return ", ".join(names[:k]) + more


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def check_state_dict(sd, where: str) -> dict[str, torch.Tensor]:
    """``sd`` filtered to exactly the keys of :class:`FIDInceptionV3` (``fc.*`` dropped,
    missing ``num_batches_tracked`` filled with 0), every tensor float32 (counters int64);
    SpecError (one line starting with ``where``) on anything that does not match."""
    if not isinstance(sd, dict):
        raise SpecError(f"{where}: holds a {type(sd).__name__} object, not a state_dict (a "
                        "dict of tensors)")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        k = bad[0]
        raise SpecError(f"{where}: entry {k!r} is not a tensor ({type(sd[k]).__name__}); "
                        "expected a flat state_dict of the FID Inception (such as "
                        f"{STANDARD_FILE})")
    expected = FIDInceptionV3().state_dict()
    given = {k: v for k, v in sd.items() if k not in IGNORED_KEYS}
    unexpected = sorted(set(given) - set(expected))
    if unexpected:
        hint = ""
        if any(k.startswith("AuxLogits.") for k in unexpected):
            hint = (": AuxLogits.* belongs to torchvision's ImageNet Inception, whose weights "
                    f"are not the FID network's; use {STANDARD_FILE} from pytorch-fid's releases")
        elif all(k.startswith("module.") for k in given):
            hint = ": every key starts with 'module.' (saved from DataParallel?)"
        raise SpecError(f"{where}: {len(unexpected)} key(s) the FID Inception does not have: "
                        f"{_few(unexpected)}{hint}")
    missing = sorted(k for k in set(expected) - set(given)
                     if not k.endswith(".num_batches_tracked"))
    if missing:
        need = sum(not k.endswith(".num_batches_tracked") for k in expected)
        raise SpecError(f"{where}: missing {len(missing)} of the FID Inception's {need} "
                        f"weight entries: {_few(missing)}")
    wrong = [k for k in expected if k in given and given[k].shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        more = f" ({len(wrong) - 1} more mismatch)" if len(wrong) > 1 else ""
        raise SpecError(f"{where}: {k} has shape {_shape(given[k])}, the FID Inception's is "
                        f"{_shape(expected[k])}{more}")
    out = {}
    for k in expected:
        if k.endswith(".num_batches_tracked"):
            out[k] = torch.zeros((), dtype=torch.long)
            continue
        v = given[k]
        if not v.is_floating_point():
            raise SpecError(f"{where}: {k} holds {v.dtype}, expected floating-point values")
        if not bool(torch.isfinite(v).all()):
            raise SpecError(f"{where}: {k} holds non-finite values (NaN or inf): the file is "
                            "damaged")
        out[k] = v.detach().to("cpu", torch.float32)
    return out


def check_weights_path(path) -> Path:
    """``path`` as a Path if it names a regular file; SpecError (one line) otherwise."""
    path = Path(path)
    where = f"argument --weights: {path}"
    if not path.exists():
        raise SpecError(f"{where}: no such file (download {STANDARD_FILE} from "
                        "https://github.com/mseitzer/pytorch-fid/releases)")
    if not path.is_file():
        raise SpecError(f"{where}: not a regular file")
    return path


def load_fid_inception(path, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """The FID Inception with the weights of the state_dict file ``path``, float32, eval mode,
    on ``device``. Read with ``torch.load(path, map_location="cpu", weights_only=True)``.

    Raises:
        SpecError: one line naming ``path`` and the problem (no such file, unreadable or unsafe
            pickle, not a dict of tensors, unexpected / missing keys, wrong shapes).
    """
    from .checkpoint import safe_load

    path = check_weights_path(path)
    where = f"argument --weights: {path}"
    if path.stat().st_size == 0:
        raise SpecError(f"{where}: the file is empty (0 bytes)")
    try:
        sd = safe_load(path)
    except ValueError as e:
        raise SpecError(f"{where}: {e}") from None
    clean = check_state_dict(sd, where)
    model = FIDInceptionV3()
    try:
        model.load_state_dict(clean, strict=True)
    except RuntimeError as e:                   # not expected after check_state_dict
        raise SpecError(f"{where}: {' '.join(str(e).split())[:200]}") from None
    return model.to(device).eval()


__all__ = ["FIDInceptionV3", "load_fid_inception", "check_state_dict", "file_sha256",
           "FEATURES", "MIN_SIZE", "STANDARD_FILE", "STANDARD_SHA256_PREFIX"]
