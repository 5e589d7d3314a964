"""Translate images of any size in overlapping tiles, so peak memory depends on the tile only.

Tiles are ``tile`` pixels square (fewer for a smaller image), start at multiples of the
network's stride (so a convolutional network sees the same pixel grid as on the whole image)
and overlap their neighbours by at least ``overlap`` pixels. Where two tiles overlap, each
drops the quarter of the overlap nearest its own edge (its padding corrupts those pixels) and
the middle half is blended with a raised-cosine ramp; per axis, the weights of all tiles are
divided by their sum, so they sum to exactly 1 at every pixel. Instance norms normalise every
tile with one set of statistics, measured on the image scaled down to one tile, so tiles do not
differ in tone. The output is assembled on the CPU one row of tiles at a time: a float strip of
one tile's height is the only full-width float buffer, and finished rows go to the output as
float32 or as uint8.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.errors import GanzooError
from ganzoo.inference import forward_in_parts

# The process grows by more than the tensors that estimate_memory follows: oneDNN's im2col
# buffers, weight reorders and allocator slack. Measured on CPU, fp32, 1 and 2 threads: RSS
# growth / tensor estimate of the activations was 1.75 for resnet_9blocks at 512 and 1024 px and
# 1.3-2.0 for unet_256 at 512 and 1024 px, plus a constant of about 60 MB that dominates below
# 256 px. Twice the estimate (weights included) covered every measured case.
MEMORY_FACTOR = 2.0
_TILE_CANDIDATES = (4096, 3072, 2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 96, 64, 32)


class ImageTooLargeError(GanzooError):
    """A whole image would not fit in memory; the message suggests a tile size."""


def translate_tiled(
    net: nn.Module,
    image: Tensor,
    *,
    tile: int = 512,
    overlap: int = 64,
    multiple: int | None = None,
    batch: int = 1,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    out_dtype: torch.dtype = torch.float32,
    norm_stats: str = "image",
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Translate ``image`` tile by tile and blend the tiles without seams.

    Args:
        net: the generator, already in eval mode and on ``device``.
        image: (1, C, H, W) float in [-1, 1], on the CPU (any H and W).
        tile: tile side in pixels; rounded down to a multiple of ``multiple``.
        overlap: the least overlap of neighbouring tiles; rounded up to a multiple of
            ``multiple``. A quarter of it on each side is dropped, the middle half blended.
        multiple: the network's stride (default: its ``size_multiple`` attribute, else 4).
        batch: tiles translated together.
        device: where the network runs (default: where its parameters are).
        dtype: ``torch.bfloat16`` or ``torch.float16`` to run under autocast; None for fp32.
        out_dtype: ``torch.float32`` (values as the network returns them, [-1, 1]) or
            ``torch.uint8`` (0..255, a quarter of the memory for a large image).
        norm_stats: how instance norms without running statistics normalise each tile:
            ``image`` (one set of statistics for all tiles, measured on a copy of the image
            scaled down to fit one tile, see :func:`instance_norm_stats`) or ``tile`` (each
            tile its own, as if it were a separate image; neighbouring tiles can then differ
            in tone). Networks without such layers ignore it.
        progress: called with (tiles done, tiles in all) after each batch.

    Returns:
        (1, C_out, H, W) on the CPU, of ``out_dtype``.

    Example:
        >>> y = translate_tiled(net.eval(), x, tile=512, overlap=64, out_dtype=torch.uint8)
    """
    if image.dim() != 4 or image.shape[0] != 1 or not image.is_floating_point():
        raise ValueError(f"Expected image of shape (1, C, H, W), floating point. Got {tuple(image.shape)} {image.dtype}.")
    if out_dtype not in (torch.float32, torch.uint8):
        raise ValueError(f"out_dtype must be torch.float32 or torch.uint8, got {out_dtype}")
    m = _multiple(net, multiple)
    tile, overlap = _check_tile(tile, overlap, m)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    device = _net_device(net) if device is None else torch.device(device)
    _, _, h, w = image.shape
    hp, wp = _round_up(h, m), _round_up(w, m)
    th, tw = min(tile, hp), min(tile, wp)
    ys, xs = tile_starts(hp, th, overlap, m), tile_starts(wp, tw, overlap, m)
    wy, wx = blend_weights(hp, th, ys, overlap), blend_weights(wp, tw, xs, overlap)
    pad_mode = _pad_mode(h, w, m)
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype not in (None, torch.float32)
                else contextlib.nullcontext())
    if norm_stats not in ("image", "tile"):
        raise ValueError(f"norm_stats must be 'image' or 'tile', got {norm_stats!r}")
    shared = contextlib.nullcontext()
    if norm_stats == "image" and len(ys) * len(xs) > 1 and _free_instance_norms(net):
        with autocast:
            stats = instance_norm_stats(net, image, size=tile, multiple=m, device=device)
        shared = _FrozenInstanceNorms(stats)

    out: Tensor | None = None
    carry: Tensor | None = None  # rows of the current strip already summed from the row above
    done, total = 0, len(ys) * len(xs)
    for row, y0 in enumerate(ys):
        strip: Tensor | None = None
        for i in range(0, len(xs), batch):
            group = xs[i : i + batch]
            tiles = torch.cat([_crop(image, y0, x0, th, tw, pad_mode) for x0 in group])
            with torch.inference_mode(), autocast, shared:
                result = forward_in_parts(net, tiles.to(device)).float().cpu()
            if strip is None:
                strip = torch.zeros(result.shape[1], th, wp)
                if carry is not None:
                    strip[:, : carry.shape[1]] += carry
            for k, x0 in enumerate(group):
                strip[:, :, x0 : x0 + tw].addcmul_(result[k], wy[row][:, None] * wx[i + k][None, :])
            done += len(group)
            if progress is not None:
                progress(done, total)
        # rows above the next row of tiles get no more contributions: they are final
        final = (ys[row + 1] if row + 1 < len(ys) else hp) - y0
        if out is None:
            out = torch.empty(1, strip.shape[0], h, w, dtype=out_dtype)
        stop = min(y0 + final, h)
        if stop > y0:
            out[0, :, y0:stop] = _convert(strip[:, : stop - y0, :w], out_dtype)
        carry = strip[:, final:].clone()
    return out


