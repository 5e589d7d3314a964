"""The reference's public datasets (CycleGAN zips, pix2pix tarballs) and the built-in glyphs.

``download_dataset`` streams an archive to ``DEST/NAME.<ext>.part`` (resuming with an HTTP
Range request after an interruption), unpacks it member by member with every path checked
to stay inside the destination, checks the expected folders exist and moves the result into
place with one rename. An archive already lying at ``DEST/NAME.<ext>`` is unpacked without
any network access, which is the way to install a dataset on an offline machine. The resumable
fetch (:func:`fetch`) is shared with the pretrained-model downloads of :mod:`ganzoo.zoo`.
"""
from __future__ import annotations

import dataclasses
import difflib
import gzip
import http.client
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable

from ganzoo.errors import DataError

# Mutable so tests (or a local mirror) can point the downloads elsewhere.
URL_BASES = {
    "cyclegan": "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets",
    "pix2pix": "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets",
}
LAYOUT_FOLDERS = {"unaligned": ("trainA", "trainB", "testA", "testB"), "aligned": ("train", "val", "test")}
LAYOUT_TEXT = {
    "unaligned": "trainA/ trainB/ testA/ testB/ holding the images of each domain",
    "aligned": "train/ val/ test/ holding A|B side-by-side images",
}
TIMEOUT_S = 30.0
_CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A dataset ``ganzoo data download`` knows.

    Args:
        name: the name to download it by; it is also the folder it unpacks to.
        host: key of ``URL_BASES``; empty when it is rendered locally or cannot be downloaded.
        archive: the file name on the host.
        pairing: the pairing whose layout the folder has, ``"unaligned"`` (trainA/ trainB/ ...;
            the ``named`` pairing reads it too) or ``"aligned"`` (train/ with A|B images).
        summary: one line for listings.
        manual: when not empty, the dataset cannot be downloaded and this says how to get it.
    """

    name: str
    host: str
    archive: str
    pairing: str
    summary: str
    manual: str = ""

    @property
    def url(self) -> str:
        return f"{URL_BASES[self.host]}/{self.archive}" if self.host else ""


def _cyclegan(name: str, summary: str, pairing: str = "unaligned") -> DatasetInfo:
    return DatasetInfo(name, "cyclegan", f"{name}.zip", pairing, summary)


def _pix2pix(name: str, summary: str, archive_name: str = "") -> DatasetInfo:
    return DatasetInfo(name, "pix2pix", f"{archive_name or name}.tar.gz", "aligned", summary)


_CITYSCAPES = (
    "its licence does not allow redistribution. Download gtFine_trainvaltest.zip and "
    "leftImg8bit_trainvaltest.zip from https://www.cityscapes-dataset.com, combine label and "
    "photo into A|B images (the reference's datasets/prepare_cityscapes_dataset.py) and put them "
    "in DEST/cityscapes/train/ and DEST/cityscapes/val/"
)

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("glyphs", "", "", "unaligned", "DejaVu Sans <-> Serif letters, rendered locally (no network)"),
        _cyclegan("apple2orange", "apples <-> oranges (ImageNet)"),
        _cyclegan("summer2winter_yosemite", "Yosemite in summer <-> winter (Flickr)"),
        _cyclegan("horse2zebra", "horses <-> zebras (ImageNet)"),
        _cyclegan("monet2photo", "Monet paintings <-> landscape photos"),
        _cyclegan("cezanne2photo", "Cezanne paintings <-> landscape photos"),
        _cyclegan("ukiyoe2photo", "Ukiyo-e prints <-> landscape photos"),
        _cyclegan("vangogh2photo", "Van Gogh paintings <-> landscape photos"),
        _cyclegan("maps", "Google Maps <-> aerial photos (unpaired layout)"),
        _cyclegan("facades", "facade labels <-> photos (unpaired layout)"),
        _cyclegan("iphone2dslr_flower", "iPhone <-> DSLR flower photos (depth of field)"),
        _cyclegan("ae_photos", "ae_photos, as listed by the reference's CycleGAN script"),
        _cyclegan("grumpifycat", "Russian Blue cats <-> Grumpy Cat (from CUT)"),
        _cyclegan("mini", "a few horse2zebra images: the reference's smoke-test set"),
        _cyclegan("mini_pix2pix", "a few facades A|B images: the reference's smoke-test set", "aligned"),
        _pix2pix("facades_pix2pix", "facade labels | photos, 400 pairs", "facades"),
        _pix2pix("maps_pix2pix", "Google Maps | aerial photos, 1096 pairs", "maps"),
        _pix2pix("night2day", "night | day webcam photos"),
        _pix2pix("edges2shoes", "edge maps | shoe photos, 50k pairs (2 GB)"),
        _pix2pix("edges2handbags", "edge maps | handbag photos, 137k pairs (8 GB)"),
        DatasetInfo("cityscapes", "", "", "aligned", "semantic labels | street photos", manual=_CITYSCAPES),
    )
}


def lookup(name: str) -> DatasetInfo:
    """The dataset called ``name``; an unknown name is a DataError with a did-you-mean."""
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(name, list(DATASETS), n=1)
    hint = f' Did you mean "{close[0]}"?' if close else ""
    raise DataError(f'dataset "{name}": unknown dataset.{hint} Available: {", ".join(DATASETS)}.')


def has_layout(folder: Path, pairing: str) -> bool:
    """True when ``folder`` holds at least one folder of the layout ``pairing`` reads."""
    return any((folder / sub).is_dir() for sub in LAYOUT_FOLDERS[pairing])


def download_hint(root: str | Path, pairing: str) -> str:
    """A sentence telling how to get ``root`` when its name is a known dataset, else ""."""
    root = Path(root)
    layout = "unaligned" if pairing == "named" else pairing
    for key in (root.name, f"{root.name}_pix2pix"):
        info = DATASETS.get(key)
        if info is None or info.pairing != layout:
            continue
        where = "" if key == root.name else f' and set [data] root = "{root.parent / key}"'
        return f" {root.name} is a known dataset: download it with `ganzoo data download {key}`{where}."
    info = DATASETS.get(root.name)
    if info is not None:
        return (
            f" {root.name} is a known dataset with the {info.pairing} layout ({LAYOUT_TEXT[info.pairing]}): "
            f'set [data] pairing = "{info.pairing}" and download it with `ganzoo data download {root.name}`.'
        )
    return ""


def download_dataset(name: str, dest_root: Path, *, progress: bool = True) -> Path:
    """Download and unpack dataset ``name`` into ``dest_root/name``; return that folder.

    Does nothing when the folder is already there. ``glyphs`` is rendered locally.

    Example:
        >>> download_dataset("horse2zebra", Path("data"))
        PosixPath('data/horse2zebra')
    """
    info = lookup(name)
    dest_root = Path(dest_root)
    target = dest_root / name
    if target.exists():
        if has_layout(target, info.pairing):
            return target
        raise DataError(
            f"{target}: exists but has none of {', '.join(LAYOUT_FOLDERS[info.pairing])}. "
            "It may be left from an interrupted unpack: remove it and run again."
        )
    if info.manual:
        how = info.manual.replace("DEST", str(dest_root))
        raise DataError(f'dataset "{name}": cannot be downloaded automatically: {how}.')
    if not info.host:
        from ganzoo.data.glyphs import make_glyphs

        return make_glyphs(target)
    dest_root.mkdir(parents=True, exist_ok=True)
    archive = dest_root / (name + (".zip" if info.archive.endswith(".zip") else ".tar.gz"))
    if not archive.exists():
        part = archive.with_name(archive.name + ".part")
        _fetch(info, part, archive, target, progress)
        part.replace(archive)
    _unpack(info, archive, target)
    archive.unlink()
    return target


def _offline(info: DatasetInfo, reason: str, archive: Path, target: Path) -> DataError:
    part = archive.with_name(archive.name + ".part")
    kept = f" The partial download {part} is kept and resumes on the next run." if part.exists() else ""
    return DataError(
        f"cannot download {info.name} from {info.url}: {reason}. This machine may be offline: "
        f"download the archive elsewhere and either put it at {archive} (it is unpacked on the next run) "
        f"or unpack it to {target} (layout: {LAYOUT_TEXT[info.pairing]}), or run again when online.{kept}"
    )


def _fetch(info: DatasetInfo, part: Path, archive: Path, target: Path, progress: bool) -> None:
    """Stream ``info.url`` into ``part``, continuing a previous partial download."""
    fetch(info.url, part, label=info.name, progress=progress,
          fail=lambda reason: _offline(info, reason, archive, target))


def fetch(url: str, part: Path, *, label: str, progress: bool, fail: Callable[[str], Exception]) -> None:
    """Stream ``url`` into ``part``, resuming a previous partial ``part`` with an HTTP Range request.

    A server that ignores Range restarts the file; a 416 on a complete ``part`` is success. Any
    network failure or short read raises ``fail(reason)``; ``part`` is kept so the next call
    resumes. Shared by dataset and pretrained-model downloads.

    Args:
        url: what to download.
        part: the partial file, created or extended in place.
        label: name shown on the progress bar.
        progress: show a tqdm progress bar.
        fail: builds the exception to raise from a one-line reason (e.g. ``"HTTP 404 Not Found"``).
    """
    from tqdm import tqdm

    from ganzoo import __version__

    for _attempt in range(2):
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": f"ganzoo/{__version__}"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S) as resp:
                if resp.status != 206:  # a fresh download, or a server that ignores Range
                    have = 0
                length = resp.headers.get("Content-Length")
                total = have + int(length) if length is not None else None
                with open(part, "ab" if have else "wb") as out, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=label, disable=not progress
                ) as bar:
                    _copy(resp, out, bar.update)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and have:  # nothing left to send: complete, or a stale .part
                if _range_total(exc.headers.get("Content-Range", "")) == have:
                    return
                part.unlink()
                continue
            raise fail(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise fail(f"{type(exc).__name__}: {reason}") from None
        size = part.stat().st_size
        if total is not None and size != total:
            raise fail(f"the connection closed after {size} of {total} bytes")
        return
    raise fail("the server refused to resume the partial download")


def _copy(src: BinaryIO, dst: BinaryIO, update: Callable[[int], object]) -> None:
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
        update(len(chunk))


def _range_total(content_range: str) -> int | None:
    match = re.fullmatch(r"bytes \*/(\d+)", content_range.strip())
    return int(match.group(1)) if match else None


def _member_path(root: Path, name: str, archive: Path) -> Path:
    """Where archive member ``name`` goes under ``root``; a DataError if it would escape."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    escapes = name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0])
    path = root.joinpath(*parts) if parts else root
    if escapes or not path.resolve().is_relative_to(root.resolve()):
        raise DataError(
            f"{archive}: archive member {name!r} would be written outside {root}: the archive is "
            "corrupt or malicious, so it was deleted and nothing was unpacked. Download it again from a trusted source."
        )
    return path


