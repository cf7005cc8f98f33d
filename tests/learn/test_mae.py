"""3D masked autoencoder (paper 000, section 2.2): patches, positions, masking, eq. 5, checkpoints."""
import dataclasses

import pytest
import torch

from polyfe2.errors import InputError
from polyfe2.learn.mae import (ARCH_FIELDS, PRESETS, MAEConfig, MaskedAutoencoder, StiffnessHead,
                               load_encoder, masked_mse, patchify, random_masking, save_encoder,
                               sincos_3d, unpatchify)

TINY = MAEConfig(grid=8, patch=4, enc_dim=32, enc_depth=2, enc_heads=4,
                 dec_dim=24, dec_depth=1, dec_heads=4, mask_ratio=0.5)


def grains(batch, grid, seed=0, n_grains=5):
    """Piecewise constant unit quaternions (q0 >= 0) on a grid: a crude voxel microstructure."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, n_grains, 4, generator=g)
    q = q / q.norm(dim=-1, keepdim=True)
    q = q * torch.where(q[..., :1] < 0, -1.0, 1.0)
    seeds = torch.rand(batch, n_grains, 3, generator=g) * grid
    ax = torch.arange(grid) + 0.5
    pts = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)   # (V, 3)
    owner = torch.cdist(pts[None].expand(batch, -1, -1), seeds).argmin(-1)             # (B, V)
    vox = torch.gather(q, 1, owner[..., None].expand(-1, -1, 4))                         # (B, V, 4)
    return vox.transpose(1, 2).reshape(batch, 4, grid, grid, grid).contiguous()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MaskedAutoencoder(TINY)


# --------------------------------------------------------------------------- patches

def test_patchify_round_trip_and_layout():
    x = torch.randn(3, 4, 8, 8, 8)
    t = patchify(x, 4)
    assert t.shape == (3, 8, 4 ** 3 * 4)
    assert torch.equal(unpatchify(t, 4, 8, 4), x)
    tok = torch.randn(2, 27, 2 ** 3 * 4)
    assert torch.equal(patchify(unpatchify(tok, 2, 6, 4), 2), tok)
    # token (i, j, k) = (1, 0, 1) -> l = (1*2 + 0)*2 + 1 = 5, voxels flattened (P, P, P, C)
    cube = x[:, :, 4:8, 0:4, 4:8].permute(0, 2, 3, 4, 1).reshape(3, -1)
    assert torch.equal(t[:, 5], cube)
    with pytest.raises(ValueError):
        patchify(torch.zeros(1, 4, 9, 9, 9), 4)
    with pytest.raises(ValueError):
        unpatchify(torch.zeros(1, 7, 256), 4, 8, 4)


def test_token_count_and_conv_embedding_follow_patch_order(model):
    x = grains(2, TINY.grid)
    assert model.num_patches == (TINY.grid // TINY.patch) ** 3 == 8
    assert model.tokens(x).shape == (2, 1 + 8, TINY.enc_dim)
    # the Conv3d tokens are the patchify tokens times the (P, P, P, C)-ordered kernel: the
    # position codes and the reconstruction targets refer to the same patches
    with torch.no_grad():
        conv = model.patch_embed(x).flatten(2).transpose(1, 2)
        w = model.patch_embed.weight.permute(0, 2, 3, 4, 1).reshape(TINY.enc_dim, -1)
        lin = patchify(x, TINY.patch) @ w.T + model.patch_embed.bias
    torch.testing.assert_close(conv, lin, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- positions

def test_sincos_3d():
    n, dim = 3, 32                                   # 32 = 3 x 10 + 2 zero columns
    pe = sincos_3d(n, dim)
    assert pe.shape == (n ** 3, dim) and pe.dtype == torch.float32
    assert pe.abs().max() <= 1.0
    assert torch.cdist(pe, pe).add(torch.eye(n ** 3) * 10).min() > 1e-3       # distinct rows
    assert pe.norm(dim=1).min() > 1e-3                                         # none is the CLS zero
    assert torch.equal(pe[:, 30:], torch.zeros(n ** 3, 2))
    w = 10
    grid = pe.reshape(n, n, n, dim)
    # each third depends on its own axis only
    assert torch.equal(grid[:, :1, :1, :w].expand(n, n, n, w), grid[..., :w])
    assert torch.equal(grid[:1, :, :1, w:2 * w].expand(n, n, n, w), grid[..., w:2 * w])
    assert torch.equal(grid[:1, :1, :, 2 * w:3 * w].expand(n, n, n, w), grid[..., 2 * w:3 * w])
    # eq. 3 at patch (i, j, k) = (2, 0, 1), frequency m = 1 of each axis
    om = 1.0 / 10000 ** (2 / w)
    row = grid[2, 0, 1]
    torch.testing.assert_close(row[[2, 3]], torch.tensor([2 * om, 2 * om]).sin().mul(torch.tensor([1., 0.]))
                               + torch.tensor([2 * om, 2 * om]).cos().mul(torch.tensor([0., 1.])))
    torch.testing.assert_close(row[[w + 2, w + 3]], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(row[[2 * w + 2, 2 * w + 3]], torch.tensor([om, om]).sin().mul(torch.tensor([1., 0.]))
                               + torch.tensor([om, om]).cos().mul(torch.tensor([0., 1.])))
    with pytest.raises(ValueError):
        sincos_3d(2, 5)


def test_position_codes_are_fixed_buffers_with_zero_cls(model):
    for buf, dim in ((model.enc_pos, TINY.enc_dim), (model.dec_pos, TINY.dec_dim)):
        assert buf.shape == (1, 1 + 8, dim)
        assert torch.equal(buf[0, 0], torch.zeros(dim))
        assert torch.equal(buf[0, 1:], sincos_3d(2, dim))
    names = {n for n, _ in model.named_parameters()}
    assert "enc_pos" not in names and "dec_pos" not in names
    assert not any("pos" in k for k in model.state_dict())


# --------------------------------------------------------------------------- masking and eq. 5

@pytest.mark.parametrize("length,ratio", [(125, 0.4), (64, 0.75), (8, 0.5), (27, 0.2), (10, 0.0)])
def test_random_masking_counts(length, ratio):
    keep = round(length * (1 - ratio))
    ids_keep, mask, ids_restore = random_masking(6, length, ratio, generator=torch.Generator().manual_seed(1))
    assert ids_keep.shape == (6, keep)
    assert torch.equal(mask.sum(1), torch.full((6,), float(length - keep)))
    assert torch.equal(torch.gather(mask, 1, ids_keep), torch.zeros(6, keep))     # kept = unmasked
    # ids_restore is the inverse of the shuffle: visible ids then the masked ones
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    assert torch.equal(ids_shuffle[:, :keep], ids_keep)
    assert torch.equal(torch.gather(ids_shuffle, 1, ids_restore), torch.arange(length).expand(6, -1))
    again = random_masking(6, length, ratio, generator=torch.Generator().manual_seed(1))[1]
    assert torch.equal(again, mask)                                             # generator -> same mask
    if 0 < keep < length:
        assert len({tuple(r.tolist()) for r in mask}) > 1                       # per-sample masks


def test_loss_depends_only_on_masked_patches(model):
    x = grains(2, TINY.grid, seed=3)
    gen = lambda: torch.Generator().manual_seed(7)          # noqa: E731 - same mask each call
    with torch.no_grad():
        loss, pred, mask = model(x, generator=gen())
        assert pred.shape == (2, 8, TINY.patch_values) and mask.shape == (2, 8)
        assert torch.equal(mask.sum(1), torch.full((2,), 4.0))
        # eq. 5 by hand
        per = ((pred - patchify(x, 4)) ** 2).mean(-1)
        torch.testing.assert_close(loss, (per * mask).sum() / mask.sum())
        vis = int((mask[0] == 0).nonzero()[0])
        hid = int((mask[0] == 1).nonzero()[0])

        def bump(t, token):                       # add 1 to the voxels of one patch of sample 0
            p = patchify(t, 4).clone()
            p[0, token] += 1.0
            return unpatchify(p, 4, TINY.grid, 4)

        # the target of a visible patch does not enter the loss, that of a masked one does
        l_vis = model(x, generator=gen(), target=bump(x, vis))[0]
        l_hid = model(x, generator=gen(), target=bump(x, hid))[0]
        assert torch.equal(l_vis, loss)
        assert abs(l_hid - loss) > 1e-3
        # the encoder never sees a masked patch: changing its input leaves the prediction alone
        assert torch.equal(model(bump(x, hid), generator=gen())[1], pred)
        assert not torch.allclose(model(bump(x, vis), generator=gen())[1], pred)
        # another generator seed gives another mask
        assert not torch.equal(model(x, generator=torch.Generator().manual_seed(8))[2], mask)
    assert masked_mse(pred, pred + 1, torch.zeros(2, 8)) == 0.0


def test_a_few_adam_steps_reduce_the_loss():
    torch.manual_seed(1)
    m = MaskedAutoencoder(TINY)
    x = grains(4, TINY.grid, seed=5)
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss = m(x, generator=torch.Generator().manual_seed(0))[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_encode_shape_determinism_and_stiffness_head(model):
    x = grains(3, TINY.grid, seed=9)
    model.eval()
    with torch.no_grad():
        z = model.encode(x)
        assert z.shape == (3, TINY.enc_dim)
        assert torch.equal(model.encode(x), z)
        torch.testing.assert_close(model.encode(x[1:2]), z[1:2], rtol=1e-5, atol=1e-5)
        assert torch.equal(model.tokens(x)[:, 0], z)
        assert (z[0] - z[1]).abs().max() > 1e-4
    model.train()
    head = StiffnessHead(TINY.enc_dim)
    y = head(model.encode(x))
    assert y.shape == (3, 3)
    y.sum().backward()
    assert model.patch_embed.weight.grad is not None and model.patch_embed.weight.grad.abs().sum() > 0
    model.zero_grad()
    with pytest.raises(ValueError, match="expected input"):
        model.encode(torch.zeros(1, 4, 12, 12, 12))


# --------------------------------------------------------------------------- configuration

def _expected_counts(c):
    def blocks(d, depth):
        h = int(d * c.mlp_ratio)
        return depth * ((4 * d * d + 4 * d) + (2 * d * h + h + d) + 4 * d)
    e, dd, pv = c.enc_dim, c.dec_dim, c.patch_values
    enc = (pv * e + e) + e + blocks(e, c.enc_depth) + 2 * e
    dec = (e * dd + dd) + dd + blocks(dd, c.dec_depth) + 2 * dd + (dd * pv + pv)
    return enc, dec


def test_paper_preset_parameter_count():
    c = PRESETS["paper"]
    assert (c.grid, c.patch, c.num_patches, c.enc_dim, c.enc_depth, c.enc_heads,
            c.dec_dim, c.dec_depth, c.dec_heads, c.mask_ratio) == (45, 9, 125, 768, 12, 12, 512, 8, 16, 0.4)
    with torch.device("meta"):                 # structure only: no memory, no forward
        m = MaskedAutoencoder(c)
    enc, dec = _expected_counts(c)
    assert m.num_parameters("encoder") == enc
    assert m.num_parameters("decoder") == dec
    assert 85e6 < enc < 90e6                    # ViT-B size: ~85 M in the blocks + embedding
    assert 25e6 < dec < 30e6


def test_small_preset_builds_and_runs():
    c = PRESETS["small"]
    assert c.num_patches == 64
    m = MaskedAutoencoder(c)
    enc, dec = _expected_counts(c)
    assert (m.num_parameters("encoder"), m.num_parameters("decoder")) == (enc, dec)
    assert enc + dec < 2e6
    with torch.no_grad():
        loss, pred, mask = m(grains(1, c.grid), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and pred.shape == (1, 64, 4 ** 3 * 4)
    assert mask.sum() == 64 - round(64 * 0.6)


def test_config_validation_and_dict_round_trip():
    assert MAEConfig.from_dict(TINY.to_dict()) == TINY
    assert MAEConfig.from_dict(PRESETS["paper"].to_dict()) == PRESETS["paper"]
    bad = [
        (dict(grid=10), "grid", "multiple of patch 4"),
        (dict(enc_dim=30), "enc_dim", "multiple of enc_heads 4"),
        (dict(dec_heads=5), "dec_dim", "multiple of dec_heads 5"),
        (dict(mask_ratio=1.0), "mask_ratio", "[0, 1)"),
        (dict(enc_depth=0), "enc_depth", "positive integer"),
        (dict(patch=2.5), "patch", "positive integer"),
        (dict(dropout=-0.1), "dropout", "[0, 1)"),
    ]
    for change, field, expected in bad:
        with pytest.raises(ValueError) as err:
            dataclasses.replace(TINY, **change)
        msg = str(err.value)
        assert "\n" not in msg and f"MAEConfig.{field}" in msg and expected in msg, msg
    with pytest.raises(ValueError, match="unknown field 'width'"):
        MAEConfig.from_dict({**TINY.to_dict(), "width": 3})
    with pytest.raises(ValueError, match="missing field.*enc_dim"):
        MAEConfig.from_dict({k: v for k, v in TINY.to_dict().items() if k != "enc_dim"})


# --------------------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip(tmp_path, model):
    path = tmp_path / "mae.pt"
    norm = {"stiffness_mean": torch.tensor([200e9, 200e9, 200e9]), "stiffness_std": 1.5e9}
    meta = {"epochs": 3, "data": "rves.h5", "history": [0.3, 0.2]}
    save_encoder(path, model, TINY, norm, meta)
    raw = torch.load(path, map_location="cpu", weights_only=True)     # plain data only
    assert raw["format"] == "polyfe2.mae" and raw["config"] == TINY.to_dict()
    loaded = load_encoder(path, expect=TINY)
    assert loaded.config == TINY and loaded.metadata == meta
    assert torch.equal(loaded.normalisation["stiffness_mean"], norm["stiffness_mean"])
    x = grains(2, TINY.grid, seed=11)
    model.eval()
    loaded.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model.encode(x), model.encode(x))
        g = lambda: torch.Generator().manual_seed(2)     # noqa: E731
        assert torch.equal(loaded.model(x, generator=g())[0], model(x, generator=g())[0])
    model.train()
    # training settings come from `expect`; encoder-only checkpoints load too
    tuned = load_encoder(path, expect=dataclasses.replace(TINY, mask_ratio=0.75, dropout=0.1))
    assert tuned.config.mask_ratio == 0.75 and tuned.model.config.dropout == 0.1
    save_encoder(tmp_path / "enc.pt", model, include_decoder=False)
    enc_only = load_encoder(tmp_path / "enc.pt")
    enc_only.model.eval()
    model.eval()        # (eval uses torch's fused fast path: compare like with like)
    with torch.no_grad():
        assert torch.equal(enc_only.model.encode(x), model.encode(x))
    model.train()
    with pytest.raises(ValueError, match="metadata"):
        save_encoder(tmp_path / "x.pt", model, metadata={"bad": object()})


def test_checkpoint_errors_are_one_line_input_errors(tmp_path, model):
    path = tmp_path / "mae.pt"
    save_encoder(path, model)
    other = dataclasses.replace(TINY, enc_depth=3)
    with pytest.raises(InputError) as err:
        load_encoder(path, expect=other)
    msg = str(err.value)
    assert "\n" not in msg and "enc_depth" in msg and "2" in msg and "3" in msg and str(path) in msg
    assert err.value.key == "config.enc_depth"
    with pytest.raises(InputError) as err:          # several differing fields are all named
        load_encoder(path, expect=dataclasses.replace(TINY, grid=12, dec_dim=48))
    assert "grid is 8" in str(err.value) and "dec_dim is 24" in str(err.value)
    assert all(f in dataclasses.asdict(TINY) for f in ARCH_FIELDS)

    with pytest.raises(InputError, match="not found") as err:
        load_encoder(tmp_path / "missing.pt")
    assert err.value.file == str(tmp_path / "missing.pt")
    torch.save({"format": "polyfe2.gru_surrogate", "version": 1}, tmp_path / "gru.pt")
    with pytest.raises(InputError, match="not a polyfe2 MAE checkpoint") as err:
        load_encoder(tmp_path / "gru.pt")
    assert err.value.key == "format"
    (tmp_path / "text.pt").write_text("hello\n")
    with pytest.raises(InputError, match="not a readable torch checkpoint"):
        load_encoder(tmp_path / "text.pt")
    raw = torch.load(path, weights_only=True)
    raw["state_dict"]["dec_pred.bias"] = torch.zeros(5)
    torch.save(raw, tmp_path / "broken.pt")
    with pytest.raises(InputError) as err:
        load_encoder(tmp_path / "broken.pt")
    assert err.value.key == "state_dict" and "\n" not in str(err.value)
