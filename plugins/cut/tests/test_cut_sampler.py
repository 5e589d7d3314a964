"""The patch sampler F against the reference's PatchSampleF: keys, shapes, ids, normalisation."""
from __future__ import annotations

import pytest
import torch

from ganzoo_cut.sampler import (
    MLPPatchSamplerConfig,
    PatchSampler,
    PatchSamplerConfig,
    build_patch_sampler,
    l2_normalize,
)

CUT_CHANNELS = [3, 128, 256, 256, 256]  # nce_layers 0,4,8,12,16 of resnet_9blocks, ngf 64, RGB


def feats(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, 10, 12, generator=g), torch.randn(b, 8, 6, 4, generator=g),
            torch.randn(b, 8, 2, 3, generator=g)]


def test_state_dict_keys_and_count_match_the_reference():
    f = PatchSampler(CUT_CHANNELS)
    expected = []
    for i, c in enumerate(CUT_CHANNELS):
        expected += [(f"mlp_{i}.0.weight", (256, c)), (f"mlp_{i}.0.bias", (256,)),
                     (f"mlp_{i}.2.weight", (256, 256)), (f"mlp_{i}.2.bias", (256,))]
    assert [(k, tuple(v.shape)) for k, v in f.state_dict().items()] == expected
    # per layer: C*256 + 256 + 256*256 + 256
    assert sum(p.numel() for p in f.parameters()) == 560_384
    assert PatchSampler(use_mlp=False).state_dict() == {}


def test_shapes_and_patch_counts():
    f = PatchSampler(nc=16)
    out, ids = f(feats(), num_patches=20, generator=torch.Generator().manual_seed(0))
    # min(20, H*W) positions per map: 20, 20, 6 (a 2x3 map has only 6)
    assert [tuple(o.shape) for o in out] == [(40, 16), (40, 16), (12, 16)]
    assert sorted(ids[2].tolist()) == list(range(6))
    assert all(i.dtype == torch.long and len(set(i.tolist())) == len(i) for i in ids)  # without replacement
    raw, _ = PatchSampler(use_mlp=False)(feats(), num_patches=5)
    assert [tuple(o.shape) for o in raw] == [(10, 3), (10, 8), (10, 8)]


