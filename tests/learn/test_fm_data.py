"""The foundation model's RVE sets: fundamental-zone voxels, stiffness labels within the Voigt
bound, resumable and independent of the number of worker processes."""
import damask
import h5py
import numpy as np
import pytest

from polyfe2.errors import InputError
from polyfe2.learn.fm_data import FMDataSpec, generate, read_fm_dataset, voigt_diagonal
from polyfe2.microstructure.materials import aluminium

SPEC = dict(n_rve=4, cells=8, grains=10, labelled=2, triplets=2, chunk=2)


def _quiet(**kw):
    return dict(progress=False, log=lambda *a: None, **kw)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("fm") / "fm.h5"
    generate(path, FMDataSpec(**SPEC), **_quiet(workers=1))
    return path, read_fm_dataset(path)


def test_voxels_are_fundamental_zone_quaternions(dataset):
    _, d = dataset
    q = d["quaternions"].reshape(-1, 4).astype(np.float64)
    assert d["quaternions"].shape == (4, 8, 8, 8, 4)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)
    assert (q[:, 0] >= 0).all()
    assert damask.Orientation(rotation=q / np.linalg.norm(q, axis=1, keepdims=True), lattice="cF").in_FZ.all()
    # every RVE is a tessellation of its grains: as many distinct orientations as grains left
    for r in range(4):
        assert len(np.unique(d["quaternions"][r].reshape(-1, 4), axis=0)) == d["grains"][r] <= 10


def test_labels_lie_below_the_voigt_bound_and_unlabelled_rows_are_nan(dataset):
    _, d = dataset
    el = aluminium()["mechanical"]["elastic"]
    np.testing.assert_allclose(d["triplets"][:, 0], [[el["C_11"], el["C_12"], el["C_44"]]] * 4)
    C = d["stiffness"]
    assert np.isfinite(C[:2]).all() and np.isnan(C[2:]).all()
    diag = np.diagonal(C[:2, 0, :3, :3], axis1=-2, axis2=-1)
    assert (diag < d["voigt"][:2]).all()                     # Voigt: an upper bound
    assert (diag > 0.97 * d["voigt"][:2]).all()              # aluminium is nearly isotropic
    # the other triplets differ, and so do their homogenised stiffnesses
    assert not np.allclose(C[:2, 1, 0, 0], C[:2, 0, 0, 0], rtol=1e-3)
    # the Voigt diagonal of the stored voxels
    np.testing.assert_allclose(voigt_diagonal(d["quaternions"][:1], *d["triplets"][0, 0]), d["voigt"][:1],
                               rtol=1e-6)


def test_resume_and_workers_give_the_same_set(dataset, tmp_path):
    path, d = dataset
    other = tmp_path / "fm2.h5"
    generate(other, FMDataSpec(**SPEC), **_quiet(workers=2))
    with h5py.File(other, "a") as f:      # an interrupted run: chunk 1 never finished
        f["chunk_done"][1] = False
        f["quaternions"][2:] = 0
    assert len(read_fm_dataset(other)["quaternions"]) == 2
    generate(other, FMDataSpec(**SPEC), **_quiet(workers=1))
    e = read_fm_dataset(other)
    for k in ("quaternions", "voigt", "stiffness", "triplets", "grains"):
        np.testing.assert_array_equal(e[k], d[k])
    assert len(read_fm_dataset(other, labelled_only=True)["quaternions"]) == 2


def test_other_options_on_an_existing_file_is_one_line(dataset):
    path, _ = dataset
    with pytest.raises(InputError) as e:
        generate(path, FMDataSpec(**dict(SPEC, grains=12)), **_quiet(workers=1))
    assert "grains" in str(e.value) and "\n" not in str(e.value)


def test_the_odmn_test_textures_are_offered():
    from polyfe2.learn.odmn_validation import TEXTURES
    from polyfe2.learn.spec import ODMN_TEST_TEXTURES, SAMPLINGS

    assert set(ODMN_TEST_TEXTURES) == set(TEXTURES) and set(TEXTURES) <= set(SAMPLINGS)


def test_presets_and_bad_options(tmp_path):
    generate(tmp_path / "cu.h5", FMDataSpec(n_rve=2, cells=8, grains=20, sampling="copper", spread_deg=5.0, chunk=2),
             **_quiet(workers=1))
    d = read_fm_dataset(tmp_path / "cu.h5")
    assert np.isnan(d["texture_index"]).all()
    # a sharp copper texture (5°) is far stiffer along x than a random one's 110.9 GPa
    assert (d["voigt"][:, 0] > 112e9).all() or (d["voigt"][:, 0] < 110e9).all()
    for bad in (dict(sampling="gauss"), dict(labelled=9), dict(cells=0), dict(scatter_deg=-1.0)):
        with pytest.raises(InputError) as e:
            FMDataSpec(**dict(SPEC, **bad)).check()
        assert next(iter(bad)) in str(e.value)
    with pytest.raises(InputError, match="polyfe2.fm_dataset"):
        h5py.File(tmp_path / "x.h5", "w").close()
        read_fm_dataset(tmp_path / "x.h5")
