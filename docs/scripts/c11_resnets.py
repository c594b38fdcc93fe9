"""Measure C11 on residual discriminators (issue 8's 'must show'); prints a markdown table.

Run: ``python docs/scripts/c11_resnets.py`` (about a minute on 2 cores).
1. ``--arch resnet`` under each of the nine schemes: exit code, C1's verdict, C11's worst ratio.
2. The bias-free residual MLP of ``tests/zoo.py`` (probed through ``--model``) likewise.
3. C11's bound factor ``max_t F(h_{t-1}) B(z_t)`` (THEORY §6) against the number of residual
   blocks under exact SN: with every layer at spectral norm 1 it grows with the identity-skip
   blocks, where C1-SN's chain bound would stay at 1.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SCHEMES = ("lecun", "xavier", "kaiming", "orthogonal", "sn", "sn-conv", "bsn", "ssn", "bssn")


def gc(args: list[str], out: Path) -> tuple[int, pd.DataFrame]:
    p = subprocess.run([sys.executable, "-m", "gradcheck", "run", *args, "--quiet", "--no-plots",
                        "--out", str(out), "--force"], cwd=ROOT, capture_output=True, text=True)
    checks = pd.read_csv(out / "checks.csv") if (out / "checks.csv").exists() else None
    return p.returncode, checks


def summary(code: int, c: pd.DataFrame) -> str:
    c1 = c[c.claim == "C1"].note.iloc[0].split(";")[0]
    c11 = c[c.claim == "C11"]
    return (f"{code} | {c1} | {c11.holds.astype(str).eq('True').sum()}/{len(c11)} | "
            f"{c11.ratio.max():.4g}")


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    print("| subject | scheme | exit | C1 | C11 holds | C11 worst ratio |\n"
          "|---|---|---|---|---|---|")
    for s in SCHEMES:
        scale = ["--scale", "1.4"] if s in ("ssn", "bssn") else []
        code, c = gc(["--arch", "resnet", "--init", s, *scale], tmp / s)
        print(f"| resnet (4 blocks, 16 ch, 16x16) | {s} | {summary(code, c)} |")
    code, c = gc(["--model", "tests.zoo:residual_mlp_model", "--input-shape", "6"], tmp / "rm")
    print(f"| residual MLP (tests/zoo.py) | user | {summary(code, c)} |")
    code, c = gc(["--model", "tests.zoo:mimicry_sngan_resnet_model", "--input-shape", "3,16,16",
                  "--batch", "8"], tmp / "mim")
    print(f"| mimicry SNGAN ResNet D (legacy SN, ReLU(True)) | user | {summary(code, c)} |")

    import torch

    from gradcheck import check
    from gradcheck.models import resnet
    from gradcheck.schemes import apply_scheme

    print("\n| blocks | identity-skip blocks | max_t F B (C11, sn) | C1 product (chain formula) |"
          "\n|---|---|---|---|")
    for blocks in (1, 2, 3, 4, 6, 8):
        D = resnet(blocks=blocks, channels=8, image_size=16).double()
        x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64)
        apply_scheme(D, "sn-conv", x, seed=0)
        out = check(D, x, scheme="sn-conv", model_level=False)
        c11 = out.checks[out.checks.claim == "C11"]
        fb = c11.note.str.extract(r"F B = ([0-9.eE+-]+)")[0].astype(float)
        n_id = max(blocks - 2, 0)
        print(f"| {blocks} | {n_id} | {fb.max():.4g} | 1 |")


if __name__ == "__main__":
    main()
