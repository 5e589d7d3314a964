"""Dataset downloads against a loopback HTTP server: unpack, resume, unsafe archives, offline."""
from __future__ import annotations

import http.server
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from ganzoo.data import download
from ganzoo.data.download import download_dataset
from ganzoo.data.images import read_image
from ganzoo.errors import DataError


@dataclass
class Server:
    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    cut_after: int | None = None  # send only this many body bytes of the next response, then hang up
    honour_range: bool = True


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    state = Server()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.requests.append((self.path, self.headers.get("Range")))
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start, wanted = 0, self.headers.get("Range")
            if wanted and state.honour_range:
                start = int(wanted.removeprefix("bytes=").rstrip("-"))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            rest = body[start:]
            self.send_header("Content-Length", str(len(rest)))
            self.end_headers()
            if state.cut_after is not None:
                rest, state.cut_after, self.close_connection = rest[: state.cut_after], None, True
            self.wfile.write(rest)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setitem(download.URL_BASES, "cyclegan", state.url + "/cyclegan")
    monkeypatch.setitem(download.URL_BASES, "pix2pix", state.url + "/pix2pix")
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _cyclegan_zip(name: str = "horse2zebra") -> bytes:
    members = {f"{name}/{sub}/{i}.png": _png() for sub in ("trainA", "trainB", "testA", "testB") for i in range(3)}
    members["__MACOSX/._junk"] = b"resource fork"
    return _zip(members)


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
    with pytest.raises(DataError, match=r"cannot download horse2zebra from .*horse2zebra\.zip: .*kept and resumes") as info:
        download_dataset("horse2zebra", tmp_path, progress=False)
    assert "This machine may be offline" in str(info.value)
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
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in ("facades/train/1.png", "facades/val/1.png"):
            info = tarfile.TarInfo(name)
            info.size = len(_png())
            tf.addfile(info, io.BytesIO(_png()))
    server.files["/pix2pix/facades.tar.gz"] = buf.getvalue()
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


def test_wrong_layout_and_damaged_archive(server: Server, tmp_path: Path) -> None:
    server.files["/cyclegan/horse2zebra.zip"] = _zip({"horse2zebra/readme.txt": b"hi"})
    with pytest.raises(DataError, match="found readme.txt instead of trainA/"):
        download_dataset("horse2zebra", tmp_path, progress=False)
    server.files["/cyclegan/horse2zebra.zip"] = b"this is not a zip file"
    with pytest.raises(DataError, match="cannot unpack.*run again to download it afresh"):
        download_dataset("horse2zebra", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_unreachable_host(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="HTTP 404"):
        download_dataset("apple2orange", tmp_path, progress=False)
    monkeypatch.setitem(download.URL_BASES, "cyclegan", "http://127.0.0.1:1")
    with pytest.raises(DataError) as info:
        download_dataset("horse2zebra", tmp_path, progress=False)
    msg = str(info.value)
    assert msg.startswith("cannot download horse2zebra from http://127.0.0.1:1/horse2zebra.zip: ")
    assert "This machine may be offline" in msg and str(tmp_path / "horse2zebra") in msg and "trainA/" in msg
    assert not (tmp_path / "horse2zebra").exists()


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