def tile_starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Starts of the tiles along one axis of ``length`` (a multiple of ``multiple``).

    The first tile starts at 0, the last ends at ``length``; the others are spread evenly
    between them at multiples of ``multiple``, so neighbours overlap by at least ``overlap``.
    """
    if tile >= length:
        return [0]
    n = 1 + math.ceil((length - tile) / (tile - overlap))
    span = (length - tile) // multiple
    return [(k * span // (n - 1)) * multiple for k in range(n)]


def blend_weights(length: int, tile: int, starts: list[int], overlap: int) -> list[Tensor]:
    """One weight vector of ``tile`` values per tile start; at every position they sum to 1.

    On a side that borders another tile the weight is 0 over the quarter of ``overlap`` next
    to the edge, rises as a raised cosine over the next half, and is 1 beyond; sides on the
    image's border keep weight 1. Each vector is divided by the per-position sum over tiles.
    """
    drop = overlap // 4
    ramp = overlap - 2 * drop
    rise = torch.cat([torch.zeros(drop), 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(ramp) + 0.5) / ramp)]) \
        if ramp > 0 else torch.zeros(0)
    raw = []
    for s in starts:
        v = torch.ones(tile, dtype=torch.float64)
        if s > 0 and len(rise):
            v[: len(rise)] *= rise.double()
        if s + tile < length and len(rise):
            v[tile - len(rise):] *= rise.double().flip(0)
        raw.append(v)
    total = torch.zeros(length, dtype=torch.float64)
    for s, v in zip(starts, raw):
        total[s : s + tile] += v
    return [(v / total[s : s + tile]).float() for s, v in zip(starts, raw)]


def instance_norm_stats(net: nn.Module, image: Tensor, *, size: int, multiple: int | None = None,
                        device: torch.device | str | None = None) -> dict[nn.Module, tuple[Tensor, Tensor]]:
    """Per-channel mean and variance at the input of every instance norm without running
    statistics, measured in one forward pass on ``image`` scaled down (area average) so that
    its longer side is at most ``size`` (a multiple of the stride).

    Tiles normalised with these share one normalisation, so they cannot differ in tone the
    way tiles with their own statistics do. They approximate, not equal, the statistics of the
    full-resolution image (the network sees the content at another scale).
    """
    m = _multiple(net, multiple)
    device = _net_device(net) if device is None else torch.device(device)
    h, w = image.shape[-2:]
    hp, wp = _round_up(h, m), _round_up(w, m)
    if max(hp, wp) <= size:  # one tile: exactly the whole-image statistics
        small = _crop(image, 0, 0, hp, wp, _pad_mode(h, w, m))
    else:
        scale = size / max(h, w)
        small = F.interpolate(image, size=(max(m, int(h * scale) // m * m), max(m, int(w * scale) // m * m)),
                              mode="area")
    stats: dict[nn.Module, tuple[Tensor, Tensor]] = {}

    def record(module, args, output):
        var, mean = torch.var_mean(args[0].float(), dim=(2, 3), unbiased=False)
        stats[module] = (mean, var)

    hooks = [mod.register_forward_hook(record) for mod in _free_instance_norms(net)]
    try:
        with torch.inference_mode():
            net(small.to(device))
    finally:
        for hook in hooks:
            hook.remove()
    return stats


class _FrozenInstanceNorms:
    """While entered, each instance norm in ``stats`` normalises with the given statistics (a
    forward hook replaces its output). Reusable: one ``with`` per batch of tiles."""

    def __init__(self, stats: dict[nn.Module, tuple[Tensor, Tensor]]) -> None:
        self.stats = stats
        self.hooks: list = []

    def _frozen(self, module, args, output):
        mean, var = self.stats[module]
        x = args[0]
        y = (x - mean[..., None, None].to(x.dtype)) * torch.rsqrt(var[..., None, None] + module.eps).to(x.dtype)
        if module.affine:
            y = y * module.weight[:, None, None] + module.bias[:, None, None]
        return y

    def __enter__(self) -> None:
        self.hooks = [mod.register_forward_hook(self._frozen) for mod in self.stats]

    def __exit__(self, *exc) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []


def _free_instance_norms(net: nn.Module) -> list[nn.Module]:
    """Instance norms that normalise with the statistics of their input (no running statistics)."""
    return [mod for mod in net.modules() if isinstance(mod, nn.modules.instancenorm._InstanceNorm)
            and not (mod.track_running_stats and not mod.training)]


# ---- will it fit? -----------------------------------------------------------------------------
def estimate_memory(net: nn.Module, channels: int, height: int, width: int, *, batch: int = 1,
                    multiple: int | None = None) -> int:
    """Bytes of tensors alive at the peak of one forward pass (inference mode), including weights.

    The network runs once on the ``meta`` device (shapes, no data, well under a second), and
    every tensor an operator returns is followed until it is freed
    (:class:`ganzoo.flops.TensorMemory`); the size is first padded to ``multiple``. Library
    workspaces come on top: multiply by :data:`MEMORY_FACTOR` for the process's growth.
    """
    from ganzoo.flops import TensorMemory

    m = _multiple(net, multiple)
    state = {k: v.to("meta") for k, v in (*net.named_parameters(), *net.named_buffers())}
    x = torch.empty(batch, channels, _round_up(height, m), _round_up(width, m), device="meta")
    with torch.inference_mode(), TensorMemory([*state.values(), x]) as mem:
        torch.func.functional_call(net, state, (x,))
    return mem.peak_bytes


def available_memory(device: torch.device | str) -> int | None:
    """Free bytes on ``device``: CUDA's free memory, or on the CPU the smaller of the kernel's
    MemAvailable and what is left under this process's cgroup limit; None if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read())
        if limit != "max":
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def suggest_tile(net: nn.Module, channels: int, *, budget: int, multiple: int | None = None, batch: int = 1,
                 largest: int = 2048) -> int:
    """The largest tile (at most ``largest``) whose estimated need fits in ``budget`` bytes."""
    m = _multiple(net, multiple)
    sizes = sorted({_round_up(t, m) for t in _TILE_CANDIDATES if t <= largest}, reverse=True)
    for t in sizes:
        if estimate_memory(net, channels, t, t, batch=batch, multiple=m) * MEMORY_FACTOR <= budget:
            return t
    need = estimate_memory(net, channels, sizes[-1], sizes[-1], batch=batch, multiple=m) * MEMORY_FACTOR
    raise ImageTooLargeError(
        f"even a {sizes[-1]}x{sizes[-1]} tile needs about {_gib(need)}, more than the {_gib(budget)} available: "
        "free memory or use a smaller batch."
    )


