"""Real images offline: the handwritten digits scikit-learn ships, and a Fréchet score on them.

``digits_images()`` — the 1797 8x8 digits of ``sklearn.datasets.load_digits()`` (in the wheel,
no download; values 0..16), resized to 16x16 by bilinear interpolation
(``align_corners=False``), one channel, scaled to [-1, 1] (``x / 8 - 1``, then clamped);
deterministic. scikit-learn is optional (``pip install 'gradcheck[data]'``); without it the
loaders raise :class:`~gradcheck.train.data.DataError` with that one line.

``digits_frechet(fake, real)`` — a sample-quality score for digits GANs, a *proxy for FID*: the
Fréchet distance between Gaussian fits of the 64 penultimate (ReLU) features of a small MLP
classifier (256 -> 128 -> 64 -> 10) trained once on the digits. Training is deterministic:
float64, seed 0, full-batch Adam (lr 1e-2, 200 steps, weight decay 1e-4) on a fixed seeded split
of 1397 training / 400 held-out images, a second or two on CPU. Held-out accuracy:
:data:`CLASSIFIER_ACCURACY` (0.98, 392 / 400). The weights are cached as a state_dict in
``$GRADCHECK_CACHE_DIR`` (default ``~/.cache/gradcheck``) under a name holding the classifier
version and a hash of the digits data, so a stale cache is never used; the file is loaded with
``torch.load(..., weights_only=True)``, and a corrupt or mismatched one is retrained (and
rewritten), not an error. An unwritable cache directory only costs the retraining.

Lower is better. Finite samples bias it upwards: 256 real digits against all 1797 give about
:data:`REAL_FLOOR` (mean over 5 seeded draws; range 4.2 to 12.2), the
floor a perfect generator's 256 samples reach.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import DataError, _int, frechet_of_features

CLASSIFIER_VERSION = 1
N_DIGITS = 1797
N_HELD_OUT = 400
#: held-out accuracy of the cached classifier (measured; checked by tests/train/test_digits.py)
CLASSIFIER_ACCURACY = 0.98
#: digits_frechet of 256 real digits vs all 1797 (mean over seeds 0..4; measured)
REAL_FLOOR = 8.6
INSTALL_HINT = "pip install 'gradcheck[data]'"


def _raw_digits():
    """``(images (1797, 8, 8) float64 0..16, labels (1797,) int64)`` from scikit-learn."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError(f"--data digits needs scikit-learn: {INSTALL_HINT}") from None
    d = load_digits()
    return (torch.as_tensor(d.images, dtype=torch.float64),
            torch.as_tensor(d.target, dtype=torch.int64))


def digits_images(dtype=torch.float32) -> torch.Tensor:
    """``(1797, 1, 16, 16)`` digits in [-1, 1], in scikit-learn's order.

    Example (needs scikit-learn, installed by the ``data`` extra the test command uses):
        >>> x = digits_images()
        >>> tuple(x.shape), float(x.min()), float(x.max())
        ((1797, 1, 16, 16), -1.0, 1.0)
    """
    images, _ = _raw_digits()
    return _resize(images).to(dtype)


def _resize(images: torch.Tensor) -> torch.Tensor:
    x = F.interpolate(images.unsqueeze(1), size=(16, 16), mode="bilinear", align_corners=False)
    return (x / 8.0 - 1.0).clamp_(-1.0, 1.0)


def load_digits_dataset(n: int | None, seed: int, dtype=torch.float32) -> torch.Tensor:
    """The training set of ``--data digits``: all 1797 images when ``n`` is None or
    ``n >= 1797`` (so the default ``--n-data 10000`` means all of them; no image is repeated),
    else ``n`` distinct images chosen by ``seed``."""
    x = digits_images(dtype)
    if n is None or _int("n", n) >= len(x):
        return x
    gen = torch.Generator().manual_seed(int(seed))
    return x[torch.randperm(len(x), generator=gen)[:n]]


