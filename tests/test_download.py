"""Dataset downloads against a loopback HTTP server: unpack, resume, unsafe archives, offline,
slow and lying servers, full disks, archive bombs and checksums."""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import socket
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from ganzoo.cli import cli
from ganzoo.data import download
from ganzoo.data.download import Limits, download_dataset
from ganzoo.data.images import read_image
from ganzoo.errors import DataError
from httpserver import Server, serve

CATALOGUE = dict(download.DATASETS)  # as shipped, before the fixture below hides the checksums
# Small enough that a dripping server is caught in well under a second.
FAST = Limits(timeout=5.0, min_rate=1000.0, rate_window=0.2)


@pytest.fixture(autouse=True)
def _unpublished_archives(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests serve their own archives, not the published ones the catalogue's checksums describe."""
    hidden = {name: dataclasses.replace(info, sha256=None) for name, info in download.DATASETS.items()}
    monkeypatch.setattr(download, "DATASETS", hidden)
    for var in ("TIMEOUT", "MIN_RATE", "RATE_WINDOW", "MAX_BYTES"):
        monkeypatch.delenv(f"GANZOO_DOWNLOAD_{var}", raising=False)
    for var in ("MAX_BYTES", "MAX_FILES"):
        monkeypatch.delenv(f"GANZOO_UNPACK_{var}", raising=False)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    with serve() as state:
        monkeypatch.setitem(download.URL_BASES, "cyclegan", state.url + "/cyclegan")
        monkeypatch.setitem(download.URL_BASES, "pix2pix", state.url + "/pix2pix")
        yield state


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _cyclegan_zip(name: str = "horse2zebra") -> bytes:
    members = {f"{name}/{sub}/{i}.png": _png() for sub in ("trainA", "trainB", "testA", "testB") for i in range(3)}
    members["__MACOSX/._junk"] = b"resource fork"
    return _zip(members)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["data", "download", *args], catch_exceptions=False)
    return result.exit_code, result.output


