"""The built-in glyph dataset: layout, disjoint splits, paired names, determinism."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageFont

from ganzoo.config import AugmentConfig, DataConfig
from ganzoo.data.glyphs import font_paths, make_glyphs, render
from ganzoo.data.pairing import NamedConfig, UnalignedConfig, build_named, build_unaligned
from ganzoo.errors import DataError


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def glyphs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_glyphs(tmp_path_factory.mktemp("g") / "glyphs", size=24, n_train=60, n_test=12, seed=3)


def test_layout_and_files(glyphs: Path) -> None:
    assert _names(glyphs) == ["README.txt", "dataset.json", "testA", "testB", "trainA", "trainB"]
    assert len(_names(glyphs / "trainA")) == 60 and len(_names(glyphs / "testA")) == 12
    with Image.open(glyphs / "trainA" / "u00030.png") as img:  # "0" comes first in priority order
        assert img.mode == "L" and img.size == (24, 24)
        assert img.getpixel((0, 0)) == 255 and img.getextrema()[0] < 64  # black ink on white
    info = json.loads((glyphs / "dataset.json").read_text(encoding="utf-8"))
    assert info["name"] == "glyphs" and info["size"] == 24 and "Bitstream Vera" in info["licence"]
    assert (info["n_train"], info["n_test"]) == (60, 12)


def test_same_names_in_a_and_b_and_disjoint_splits(glyphs: Path) -> None:
    train, test = _names(glyphs / "trainA"), _names(glyphs / "testA")
    assert train == _names(glyphs / "trainB") and test == _names(glyphs / "testB")
    assert not set(train) & set(test)
    assert all(name.startswith("u") and len(name) == len("u00041.png") for name in train + test)


def test_no_missing_glyph_boxes_and_fonts_differ(glyphs: Path) -> None:
    paths = font_paths()
    notdef = render(ImageFont.truetype(str(paths["A"]), 18), "\u0378", 24).tobytes()
    differ = 0
    for name in _names(glyphs / "trainA"):
        with Image.open(glyphs / "trainA" / name) as a, Image.open(glyphs / "trainB" / name) as b:
            assert a.tobytes() != notdef
            differ += a.tobytes() != b.tobytes()
    assert differ > 50


def test_deterministic(glyphs: Path, tmp_path: Path) -> None:
    again = make_glyphs(tmp_path / "again", size=24, n_train=60, n_test=12, seed=3)
    for path in sorted(glyphs.rglob("*")):
        if path.is_file():
            assert (again / path.relative_to(glyphs)).read_bytes() == path.read_bytes()
    other = make_glyphs(tmp_path / "other", size=24, n_train=60, n_test=12, seed=4)
    assert _names(other / "testA") != _names(glyphs / "testA")


def test_pairings_read_it(glyphs: Path) -> None:
    data = DataConfig(root=str(glyphs), channels_a=1, channels_b=1)
    augment = AugmentConfig(preprocess="none", flip=False)
    named = build_named(NamedConfig(), split="test", data=data, augment=augment, seed=0)
    item = named[0]
    assert len(named) == 12 and item["A"].shape == (1, 24, 24)
    assert Path(item["A_path"]).name == Path(item["B_path"]).name
    assert len(build_unaligned(UnalignedConfig(), split="train", data=data, augment=augment, seed=0)) == 60


def test_defaults_and_refuses_existing_folder(tmp_path: Path) -> None:
    out = make_glyphs(tmp_path / "default")
    assert len(_names(out / "trainA")) == 1000 and len(_names(out / "testB")) == 100
    with pytest.raises(DataError, match="already exists"):
        make_glyphs(out)