def check_fits(net: nn.Module, channels: int, height: int, width: int, *, device: torch.device | str,
               batch: int = 1, multiple: int | None = None, available: int | None = None, where: str = "") -> None:
    """Raise ImageTooLargeError, suggesting a tile, if a whole image would not fit in memory.

    ``available`` defaults to :func:`available_memory` of ``device`` (if unknown, it passes).
    ``where`` (a file name) starts the message.
    """
    have = available_memory(device) if available is None else available
    if have is None:
        return
    need = estimate_memory(net, channels, height, width, batch=batch, multiple=multiple) * MEMORY_FACTOR
    if need <= have:
        return
    tile = suggest_tile(net, channels, budget=have, multiple=multiple, batch=1)
    prefix = f"{where}: " if where else ""
    raise ImageTooLargeError(
        f"{prefix}a {width}x{height} image needs about {_gib(need)} to translate whole on {torch.device(device)}, "
        f"more than the {_gib(have)} available. Translate it in tiles: --tile {tile} (about "
        f"{_gib(estimate_memory(net, channels, tile, tile, multiple=multiple) * MEMORY_FACTOR)} per tile)."
    )


# ---- helpers ------------------------------------------------------------------------------------
def _crop(image: Tensor, y0: int, x0: int, th: int, tw: int, mode: str) -> Tensor:
    """The tile at (y0, x0), padded on the bottom/right where it passes the image's edge."""
    part = image[..., y0 : y0 + th, x0 : x0 + tw]
    ph, pw = th - part.shape[-2], tw - part.shape[-1]
    if ph or pw:
        if mode == "reflect" and not (ph < part.shape[-2] and pw < part.shape[-1]):
            mode = "replicate"  # a tile narrower than its padding (tiny tiles only)
        part = F.pad(part, (0, pw, 0, ph), mode=mode)
    return part


