"""Image files (8/16-bit, modes, broken files), resizing, and the three built-in pairings."""
from __future__ import annotations

import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ganzoo.config import AugmentConfig, DataConfig
from ganzoo.data import list_images, read_image, write_image
from ganzoo.data.dataset import resize_for, target_size
from ganzoo.data.images import open_image
from ganzoo.data.pairing import (
    AlignedConfig,
    NamedConfig,
    UnalignedConfig,
    build_aligned,
    build_named,
    build_unaligned,
    ganzoo_register_pairings,
)
from ganzoo.errors import DataError

SMALL = AugmentConfig(preprocess="resize_and_crop", load_size=12, crop_size=8)


# ---------------------------------------------------------------- images


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_8bit_round_trip(tmp_path: Path, channels: int) -> None:
    x = torch.randint(0, 256, (channels, 5, 7)).float() / 255
    write_image(tmp_path / "x.png", x)
    y, bits = read_image(tmp_path / "x.png", channels)
    assert bits == 8 and torch.equal(x, y)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_round_trip_keeps_all_bits(tmp_path: Path, channels: int) -> None:
    x = torch.randint(0, 65536, (channels, 6, 9)).float() / 65535
    write_image(tmp_path / "x.png", x, bits=16)
    y, bits = read_image(tmp_path / "x.png", channels)
    assert bits == 16 and torch.equal(x, y)
    assert not torch.equal((y * 255).round() / 255, y)  # more than 8 bits survived


def _png16(path: Path, values: np.ndarray) -> None:
    """A 16-bit PNG whose rows cycle through all five filter types (tests the unfiltering)."""
    height, width, channels = values.shape
    bpp = channels * 2
    raw = values.astype(">u2").view(np.uint8).reshape(height, -1).astype(np.int32)
    out = []
    for y in range(height):
        kind, row = y % 5, raw[y]
        prior = raw[y - 1] if y else np.zeros_like(row)
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prior[:-bpp]])
        if kind == 4:  # Paeth
            p = left + prior - upleft
            pa, pb, pc = abs(p - left), abs(p - prior), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, upleft))
        else:
            pred = [np.zeros_like(row), left, prior, (left + prior) // 2][kind]
        out.append(bytes([kind]) + ((row - pred) % 256).astype(np.uint8).tobytes())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(out))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_all_filters(tmp_path: Path, channels: int) -> None:
    values = np.random.default_rng(channels).integers(0, 65536, (10, 7, channels), dtype=np.uint16)
    _png16(tmp_path / "f.png", values)
    y, bits = read_image(tmp_path / "f.png", channels)
    assert bits == 16
    assert torch.equal(y, torch.from_numpy(values.astype(np.float32) / 65535).permute(2, 0, 1))


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_16bit_rgb_tiff(tmp_path: Path, compression: str | None) -> None:
    tifffile = pytest.importorskip("tifffile")
    values = np.random.default_rng(0).integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "x.tif", values, photometric="rgb", compression=compression)
    y, bits = read_image(tmp_path / "x.tif", 3)
    assert bits == 16 and torch.equal(y, torch.from_numpy(values.astype(np.float32) / 65535).permute(2, 0, 1))


def test_16bit_grey_modes_and_conversion(tmp_path: Path) -> None:
    grey = np.random.default_rng(1).integers(0, 65536, (4, 6), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.tif")  # mode I;16
    y, bits = read_image(tmp_path / "g.tif", 3)
    assert bits == 16 and y.shape == (3, 4, 6) and torch.equal(y[0], y[2])
    assert torch.equal(y[0], torch.from_numpy(grey.astype(np.float32) / 65535))
    rgb = torch.rand(3, 4, 6)
    write_image(tmp_path / "c.png", rgb, bits=16)
    luma, _ = read_image(tmp_path / "c.png", 1)
    expected = (torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1) * (rgb * 65535).round() / 65535).sum(0)
    assert torch.allclose(luma[0], expected, atol=1e-6)


