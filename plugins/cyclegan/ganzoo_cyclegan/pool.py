"""The image pool: a history of generated images shown to the discriminators.

Same policy as the reference (Shrivastava et al. 2017): until the pool is full every new
image is stored and returned; afterwards each new image is, with probability 0.5, swapped
for a stored one (which is returned), otherwise returned as is. The pool has its own seeded
random generator so that a resumed run draws the same choices.
"""
from __future__ import annotations

import random
from typing import Any

import torch


class ImagePool:
    """Args:
        size: images kept; 0 disables the pool (``query`` returns its input).
        seed: seed of the pool's own random generator.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch of the same shape: new images mixed with stored ones."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif self.rng.uniform(0, 1) > 0.5:
                idx = self.rng.randint(0, self.size - 1)
                out.append(self.images[idx].clone())
                self.images[idx] = image
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        state = self.rng.getstate()
        return {
            "images": torch.cat(self.images, 0).clone() if self.images else torch.zeros(0),
            "rng": [state[0], list(state[1]), state[2]],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        images = state["images"]
        self.images = [img.unsqueeze(0) for img in images] if images.numel() else []
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