def _pad_mode(h: int, w: int, m: int) -> str:
    """As the whole-image path (inference.pad_to_multiple): reflect unless the image is too small."""
    return "reflect" if -h % m < h and -w % m < w else "replicate"


def _convert(x: Tensor, dtype: torch.dtype) -> Tensor:
    if dtype == torch.uint8:
        return ((x.clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)
    return x


def _check_tile(tile: int, overlap: int, m: int) -> tuple[int, int]:
    t = tile // m * m
    o = _round_up(max(overlap, 0), m)
    if t < m:
        raise GanzooError(f"tile {tile}: must be at least the network's stride {m}.")
    if o > t - m:
        raise GanzooError(
            f"overlap {overlap} (rounded up to {o}, a multiple of the stride {m}) must be at most the tile minus "
            f"one stride ({t - m}): use a larger tile or a smaller overlap."
        )
    return t, o


def _multiple(net: nn.Module, multiple: int | None) -> int:
    return int(multiple if multiple is not None else getattr(net, "size_multiple", 4))


def _net_device(net: nn.Module) -> torch.device:
    for tensor in (*net.parameters(), *net.buffers()):
        return tensor.device
    return torch.device("cpu")


def _round_up(n: int, multiple: int) -> int:
    return math.ceil(n / multiple) * multiple


def _gib(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB"