# ------------------------------------------------------------------------------------------------
# The feature classifier
# ------------------------------------------------------------------------------------------------

class DigitsClassifier(nn.Module):
    """MLP 256 -> 128 -> 64 -> 10 on flattened 16x16 digits; :meth:`features` = the 64 ReLUs."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(256, 128), nn.ReLU(),
                                  nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.body(x)

    def forward(self, x):  # noqa: D102
        return self.head(self.body(x))


def _data_hash(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha256(images.contiguous().numpy().tobytes())
    h.update(labels.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """``$GRADCHECK_CACHE_DIR``, default ``~/.cache/gradcheck``."""
    return Path(os.environ.get("GRADCHECK_CACHE_DIR") or Path.home() / ".cache" / "gradcheck")


def _split() -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(N_DIGITS, generator=torch.Generator().manual_seed(0))
    return perm[N_HELD_OUT:], perm[:N_HELD_OUT]


def train_classifier(images: torch.Tensor, labels: torch.Tensor) -> DigitsClassifier:
    """The deterministic classifier (float64) on the training split of ``images`` (N, 1, 16, 16)."""
    train_idx, _ = _split()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DigitsClassifier().double()
    x, y = images[train_idx].double(), labels[train_idx]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(200):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def held_out_accuracy(model: DigitsClassifier, images: torch.Tensor,
                      labels: torch.Tensor) -> float:
    _, test_idx = _split()
    with torch.no_grad():
        pred = model(images[test_idx].double()).argmax(1)
    return float((pred == labels[test_idx]).double().mean())


def classifier_path() -> Path:
    """The cache file for the current scikit-learn digits data and classifier version."""
    images, labels = _raw_digits()
    return cache_dir() / f"digits_classifier_v{CLASSIFIER_VERSION}_{_data_hash(images, labels)}.pt"


def load_classifier() -> DigitsClassifier:
    """The cached classifier; trained (and the cache written atomically) when the file is
    missing, corrupt or does not match the model."""
    raw, labels = _raw_digits()
    path = cache_dir() / f"digits_classifier_v{CLASSIFIER_VERSION}_{_data_hash(raw, labels)}.pt"
    model = DigitsClassifier().double()
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except Exception:  # noqa: BLE001 - any unreadable / mismatched cache: retrain
            pass
    model = train_classifier(_resize(raw), labels)
    try:
        from ..report.io import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(model.state_dict(), tmp)
    except OSError:
        pass                                # unwritable cache: retrain next time
    return model


def digits_features(images: torch.Tensor, model: DigitsClassifier | None = None) -> torch.Tensor:
    """``(n, 64)`` float64 classifier features of ``(n, 1, 16, 16)`` images in [-1, 1]."""
    x = torch.as_tensor(images).detach().to("cpu", torch.float64)
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 16, 16) or x.shape[0] < 2:
        raise DataError(f"digits images must be (n >= 2, 1, 16, 16); got {tuple(x.shape)}")
    model = model or load_classifier()
    with torch.no_grad():
        return model.features(x)


def digits_frechet(fake: torch.Tensor, real: torch.Tensor | None = None,
                   model: DigitsClassifier | None = None) -> float:
    """Fréchet distance between Gaussian fits of classifier features of ``fake`` and ``real``
    (default: all 1797 digits). A proxy for FID on digits; lower is better, floor
    :data:`REAL_FLOOR` for 256 real samples."""
    model = model or load_classifier()
    real = digits_images(torch.float64) if real is None else real
    return frechet_of_features(digits_features(fake, model), digits_features(real, model))


__all__ = ["CLASSIFIER_ACCURACY", "REAL_FLOOR", "DigitsClassifier", "digits_images",
           "load_digits_dataset", "load_classifier", "classifier_path", "digits_features",
           "digits_frechet", "held_out_accuracy", "cache_dir"]
