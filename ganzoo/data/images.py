"""Image files in and out: 8-bit and 16-bit PNG/TIFF/JPEG/... read as float tensors in [0, 1].

8-bit files decode with Pillow. 16-bit files keep all 16 bits: greyscale through Pillow's
``I;16`` modes, and colour (RGB/RGBA and grey+alpha PNG or TIFF), which Pillow itself would
truncate to 8 bits, by letting Pillow's own decoder produce the high and the low bytes in two
passes. Multi-page files, float (mode ``F``) images and ``.npy`` arrays are out of scope.
16-bit colour images are written as PNG by a small encoder here, as Pillow cannot write them.
"""
from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganzoo.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp"})

# A decoded image before tensor conversion: a PIL image (8-bit, mode L, LA, RGB or RGBA) or a
# float tensor (C, H, W) in [0, 1] for 16-bit files, whose precision PIL images cannot hold.
Decoded = Image.Image | Tensor

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, the weights of PIL's convert("L")
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursively, as the reference), sorted by path.

    Hidden files and folders (``.name``) and ``__MACOSX`` folders left by zip archives are
    skipped: they hold resource forks, not images.
    """
    folder = Path(folder)
    found = []
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found)


def _fail(path: Path, reason: str) -> DataError:
    return DataError(f"{path}: cannot read image: {reason}. Remove or replace the file.")


def _rawmode(tile_args: object) -> str:
    return tile_args[0] if isinstance(tile_args, tuple) else str(tile_args)


def _decode_as(path: Path, rawmode: str) -> np.ndarray:
    """Decode ``path`` with Pillow, unpacking every tile with ``rawmode`` instead of its own."""
    with Image.open(path) as img:
        tiles = []
        for tile in img.tile:
            args = tile[3]
            new = (*tile[:3], (rawmode, *args[1:]) if isinstance(args, tuple) else rawmode)
            tiles.append(type(tile)(*new) if hasattr(tile, "_replace") else new)
        img.tile = tiles
        return np.asarray(img)


def _opposite(rawmode: str) -> str:
    """The rawmode with the other byte order, so Pillow's unpacker keeps the other byte."""
    native = "L" if sys.byteorder == "little" else "B"
    head, order = rawmode.rsplit(";16", 1)
    order = native if order == "N" else order
    return f"{head};16{'B' if order == 'L' else 'L'}"


def _decode_16bit_colour(path: Path, rawmode: str) -> Tensor:
    # Pillow unpacks 16-bit colour to 8 bits by keeping one byte of each sample; decoding
    # twice with opposite byte orders yields the kept byte and the dropped one.
    if rawmode.startswith("LA;16"):
        raw = _decode_as(path, "RGBA").astype(np.uint16)  # 4 bytes per pixel: L hi, L lo, A hi, A lo
        if rawmode.endswith("L"):
            raw = raw[..., [1, 0, 3, 2]]
        values = raw[..., 0::2] * 256 + raw[..., 1::2]
    else:
        high = _decode_as(path, rawmode).astype(np.uint16)
        low = _decode_as(path, _opposite(rawmode)).astype(np.uint16)
        values = high * 256 + low
    return torch.from_numpy(values.astype(np.float32) / 65535.0).permute(2, 0, 1).contiguous()


def _decode_16bit_fallback(path: Path, rawmode: str, exc: Exception) -> Tensor:
    """16-bit colour Pillow cannot unpack: TIFF through the optional ``tifffile``, else an error."""
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile
        except ImportError:
            tifffile = None
        if tifffile is not None:
            values = np.asarray(tifffile.imread(path))
            if values.dtype == np.uint16 and values.ndim == 3 and values.shape[2] in (2, 3, 4):
                return torch.from_numpy(values.astype(np.float32) / 65535.0).permute(2, 0, 1).contiguous()
    raise _fail(
        path,
        f"16-bit colour in this encoding ({rawmode}) cannot be read without losing bits ({exc}); "
        "save it as a 16-bit PNG, or install tifffile for TIFF files",
    )


def open_image(path: str | Path) -> tuple[Decoded, int]:
    """Decode ``path`` without changing its channels; return the image and its bit depth.

    Returns a PIL image in mode L, LA, RGB or RGBA for 8-bit files, or a float tensor
    (C, H, W) in [0, 1] with C in 1..4 (grey, grey+alpha, RGB, RGBA) for 16-bit files.
    Raises DataError naming the file when it is empty, truncated, corrupt or unsupported.
    """
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise _fail(path, "the file is empty (0 bytes)")
        with Image.open(path) as img:
            mode = img.mode
            rawmode = _rawmode(img.tile[0][3]) if img.tile else ""
            if ";16" in rawmode and mode in ("RGB", "RGBA"):
                try:
                    return _decode_16bit_colour(path, rawmode), 16
                except (ValueError, OSError) as exc:
                    return _decode_16bit_fallback(path, rawmode, exc), 16
            img.load()
            if mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N and 32-bit I
                values = np.asarray(img).astype(np.int64)
                if values.size and (values.min() < 0 or values.max() > 65535):
                    raise _fail(path, f"mode {mode} holds values outside 0..65535; only 8- and 16-bit images work")
                return torch.from_numpy(values.astype(np.float32) / 65535.0)[None], 16
            if mode == "F":
                raise _fail(path, "32-bit float images (mode F) are not supported; save it as 16-bit PNG or TIFF")
            return _normalise_mode(img), 8
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise _fail(path, str(exc) or type(exc).__name__) from None


