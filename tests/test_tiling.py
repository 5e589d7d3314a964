"""ganzoo.tiling: blending weights, tiled vs whole translation, memory estimates.

A convolution-only network gives the same output tiled as whole (the tiles start on its
stride grid and the pixels its own padding corrupts get weight 0). A ResNet with instance norm
does not, because the normalisation statistics of a tile are not those of the whole image.
Measured for resnet_6blocks at ngf 8 (random initialisation, output std 0.26 in [-1, 1]) on
the 256 x 320 test scene, tiles of 128 with overlap 32, 16 px from the borders: with one set of
statistics for all tiles (the default) max 0.47, mean 0.051; with each tile its own, max 1.19,
mean 0.16. The bounds below leave a little room over those figures.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo._typed import build_dataclass
from ganzoo.errors import GanzooError
from ganzoo.flops import TensorMemory
from ganzoo.tiling import (
    MEMORY_FACTOR,
    ImageTooLargeError,
    blend_weights,
    check_fits,
    estimate_memory,
    suggest_tile,
    tile_starts,
    translate_tiled,
)


def scene(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A (1, 3, h, w) image in [-1, 1] with smooth gradients, flat discs and a little noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([torch.sin(6 * xx + 3 * yy), torch.cos(5 * yy - 2 * xx), xx * yy * 2 - 1])
    for _ in range(8):
        cy, cx, r = torch.rand(3, generator=g).tolist()
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.05 + 0.2 * r) ** 2
        img[:, disc] = torch.rand(3, 1, generator=g) * 2 - 1
    return (img + 0.1 * torch.randn(3, h, w, generator=g)).clamp(-1, 1)[None]


def whole(net: nn.Module, x: torch.Tensor, m: int) -> torch.Tensor:
    """The whole-image translation: pad bottom/right by reflection to the stride, crop back."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, -w % m, 0, -h % m), mode="reflect")
    with torch.inference_mode():
        return net(padded)[..., :h, :w]


class ConvOnly(nn.Module):
    """Convolutions with a stride-2 level and zero padding; receptive radius 7 px."""

    size_multiple = 2

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.Conv2d(8, 3, 3, padding=1), nn.Tanh(),
        )

    def forward(self, x):
        return self.body(x)


def resnet(registry, name: str = "resnet_6blocks") -> nn.Module:
    torch.manual_seed(0)
    spec = registry.get("generator", name)
    return spec.build(build_dataclass(spec.config_cls, {"ngf": 8}), in_channels=3, out_channels=3).eval()