def _one_error_line(output: str) -> str:
    lines = [line for line in output.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_download_unpacks_and_is_idempotent(server: Server, tmp_path: Path) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    out = download_dataset("horse2zebra", tmp_path, progress=False)
    assert out == tmp_path / "horse2zebra"
    assert sorted(p.name for p in out.iterdir()) == ["testA", "testB", "trainA", "trainB"]
    assert read_image(out / "trainA" / "0.png", 3)[0].shape == (3, 8, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["horse2zebra"]  # archive, .part, work dir gone
    assert download_dataset("horse2zebra", tmp_path, progress=False) == out
    assert len(server.requests) == 1


def test_resume_from_partial_file(server: Server, tmp_path: Path) -> None:
    archive = server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    (tmp_path / "horse2zebra.zip.part").write_bytes(archive[:1000])
    download_dataset("horse2zebra", tmp_path, progress=False)
    assert server.requests == [("/cyclegan/horse2zebra.zip", "bytes=1000-")]
    assert (tmp_path / "horse2zebra" / "testB" / "2.png").is_file()


def test_interrupted_download_is_kept_and_resumed(server: Server, tmp_path: Path) -> None:
    archive = server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    server.cut_after = 700
    with pytest.raises(DataError, match=rf"cannot download horse2zebra from .*horse2zebra\.zip: the server announced "
                                        rf"{len(archive)} bytes \(Content-Length\) but the connection closed after "
                                        r"700\. The connection dropped.*kept and resumes"):
        download_dataset("horse2zebra", tmp_path, progress=False)
    assert (tmp_path / "horse2zebra.zip.part").read_bytes() == archive[:700]
    download_dataset("horse2zebra", tmp_path, progress=False)
    assert server.requests[-1] == ("/cyclegan/horse2zebra.zip", "bytes=700-")
    assert (tmp_path / "horse2zebra" / "trainA" / "1.png").is_file()


def test_server_ignoring_range_restarts(server: Server, tmp_path: Path) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    server.honour_range = False
    (tmp_path / "horse2zebra.zip.part").write_bytes(b"garbage that must not stay in front")
    assert (download_dataset("horse2zebra", tmp_path, progress=False) / "trainB").is_dir()


def test_complete_part_file_gets_416(server: Server, tmp_path: Path) -> None:
    archive = server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    (tmp_path / "horse2zebra.zip.part").write_bytes(archive)
    assert (download_dataset("horse2zebra", tmp_path, progress=False) / "testA").is_dir()


def test_pix2pix_tarball(server: Server, tmp_path: Path) -> None:
    server.files["/pix2pix/facades.tar.gz"] = _tar_gz({"facades/train/1.png": _png(), "facades/val/1.png": _png()})
    out = download_dataset("facades_pix2pix", tmp_path, progress=False)
    assert out == tmp_path / "facades_pix2pix" and (out / "train" / "1.png").is_file()


@pytest.mark.parametrize("evil", ["../evil.png", "/tmp/ganzoo-evil.png", "horse2zebra/../../evil.png"])
def test_path_traversal_zip_is_rejected(server: Server, tmp_path: Path, evil: str) -> None:
    dest = tmp_path / "dest"
    server.files["/cyclegan/horse2zebra.zip"] = _zip({"horse2zebra/trainA/1.png": _png(), evil: b"pwned"})
    with pytest.raises(DataError, match="outside"):
        download_dataset("horse2zebra", dest, progress=False)
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/ganzoo-evil.png").exists()
    assert sorted(p.name for p in dest.iterdir()) == []  # archive deleted, nothing unpacked


def test_symlink_in_tarball_is_rejected(server: Server, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        link = tarfile.TarInfo("night2day/train/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    server.files["/pix2pix/night2day.tar.gz"] = buf.getvalue()
    with pytest.raises(DataError, match="link or special file"):
        download_dataset("night2day", tmp_path, progress=False)
    assert not (tmp_path / "night2day").exists()


def test_wrong_layout_is_deleted(server: Server, tmp_path: Path) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _zip({"horse2zebra/readme.txt": b"hi"})
    with pytest.raises(DataError, match="found readme.txt instead of trainA/"):
        download_dataset("horse2zebra", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["not a zip", "truncated"])
def test_corrupt_archive_is_deleted_and_a_retry_succeeds(server: Server, tmp_path: Path, damage: str) -> None:
    good = _cyclegan_zip()
    # a truncated zip lost its central directory; the server's Content-Length matches what it sends
    server.files["/cyclegan/horse2zebra.zip"] = b"this is not a zip file" if damage == "not a zip" else good[:-300]
    with pytest.raises(DataError, match=r"horse2zebra\.zip: cannot unpack: .*The archive is damaged, so it was "
                                        "deleted: run again to download it afresh"):
        download_dataset("horse2zebra", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
    server.files["/cyclegan/horse2zebra.zip"] = good
    assert (download_dataset("horse2zebra", tmp_path, progress=False) / "trainA" / "2.png").is_file()
    assert server.requests[-1] == ("/cyclegan/horse2zebra.zip", None)  # afresh, no Range


def test_http_error_is_not_called_offline(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="the server answered HTTP 404 Not Found. The file may have moved") as info:
        download_dataset("apple2orange", tmp_path, progress=False)
    assert "offline" not in str(info.value)


def test_connection_refused_reads_as_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(download.URL_BASES, "cyclegan", "http://127.0.0.1:1")
    with pytest.raises(DataError) as info:
        download_dataset("horse2zebra", tmp_path, progress=False)
    msg = str(info.value)
    assert msg.startswith("cannot download horse2zebra from http://127.0.0.1:1/horse2zebra.zip: "
                          "127.0.0.1:1 refused the connection. This machine may be offline")
    assert str(tmp_path / "horse2zebra.zip") in msg and "trainA/" in msg
    assert list(tmp_path.iterdir()) == []


def test_dns_failure_reads_as_offline_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    code, output = _cli("horse2zebra", "--root", str(tmp_path))
    line = _one_error_line(output)
    assert code == 2
    assert "cannot look up the host name efrosgans.eecs.berkeley.edu (Name or service not known)" in line
    assert "This machine may be offline" in line and "disk" not in line


def test_archive_placed_by_hand_is_unpacked_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(download.URL_BASES, "cyclegan", "http://127.0.0.1:1")
    (tmp_path / "horse2zebra.zip").write_bytes(_cyclegan_zip())
    assert (download_dataset("horse2zebra", tmp_path, progress=False) / "trainA" / "0.png").is_file()


def test_names_manual_datasets_and_glyphs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r'Did you mean "horse2zebra"\? Available: glyphs, apple2orange'):
        download_dataset("horse2zebr", tmp_path)
    with pytest.raises(DataError, match="cityscapes-dataset.com"):
        download_dataset("cityscapes", tmp_path)
    assert {"horse2zebra", "monet2photo", "facades", "maps", "edges2shoes", "night2day", "grumpifycat"} <= set(download.DATASETS)
    assert download.DATASETS["horse2zebra"].url == "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip"
    assert download.DATASETS["facades_pix2pix"].url == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
    out = download_dataset("glyphs", tmp_path, progress=False)
    assert (out / "trainA").is_dir() and (out / "dataset.json").is_file()
    (tmp_path / "monet2photo").mkdir()
    with pytest.raises(DataError, match="monet2photo: exists but has none of trainA"):
        download_dataset("monet2photo", tmp_path)


# --- slow servers: the rate and the deadline ---------------------------------------------------

@pytest.mark.parametrize("drip_head", [False, True], ids=["body", "headers"])
def test_dripping_server_misses_the_minimum_rate(server: Server, tmp_path: Path, drip_head: bool) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    server.drip_s, server.drip_head = 0.05, drip_head  # 20 bytes/s, far below FAST.min_rate
    began = time.monotonic()
    with pytest.raises(DataError, match=r"cannot download horse2zebra from .*: .*slower than the minimum of 1000 "
                                        r"bytes/s \(GANZOO_DOWNLOAD_MIN_RATE\)\. The server or the link is too slow"):
        download_dataset("horse2zebra", tmp_path, progress=False, limits=FAST)
    assert time.monotonic() - began < 2
    part = tmp_path / "horse2zebra.zip.part"
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if drip_head else [part.name])  # kept to resume


def test_deadline_stops_a_server_that_keeps_the_rate(server: Server, tmp_path: Path) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    server.drip_s = 0.01
    began = time.monotonic()
    with pytest.raises(DataError, match=r"it did not finish within 0\.4 s \(GANZOO_DOWNLOAD_TIMEOUT\)\..*resumes"):
        download_dataset("horse2zebra", tmp_path, progress=False, limits=Limits(timeout=0.4, min_rate=0))
    assert time.monotonic() - began < 2


def test_dripping_server_through_the_cli(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    server.drip_s = 0.05
    monkeypatch.setenv("GANZOO_DOWNLOAD_MIN_RATE", "500")
    monkeypatch.setenv("GANZOO_DOWNLOAD_RATE_WINDOW", "0.2")
    code, output = _cli("horse2zebra", "--root", str(tmp_path))
    line = _one_error_line(output)
    assert code == 2 and "slower than the minimum of 500 bytes/s" in line and "GANZOO_DOWNLOAD_MIN_RATE lower" in line
    monkeypatch.setenv("GANZOO_DOWNLOAD_TIMEOUT", "soon")
    code, output = _cli("horse2zebra", "--root", str(tmp_path))
    assert code == 2 and _one_error_line(output) == (
        "error: environment variable GANZOO_DOWNLOAD_TIMEOUT='soon': expected a number of seconds > 0, "
        "e.g. GANZOO_DOWNLOAD_TIMEOUT=14400. Fix or unset it.")


# --- servers whose Content-Length lies ----------------------------------------------------------

def test_content_length_larger_than_the_body_keeps_the_part(server: Server, tmp_path: Path) -> None:
    archive = server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    server.length_offset = 100
    with pytest.raises(DataError, match=rf"the server announced {len(archive) + 100} bytes \(Content-Length\) but the "
                                        rf"connection closed after {len(archive)}\. .*if this repeats, the server is "
                                        r"misbehaving.*is kept and resumes"):
        download_dataset("horse2zebra", tmp_path, progress=False, limits=FAST)
    assert (tmp_path / "horse2zebra.zip.part").read_bytes() == archive
    server.length_offset = 0  # the next request asks for the rest, and there is none: complete
    assert (download_dataset("horse2zebra", tmp_path, progress=False, limits=FAST) / "testB").is_dir()


@pytest.mark.parametrize("drip", [False, True], ids=["100 bytes more at once", "1 byte more, dripped"])
def test_content_length_smaller_than_the_body_deletes_the_part(server: Server, tmp_path: Path, drip: bool) -> None:
    # dripped, the last byte comes after the announced end has been reached and is caught by the tail check
    archive = server.files["/cyclegan/horse2zebra.zip"] = bytes(30) if drip else _cyclegan_zip()
    server.length_offset, server.drip_s = (-1, 0.003) if drip else (-100, 0.0)
    announced = len(archive) + server.length_offset
    with pytest.raises(DataError, match=rf"the server sent more than the {announced} bytes it announced "
                                        r"\(Content-Length\), so the partial download was deleted\. The server \(or a "
                                        r"proxy\) is misbehaving"):
        download_dataset("horse2zebra", tmp_path, progress=False, limits=Limits(min_rate=0))
    assert list(tmp_path.iterdir()) == []


def test_file_larger_than_the_limit_is_refused_before_writing(server: Server, tmp_path: Path) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    with pytest.raises(DataError, match=r"the file is .* kB, more than the limit of 1 kB "
                                        r"\(GANZOO_DOWNLOAD_MAX_BYTES\)"):
        download_dataset("horse2zebra", tmp_path, progress=False, limits=Limits(max_download=1000))
    assert list(tmp_path.iterdir()) == []


# --- a full disk --------------------------------------------------------------------------------

def _disk_fills_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    calls = iter(range(writes + 1))
    real = download._write

    def write(out, data):  # noqa: ANN001, ANN202
        if next(calls) == writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(out, data)

    monkeypatch.setattr(download, "_write", write)


def test_full_disk_while_downloading_is_not_offline(server: Server, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    monkeypatch.setattr(download, "_CHUNK", 1000)
    _disk_fills_after(monkeypatch, writes=1)
    with pytest.raises(DataError) as info:
        download_dataset("horse2zebra", tmp_path, progress=False)
    part = tmp_path / "horse2zebra.zip.part"
    assert str(info.value).startswith(f"{part}: the disk is full (No space left on device; ")
    assert f"Free some space on {tmp_path}" in str(info.value) and "is kept and resumes" in str(info.value)
    assert "offline" not in str(info.value) and part.stat().st_size == 1000
    monkeypatch.setattr(download, "_write", lambda out, data: out.write(data))
    assert (download_dataset("horse2zebra", tmp_path, progress=False) / "testA").is_dir()
    assert server.requests[-1] == ("/cyclegan/horse2zebra.zip", "bytes=1000-")


def test_full_disk_while_unpacking_keeps_the_archive(server: Server, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    _disk_fills_after(monkeypatch, writes=3)  # the download's single chunk, then two images
    code, output = _cli("horse2zebra", "--root", str(tmp_path))
    line = _one_error_line(output)
    assert code == 2 and line.startswith(f"error: {tmp_path / 'horse2zebra.zip'}: the disk is full (No space left on "
                                         "device) while unpacking")
    assert "the archive is kept" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["horse2zebra.zip"]  # no half-unpacked folder
    monkeypatch.setattr(download, "_write", lambda out, data: out.write(data))
    code, output = _cli("horse2zebra", "--root", str(tmp_path))
    assert code == 0 and len(server.requests) == 1  # unpacked from the kept archive, no second download


# --- archive bombs ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["zip", "tar"])
@pytest.mark.parametrize("bomb", ["bytes", "files"])
def test_archive_bomb_is_refused_before_unpacking(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  kind: str, bomb: str) -> None:
    name, path = (("horse2zebra", "/cyclegan/horse2zebra.zip") if kind == "zip"
                  else ("night2day", "/pix2pix/night2day.tar.gz"))
    layout = "trainA" if kind == "zip" else "train"
    members = ({f"{name}/{layout}/zeros.png": bytes(2_000_000)} if bomb == "bytes"
               else {f"{name}/{layout}/{i}.png": b"x" for i in range(30)})
    server.files[path] = (_zip if kind == "zip" else _tar_gz)(members)
    assert len(server.files[path]) < 20_000
    unpacked: list[str] = []
    real = download._write
    monkeypatch.setattr(download, "_write", lambda out, data: (unpacked.append(out.name), real(out, data)))
    at_least = "at least " if kind == "tar" else ""
    limit = (rf"its headers announce {at_least}2 MB of files, more than the limit of 1 MB \(GANZOO_UNPACK_MAX_BYTES\)"
             if bomb == "bytes" else
             rf"its headers list {at_least}{21 if kind == 'tar' else 30} files, more than the limit of 20 files "
             r"\(GANZOO_UNPACK_MAX_FILES\)")
    with pytest.raises(DataError, match=limit + r"\. .*an archive bomb\), so it was deleted and nothing was kept"):
        download_dataset(name, tmp_path, progress=False, limits=Limits(max_unpacked=10**6, max_files=20))
    assert all(f.endswith(".part") for f in unpacked)  # only the download itself was written
    assert list(tmp_path.iterdir()) == []


def test_bomb_the_headers_hide_is_stopped_while_unpacking(server: Server, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _zip({f"horse2zebra/trainA/{i}.png": bytes(400_000) for i in range(5)})
    monkeypatch.setattr(download, "_measure", lambda archive, limits: 0)  # as if the headers understated the sizes
    with pytest.raises(DataError, match=r"unpacking passed 1\.\d+ MB at member 'horse2zebra/trainA/2\.png', more "
                                        r"than the limit of 1 MB"):
        download_dataset("horse2zebra", tmp_path, progress=False, limits=Limits(max_unpacked=10**6))
    assert list(tmp_path.iterdir()) == []


def test_archive_bomb_through_the_cli(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _zip({"horse2zebra/trainA/zeros.png": bytes(3_000_000)})
    monkeypatch.setenv("GANZOO_UNPACK_MAX_BYTES", "1e6")
    code, output = _cli("horse2zebra", "--root", str(tmp_path))
    assert code == 2 and "an archive bomb" in _one_error_line(output) and list(tmp_path.iterdir()) == []


# --- checksums ----------------------------------------------------------------------------------

def test_catalogue_checksums_are_sha256_or_unknown() -> None:
    sums = {name: info.sha256 for name, info in CATALOGUE.items()}
    known = {name for name, digest in sums.items() if digest}
    assert known == set(download._CYCLEGAN_SHA256)
    assert all(len(sums[name]) == 64 and int(sums[name], 16) >= 0 for name in known)


def test_checksum_mismatch_deletes_the_file(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = server.files["/cyclegan/horse2zebra.zip"] = _cyclegan_zip()
    right = hashlib.sha256(archive).hexdigest()
    info = download.DATASETS["horse2zebra"]
    monkeypatch.setitem(download.DATASETS, "horse2zebra", dataclasses.replace(info, sha256="0" * 64))
    with pytest.raises(DataError, match=rf"horse2zebra\.zip\.part: sha256 {right} does not match 0{{64}}, the checksum "
                                        r"of http://.*horse2zebra\.zip: the file is damaged or not the published one, "
                                        "so it was deleted. Run again to download it afresh"):
        download_dataset("horse2zebra", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "horse2zebra.zip").write_bytes(archive)  # placed by hand: checked the same way
    with pytest.raises(DataError, match=r"horse2zebra\.zip: sha256 .* deleted\. Put the archive published at"):
        download_dataset("horse2zebra", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setitem(download.DATASETS, "horse2zebra", dataclasses.replace(info, sha256=right))
    assert (download_dataset("horse2zebra", tmp_path, progress=False) / "trainB").is_dir()
