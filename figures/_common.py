"""Shared pieces of the figure scripts: sizes, styles, table I/O, deterministic saving, ``main``.

matplotlib is imported inside :func:`plt` only (Agg backend), so importing a figure module (or
``gradcheck``) never imports it (STYLE.md 13).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import pandas as pd

#: Default output folder (git-ignored), relative to the current directory.
DEFAULT_OUT = Path("figures") / "out"

#: Schemes in display order, their colours and line styles (one look across all figures).
SCHEME_ORDER = ("lecun", "xavier", "kaiming", "orthogonal", "sn", "sn-conv", "bsn", "ssn", "bssn")
SCHEME_COLOR = {
    "lecun": "#1f77b4", "xavier": "#17becf", "kaiming": "#2ca02c", "orthogonal": "#8c564b",
    "sn": "#d62728", "sn-conv": "#9467bd", "bsn": "#ff7f0e", "ssn": "#e377c2", "bssn": "#7f7f7f",
}
SCHEME_MARKER = {
    "lecun": "o", "xavier": "v", "kaiming": "s", "orthogonal": "D", "sn": "^", "sn-conv": "P",
    "bsn": "X", "ssn": "<", "bssn": ">",
}


def size_of(quick: bool, tiny: bool) -> str:
    """'tiny' (tests, seconds), 'quick' (seconds to a few minutes per figure on 2 cores) or 'full'."""
    return "tiny" if tiny else "quick" if quick else "full"


def say(msg: str) -> None:
    """One progress line (indented under make_all's per-figure line)."""
    print(f"    {msg}", flush=True)


def plt():
    """``matplotlib.pyplot`` on the Agg backend, with the house style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    pyplot.rcParams.update({"font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9,
                            "legend.fontsize": 7.5, "figure.dpi": 100, "axes.grid": True,
                            "grid.alpha": 0.25, "pdf.fonttype": 42,
                            "svg.hashsalt": "gradcheck"})
    return pyplot


def save(fig, out: Path, name: str) -> None:
    """Write ``out/name.png`` and ``out/name.pdf``; metadata stripped so reruns are identical."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png", dpi=130, metadata={"Software": None})
    fig.savefig(out / f"{name}.pdf", metadata={"CreationDate": None, "ModDate": None,
                                               "Producer": None, "Creator": None})
    import matplotlib.pyplot as pyplot

    pyplot.close(fig)


def write_table(df: pd.DataFrame, out: Path, name: str) -> pd.DataFrame:
    """Write ``out/name.csv`` and return it as read back, so that what is drawn is exactly
    the table on disk (a redraw from the CSV gives identical files)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{name}.csv", index=False, float_format="%.10g")
    return read_table(out, name)


def read_table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(Path(out) / f"{name}.csv", low_memory=False)


def as_bool(s: pd.Series) -> pd.Series:
    """A True/False column as read back from CSV (bools, or their strings; NaN -> False)."""
    return s.astype(str).str.lower() == "true"


def scheme_label(scheme: str, scale: float | None = None) -> str:
    from gradcheck.schemes.registry import SCHEMES

    rec = SCHEMES.get(scheme)
    if rec is not None and rec.takes_scale and scale is not None and scale == scale:
        return f"{scheme} (c={scale:.2f})"
    return scheme


def figure_main(name: str, compute: Callable, draw: Callable, argv=None,
                doc: str = "") -> int:
    """The ``main(argv) -> int`` of one figure script: compute the table, then draw it."""
    p = argparse.ArgumentParser(prog=f"python -m figures.fig_{name.lower()}", description=doc)
    p.add_argument("--quick", action="store_true", help="about a minute on 2 CPU cores")
    p.add_argument("--tiny", action="store_true", help="smoke-test size (seconds)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--draw-only", action="store_true",
                   help=f"redraw from an existing {name.lower()}.csv without recomputing")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    df = read_table(a.out, name.lower()) if a.draw_only else compute(a.quick, a.tiny, a.out)
    draw(df, a.out)
    print(f"{name}: wrote {a.out / name.lower()}.{{png,pdf,csv}} in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
