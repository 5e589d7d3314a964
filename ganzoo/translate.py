"""Translating image files: outputs planned so nothing is overwritten or lost, batches of equal
sizes, tiles for large images, autocast, atomic writes.

Output names keep the input's sub-folders (``in/a/x.jpg`` -> ``out/a/x.png``); two inputs that
would share a name (``x.jpg`` and ``x.png``) keep their extension in it (``x.jpg.png``), so the
count printed is the count written. An output folder equal to or inside the input folder is
refused: translated images would be read back as inputs and could replace them.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from ganzoo.errors import GanzooError
from ganzoo.inference import compile_generator, images_per_forward, translate_batch

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
WHOLE_CHECK_PIXELS = 1 << 20  # images (times batch) above this are checked against free memory first


def plan_outputs(files: list[Path], input_path: Path, out_dir: Path) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs; refuses an output folder inside the input folder."""
    out_dir, source = Path(out_dir), Path(input_path)
    root = source if source.is_dir() else source.parent
    if source.is_dir():
        inside = out_dir.resolve() == root.resolve() or root.resolve() in out_dir.resolve().parents
        if inside:
            raise GanzooError(
                f"--output {out_dir}: it is inside --input {source}, so translations would land among the inputs "
                "(and be read as inputs next time). Choose an output folder outside the input folder."
            )
    planned: dict[Path, list[Path]] = {}
    for f in files:
        planned.setdefault(out_dir / f.relative_to(root).with_suffix(".png"), []).append(f)
    pairs = []
    for target, sources in planned.items():
        if len(sources) == 1:
            pairs.append((sources[0], target))
        else:  # x.jpg and x.png: both kept, each under its own full name
            pairs += [(f, target.with_name(f.name + ".png")) for f in sources]
    return sorted(pairs)


def write_atomically(target: Path, image: torch.Tensor, bits: int) -> None:
    """Write a (C, H, W) image in [0, 1] so that an interruption leaves the old file or the new one."""
    from ganzoo.data.images import write_image

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".partial.png", dir=target.parent)
    os.close(fd)
    try:
        write_image(tmp, image, bits=bits)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_options(*, compile: bool, tile: int) -> None:
    """Refuse ``compile`` with ``tile``: tiles hook the network's instance norms, which a
    compiled graph would not see."""
    if compile and tile:
        raise GanzooError("--compile works on whole images; with --tile, translate without --compile.")


def translate_images(net: nn.Module, pairs: list[tuple[Path, Path]], *, channels: int, device: torch.device,
                     batch_size: int = 8, precision: str = "fp32", tile: int = 0, overlap: int = 64,
                     preserve_depth: bool = True, compile: bool = False, progress=None) -> int:
    """Translate ``pairs`` (input file -> output PNG); return how many were written.

    Images of one size go through the network together, ``batch_size`` at a time; with ``tile``
    every image is translated in overlapping tiles of that side (:mod:`ganzoo.tiling`), so the
    memory depends on the tile, not the image. Without it, an image that would not fit in free
    memory is refused with a suggested tile before it is translated. ``progress(n)`` is called
    as images are written. ``compile`` runs ``net`` compiled by torch.compile (whole images only,
    see :func:`check_options`).
    """
    from ganzoo.data.images import read_image
    from ganzoo.tiling import check_fits, translate_tiled

    check_options(compile=compile, tile=tile)
    forward = compile_generator(net, device) if compile else net
    dtype = _DTYPES[precision]
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    written = 0
    groups: dict[tuple[int, int], list[tuple[Path, Path]]] = {}
    sizes = {}
    for src, dst in pairs:
        image, bits = read_image(src, channels)
        sizes[src] = bits
        key = (-1, -1) if tile else tuple(image.shape[-2:])
        groups.setdefault(key, []).append((src, dst))
        del image
    checked: set[tuple[int, int, int]] = set()
    with torch.inference_mode():  # cheaper than no_grad per operation (no version counters)
        for (h, w), items in groups.items():
            for i in range(0, len(items), 1 if tile else batch_size):
                chunk = items[i:i + (1 if tile else batch_size)]
                images = [read_image(src, channels)[0] for src, _ in chunk]
                if tile:
                    with autocast:
                        out = translate_tiled(net, images[0][None] * 2 - 1, tile=tile, overlap=overlap,
                                              batch=batch_size, device=device, dtype=dtype)
                else:
                    at_once = images_per_forward(h, w, len(chunk), device)
                    if h * w * at_once > WHOLE_CHECK_PIXELS and (h, w, at_once) not in checked:
                        check_fits(net, channels, h, w, device=device, batch=at_once, where=str(chunk[0][0]))
                        checked.add((h, w, at_once))
                    x = torch.stack(images).to(device) * 2 - 1
                    with autocast:
                        out = translate_batch(forward, x)
                for (src, dst), y in zip(chunk, out.float().cpu()):
                    write_atomically(dst, ((y + 1) / 2).clamp(0, 1), sizes[src] if preserve_depth else 8)
                    written += 1
                    if progress is not None:
                        progress(1)
    return written