def test_modes_l_rgba_p_la_cmyk(tmp_path: Path) -> None:
    Image.new("L", (4, 3), 200).save(tmp_path / "l.png")
    assert torch.allclose(read_image(tmp_path / "l.png", 3)[0], torch.full((3, 3, 4), 200 / 255))
    Image.new("RGBA", (4, 3), (10, 20, 30, 40)).save(tmp_path / "rgba.png")
    rgba, _ = read_image(tmp_path / "rgba.png", 4)
    assert rgba[:, 0, 0].mul(255).round().tolist() == [10, 20, 30, 40]
    assert read_image(tmp_path / "rgba.png", 3)[0].shape == (3, 3, 4)  # alpha dropped
    rgb = Image.new("RGB", (4, 3), (250, 10, 60))
    rgb.save(tmp_path / "rgb.png")
    grey, _ = read_image(tmp_path / "rgb.png", 1)
    assert grey[0, 0, 0] * 255 == rgb.convert("L").getpixel((0, 0))
    p = Image.new("P", (4, 3), 1)
    p.putpalette([0, 0, 0, 7, 8, 9] + [0] * 762)
    p.save(tmp_path / "p.png", transparency=0)  # palette + transparency: must not warn
    assert read_image(tmp_path / "p.png", 3)[0][:, 0, 0].mul(255).round().tolist() == [7, 8, 9]
    Image.new("LA", (4, 3), (5, 6)).save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png", 2)[0][:, 0, 0].mul(255).round().tolist() == [5, 6]
    Image.new("CMYK", (4, 3), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    assert read_image(tmp_path / "cmyk.jpg", 3)[0].shape == (3, 3, 4)
    with pytest.raises(DataError, match=r"rgb\.png: image has 3 channel\(s\) but 2"):
        read_image(tmp_path / "rgb.png", 2)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty"), (b"not an image at all", "cannot identify"), ("truncated", "truncated|broken|error")],
)
def test_broken_files_raise_data_error_with_path(tmp_path: Path, content: bytes | str, reason: str) -> None:
    path = tmp_path / "bad.png"
    if content == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=reason) as info:
        read_image(path, 3)
    assert str(info.value).startswith(f"{path}: cannot read image: ")
    assert str(info.value).endswith("Remove or replace the file.")


def test_list_images_sorted_any_case_skips_hidden(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.JpG", "sub/c.webp", ".hidden.png", "__MACOSX/._a.png", "notes.txt", "d.tiff"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a.JpG", "b.PNG", "d.tiff", "sub/c.webp"]


# ---------------------------------------------------------------- resizing


def test_target_sizes_follow_the_reference() -> None:
    def size(preprocess: str, w: int, h: int) -> tuple[int, int]:
        return target_size(w, h, AugmentConfig(preprocess=preprocess, load_size=286, crop_size=256))

    assert size("resize_and_crop", 500, 300) == (286, 286)
    assert size("scale_width", 572, 300) == (286, 256)  # height never below crop_size
    assert size("scale_width_and_crop", 286, 400) == (286, 400)
    assert size("scale_width", 400, 800) == (286, 572)
    assert size("none", 30, 50) == (32, 48)
    assert size("crop", 300, 301) == (300, 301)


def test_16bit_resize_close_to_pil_8bit() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    cfg = AugmentConfig(preprocess="resize_and_crop", load_size=17, crop_size=16)
    pil = np.asarray(resize_for(Image.fromarray(pixels), cfg), dtype=np.float32) / 255
    tensor = resize_for(torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1), cfg)
    assert tensor.shape == (3, 17, 17)
    assert np.abs(tensor.permute(1, 2, 0).numpy() - pil).max() <= 2 / 255


# ---------------------------------------------------------------- pairings


def _solid(path: Path, value: int, size: tuple[int, int] = (16, 16), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (value, 255 - value, 7) if mode == "RGB" else value).save(path)


def _unaligned_root(tmp_path: Path, n_a: int = 3, n_b: int = 5) -> Path:
    root = tmp_path / "mydata"
    for i in range(n_a):
        _solid(root / "trainA" / f"a{i}.png", 10 * i)
    for i in range(n_b):
        _solid(root / "trainB" / f"b{i}.jpg", 20 * i)
    return root


def _build_unaligned(root: Path, seed: int = 0, **data: object):
    return build_unaligned(UnalignedConfig(), split="train", data=DataConfig(root=str(root), **data), augment=SMALL, seed=seed)


def test_pairings_are_registered() -> None:
    assert [spec.name for spec in ganzoo_register_pairings()] == ["unaligned", "aligned", "named"]


def test_unaligned_layout_and_items(tmp_path: Path) -> None:
    ds = _build_unaligned(_unaligned_root(tmp_path), channels_b=1)
    assert len(ds) == 5 and ds.aligned is False
    item = ds[4]
    assert item["A"].shape == (3, 12, 12) and item["B"].shape == (1, 12, 12)
    assert item["A_path"].endswith("a1.png") and "trainB" in item["B_path"]
    assert 0 <= item["A"].min() and item["A"].max() <= 1


