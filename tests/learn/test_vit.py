"""2D-section ViT features (paper 002): IPF-coloured mid-sections, DINOv2 [CLS] fingerprints,
weights from Hugging Face directories or polyfe2 files (never downloaded), and the project's own
masked-patch pretraining on a tiny RVE set."""
import json

import damask
import numpy as np
import pytest
import torch

from polyfe2.errors import InputError
from polyfe2.learn.fm_data import FMDataSpec, generate, read_fm_dataset
from polyfe2.learn.fm_train import FitSpec
from polyfe2.learn.vit import (PRESETS, ViTFeatures, load_vit, mid_sections, pretrain_vit, random_vit, save_vit,
                               vit_fingerprints)

QUIET = dict(progress=False, log=lambda *a: None)


def _data(folder, cells, n, grains, labelled=0):
    path = folder / "fm.h5"
    generate(path, FMDataSpec(n_rve=n, cells=cells, grains=grains, labelled=labelled, triplets=1, chunk=n),
             workers=1, **QUIET)
    return path


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """Three 8³ RVEs of 10 grains (upsampled to the tiny preset's 16² images)."""
    return read_fm_dataset(_data(tmp_path_factory.mktemp("fm"), 8, 3, 10))["quaternions"]


def test_mid_sections_shape_range_and_axes():
    rng = np.random.default_rng(0)
    q = damask.Rotation.from_random(42, rng_seed=1).as_quaternion()
    field = q[rng.integers(0, len(q), (6, 6, 6))].astype(np.float32)
    img = mid_sections(field)
    assert img.shape == (3, 3, 6, 6) and img.dtype == np.float32
    assert 0 <= img.min() and img.max() <= 1
    # section x is the plane (3, i, j) coloured by the IPF colour of x; y: (i, 3, j); z: (i, j, 3)
    for s, cut in enumerate((field[3], field[:, 3], field[:, :, 3])):
        o = damask.Orientation(rotation=cut[1, 4].astype(np.float64) / np.linalg.norm(cut[1, 4]), lattice="cF")
        np.testing.assert_allclose(img[s, :, 1, 4], o.IPF_color(np.eye(3)[s]), atol=1e-6)
    # batches: the same images per field
    np.testing.assert_array_equal(mid_sections(np.stack([field, field[::-1]]))[0], img)
    with pytest.raises(ValueError):
        mid_sections(field[:, :, :4])


def test_single_crystal_images_are_uniform_and_cube_is_damask_red():
    cube = np.zeros((5, 5, 5, 4), np.float32)
    cube[..., 0] = 1
    img = mid_sections(cube)
    z_colour = damask.Orientation(rotation=[1.0, 0, 0, 0], lattice="cF").IPF_color([0.0, 0, 1])
    np.testing.assert_allclose(z_colour, [1, 0, 0])           # cubic [001]: red
    np.testing.assert_allclose(img[2], np.broadcast_to(z_colour[:, None, None], (3, 5, 5)))
    rot = damask.Rotation.from_Euler_angles([30, 40, 50], degrees=True).as_quaternion()
    img = mid_sections(np.broadcast_to(rot, (4, 4, 4, 4)))
    assert np.ptp(img.reshape(3, 3, -1), axis=-1).max() == 0   # one colour per section
    assert not np.allclose(img[0], img[2])                    # x and z see other poles


