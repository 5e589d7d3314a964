"""The built-in offline dataset: letters rendered in DejaVu Sans (domain A) and DejaVu Serif (B).

Both fonts ship inside matplotlib's wheel, so the dataset needs no network. The same
character in both fonts is a true pair with known ground truth: the ``named`` pairing trains
pix2pix on it, while CycleGAN's ``unaligned`` pairing draws random partners and so sees two
unpaired domains. Test characters are held out from training, which makes translation
quality measurable (PSNR/SSIM against the true glyph).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ganzoo.errors import DataError

FONTS = {"A": "DejaVuSans.ttf", "B": "DejaVuSerif.ttf"}
FONT_SCALE = 0.75  # font size as a fraction of the image size: accented capitals still fit
MARGIN = 1  # pixels kept free on every side
# Scripts a translation model can learn from a thousand examples come first.
PRIORITY_RANGES = (
    (0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A),  # digits, Latin
    (0xC0, 0x24F),  # Latin-1 letters, Latin Extended-A and -B
    (0x370, 0x52F),  # Greek, Cyrillic and its supplement
    (0x1E00, 0x1FFF),  # Latin Extended Additional, Greek Extended
)
_UNASSIGNED = "\u0378"  # renders as the font's .notdef box
_LICENCE = (
    "DejaVu fonts: Bitstream Vera licence (free, permissive) with DejaVu changes in the public domain; "
    "see https://dejavu-fonts.github.io/License.html"
)


def font_paths() -> dict[str, Path]:
    """The two TrueType files, from matplotlib's bundled data."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    paths = {side: folder / name for side, name in FONTS.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(
            f"{', '.join(missing)}: font not found in matplotlib's data. "
            "Reinstall matplotlib (pip install --force-reinstall matplotlib)."
        )
    return paths


def _codepoints() -> Iterator[int]:
    """Letters and digits of the priority ranges, then all other letters and digits of the
    Basic Multilingual Plane, then its punctuation and symbols."""
    seen: set[int] = set()
    bmp = [range(0x20, 0x10000)]
    passes = ([range(lo, hi + 1) for lo, hi in PRIORITY_RANGES], "LN"), (bmp, "LN"), (bmp, "PS")
    for ranges, categories in passes:
        for cps in ranges:
            for cp in cps:
                if cp not in seen and unicodedata.category(chr(cp))[0] in categories:
                    seen.add(cp)
                    yield cp


def _mask(font: ImageFont.FreeTypeFont, ch: str) -> tuple[tuple[int, int], bytes]:
    core = font.getmask(ch)
    return core.size, bytes(core)


def choose_characters(fonts: list[ImageFont.FreeTypeFont], count: int, size: int) -> list[str]:
    """The first ``count`` characters (in priority order) drawn by every font, fitting the image.

    A character qualifies when each font has a real glyph for it (ink, and not the .notdef
    box), its ink fits inside ``size`` minus the margins, and it does not look exactly like an
    earlier one in every font (Latin A, Greek Alpha and Cyrillic A are kept once).
    """
    notdef = [_mask(font, _UNASSIGNED) for font in fonts]
    room = size - 2 * MARGIN
    chosen: list[str] = []
    looks: set[tuple] = set()
    for cp in _codepoints():
        ch = chr(cp)
        cores = [font.getmask(ch) for font in fonts]
        masks = [(core.size, bytes(core)) for core in cores]
        boxes = [core.getbbox() for core in cores]
        if any(box is None for box in boxes) or any(m == n for m, n in zip(masks, notdef)):
            continue
        if any(b[2] - b[0] > room or b[3] - b[1] > room for b in boxes):
            continue
        key = tuple(masks)
        if key in looks:
            continue
        looks.add(key)
        chosen.append(ch)
        if len(chosen) == count:
            return chosen
    raise ValueError(f"only {len(chosen)} characters are drawn by both fonts at size {size}; asked for {count}")


