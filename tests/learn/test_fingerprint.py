"""The fingerprint registry: one interface for the foundation model, the VAE and the ViT, local
weights only, DAMASK geometry + material in, and a GRU surrogate that takes fingerprints."""
import json

import numpy as np
import pytest
import torch

from polyfe2.cli import main
from polyfe2.constitutive.gru_network import GRUSurrogate
from polyfe2.errors import InputError
from polyfe2.learn.fingerprint import FINGERPRINTS, Fingerprinter, fingerprinter, ve_fingerprints
from polyfe2.learn.fm_data import FMDataSpec, rve_config
from polyfe2.learn.fm_infer import voxel_quaternions
from polyfe2.learn.datagen import sample_descriptor

SPEC = FMDataSpec(n_rve=3000, labelled=500, cells=16, grains=40, triplets=3, chunk=50)


@pytest.fixture(scope="module")
def rve_dir(tmp_path_factory):
    """RVE 3000 of the shipped encoders' generator (outside their data), as DAMASK files."""
    d = tmp_path_factory.mktemp("rve")
    config = rve_config(SPEC, 3000)
    config.save(d)
    return d, voxel_quaternions(config.geometry, config.material)


def test_every_method_is_registered_with_a_shipped_default():
    assert set(FINGERPRINTS) >= {"fm", "vae", "vit"}
    for name, (_, default) in FINGERPRINTS.items():
        assert default and default.endswith(".pt"), name


def test_unknown_method_and_missing_weights_are_one_line_errors(tmp_path):
    with pytest.raises(InputError) as e:
        fingerprinter("pca")
    assert "pca" in str(e.value) and "vae" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError) as e:
        fingerprinter("fm", tmp_path / "none.pt")
    assert "none.pt" in str(e.value) and "\n" not in str(e.value)


def test_fm_fingerprint_of_a_field_equals_that_of_its_damask_files(rve_dir):
    d, q = rve_dir
    fp = fingerprinter("fm")
    z = fp.encode(q)
    assert z.shape == (fp.dim,) and np.isfinite(z).all() and fp.grid == 16
    np.testing.assert_array_equal(z, fp.encode(q))                                   # deterministic
    np.testing.assert_allclose(fp.encode((d / "grid.vti", d / "material.yaml")), z, rtol=1e-6, atol=1e-6)
    # another grid is sampled at the nearest cell centre: a 2x refined field is the same RVE
    fine = q.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    said = []
    np.testing.assert_allclose(fp.encode(fine, log=said.append), z, rtol=1e-6, atol=1e-6)
    assert "nearest cell centre" in said[0]


def test_cli_fingerprint_writes_the_vector(rve_dir, tmp_path, capsys):
    d, q = rve_dir
    out = tmp_path / "z.json"
    assert main(["fingerprint", str(d), "--method", "fm", "--out", str(out)]) == 0
    z = np.array(json.loads(out.read_text())["fingerprint"])
    np.testing.assert_allclose(z, fingerprinter("fm").encode(q), rtol=1e-6, atol=1e-6)
    assert main(["fingerprint", str(d / "grid.vti"), "--method", "fm", "--material", str(d / "material.yaml")]) == 0
    capsys.readouterr()
    assert main(["fingerprint", str(d / "grid.vti"), "--method", "fm"]) == 2   # a geometry alone
    err = capsys.readouterr().err.strip()
    assert "grid.vti" in err and "--material" in err and "\n" not in err


def test_ve_fingerprints_are_shared_by_the_paths_of_one_ve():
    calls = []

    def encode(q):
        calls.append(len(q))
        return q.reshape(len(q), -1)[:, :5].astype(np.float64)   # 5 quaternion components: a VE's own numbers

    fp = Fingerprinter("probe", 5, 8, "probe.pt", encode)
    d1, d2 = sample_descriptor(0, 0, 0.0)[0], sample_descriptor(0, 1, 0.0)[0]
    d = np.stack([d1, d2, d1, d2, d1])
    z = ve_fingerprints(d, fp)
    assert z.shape == (5, 1, 5) and sum(calls) == 2
    np.testing.assert_array_equal(z[0], z[2])
    np.testing.assert_array_equal(z[0], z[4])
    assert not np.array_equal(z[0], z[1])


def test_gru_with_fingerprint_inputs_round_trips_and_the_backend_refuses_it(tmp_path):
    torch.manual_seed(0)
    model = GRUSurrogate(hidden=16, layers=1, mlp_width=8, descriptor_width=12).double()
    z = torch.randn(3, 1, 12, dtype=torch.float64)
    F = torch.eye(3, dtype=torch.float64).expand(3, 4, 3, 3).clone()
    F[:, :, 0, 0] += torch.linspace(0, 0.01, 4)
    y = model(z, F)
    assert y.shape == (3, 4, 6)
    model.save(tmp_path / "m.pt")
    again = GRUSurrogate.load(tmp_path / "m.pt")
    torch.testing.assert_close(again(z, F), y)
    assert not torch.allclose(model(z + 1, F), y)   # the fingerprint reaches the stress
    from polyfe2.constitutive.gru import GRUBackend
    from polyfe2.microstructure.materials import aluminium

    with pytest.raises(InputError) as e:
        GRUBackend(aluminium(), {"model": str(tmp_path / "m.pt"), "descriptors": "d.h5"})
    assert "descriptor_width" in str(e.value) and "\n" not in str(e.value)


def test_fingerprint_table_scores_methods_on_the_held_out_split(tmp_path):
    from polyfe2.learn.fingerprint_table import compare_fingerprints
    from polyfe2.learn.fm_data import generate, voigt_diagonal

    path = tmp_path / "fm.h5"
    generate(path, FMDataSpec(n_rve=24, cells=8, grains=6, labelled=24, triplets=1, chunk=24, scatter_deg=5.0),
             workers=1, progress=False, log=lambda *a: None)
    voigt = Fingerprinter("voigt_probe", 3, None, "none", lambda q: voigt_diagonal(q, 106.75e9, 60.41e9, 28.34e9) / 1e9)
    noise = Fingerprinter("noise", 8, None, "none", lambda q: np.random.default_rng(len(q)).normal(size=(len(q), 8)))
    result = compare_fingerprints(path, {"voigt_probe": voigt, "noise": noise}, tmp_path / "t", log=lambda *a: None)
    assert result["rves_held_out"] == 5 and (tmp_path / "t" / "parity.png").exists()
    probe, rand = (result["methods"][k]["outputs"]["C1111"] for k in ("voigt_probe", "noise"))
    # the texture's Voigt average predicts the DNS stiffness; random numbers do not beat the mean
    assert probe["mape_pct"] < 0.3 * probe["mean_mape_pct"] and rand["r2"] < 0.5
    assert "| voigt_probe | 3 |" in (tmp_path / "t" / "table.md").read_text()
