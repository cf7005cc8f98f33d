"""Fitting an ODMN to the solver's homogenised stiffness of DAMASK's 20-grain 16³ reference
(paper 000: relative Frobenius error on held-out single-crystal triplets)."""
from __future__ import annotations

import pytest

from polyfe2.cli import main
from polyfe2.constitutive.odmn_network import ODMNParameters
from polyfe2.learn.odmn_fit import fit_microstructure
from polyfe2.simulation.homogenize import load_microstructure


@pytest.fixture(scope="module")
def rve(damask_refs):
    ref = damask_refs / "F1_full16_uniaxialx"
    return load_microstructure(ref / "grid.vti", ref / "material.yaml")


def test_fit_is_within_one_percent_on_held_out_triplets_and_a_single_crystal_is_not(rve):
    params, report = fit_microstructure(rve, depth=3, samples=6, held_out=2, steps=300, progress=False)
    assert report["held_out_error"] < 0.01 and report["train_error"] < 0.01
    assert report["history"][-1] < 0.2 * report["history"][0]
    # one leaf (a single crystal with a fitted orientation) cannot represent the 20 grains
    _, single = fit_microstructure(rve, depth=0, samples=6, held_out=2, steps=300, progress=False)
    assert single["held_out_error"] > 5 * report["held_out_error"]
    assert params.provenance["fit"]["held_out_error"] == report["held_out_error"]


def test_odmn_fit_command_writes_parameters_and_the_loss_plot(rve, damask_refs, tmp_path, capsys):
    ref = damask_refs / "F1_full16_uniaxialx"
    out = tmp_path / "f1.pt"
    assert main(["odmn", "fit", "--geometry", str(ref / "grid.vti"), "--material", str(ref / "material.yaml"),
                 "--out", str(out), "--depth", "2", "--samples", "4", "--held-out", "1", "--steps", "50",
                 "--no-progress"]) == 0
    assert ODMNParameters.load(out).depth == 2 and out.with_suffix(".png").stat().st_size > 1000
    assert "held out" in capsys.readouterr().out
    assert main(["odmn", "fit", "--geometry", str(ref / "grid.vti"), "--material", str(ref / "material.yaml"),
                 "--out", str(out), "--samples", "3", "--held-out", "3", "--no-progress"]) == 2