@pytest.mark.parametrize("length,tile,overlap,m", [
    (1000, 256, 64, 4), (1024, 512, 64, 4), (998, 100, 32, 2), (64, 512, 64, 4), (96, 64, 32, 32), (300, 40, 36, 4),
])
def test_blend_weights_sum_to_one_and_drop_the_tile_edges(length, tile, overlap, m):
    tile = min(tile, length)
    starts = tile_starts(length, tile, overlap, m)
    assert starts[0] == 0 and starts[-1] == length - tile
    assert all(s % m == 0 for s in starts)
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:])), "neighbours overlap enough"
    weights = blend_weights(length, tile, starts, overlap)
    total = torch.zeros(length)
    for s, w in zip(starts, weights):
        total[s : s + tile] += w
        assert (w >= 0).all()
        if s > 0:
            assert (w[: overlap // 4] == 0).all(), "pixels next to an inner tile edge are dropped"
    assert torch.allclose(total, torch.ones(length), atol=1e-6)
    assert weights[0][0] == 1 and weights[-1][-1] == 1, "image borders keep their tile's pixels"


@pytest.mark.parametrize("h,w,tile,overlap,batch", [(150, 203, 64, 16, 1), (200, 96, 48, 32, 3), (33, 47, 512, 64, 1)])
def test_convolution_only_network_is_exact_tiled(h, w, tile, overlap, batch):
    net = ConvOnly().eval()
    x = scene(h, w)
    y = translate_tiled(net, x, tile=tile, overlap=overlap, batch=batch)
    assert y.shape == (1, 3, h, w) and y.dtype == torch.float32
    assert (y - whole(net, x, 2)).abs().max() < 1e-5, "everywhere, borders included"


def test_uint8_output_is_the_quantised_float_output():
    net = ConvOnly().eval()
    x = scene(130, 170)
    y8 = translate_tiled(net, x, tile=64, overlap=16, out_dtype=torch.uint8)
    expected = ((whole(net, x, 2).clamp(-1, 1) + 1) * 127.5).round()
    assert y8.dtype == torch.uint8 and (y8.float() - expected).abs().max() <= 1


def test_instance_norm_resnet_tiled_is_close_to_whole_with_stated_bound(registry):
    net = resnet(registry)
    x = scene(256, 320)
    reference = whole(net, x, 4)
    assert reference.std() > 0.2, "a near-constant output would make the bounds vacuous"
    shared = (translate_tiled(net, x, tile=128, overlap=32, batch=2) - reference).abs()[..., 16:-16, 16:-16]
    own = (translate_tiled(net, x, tile=128, overlap=32, norm_stats="tile") - reference).abs()[..., 16:-16, 16:-16]
    # measured: shared statistics max 0.470 mean 0.0508; each tile its own max 1.19 mean 0.160
    assert shared.max() < 0.55 and shared.mean() < 0.06, (shared.max(), shared.mean())
    assert own.mean() < 0.18, own.mean()
    assert shared.mean() < 0.5 * own.mean()
    assert not any(m._forward_hooks for m in net.modules()), "the statistics hooks are removed"


def test_images_smaller_than_a_tile_are_translated_whole(registry):
    net = resnet(registry)
    x = scene(37, 50)  # odd sizes: padded to 40 x 52 by reflection, like the whole-image path
    y = translate_tiled(net, x, tile=512, overlap=64)
    assert y.shape == (1, 3, 37, 50)
    assert (y - whole(net, x, 4)).abs().max() < 1e-6


def test_bf16_autocast_stays_close_to_fp32(registry):
    net, x = resnet(registry), scene(160, 200)
    fp32 = translate_tiled(net, x, tile=96, overlap=32)
    bf16 = translate_tiled(net, x, tile=96, overlap=32, dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().mean() < 0.02


def test_progress_reports_every_tile():
    seen = []
    translate_tiled(ConvOnly().eval(), scene(100, 140), tile=48, overlap=8, batch=2, progress=lambda d, t: seen.append((d, t)))
    total = seen[-1][1]
    assert seen[-1][0] == total and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert total == len(tile_starts(100, 48, 8, 2)) * len(tile_starts(140, 48, 8, 2))


def test_live_tensors_depend_on_the_tile_not_the_image(registry):
    net = resnet(registry)
    x = scene(512, 512)
    out_bytes = 3 * 512 * 512 * 4
    with TensorMemory([x]) as mem:
        translate_tiled(net, x, tile=128, overlap=32)
    strip = 3 * 128 * 512 * 4
    tiled_extra = mem.peak_bytes - x.nbytes - out_bytes
    assert tiled_extra <= estimate_memory(net, 3, 128, 128) + 4 * strip
    assert tiled_extra * 4 < estimate_memory(net, 3, 512, 512)


def test_memory_estimate_scales_with_pixels_and_suggests_a_tile(registry):
    net = resnet(registry, "resnet_9blocks")
    params = sum(p.numel() * 4 for p in net.parameters())
    small, large = estimate_memory(net, 3, 256, 256), estimate_memory(net, 3, 1024, 1024)
    assert small > params and math.isclose(large - params, 16 * (small - params), rel_tol=0.05)
    assert estimate_memory(net, 3, 253, 254) == small, "sizes are padded to the stride first"

    budget = estimate_memory(net, 3, 768, 768) * MEMORY_FACTOR + 1
    tile = suggest_tile(net, 3, budget=budget)
    assert tile == 768
    with pytest.raises(ImageTooLargeError) as info:
        check_fits(net, 3, 4096, 4096, device="cpu", available=budget, where="big.png")
    message = str(info.value)
    assert message.startswith("big.png: a 4096x4096 image needs about") and "--tile 768" in message
    check_fits(net, 3, 512, 512, device="cpu", available=budget)  # fits: no error
    with pytest.raises(ImageTooLargeError, match="even a 32x32 tile"):
        suggest_tile(net, 3, budget=1000)


def test_bad_arguments_are_refused():
    net, x = ConvOnly().eval(), scene(64, 64)
    with pytest.raises(GanzooError, match="at least the network's stride"):
        translate_tiled(net, x, tile=1)
    with pytest.raises(GanzooError, match="overlap 64 .* at most the tile minus one stride"):
        translate_tiled(net, x, tile=64, overlap=64)
    with pytest.raises(ValueError, match=r"Expected image of shape \(1, C, H, W\)"):
        translate_tiled(net, torch.cat([x, x]))