def _extract(archive: Path, into: Path) -> None:
    """Unpack regular files and folders only; links, devices and escaping paths are refused."""
    refused = "is a link or special file"
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                path = _member_path(into, member.filename, archive)
                if member.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                if (member.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DataError(f"{archive}: archive member {member.filename!r} {refused}; it was deleted.")
                path.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
        return
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            path = _member_path(into, member.name, archive)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                path.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(member)
                with src, open(path, "wb") as dst:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, dst, _CHUNK)
            else:
                raise DataError(f"{archive}: archive member {member.name!r} {refused}; it was deleted.")


def _content_root(work: Path) -> Path:
    """The single top folder most archives have (``horse2zebra/...``), else ``work`` itself."""
    entries = [p for p in work.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else work


def _unpack(info: DatasetInfo, archive: Path, target: Path) -> None:
    work = target.with_name(f".{target.name}.unpacking")
    if work.exists():  # ours, left by an interrupted run
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        try:
            _extract(archive, work)
            content = _content_root(work)
            if not has_layout(content, info.pairing):
                found = ", ".join(sorted(p.name for p in content.iterdir())[:10]) or "nothing"
                raise DataError(
                    f"{archive}: unpacked, but found {found} instead of {LAYOUT_TEXT[info.pairing]}. The archive "
                    "is not this dataset, so it was deleted: check the URL or mirror and run again."
                )
        except DataError:
            archive.unlink(missing_ok=True)
            raise
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            archive.unlink(missing_ok=True)
            raise DataError(
                f"{archive}: cannot unpack: {exc}. The archive is damaged, so it was deleted: run again to "
                "download it afresh."
            ) from None
        except OSError as exc:  # disk full, permissions: the archive itself is fine
            raise DataError(
                f"{archive}: cannot unpack into {work}: {exc}. Free some space or fix the permissions, then run "
                "again (the archive is kept)."
            ) from None
        os.replace(content, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
