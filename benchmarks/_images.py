"""Synthetic photos for the benchmarks, importing torch only (the tiling case measures a fresh
process's memory, so it imports nothing more than it needs)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def photo(size: int, seed: int = 0) -> torch.Tensor:
    """A (1, 3, size, size) image in [-1, 1]: smooth colour fields and discs drawn at 512 px and
    scaled up, plus fine noise; made in place so that building it needs little extra memory."""
    g = torch.Generator().manual_seed(seed)
    n = 512
    yy, xx = torch.meshgrid(torch.linspace(0, 1, n), torch.linspace(0, 1, n), indexing="ij")
    small = torch.stack([torch.sin(6 * xx + 3 * yy), torch.cos(5 * yy - 2 * xx), xx * yy * 2 - 1])
    for _ in range(24):
        cy, cx, r = torch.rand(3, generator=g).tolist()
        small[:, (yy - cy) ** 2 + (xx - cx) ** 2 < (0.02 + 0.1 * r) ** 2] = torch.rand(3, 1, generator=g) * 2 - 1
    image = F.interpolate(small[None], size=(size, size), mode="bilinear", align_corners=False)
    for c in range(3):
        image[0, c].add_(torch.randn(size, size, generator=g).mul_(0.05))
    return image.clamp_(-1, 1)