def test_unaligned_random_pairing_is_deterministic(tmp_path: Path) -> None:
    root = _unaligned_root(tmp_path, 4, 40)
    ds, again = _build_unaligned(root), _build_unaligned(root)
    pairs = lambda d: [d.b_index(i) for i in range(len(d))]  # noqa: E731
    assert pairs(ds) == pairs(again) == pairs(pickle.loads(pickle.dumps(ds)))
    first = pairs(ds)
    ds.set_epoch(1)
    assert pairs(ds) != first
    again.set_epoch(1)
    assert pairs(again) == pairs(ds)
    assert pairs(_build_unaligned(root, seed=1)) != first
    # DataLoader workers (separate processes) pick the same partners as the main process.
    loader = DataLoader(ds, batch_size=5, num_workers=2)
    got = [Path(p).name for batch in loader for p in batch["B_path"]]
    assert got == [ds.b_paths[i].name for i in pairs(ds)]


def test_unaligned_serial_and_max_dataset_size(tmp_path: Path) -> None:
    root = _unaligned_root(tmp_path, 3, 5)
    serial = _build_unaligned(root, serial_batches=True)
    assert [serial.b_index(i) for i in range(5)] == [0, 1, 2, 3, 4]
    small = _build_unaligned(root, max_dataset_size=2)
    assert len(small) == 2 and [p.name for p in small.b_paths] == ["b0.jpg", "b1.jpg"]
    (root / "testA").mkdir()
    (root / "testB").mkdir()
    _solid(root / "testA" / "x.png", 1)
    _solid(root / "testB" / "y.png", 2)
    test = build_unaligned(UnalignedConfig(), split="test", data=DataConfig(root=str(root)), augment=SMALL, seed=0)
    assert test.serial and len(test) == 1


def test_aligned_splits_halves_and_direction(tmp_path: Path) -> None:
    root = tmp_path / "facades"
    (root / "train").mkdir(parents=True)
    ab = Image.new("RGB", (33, 16), (255, 0, 0))  # odd width: the last column is dropped
    ab.paste((0, 0, 255), (16, 0, 33, 16))
    ab.save(root / "train" / "1.png")
    data = DataConfig(root=str(root), channels_a=3, channels_b=1)
    ds = build_aligned(AlignedConfig(), split="train", data=data, augment=SMALL, seed=0)
    item = ds[0]
    assert ds.aligned and item["A"].shape == (3, 12, 12) and item["B"].shape == (1, 12, 12)
    assert torch.allclose(item["A"][:, 5, 5], torch.tensor([1.0, 0.0, 0.0]), atol=1 / 255)
    swapped = build_aligned(AlignedConfig(direction="BtoA"), split="train", data=data, augment=SMALL, seed=0)[0]
    assert torch.allclose(swapped["A"][:, 5, 5], torch.tensor([0.0, 0.0, 1.0]), atol=1 / 255)
    assert swapped["B"].shape == (1, 12, 12) and swapped["A_path"] == swapped["B_path"]


