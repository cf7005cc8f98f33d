"""Pretraining, fine-tuning and inference of the foundation model on a tiny RVE set: resumable
runs, the batched H_ODMN of the ODMN head, and `fm infer` output the odmn backend loads."""
import json

import numpy as np
import pytest
import torch

from polyfe2.constitutive.odmn_network import ODMNParameters
from polyfe2.errors import InputError
from polyfe2.learn.fm_data import FMDataSpec, generate, read_fm_dataset, rve_config
from polyfe2.learn.fm_infer import infer, resample_nearest
from polyfe2.learn.fm_train import FitSpec, ODMNHead, finetune, pretrain, r2_scores
from polyfe2.learn.mae import load_encoder

SPEC = FMDataSpec(n_rve=14, cells=8, grains=10, labelled=10, triplets=2, chunk=7)
QUIET = dict(progress=False, log=lambda *a: None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("fm") / "fm.h5"
    generate(path, SPEC, workers=1, **QUIET)
    return path


@pytest.fixture(scope="module")
def pretrained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pre")
    pretrain(data, out, FitSpec(epochs=2, batch=4, device="cpu"), **QUIET)
    return out


def test_pretraining_writes_an_encoder_and_resumes(pretrained, data):
    model, cfg, norm, meta, head = load_encoder(pretrained / "encoder.pt")
    # pretrained on the 4 RVEs without labels: the fine-tuning's held-out RVEs stay unseen
    assert cfg.grid == 8 and meta["stage"] == "pretrain" and meta["rves_train"] + meta["rves_held_out"] == 4
    assert head == {}
    assert (pretrained / "latents.png").stat().st_size > 10_000 and (pretrained / "loss.png").exists()
    lines = []
    result = pretrain(data, pretrained, FitSpec(epochs=3, batch=4, device="cpu"), progress=False, log=lines.append)
    assert result["epochs"] == 3 and any("resuming" in line and "epoch 2" in line for line in lines)
    with pytest.raises(InputError) as e:   # another learning rate: not the same run
        pretrain(data, pretrained, FitSpec(epochs=4, batch=4, lr=5e-4, device="cpu"), **QUIET)
    assert "lr" in str(e.value) and "\n" not in str(e.value)


def test_odmn_head_batches_h_odmn_exactly():
    head = ODMNHead(16, depth=2, seed=3).double()
    latent = torch.randn(3, 16, dtype=torch.float64)
    triplets = torch.tensor([[1.07, 0.60, 0.28], [1.4, 0.5, 0.6]], dtype=torch.float64).expand(3, 2, 3)
    params = head(latent)
    C = ODMNHead.stiffness(params, triplets)
    assert C.shape == (3, 2, 6, 6)
    for b in range(3):
        one = ODMNParameters(z=params.z[b], euler=params.euler[b], theta=params.theta[b], phi=params.phi[b])
        for t in range(2):
            torch.testing.assert_close(C[b, t], one.stiffness(*triplets[b, t]), rtol=1e-12, atol=1e-14)


def test_r2_scores():
    true = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 9.0]])
    np.testing.assert_allclose(r2_scores(true, true), [1.0, 1.0])
    np.testing.assert_allclose(r2_scores(np.repeat(true.mean(0, keepdims=True), 3, 0), true), [0.0, 0.0], atol=1e-15)


def test_stiffness_finetuning_and_inference(pretrained, data, tmp_path):
    out = tmp_path / "stiffness"
    result = finetune(data, out, FitSpec(epochs=2, batch=4, device="cpu"), task="stiffness",
                      encoder=pretrained / "encoder.pt", **QUIET)
    assert result["pretrained"] and result["train_rves"] + result["held_out_rves"] == 10
    assert np.isfinite([result[f"val_r2_C{i}{i}{i}{i}"] for i in (1, 2, 3)]).all()
    rve_config(SPEC, 0).save(tmp_path / "rve0")
    infer(out / "encoder.pt", tmp_path / "rve0" / "grid.vti", tmp_path / "rve0" / "material.yaml",
          tmp_path / "C.json", log=lambda *a: None)
    C = json.loads((tmp_path / "C.json").read_text())
    labels = read_fm_dataset(data, labelled_only=True)["stiffness"][:, 0]
    for i, key in enumerate(("C1111", "C2222", "C3333")):   # standardised outputs: near the labels' range
        assert abs(C[key] - labels[:, i, i].mean()) < 10 * labels[:, i, i].std() + 1e9


def test_odmn_finetuning_gives_a_parameter_file_of_the_odmn_backend(pretrained, data, tmp_path):
    out = tmp_path / "odmn"
    result = finetune(data, out, FitSpec(epochs=2, batch=4, device="cpu"), task="odmn",
                      encoder=pretrained / "encoder.pt", depth=2, **QUIET)
    assert 0 < result["val_eq13"] < 0.2
    rve_config(SPEC, 0).save(tmp_path / "rve0")
    summary = infer(out / "encoder.pt", tmp_path / "rve0" / "grid.vti", tmp_path / "rve0" / "material.yaml",
                    tmp_path / "params.pt", log=lambda *a: None)
    params = ODMNParameters.load(tmp_path / "params.pt")
    assert params.depth == 2 and params.provenance["inferred_by"] == "encoder.pt"
    # its closed-form stiffness for the material's triplet against RVE 0's DNS label (eq. 13)
    C_dns = read_fm_dataset(data)["stiffness"][0, 0]
    C = np.array(summary["C_mandel_Pa"])
    assert np.linalg.norm(C - C_dns) / np.linalg.norm(C_dns) < 0.2
    # the plate with one inferred network per texture band runs with the odmn backend
    from polyfe2.cli import main

    assert main(["demo", "--backend", "odmn", "--encoder", str(out / "encoder.pt"), "--out", str(tmp_path / "demo"),
                 "--cells", "6", "6", "1", "--increments", "2", "--no-progress"]) == 0
    bands = sorted((tmp_path / "demo").glob("odmn_band*.pt"))
    assert len(bands) == 4 and all(ODMNParameters.load(b).provenance["plate_band"] == i for i, b in enumerate(bands))


def test_inference_without_a_head_and_resampling(pretrained, tmp_path):
    rve_config(SPEC, 1).save(tmp_path / "rve1")
    with pytest.raises(InputError, match="no fine-tuned head"):
        infer(pretrained / "encoder.pt", tmp_path / "rve1" / "grid.vti", tmp_path / "rve1" / "material.yaml",
              tmp_path / "x.pt")
    field = np.arange(4 * 4 * 2).reshape(4, 4, 2, 1)
    up = resample_nearest(field, 8)
    assert up.shape == (8, 8, 8, 1)
    assert up[0, 0, 0, 0] == field[0, 0, 0, 0] and up[7, 7, 7, 0] == field[3, 3, 1, 0]
    np.testing.assert_array_equal(resample_nearest(up, 4), field.repeat(2, axis=2))
