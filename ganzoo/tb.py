"""A thin TensorBoard writer: scalars and image grids. The only module importing TensorBoard."""
from __future__ import annotations

from pathlib import Path

import torch


def image_grid(visuals: dict[str, torch.Tensor], max_rows: int = 4) -> torch.Tensor:
    """One row per sample, one column per visual, as a (3, H, W) tensor in [0, 1].

    Visuals are in [-1, 1]; 1-channel images are shown grey, and only the first three
    channels of wider images are shown.
    """
    from torchvision.utils import make_grid

    columns = []
    for img in visuals.values():
        img = img[:max_rows].detach().float().cpu()
        if img.shape[1] == 1:
            img = img.repeat(1, 3, 1, 1)
        elif img.shape[1] == 2:
            img = torch.cat([img, img[:, :1]], 1)
        columns.append(((img[:, :3] + 1) / 2).clamp(0, 1))
    h = max(c.shape[2] for c in columns)
    w = max(c.shape[3] for c in columns)
    padded = [torch.nn.functional.pad(c, (0, w - c.shape[3], 0, h - c.shape[2]), value=1.0) for c in columns]
    tiles = torch.stack(padded, 1).flatten(0, 1)  # row-major: sample, then visual
    return make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)


class TensorBoard:
    """Writes event files into ``log_dir``; a no-op object when ``enabled`` is False.

    ``purge_step``: a resumed run passes its first new step, so TensorBoard hides what an
    interrupted run logged after its last checkpoint (those steps are trained again).
    """

    def __init__(self, log_dir: Path, enabled: bool = True, purge_step: int | None = None) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{prefix}{name}", value, step)

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, grid, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