def test_named_pairs_by_stem(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    for i in range(4):
        _solid(root / "trainA" / f"{i:03d}.png", i)
        _solid(root / "trainB" / f"{i:03d}.jpg", 100 + i, mode="L")
    ds = build_named(NamedConfig(), split="train", data=DataConfig(root=str(root), channels_b=1, max_dataset_size=3), augment=SMALL, seed=0)
    assert ds.aligned and len(ds) == 3
    assert [(Path(ds[i]["A_path"]).stem, Path(ds[i]["B_path"]).stem) for i in range(3)] == [("000", "000"), ("001", "001"), ("002", "002")]


def test_named_lists_unmatched_names(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    for i in range(14):
        _solid(root / "A" / f"a{i:02d}.png", i)
    _solid(root / "A" / "shared.png", 1)
    _solid(root / "B" / "shared.png", 1)
    _solid(root / "B" / "lonely.png", 1)
    with pytest.raises(DataError) as info:
        build_named(NamedConfig(a_dir="A", b_dir="B"), split="train", data=DataConfig(root=str(root)), augment=SMALL, seed=0)
    msg = str(info.value)
    assert msg.startswith(str(root))
    assert "14 file(s) in" in msg and "a00, a01" in msg and "a09 (and 4 more)" in msg and "a10" not in msg
    assert "1 file(s) in" in msg and "lonely" in msg and "same name" in msg


def test_named_config_rejects_unknown_placeholder() -> None:
    with pytest.raises(ValueError, match="split"):
        NamedConfig(a_dir="{phase}A")


def test_missing_root_names_layout_and_download_command(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        build_unaligned(UnalignedConfig(), split="train", data=DataConfig(root=str(tmp_path / "horse2zebra")), augment=SMALL, seed=0)
    msg = str(info.value)
    assert msg.startswith(str(tmp_path / "horse2zebra")) and "trainA/" in msg and "trainB/" in msg
    assert "ganzoo data download horse2zebra" in msg
    with pytest.raises(DataError, match=r"ganzoo data download facades_pix2pix`.*root"):
        build_aligned(AlignedConfig(), split="train", data=DataConfig(root=str(tmp_path / "facades")), augment=SMALL, seed=0)
    with pytest.raises(DataError, match=r"Check \[data\] root"):
        build_aligned(AlignedConfig(), split="train", data=DataConfig(root=str(tmp_path / "mine")), augment=SMALL, seed=0)


def test_missing_split_folder_and_empty_folder(tmp_path: Path) -> None:
    root = tmp_path / "mydata"
    (root / "trainA").mkdir(parents=True)
    with pytest.raises(DataError, match=r"trainA: no images found"):
        _build_unaligned(root)
    _solid(root / "trainA" / "a.png", 1)
    with pytest.raises(DataError) as info:
        _build_unaligned(root)
    assert str(info.value).startswith(f"{root / 'trainB'}: folder not found")
    with pytest.raises(ValueError, match="split"):
        build_unaligned(UnalignedConfig(), split="training", data=DataConfig(root=str(root)), augment=SMALL, seed=0)


def test_unreadable_file_in_dataset_names_it(tmp_path: Path) -> None:
    root = _unaligned_root(tmp_path, 1, 1)
    (root / "trainA" / "a0.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"a0\.png: cannot read image"):
        _build_unaligned(root)[0]


def test_open_image_keeps_16_bits_for_datasets(tmp_path: Path) -> None:
    write_image(tmp_path / "x.png", torch.full((3, 4, 4), 1000 / 65535), bits=16)
    img, bits = open_image(tmp_path / "x.png")
    assert bits == 16 and isinstance(img, torch.Tensor) and img.shape == (3, 4, 4)


def test_16bit_colour_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ganzoo.data import images

    def unsupported(path: Path, rawmode: str) -> torch.Tensor:
        raise ValueError("unknown raw mode for given image mode")

    monkeypatch.setattr(images, "_decode_16bit_colour", unsupported)
    write_image(tmp_path / "x.png", torch.rand(3, 4, 4), bits=16)
    with pytest.raises(DataError, match=r"x\.png: cannot read image: 16-bit colour .*RGB;16B.* without losing bits"):
        read_image(tmp_path / "x.png", 3)
    tifffile = pytest.importorskip("tifffile")
    values = np.random.default_rng(0).integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "x.tif", values, photometric="rgb")
    y, bits = read_image(tmp_path / "x.tif", 3)
    assert bits == 16 and torch.equal(y, torch.from_numpy(values.astype(np.float32) / 65535).permute(2, 0, 1))


@pytest.mark.parametrize("preprocess", ["resize_and_crop", "scale_width"])
@pytest.mark.parametrize("channels", [1, 3])
def test_8bit_preprocessing_equals_the_reference_pipeline(tmp_path: Path, preprocess: str, channels: int) -> None:
    """The reference: open().convert("RGB") [-> Grayscale(1)] -> resize (PIL bicubic) -> ToTensor."""
    from ganzoo.data.dataset import PairDataset

    path = tmp_path / "x.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(path)
    cfg = AugmentConfig(preprocess=preprocess, load_size=24, crop_size=20)
    ours = PairDataset(augment=cfg, channels_a=channels, channels_b=channels).load(path, channels)
    with Image.open(path) as img:
        ref = img.convert("RGB").convert("L") if channels == 1 else img.convert("RGB")
    size = (24, 24) if preprocess == "resize_and_crop" else (24, int(max(24 * 30 / 50, 20)))
    ref = ref.resize(size, Image.Resampling.BICUBIC)
    expected = torch.from_numpy(np.asarray(ref, dtype=np.float32) / 255).reshape(size[1], size[0], channels)
    assert torch.equal(ours, expected.permute(2, 0, 1))


def test_unaligned_direction_btoa_swaps_the_domains(tmp_path):
    from ganzoo.config import AugmentConfig, DataConfig
    from ganzoo.data.pairing import UnalignedConfig, build_unaligned
    from imagefiles import write_images

    root = tmp_path / "ds"
    write_images(root / "trainA", 2, names=["a0", "a1"], seed=1)
    write_images(root / "trainB", 3, names=["b0", "b1", "b2"], seed=2)
    data = DataConfig(root=str(root), serial_batches=True)
    augment = AugmentConfig(preprocess="none")
    forward = build_unaligned(UnalignedConfig(), split="train", data=data, augment=augment, seed=0)
    backward = build_unaligned(UnalignedConfig(direction="BtoA"), split="train", data=data, augment=augment, seed=0)
    assert forward[0]["A_path"].endswith("a0.png") and forward[0]["B_path"].endswith("b0.png")
    assert backward[0]["A_path"].endswith("b0.png") and backward[0]["B_path"].endswith("a0.png")
    assert len(backward) == 3