def _normalise_mode(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return img.copy()
    if mode == "La":
        return img.convert("LA")
    if mode == "1":
        return img.convert("L")
    has_alpha = mode in ("PA", "RGBa") or (mode == "P" and "transparency" in img.info)
    return img.convert("RGBA" if has_alpha else "RGB")


def convert_channels(img: Decoded, channels: int, path: str | Path) -> Decoded:
    """Return ``img`` with ``channels`` channels: 1 <-> 3 (luminance / replicate), any -> 4 (RGBA).

    Other counts (2 = grey+alpha) only when the image already has them. Alpha is dropped, not
    composited, as PIL's ``convert("RGB")`` does in the reference. ``path`` is for messages.
    """
    have = len(img.getbands()) if isinstance(img, Image.Image) else img.shape[0]
    if channels == have:
        return img
    if channels not in (1, 3, 4):
        raise DataError(
            f"{path}: image has {have} channel(s) but {channels} were asked for. Only 1, 3 and 4 "
            "channels can be converted to; set [data] channels_a / channels_b to 1, 3 or 4, or "
            f"provide {channels}-channel images."
        )
    if isinstance(img, Image.Image):
        return img.convert({1: "L", 3: "RGB", 4: "RGBA"}[channels])
    colour = img[:3] if have >= 3 else img[:1].expand(3, -1, -1)
    if channels == 1:
        if have < 3:
            return img[:1].clone()
        weights = torch.tensor(_LUMA, dtype=img.dtype).view(3, 1, 1)
        return (colour * weights).sum(0, keepdim=True).clamp(0, 1)
    if channels == 3:
        return colour.clone()
    alpha = img[-1:] if have in (2, 4) else torch.ones_like(img[:1])
    return torch.cat([colour, alpha])


def to_tensor(img: Decoded) -> Tensor:
    """A decoded image as a float tensor (C, H, W) in [0, 1]."""
    if isinstance(img, Tensor):
        return img
    array = np.asarray(img, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def read_image(path: str | Path, channels: int) -> tuple[Tensor, int]:
    """Read an image file as a float tensor (channels, H, W) in [0, 1] and its bit depth (8 or 16).

    Example:
        >>> img, bits = read_image("trainA/0001.png", channels=3)
    """
    img, bits = open_image(path)
    return to_tensor(convert_channels(img, channels, path)), bits


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _write_png16(path: Path, values: np.ndarray) -> None:
    """Write uint16 (H, W, C) with C in 2..4 as a 16-bit PNG (filter 0, zlib level 6)."""
    height, width, channels = values.shape
    colour_type = {2: 4, 3: 2, 4: 6}[channels]
    rows = np.zeros((height, 1 + width * channels * 2), dtype=np.uint8)  # filter byte 0 per row
    rows[:, 1:] = np.ascontiguousarray(values, dtype=">u2").view(np.uint8).reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    data = zlib.compress(rows.tobytes(), 6)
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def write_image(path: str | Path, image: Tensor, bits: int = 8) -> None:
    """Write a tensor (C, H, W) (or (H, W)) in [0, 1] to ``path``; values outside are clamped.

    Args:
        path: destination. 8-bit: any format Pillow writes, chosen by the suffix.
            16-bit: ``.png`` only (greyscale through Pillow's ``I;16``; 2-4 channels through
            the encoder in this module).
        image: C is 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA).
        bits: 8 or 16.
    """
    path = Path(path)
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3 or image.shape[0] not in (1, 2, 3, 4):
        raise ValueError(f"Expected image of shape (C, H, W) with C in 1..4. Got {tuple(image.shape)}.")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    scale, dtype = (255.0, np.uint8) if bits == 8 else (65535.0, np.uint16)
    array = (image.detach().float().cpu().clamp(0, 1) * scale).round().permute(1, 2, 0).numpy().astype(dtype)
    if bits == 16:
        if path.suffix.lower() != ".png":
            raise ValueError(f"{path}: 16-bit images are written as PNG; use a .png suffix.")
        if array.shape[2] == 1:
            Image.fromarray(array[:, :, 0]).save(path)  # mode I;16
        else:
            _write_png16(path, array)
        return
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)
