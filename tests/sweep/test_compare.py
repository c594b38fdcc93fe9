"""``gradcheck compare``: schemes side by side; with --model each scheme replaces the user's SN."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from .conftest import TINY, run_cli

MODEL = '''
import torch
from torch import nn
from torch.nn.utils import parametrizations, spectral_norm


def make_d():
    return nn.Sequential(parametrizations.spectral_norm(nn.Linear(8, 16, bias=False)), nn.ReLU(),
                         spectral_norm(nn.Linear(16, 16, bias=False)), nn.ReLU(),
                         nn.Linear(16, 1, bias=False))
'''


def test_compare_builtin_side_by_side(arena):
    code, out, err = run_cli(["compare", "--init", "lecun,sn,bsn", "--depth", "3", *TINY,
                              "--seeds", "0-1", "--workers", "1", "--out", "c"])
    assert code == 0, err
    for head in ("|dD/dW_l|", "measured / C7-predicted", "bound tightness",
                 "Jacobian mean square", "verdict per scheme"):
        assert head in out, head
    verdicts = out.split("verdict per scheme")[1].splitlines()
    for label in ("LeCun", "SN", "BSN"):
        assert any(ln.startswith(label + " ") and "all asserted claims hold" in ln
                   for ln in verdicts), label
    assert json.loads((arena / "c" / "gradcheck.json").read_text())["kind"] == "compare"
    assert (arena / "c" / "compare.png").stat().st_size > 0
    layers = pd.read_csv(arena / "c" / "layers.csv")
    assert list(dict.fromkeys(layers.init)) == ["lecun", "sn", "bsn"]
    # the SN column, seed 1, is what `gradcheck run --init sn` measures
    assert run_cli(["run", "--init", "sn", "--depth", "3", *TINY, "--seeds", "1", "--quiet",
                    "--no-plots", "--out", "r"])[0] == 0
    direct = pd.read_csv(arena / "r" / "layers.csv")
    mine = layers[(layers.init == "sn") & (layers.seed == 1)]
    np.testing.assert_array_equal(mine.wgrad_rms.to_numpy(), direct.wgrad_rms.to_numpy())
    np.testing.assert_array_equal(mine.jac_cum_msq.to_numpy(), direct.jac_cum_msq.to_numpy())
    summary = json.loads((arena / "c" / "summary.json").read_text())
    assert summary["columns"] == ["lecun", "sn", "bsn"]


def test_compare_model_replaces_its_spectral_norm(arena):
    """Each scheme goes onto the raw weights of the user's architecture, its SN (a
    parametrization and a legacy hook) removed; the first column is the model as given."""
    (arena / "mymod.py").write_text(MODEL)
    code, out, err = run_cli(["compare", "--model", "mymod:make_d", "--input-shape", "8",
                              "--init", "lecun,sn", "--batch", "8", "--spectra-inputs", "2",
                              "--workers", "1", "--out", "c"])
    assert code == 0, err
    assert "removed" in out and "SpectralNorm" in out and "legacy spectral_norm" in out
    layers = pd.read_csv(arena / "c" / "layers.csv")
    assert list(dict.fromkeys(layers.init)) == ["yours", "lecun", "sn"]

    # independently: the factory's model, SN removed by torch's own API, SN applied, checked
    import mymod

    from gradcheck import check
    from gradcheck.build import make_inputs
    from gradcheck.schemes import apply_scheme
    from gradcheck.spec import RunSpec

    with torch.random.fork_rng():
        torch.manual_seed(0)
        D = mymod.make_d()
    torch.nn.utils.parametrize.remove_parametrizations(D[0], "weight")
    torch.nn.utils.remove_spectral_norm(D[2])
    D = D.double()
    x = make_inputs(RunSpec(model="mymod:make_d", model_input=(8,), batch=8), 0)
    apply_scheme(D, "sn", x, seed=0, activation="relu", slope=0.0)
    got = check(D.eval(), x, scheme="sn")
    mine = layers[layers.init == "sn"]
    np.testing.assert_array_equal(mine.wgrad_rms.to_numpy(), got.layers.wgrad_rms.to_numpy())
    np.testing.assert_allclose(mine.sigma_op.to_numpy(), 1.0, rtol=1e-12)

    # the "yours" column is `gradcheck run --model` of the model as given
    assert run_cli(["run", "--model", "mymod:make_d", "--input-shape", "8", "--batch", "8",
                    "--spectra-inputs", "2", "--quiet", "--no-plots", "--out", "r"])[0] == 0
    direct = pd.read_csv(arena / "r" / "layers.csv")
    np.testing.assert_array_equal(layers[layers.init == "yours"].wgrad_rms.to_numpy(),
                                  direct.wgrad_rms.to_numpy())