def render(font: ImageFont.FreeTypeFont, ch: str, size: int) -> Image.Image:
    """``ch`` in black on a white ``size`` x ``size`` greyscale image, its ink centred."""
    canvas = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 2), ch, fill=255, font=font)
    box = canvas.getbbox()
    out = Image.new("L", (size, size), 0)
    if box is not None:
        ink = canvas.crop(box)
        out.paste(ink, ((size - ink.width) // 2, (size - ink.height) // 2))
    return Image.eval(out, lambda v: 255 - v)


def make_glyphs(out: Path, *, size: int = 32, n_train: int = 1000, n_test: int = 100, seed: int = 0) -> Path:
    """Render the glyph dataset into ``out`` (which must not exist yet) and return ``out``.

    Layout: ``trainA/`` (Sans) and ``trainB/`` (Serif) hold the same ``n_train`` characters,
    ``testA/`` and ``testB/`` another ``n_test`` characters, disjoint from training. Files are
    1-channel 8-bit PNGs named ``u{codepoint:05x}.png``, black ink on white. The characters
    are the first ``n_train + n_test`` qualifying ones (digits and Latin, then Greek and
    Cyrillic, ...), split into train and test at random with ``seed``. Same arguments, same
    bytes. Writing happens in a temporary folder renamed into place at the end.

    Example:
        >>> make_glyphs(Path("data/glyphs"))  # about a second
    """
    out = Path(out)
    if out.exists():
        raise DataError(f"{out}: already exists. Remove it, or pass another folder, to render the glyphs again.")
    if size < 8 or n_train < 1 or n_test < 0:
        raise ValueError(f"need size >= 8, n_train >= 1 and n_test >= 0; got {size}, {n_train}, {n_test}")
    paths = font_paths()
    fonts = {side: ImageFont.truetype(str(path), max(1, round(size * FONT_SCALE))) for side, path in paths.items()}
    chars = choose_characters(list(fonts.values()), n_train + n_test, size)
    order = np.random.default_rng(seed).permutation(len(chars))
    splits = {"train": sorted(chars[i] for i in order[:n_train]), "test": sorted(chars[i] for i in order[n_train:])}
    work = out.with_name(f".{out.name}.rendering")
    shutil.rmtree(work, ignore_errors=True)
    for split, split_chars in splits.items():
        for side, font in fonts.items():
            folder = work / f"{split}{side}"
            folder.mkdir(parents=True)
            for ch in split_chars:
                render(font, ch, size).save(folder / f"u{ord(ch):05x}.png")
    info = {
        "name": "glyphs",
        "domains": {"A": "DejaVu Sans", "B": "DejaVu Serif"},
        "fonts": {s: {"file": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for s, p in paths.items()},
        "size": size,
        "ink": "black on white, 8-bit greyscale",
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
        "train_characters": "".join(splits["train"]),
        "test_characters": "".join(splits["test"]),
        "licence": _LICENCE,
        "generator": "ganzoo.data.glyphs.make_glyphs",
    }
    (work / "dataset.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (work / "README.txt").write_text(_readme(size, n_train, n_test, seed), encoding="utf-8")
    os.replace(work, out)
    return out


def _readme(size: int, n_train: int, n_test: int, seed: int) -> str:
    return (
        "Glyphs: the same character drawn in DejaVu Sans (A) and DejaVu Serif (B).\n\n"
        f"trainA/ trainB/  {n_train} characters, the same file names on both sides\n"
        f"testA/  testB/   {n_test} other characters (held out), same names on both sides\n\n"
        f"Images: {size}x{size} 8-bit greyscale PNG, black ink on white, named u<codepoint hex>.png.\n"
        "Paired (pix2pix): pairing = \"named\". Unpaired (CycleGAN): pairing = \"unaligned\".\n"
        f"Rendered by ganzoo.data.glyphs.make_glyphs(size={size}, n_train={n_train}, n_test={n_test}, seed={seed}).\n"
        f"Licence: {_LICENCE}.\n"
    )
