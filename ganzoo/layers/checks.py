"""Input checks shared by every network: one message form (kornia's) for a wrong shape."""
from __future__ import annotations

from torch import Tensor


def check_image(x: Tensor, channels: int, multiple: int = 1, name: str = "input") -> None:
    """Raise ValueError unless ``x`` is (B, channels, H, W) with H and W multiples of ``multiple``."""
    if x.dim() == 4 and x.shape[1] == channels and not (x.shape[2] % multiple or x.shape[3] % multiple):
        return
    sizes = f" with H and W divisible by {multiple}" if multiple > 1 else ""
    raise ValueError(f"Expected {name} of shape (B, {channels}, H, W){sizes}. Got {tuple(x.shape)}.")
