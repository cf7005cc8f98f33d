"""Training loop and error measures of the GRU surrogate."""
import csv
import json

import numpy as np
import pytest
import torch

from polyfe2.cli import main
from polyfe2.errors import InputError
from polyfe2.learn import datagen as DG
from polyfe2.learn.evaluate import eq5_error, error_stats, peak_stress
from polyfe2.constitutive.gru_network import GRUSurrogate
from polyfe2.learn.train import TrainSpec, train


def test_eq5_error_is_the_largest_eigenvalue_magnitude():
    true = np.zeros((2, 6))
    pred = np.array([[1.0, -2.0, 1.0, 0, 0, 0],      # eigenvalues 1, -2, 1
                     [0, 0, 0, 0, 0, 3.0]])           # shear 12: eigenvalues +-3, 0
    np.testing.assert_allclose(eq5_error(pred, true), [2.0, 3.0], rtol=1e-12)
    np.testing.assert_allclose(eq5_error(true, pred), [2.0, 3.0], rtol=1e-12)   # symmetric in the sign
    # rotation invariant: the same error tensor in another frame has the same measure
    c, s = np.cos(0.4), np.sin(0.4)
    Q = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    E = Q @ np.diag([1.0, -2.0, 1.0]) @ Q.T
    e6 = np.array([[E[0, 0], E[1, 1], E[2, 2], E[1, 2], E[0, 2], E[0, 1]]])
    np.testing.assert_allclose(eq5_error(e6, np.zeros((1, 6))), [2.0], rtol=1e-12)
    ref = np.array([[[0, 0, 0, 0, 0, 4.0e6], [0, 0, 0, 0, 0, 8.0e6]]])    # peak 8 MPa
    st = error_stats(np.zeros((1, 2, 6)), ref)
    assert st["peak_MPa"] == pytest.approx(8.0) and st["mean_MPa"] == pytest.approx(6.0)
    assert st["mean_pct_peak"] == pytest.approx(75.0) and st["per_step_mean_MPa"] == pytest.approx([4.0, 8.0])
    assert peak_stress(np.array([[[0, 0, 0, 0, 0, 4.0], [0, 0, 0, 0, 0, -5.0]]]))[0] == pytest.approx(5.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "d.h5"
    DG.generate(out, DG.DatagenSpec(n_ve=24, paths_per_ve=2, steps=20, sections=3, chunk=12), workers=2,
                progress=False, log=lambda *a: None)
    return out


def test_training_reduces_the_error_writes_outputs_and_resumes(data, tmp_path):
    spec = TrainSpec(epochs=12, batch=8, lr=3e-3, hidden=32, val_fraction=0.1, threads=2)
    res = train([data], tmp_path, spec, progress=False, log=lambda *a: None)
    for name in ("model.pt", "checkpoint.pt", "history.csv", "loss.png", "val_error.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert len(rows) == 12 and res["epochs"] == 12
    first, best = float(rows[0]["val_loss"]), min(float(r["val_loss"]) for r in rows)
    assert best < 0.8 * first
    model = GRUSurrogate.load(tmp_path / "model.pt")
    assert model.meta["samples_train"] + model.meta["samples_val"] == 48 and model.meta["dt"] == 0.5
    # 94:6 style split: the validation samples are a fixed share
    assert model.meta["samples_val"] == 5
    # resume: more epochs continue the history
    res = train([data], tmp_path, TrainSpec(**{**spec.__dict__, "epochs": 14}), progress=False, log=lambda *a: None)
    assert res["epochs"] == 14 and len(list(csv.DictReader(open(tmp_path / "history.csv")))) == 14
    with pytest.raises(InputError, match="key 'hidden'"):
        train([data], tmp_path, TrainSpec(**{**spec.__dict__, "hidden": 16}), progress=False, log=lambda *a: None)
    # fine-tuning starts from the model's weights and keeps its normalisation
    tuned = train([data], tmp_path / "tuned", TrainSpec(**{**spec.__dict__, "epochs": 1, "init": str(tmp_path / "model.pt")}),
                  progress=False, log=lambda *a: None)
    m2 = GRUSurrogate.load(tuned["model"])
    assert m2.meta["initialised_from"]["file"] == "model.pt"
    assert np.array_equal(m2.s_max.numpy(), model.s_max.numpy())
    first_tuned = float(next(csv.DictReader(open(tmp_path / "tuned" / "history.csv")))["val_loss"])
    assert first_tuned < first


def test_evaluate_command(data, tmp_path, capsys):
    assert main(["train", "gru", str(data), "--out", str(tmp_path / "t"), "--epochs", "1", "--hidden", "16",
                 "--batch", "16", "--no-progress"]) == 0
    assert main(["evaluate", "gru", str(tmp_path / "t" / "model.pt"), f"tiny={data}", "--out",
                 str(tmp_path / "e")]) == 0
    assert "tiny" in capsys.readouterr().out
    for name in ("report.json", "errors.png", "examples_tiny.png", "incremental.png"):
        assert (tmp_path / "e" / name).stat().st_size > 0
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert len(report["incremental"]["falling_taylor"]) == len(report["incremental"]["levels"])
    rc = main(["evaluate", "gru", str(tmp_path / "none.pt"), f"tiny={data}", "--out", str(tmp_path / "e")])
    assert rc == 2 and "none.pt" in capsys.readouterr().err
    rc = main(["evaluate", "gru", str(tmp_path / "t" / "model.pt"), str(data), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 2 and "NAME=FILE.h5" in err and len(err.strip().splitlines()) == 1


def test_fine_tune_with_new_inputs(data, tmp_path):
    """An F / mean model continues as F+dF+dt / volume: the statistics come from the data, the
    metadata says which labels the model follows and which step times it saw."""
    spec = TrainSpec(epochs=2, batch=8, lr=3e-3, hidden=32, val_fraction=0.1, threads=2)
    train([data], tmp_path / "a", spec, progress=False, log=lambda *a: None)
    res = train([data], tmp_path / "b", TrainSpec(**{**spec.__dict__, "init": str(tmp_path / "a" / "model.pt"),
                                                     "features": "F+dF+dt", "pooling": "volume"}),
                progress=False, log=lambda *a: None)
    m = GRUSurrogate.load(res["model"])
    assert (m.features, m.pooling, m.input_layer.in_features) == ("F+dF+dt", "volume", 19 + 32)
    assert m.meta["initialised_from"]["features"] == "F" and m.meta["dt_range"] == [0.5, 0.5]
    assert m.meta["reference"].startswith("iso-strain")
    assert float(m.x_std[:9].min()) > 0 and float(m.x_std[18]) == 0.0   # one dt in the data: ln dt is constant
    with pytest.raises(InputError, match="key 'features'"):   # resuming needs the same options
        train([data], tmp_path / "b", TrainSpec(**{**spec.__dict__, "init": str(tmp_path / "a" / "model.pt")}),
              progress=False, log=lambda *a: None)
    # squashed step features: a fine-tune from the converted model keeps its weights
    res = train([data], tmp_path / "c", TrainSpec(**{**spec.__dict__, "epochs": 1, "init": str(res["model"]),
                                                     "squash": 4.0}), progress=False, log=lambda *a: None)
    assert GRUSurrogate.load(res["model"]).squash == 4.0
    for bad in (["--squash", "-1"], ["--squash", "4", "--features", "F"], ["--beyond-weight", "0"]):
        rc = main(["train", "gru", str(data), "--out", str(tmp_path / "d"), "--epochs", "1", "--no-progress", *bad])
        assert rc == 2


def test_a_wrong_option_stops_before_the_data_are_read(tmp_path, capsys):
    rc = main(["train", "gru", str(tmp_path / "absent.h5"), "--out", str(tmp_path / "d"), "--no-progress",
               "--beyond-weight", "-1"])
    err = capsys.readouterr().err
    assert rc == 2 and "key 'beyond-weight'" in err and "absent.h5" not in err


def test_rotation_augmentation_trains_on_rotated_copies(data, tmp_path):
    """With --augment the training loss is taken on rotated copies (rotation 0 is the data as
    they are), so it differs from the plain run's from the first epoch on; validation stays on
    the unrotated samples."""
    spec = TrainSpec(epochs=1, batch=8, lr=3e-3, hidden=32, val_fraction=0.1, threads=2)
    plain = train([data], tmp_path / "plain", spec, progress=False, log=lambda *a: None)
    aug = train([data], tmp_path / "aug", TrainSpec(**{**spec.__dict__, "augment": True}), progress=False,
                log=lambda *a: None)
    rows = [next(csv.DictReader(open(r["model"].parent / "history.csv"))) for r in (plain, aug)]
    assert np.isfinite(float(rows[1]["train_loss"])) and rows[0]["train_loss"] != rows[1]["train_loss"]
    assert GRUSurrogate.load(aug["model"]).meta["spec"]["augment"] is True


def test_label_gap_of_two_label_sets(data, tmp_path, capsys):
    assert main(["train", "gru", str(data), "--out", str(tmp_path / "t"), "--epochs", "1", "--hidden", "16",
                 "--batch", "16", "--no-progress"]) == 0
    other = tmp_path / "other.h5"
    DG.generate(other, DG.DatagenSpec(n_ve=24, paths_per_ve=2, steps=20, sections=3, chunk=12, seed=1), workers=1,
                progress=False, log=lambda *a: None)
    model = str(tmp_path / "t" / "model.pt")
    assert main(["evaluate", "gru", model, f"a={data}", f"b={data}", "--label-gap", "a:b", "--out",
                 str(tmp_path / "e")]) == 0
    assert "labels b vs a: mean eq.5 difference 0.000 MPa" in capsys.readouterr().out
    rc = main(["evaluate", "gru", model, f"a={data}", f"b={other}", "--label-gap", "a:b", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 2 and "other.h5" in err and len(err.strip().splitlines()) == 1
    rc = main(["evaluate", "gru", model, f"a={data}", "--label-gap", "a:c", "--out", str(tmp_path / "e")])
    assert rc == 2 and "REFERENCE:OTHER" in capsys.readouterr().err


def test_train_device_option(data, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: 'cuda' is a valid choice here")
    rc = main(["train", "gru", str(data), "--out", str(tmp_path / "t"), "--epochs", "1", "--hidden", "16",
               "--device", "cuda", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "key 'device'" in err and len(err.strip().splitlines()) == 1
    rc = main(["train", "gru", str(data), "--out", str(tmp_path / "t"), "--epochs", "1", "--hidden", "16",
               "--device", "gpu", "--no-progress"])
    assert rc == 2 and "expected auto, cpu or cuda[:N]" in capsys.readouterr().err
    assert not (tmp_path / "t" / "model.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_matches_cpu(data, tmp_path):
    """Same seed, same batches: the first epochs on the GPU follow the CPU run (float32, cuDNN)."""
    spec = TrainSpec(epochs=3, batch=8, lr=3e-3, hidden=32, val_fraction=0.1, threads=2)
    runs = {}
    for dev in ("cpu", "cuda"):
        train([data], tmp_path / dev, TrainSpec(**{**spec.__dict__, "device": dev}), progress=False,
              log=lambda *a: None)
        runs[dev] = [float(r["val_loss"]) for r in csv.DictReader(open(tmp_path / dev / "history.csv"))]
    np.testing.assert_allclose(runs["cuda"], runs["cpu"], rtol=2e-3)
    model = GRUSurrogate.load(tmp_path / "cuda" / "model.pt")   # written from the GPU, read on the CPU
    assert model.meta["spec"]["device"] == "cuda" and model.s_max.device.type == "cpu"
    # resuming a GPU run on the CPU continues its history
    res = train([data], tmp_path / "cuda", TrainSpec(**{**spec.__dict__, "epochs": 4, "device": "cpu"}),
                progress=False, log=lambda *a: None)
    assert res["epochs"] == 4


def test_fine_tune_without_positions(data, tmp_path):
    """`train gru --init M --no-positions`: the model continues without the seed positions and
    gives one answer for a VE wherever it is moved; resuming needs the same switch."""
    spec = TrainSpec(epochs=1, batch=8, lr=3e-3, hidden=32, val_fraction=0.1, threads=2)
    train([data], tmp_path / "a", spec, progress=False, log=lambda *a: None)
    tuned = TrainSpec(**{**spec.__dict__, "init": str(tmp_path / "a" / "model.pt"), "positions": False})
    m = GRUSurrogate.load(train([data], tmp_path / "b", tuned, progress=False, log=lambda *a: None)["model"])
    assert m.positions is False
    assert m.meta["initialised_from"]["file"] == "model.pt" and m.meta["initialised_from"]["positions"] is True
    d = DG.read_dataset(data)
    desc = torch.as_tensor(d["descriptor"][:4])
    moved = desc.clone()
    moved[..., :3] = (moved[..., :3] + 0.37) % 1.0
    F = torch.as_tensor(d["F"][:4, 1:])
    torch.testing.assert_close(m.double()(moved, F), m.double()(desc, F), rtol=0, atol=0)
    with pytest.raises(InputError, match="positions"):
        train([data], tmp_path / "b", TrainSpec(**{**tuned.__dict__, "positions": None}), progress=False,
              log=lambda *a: None)


def test_iso_strain_labels_count_only_beyond_the_full_field_strain():
    from polyfe2.learn.loadpath import idealised_path
    from polyfe2.learn.train import label_weights, log_strain_size, weighted_mse

    F = np.stack([idealised_path("uniaxial_tension", steps=10, strain=0.1)] * 3)   # ||ln U|| = 1.5**0.5 e
    np.testing.assert_allclose(log_strain_size(F[0]), 1.5**0.5 * np.linspace(0, 0.1, 11), atol=1e-12)
    fullfield = dict(attrs=dict(method="fullfield", max_strain=0.05), F=F)
    iso = dict(attrs=dict(method="taylor", max_strain=0.2), F=F)
    w_ff, w_iso = label_weights([fullfield, iso])
    assert w_ff.shape == (3, 10) and (w_ff == 1).all()
    # steps 1..4 reach ||ln U|| = 0.049 <= 0.05: those iso-strain labels are left out, 5..10 count
    np.testing.assert_array_equal(w_iso[0], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    assert (label_weights([iso])[0] == 1).all()   # an iso-strain set on its own counts everywhere
    # --beyond-weight scales the iso-strain labels that count, and only those
    w_ff, w_iso = label_weights([fullfield, iso], beyond=0.25)
    assert (w_ff == 1).all()
    np.testing.assert_array_equal(w_iso[0], [0, 0, 0, 0] + [0.25] * 6)
    # the loss does not see the labels it leaves out, and with all weights 1 it is the plain MSE
    pred, y = torch.randn(3, 10, 6), torch.randn(3, 10, 6)
    w = torch.as_tensor(w_iso)
    y_changed = torch.where(w[..., None] == 0, y + 100.0, y)
    assert weighted_mse(pred, y_changed, w) == pytest.approx(float(weighted_mse(pred, y, w)), rel=1e-6)
    assert float(weighted_mse(pred, y, torch.ones(3, 10))) == pytest.approx(float(torch.nn.functional.mse_loss(pred, y)),
                                                                             rel=1e-6)
    # the error statistics leave the same labels out
    st = error_stats(np.zeros((1, 2, 6)), np.array([[[0, 0, 0, 0, 0, 4.0e6], [0, 0, 0, 0, 0, 8.0e6]]]), [[0, 1]])
    assert st["mean_MPa"] == pytest.approx(8.0) and st["per_step_mean_MPa"][1] == pytest.approx(8.0)


def test_sets_of_fewer_steps_are_padded_with_labels_that_do_not_count(data, tmp_path):
    """A set of the same kind of paths in 10 longer steps trains with the 20-step set: its paths
    are held at their last F for the missing steps, whose labels have weight 0."""
    from polyfe2.learn.datagen import read_dataset
    from polyfe2.learn.train import load_training_data

    short = tmp_path / "short.h5"
    DG.generate(short, DG.DatagenSpec(n_ve=4, paths_per_ve=1, steps=10, sections=3, chunk=4, seed=5), workers=1,
                progress=False, log=lambda *a: None)
    alone = read_dataset(short)
    both = load_training_data([data, short])
    n = len(read_dataset(data)["F"])
    assert both["F"].shape == (n + 4, 21, 3, 3) and both["sigma_dev"].shape == (n + 4, 20, 6)
    np.testing.assert_array_equal(both["F"][n:, :11], alone["F"])
    np.testing.assert_array_equal(both["F"][n:, 11:], np.repeat(alone["F"][:, -1:], 10, axis=1))
    np.testing.assert_array_equal(both["sigma_dev"][n:, :10], alone["sigma_dev"])
    assert (both["weight"][:n] == 1).all() and (both["weight"][n:, :10] == 1).all()
    assert (both["weight"][n:, 10:] == 0).all()


def test_grain_model_trains_fine_tunes_and_refuses_voxel_options(data, tmp_path, capsys):
    """``--arch grain``: the per-grain model learns (validation loss falls), its file is read by
    load_surrogate with the settings in its metadata, a fine-tune keeps its scaling, and the voxel
    model's input options are one-line errors."""
    from polyfe2.constitutive.surrogates import is_grain_model, load_surrogate

    spec = TrainSpec(epochs=10, batch=8, lr=1e-2, hidden=16, layers=1, val_fraction=0.1, threads=2, arch="grain")
    res = train([data], tmp_path / "g", spec, progress=False, log=lambda *a: None)
    rows = list(csv.DictReader(open(tmp_path / "g" / "history.csv")))
    assert min(float(r["val_loss"]) for r in rows) < 0.7 * float(rows[0]["val_loss"])
    model = load_surrogate(res["model"])
    assert is_grain_model(model) and model.meta["spec"]["arch"] == "grain" and not model.training
    tuned = train([data], tmp_path / "t", TrainSpec(**{**spec.__dict__, "epochs": 1, "arch": None,
                                                       "init": str(res["model"])}), progress=False, log=lambda *a: None)
    m2 = load_surrogate(tuned["model"])
    assert is_grain_model(m2) and float(m2.s_scale) == float(model.s_scale)
    assert main(["train", "gru", str(data), "--out", str(tmp_path / "x"), "--arch", "grain", "--features", "F+dF+dt",
                 "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "key 'arch'" in err and "--features" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "gru", str(data), "--out", str(tmp_path / "y"), "--arch", "voxel", "--init",
                 str(res["model"]), "--epochs", "1", "--no-progress"]) == 2
    assert "is a grain model" in capsys.readouterr().err