def test_lazy_creation_equals_eager_creation():
    torch.manual_seed(0)
    lazy = PatchSampler(nc=16)
    assert not lazy.ready and lazy.state_dict() == {}
    lazy(feats(), num_patches=4, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    eager = build_patch_sampler(MLPPatchSamplerConfig(nc=16), channels=[3, 8, 8])
    assert lazy.ready and lazy.channels == eager.channels == (3, 8, 8)
    for (k, a), (k2, b) in zip(lazy.state_dict().items(), eager.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_init_is_xavier_with_zero_biases():
    torch.manual_seed(0)
    f = PatchSampler([256], nc=256, init_gain=0.02)
    assert f.mlp_0[0].bias.abs().sum() == 0 and f.mlp_0[2].bias.abs().sum() == 0
    assert f.mlp_0[0].weight.std().item() == pytest.approx(0.02 * (2 / 512) ** 0.5, rel=0.05)


def test_ids_are_randperm_prefixes_drawn_from_the_given_generator():
    f = PatchSampler(use_mlp=False)
    _, ids = f(feats(), num_patches=7, generator=torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    expected = [torch.randperm(n, generator=replay)[:min(7, n)] for n in (120, 24, 6)]  # one draw per map, in order
    assert all(torch.equal(a, b) for a, b in zip(ids, expected))


def test_seeded_ids_repeat_and_resume_from_the_generator_state():
    f = PatchSampler(use_mlp=False)
    g = torch.Generator().manual_seed(5)
    _, first = f(feats(), num_patches=7, generator=g)
    state = g.get_state()  # what a checkpoint stores
    _, second = f(feats(), num_patches=7, generator=g)
    assert any(not torch.equal(a, b) for a, b in zip(first, second))  # the stream moves on
    g2 = torch.Generator()
    g2.set_state(state)
    _, resumed = f(feats(), num_patches=7, generator=g2)
    assert all(torch.equal(a, b) for a, b in zip(second, resumed))
    _, again = f(feats(), num_patches=7, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_explicit_ids_gather_row_major_positions_image_major_rows():
    torch.manual_seed(0)
    f = PatchSampler([3, 8, 8], nc=16)
    maps = feats()
    given = [torch.tensor([0, 13, 119]), torch.tensor([5, 2]), torch.tensor([4])]
    out, used = f(maps, patch_ids=given)
    assert all(torch.equal(a, b) for a, b in zip(used, given))
    for layer, (m, ids) in enumerate(zip(maps, given)):
        width = m.shape[3]
        rows = torch.stack([m[b, :, p // width, p % width] for b in range(m.shape[0]) for p in ids.tolist()])
        mlp = getattr(f, f"mlp_{layer}")
        x = mlp[2](torch.relu(mlp[0](rows)))
        torch.testing.assert_close(out[layer], x / (x.norm(dim=1, keepdim=True) + 1e-7))
    # the query call reuses the key call's ids: same positions, same rows
    _, ids_k = f(maps, num_patches=5, generator=torch.Generator().manual_seed(0))
    out_q, ids_q = f(maps, num_patches=5, patch_ids=ids_k)
    assert all(torch.equal(a, b) for a, b in zip(ids_k, ids_q))


def test_rows_are_unit_vectors_up_to_the_references_epsilon():
    out, _ = PatchSampler(use_mlp=False)(feats(), num_patches=9)
    for o in out:
        torch.testing.assert_close(o.norm(dim=1), torch.ones(len(o)), atol=1e-5, rtol=0)
    # right after init the MLP outputs are tiny (gain 0.02), so the 1e-7 is visible: |x| / (|x| + 1e-7)
    f = PatchSampler(nc=32)
    out, ids = f(feats(), num_patches=9)
    raw = f.mlp_0(feats()[0].permute(0, 2, 3, 1).flatten(1, 2)[:, ids[0]].flatten(0, 1)).norm(dim=1)
    torch.testing.assert_close(out[0].norm(dim=1), raw / (raw + 1e-7))
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    torch.testing.assert_close(l2_normalize(x), torch.tensor([[3 / (5 + 1e-7), 4 / (5 + 1e-7)], [0.0, 0.0]]))


def test_gradients_reach_features_and_mlps():
    f = PatchSampler(nc=8)
    maps = [m.requires_grad_() for m in feats()]
    out, _ = f(maps, num_patches=4)
    sum(o.sum() for o in out).backward()
    assert all(m.grad is not None for m in maps) and f.mlp_0[0].weight.grad is not None


def test_a_saved_sampler_loads_into_a_fresh_one():
    torch.manual_seed(0)
    src = PatchSampler([3, 8, 8], nc=16)
    fresh = PatchSampler(nc=16)
    fresh.load_state_dict(src.state_dict(), strict=True)
    assert fresh.channels == (3, 8, 8)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), src.state_dict().values()))
    with pytest.raises(RuntimeError, match="size mismatch"):
        PatchSampler(nc=32).load_state_dict(src.state_dict())


@pytest.mark.parametrize("call, match", [
    (lambda f: f(feats(), num_patches=0), "num_patches"),
    (lambda f: f([], num_patches=4), "non-empty list"),
    (lambda f: f([torch.rand(2, 3, 4)]), r"\(B, C, H, W\)"),
    (lambda f: f(feats(), patch_ids=[torch.tensor([0])]), "one patch id tensor per feature map"),
    (lambda f: f(feats(), patch_ids=[torch.tensor([0]), torch.tensor([24]), torch.tensor([0])]), r"\[0, 24\)"),
    (lambda f: f(feats(), patch_ids=[torch.tensor([0.0])] * 3), "integer"),
    (lambda f: f(feats()[:2]), r"channels \[3, 8, 8\]"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(PatchSampler([3, 8, 8], nc=4))


def test_configs():
    cfg = MLPPatchSamplerConfig()
    assert (cfg.num_patches, cfg.nc, cfg.init_type, cfg.init_gain) == (256, 256, "xavier", 0.02)
    f = build_patch_sampler(MLPPatchSamplerConfig(num_patches=7, nc=8), channels=[3])
    assert f.use_mlp and f.nc == 8 and f.num_patches == 7
    out, ids = f([torch.rand(2, 3, 5, 5)])
    assert out[0].shape == (14, 8) and len(ids[0]) == 7  # the built num_patches is the default
    plain = build_patch_sampler(PatchSamplerConfig(num_patches=3), channels=[3])
    assert not plain.use_mlp and plain.state_dict() == {} and plain.num_patches == 3
    for cls, bad in ((MLPPatchSamplerConfig, {"nc": 0}), (MLPPatchSamplerConfig, {"init_type": "uniform"}),
                     (PatchSamplerConfig, {"num_patches": 0}), (MLPPatchSamplerConfig, {"num_patches": 0})):
        with pytest.raises(ValueError):
            cls(**bad)
