"""``gradcheck study``: tables equal the cells' own metrics, cells equal direct train + track,
resume (finished cells reused, a killed run continued), backends byte-identical, exit 1 on C1."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from .conftest import BASE, TINY, copy_of, env_with_repo, run_cli


def _metrics(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv")


def test_scheme_table_equals_numbers_computed_from_metrics_csv(base_study):
    """Final / best / collapse per cell and their mean, std, min, max per scheme, computed
    here from each run's metrics.csv (not with gradcheck's functions)."""
    cells = pd.read_csv(base_study / "study.csv")
    summary = json.loads((base_study / "summary.json").read_text())
    assert list(cells.scheme) == ["lecun", "lecun", "sn", "sn"]
    assert list(cells.seed) == [0, 1, 0, 1]
    assert summary["group_by"] == ["scheme"] and len(summary["schemes"]) == 2
    saw_motion = False
    for row in summary["schemes"]:
        sub = cells[cells.scheme == row["scheme"]]
        assert row["n"] == len(sub) == 2
        want = {m: dict(final=[], best=[], collapsed=[]) for m in ("modes_covered",
                                                                   "high_quality")}
        div = []
        for _, c in sub.iterrows():
            M = _metrics(base_study / c.run)
            assert list(M.step) == list(range(10, 101, 10))
            for m, w in want.items():
                v = M[m].to_numpy(float)
                final, best = v[-1], v.max()
                w["final"].append(final)
                w["best"].append(best)
                w["collapsed"].append(bool(final < best / 2))
                assert c[f"final_{m}"] == final and c[f"best_{m}"] == best
                assert c[f"best_step_{m}"] == M.step[np.argmax(v)]
                assert bool(c[f"collapsed_{m}"]) == (final < best / 2)
                saw_motion |= bool(best > 0)
            run_summary = json.loads((base_study / c.run / "summary.json").read_text())
            div.append(run_summary["diverged"] or not np.isfinite(M[["loss_d", "loss_g"]]
                                                                  .to_numpy()).all())
            assert bool(c.collapsed) == want["modes_covered"]["collapsed"][-1]
        for m, w in want.items():
            f = np.array(w["final"])
            assert row[f"final_{m}_mean"] == pytest.approx(f.mean(), rel=1e-12, abs=1e-15)
            assert row[f"final_{m}_std"] == pytest.approx(f.std(ddof=1), rel=1e-12, abs=1e-15)
            assert (row[f"final_{m}_min"], row[f"final_{m}_max"]) == (f.min(), f.max())
            b = np.array(w["best"])
            assert row[f"best_{m}_mean"] == pytest.approx(b.mean(), rel=1e-12, abs=1e-15)
            assert row[f"best_{m}_std"] == pytest.approx(b.std(ddof=1), rel=1e-12, abs=1e-15)
        assert row["collapsed"] == sum(want["modes_covered"]["collapsed"])
        assert row["collapsed_share"] == row["collapsed"] / 2
        assert row["diverged"] == sum(div)
        # (a)-(d) counts: from each run's track/c10.json
        reports = [json.loads((base_study / r / "track" / "c10.json").read_text())
                   for r in sub.run]
        assert row["c1_every_checkpoint"] == sum(r["c1_holds_every_checkpoint"]
                                                 for r in reports) == 2
        ups = [sum(p["a_raw_sigma"][2] == "increased" for p in r["layers"]) for r in reports]
        assert row["a_sigma_up_sum"] == sum(ups)
        assert row["a_sigma_up_median"] == float(np.median(ups))
        downs = [sum(p["c_grad_rms"][2] == "decreased" for p in r["layers"]) for r in reports]
        assert row["c_grad_down_sum"] == sum(downs)
        moved = [sum(p["d_lecun_ratio"][2] != "stable" for p in r["layers"]) for r in reports]
        assert row["d_lecun_moved_sum"] == sum(moved)
        c1_up = [sum(p["b_c1_factor"][2] == "increased" for p in r["layers"]) for r in reports]
        assert row["b_c1_up_sum"] == sum(c1_up)
        last = [max(p["b_c1_factor"][1] for p in r["layers"]) for r in reports]
        assert row["b_c1_factor_last_max_median"] == pytest.approx(np.median(last), rel=1e-15)
        assert row["layers_sum"] == sum(len(r["layers"]) for r in reports)
    assert saw_motion, "the tiny GANs never covered a mode: the test compares only zeros"
    md = (base_study / "study.md").read_text()
    assert "| scheme | n | final modes_covered |" in md and "C1 holds" in md
    assert (base_study / "study.png").stat().st_size > 0
    assert json.loads((base_study / "gradcheck.json").read_text())["kind"] == "study"


def test_a_cell_equals_direct_train_and_track(base_study, arena):
    cells = pd.read_csv(base_study / "study.csv")
    cell = cells[(cells.scheme == "sn") & (cells.seed == 1)].iloc[0]
    code, _, err = run_cli(["train", "--init", "sn", "--seed", "1", *TINY, "--quiet",
                            "--out", "direct"])
    assert code == 0, err
    run = base_study / cell.run
    assert (arena / "direct" / "metrics.csv").read_bytes() == (run / "metrics.csv").read_bytes()
    assert json.loads((arena / "direct" / "spec.json").read_text()) == \
        json.loads((run / "spec.json").read_text())
    code, _, err = run_cli(["track", "direct", "--quiet"])
    assert code == 0, err
    direct = json.loads((arena / "direct" / "track" / "c10.json").read_text())
    assert direct["c1_holds_every_checkpoint"] is bool(cell.c1_every_checkpoint)
    assert direct["steps"] == [0, 50, 100] and cell.checkpoints == 3
    for p in direct["layers"]:
        i = p["layer"]
        for stem in ("a_raw_sigma", "b_c1_factor", "c_grad_rms", "d_lecun_ratio"):
            first, last, direction = p[stem]
            assert cell[f"{stem}_first_{i}"] == pytest.approx(first, rel=1e-9)
            assert cell[f"{stem}_last_{i}"] == pytest.approx(last, rel=1e-9)
            assert cell[f"{stem}_dir_{i}"] == direction


def test_rerun_reuses_finished_cells(base_study, tmp_path):
    out = copy_of(base_study, tmp_path / "again")
    stamps = {p: p.stat().st_mtime_ns for p in [*out.glob("cells/*.json"),
                                               *out.glob("runs/*/*.pt"),
                                               *out.glob("runs/*/metrics.csv")]}
    assert len(stamps) == 4 + 4 * 3 + 4
    code, stdout, err = run_cli([*BASE, "--out", out, "--no-plots"])
    assert code == 0, err
    assert "4 already done" in err and "(0 computed, 4 reused)" in stdout
    timing = json.loads((out / "timings.json").read_text())
    assert (timing["computed"], timing["skipped"]) == (0, 4)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (out / "study.csv").read_bytes() == (base_study / "study.csv").read_bytes()
    assert not (out / "study.png").exists()              # --no-plots: no stale figure
    # other track options: new cells, but the trained runs are reused (nothing retrained)
    code, _, err = run_cli([*BASE, "--out", out, "--no-plots", "--quiet", "--track-batch",
                            "16"])
    assert code == 0, err
    timing = json.loads((out / "timings.json").read_text())
    assert timing["computed"] == 4
    assert set(timing["resumed_from_step"].values()) == {100}
    assert {p: p.stat().st_mtime_ns for p in stamps if p.suffix == ".pt"} == \
        {p: t for p, t in stamps.items() if p.suffix == ".pt"}
    assert len(list(out.glob("cells/*.json"))) == 8


def test_workers_give_byte_identical_tables(base_study, tmp_path):
    out = tmp_path / "local"
    code, _, err = run_cli([*BASE[:-2], "--workers", "2", "--out", out, "--quiet",
                            "--no-plots"])
    assert code == 0, err
    assert "2 local worker" in json.loads((out / "timings.json").read_text())["backend"]
    for name in ("study.csv", "study.md"):
        assert (out / name).read_bytes() == (base_study / name).read_bytes(), name
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, base_study))
    assert want.pop("files") == [*got.pop("files"), "study.png"]
    assert got == want
    for run in (base_study / "runs").iterdir():
        assert (out / "runs" / run.name / "metrics.csv").read_bytes() == \
            (run / "metrics.csv").read_bytes()


def test_kill_mid_run_then_resume(arena):
    """SIGKILL the study while a cell's training is between checkpoints; the rerun continues
    that run from its last checkpoint and ends with the tables of an uninterrupted study."""
    argv = ["study", "--init", "sn", "--seeds", "0-1", *TINY, "--steps", "200",
            "--log-every", "20", "--workers", "1", "--no-plots"]
    assert run_cli([*argv, "--out", "whole", "--quiet"])[0] == 0
    proc = subprocess.Popen([sys.executable, "-m", "gradcheck", *argv, "--out", "killed",
                             "--quiet"], cwd=arena, env=env_with_repo(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def mid_run() -> bool:
        for run in (arena / "killed" / "runs").glob("*"):
            steps = {int(p.stem.split("_")[1]) for p in run.glob("ckpt_*.pt")}
            if steps - {0} and 200 not in steps:
                return True
        return False
    deadline = time.time() + 120
    while not mid_run() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the study ended before it was killed"
    assert not (arena / "killed" / "summary.json").exists()
    partial = [r for r in (arena / "killed" / "runs").iterdir()
               if not (r / "ckpt_200.pt").exists()]
    assert partial, "no training run was interrupted"
    (arena / "killed" / ".study.csv.tmp-999999999.csv").write_text("torn")   # a dead writer's
    code, stdout, err = run_cli([*argv, "--out", "killed"])
    assert code == 0, err
    assert not list((arena / "killed").glob(".*tmp*"))
    timing = json.loads((arena / "killed" / "timings.json").read_text())
    assert timing["computed"] >= 1 and max(timing["resumed_from_step"].values()) > 0
    for name in ("study.csv", "study.md", "summary.json"):
        assert (arena / "killed" / name).read_bytes() == (arena / "whole" / name).read_bytes()
    for run in (arena / "whole" / "runs").iterdir():
        assert (arena / "killed" / "runs" / run.name / "metrics.csv").read_bytes() == \
            (run / "metrics.csv").read_bytes()


def test_a_c1_violation_is_exit_1(arena, monkeypatch):
    import gradcheck.claims.c1_gradient_bound as c1

    monkeypatch.setattr(c1, "c1_bound", lambda x, op, mu, lam: 1e-12 * np.ones(
        (len(op), len(x))))
    code, stdout, err = run_cli(["study", "--init", "lecun", "--seeds", "0", *TINY,
                                 "--steps", "20", "--workers", "1", "--no-plots", "--out",
                                 "bad"])
    assert code == 1, err
    summary = json.loads((arena / "bad" / "summary.json").read_text())
    assert summary["verdict"].startswith("C1 VIOLATED") and len(summary["c1_violated_cells"]) == 1
    assert "C1 VIOLATED" in stdout
    assert "| 0/1 |" in (arena / "bad" / "study.md").read_text()


def test_no_track_reports_quality_only(arena):
    code, stdout, err = run_cli(["study", "--init", "sn", "--seeds", "0", *TINY, "--steps",
                                 "20", "--workers", "1", "--no-plots", "--no-track",
                                 "--out", "nt"])
    assert code == 0, err
    assert "C1 not checked" in stdout
    cells = pd.read_csv(arena / "nt" / "study.csv")
    assert not cells.tracked.any() and "final_modes_covered" in cells
    assert not list((arena / "nt" / "runs").glob("*/track"))