def test_fingerprints_are_deterministic_ordered_and_survive_save_load(fields, tmp_path):
    loaded = random_vit("tiny", seed=3)
    hidden = loaded.model.config.hidden_size
    f = vit_fingerprints(loaded, fields, batch=2)
    assert f.shape == (3, 3 * hidden) and f.dtype == np.float32
    np.testing.assert_array_equal(f, vit_fingerprints(loaded, fields))
    vit = ViTFeatures(loaded)
    np.testing.assert_allclose(vit.fingerprint(fields[1]), f[1], rtol=1e-5, atol=1e-6)
    # concatenation order x, y, z: each block the features of that section alone
    sections = mid_sections(fields[1])
    for s in range(3):
        np.testing.assert_allclose(f[1, s * hidden:(s + 1) * hidden], vit.features(sections[s:s + 1])[0],
                                   rtol=1e-5, atol=1e-6)
    mean = vit_fingerprints(loaded, fields, aggregate="mean")
    np.testing.assert_allclose(mean, f.reshape(3, 3, hidden).mean(1), rtol=1e-5, atol=1e-6)
    # [CLS] after the final norm; resized (nearest) to the model's image size and ImageNet-normalised
    assert loaded.metadata["preprocessing"] == dict(image_size=PRESETS["tiny"]["image_size"], resize="nearest",
                                                    image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    save_vit(tmp_path / "vit.pt", loaded.model, loaded.metadata)
    back = load_vit(tmp_path / "vit.pt")
    assert back.metadata["preset"] == "tiny" and not back.model.training
    np.testing.assert_array_equal(vit_fingerprints(back, fields), f)
    assert not np.allclose(vit_fingerprints(random_vit("tiny", seed=4), fields), f)


def test_published_architectures_have_the_published_sizes():
    counts = {p: sum(t.numel() for t in random_vit(p).model.parameters()) for p in ("dinov2-small", "dinov2-base")}
    # 22.1 M and 86.6 M (ViT-S/14, ViT-B/14 with 518² position codes); 224² images: 0.4 / 0.9 M fewer
    assert abs(counts["dinov2-small"] / 22.06e6 - 1) < 0.03
    assert abs(counts["dinov2-base"] / 86.58e6 - 1) < 0.03
    assert random_vit("dinov2-base").model.config.hidden_size == 768


def _one_line_error(path, *words):
    with pytest.raises(InputError) as e:
        load_vit(path)
    text = str(e.value)
    assert "\n" not in text and str(path) in text and all(w in text for w in words), text


def test_load_errors_are_one_line(tmp_path):
    _one_line_error(tmp_path / "missing.pt", "not found")
    (tmp_path / "empty").mkdir()
    _one_line_error(tmp_path / "empty", "config.json")
    random_vit("tiny").model.save_pretrained(tmp_path / "notdino")
    config = json.loads((tmp_path / "notdino" / "config.json").read_text())
    (tmp_path / "notdino" / "config.json").write_text(json.dumps(dict(config, model_type="vit")))
    _one_line_error(tmp_path / "notdino", "dinov2", "model_type")
    torch.save(dict(format="polyfe2.mae", version=1, state_dict={}), tmp_path / "mae.pt")
    _one_line_error(tmp_path / "mae.pt", "format")
    save_vit(tmp_path / "vit.pt", random_vit("tiny").model)
    ckpt = torch.load(tmp_path / "vit.pt", weights_only=True)
    ckpt["config"]["hidden_size"] = 48
    torch.save(ckpt, tmp_path / "other.pt")
    _one_line_error(tmp_path / "other.pt", "state_dict")


def test_hugging_face_directory_loads_offline_with_the_same_features(fields, tmp_path):
    loaded = random_vit("tiny", seed=5)
    loaded.model.save_pretrained(tmp_path / "hf")
    back = load_vit(tmp_path / "hf")
    assert back.metadata["preprocessing"]["image_size"] == loaded.model.config.image_size
    np.testing.assert_allclose(vit_fingerprints(back, fields), vit_fingerprints(loaded, fields), rtol=1e-5, atol=1e-6)


def test_pretraining_beats_the_mean_colour_and_resumes(tmp_path):
    # 16³ RVEs of 4 grains, 160 without labels (pretraining) and 4 with (never seen)
    data = _data(tmp_path, 16, 164, 4, labelled=4)
    out = tmp_path / "pre"
    result = pretrain_vit(data, out, FitSpec(epochs=36, batch=6, lr=1e-2, device="cpu"), preset="tiny", **QUIET)
    meta = load_vit(out / "vit.pt").metadata
    assert meta["rves_train"] + meta["rves_held_out"] == 160 and meta["stage"] == "pretrain vit"
    # held-out masked MSE / mean-colour MSE: observed 0.59 (seed 0; 0.70 with seed 1)
    ratio = result["val_loss"] / result["val_baseline"]
    assert ratio < 0.85, ratio
    assert meta["val_masked_mse"] == pytest.approx(result["val_loss"])
    assert (out / "loss.png").exists() and (out / "history.csv").exists()
    lines = []
    again = pretrain_vit(data, out, FitSpec(epochs=38, batch=6, lr=1e-2, device="cpu"), preset="tiny",
                         progress=False, log=lines.append)
    assert again["epochs"] == 38 and any("resuming" in line and "epoch 36" in line for line in lines)
    with pytest.raises(InputError) as e:
        pretrain_vit(data, out, FitSpec(epochs=39, batch=6, lr=1e-2, device="cpu"), preset="tiny", mask_ratio=0.5,
                     **QUIET)
    assert "mask_ratio" in str(e.value) and "\n" not in str(e.value)
