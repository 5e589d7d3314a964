"""The reference's public datasets (CycleGAN zips, pix2pix tarballs) and the built-in glyphs.

``download_dataset`` streams an archive to ``DEST/NAME.<ext>.part`` (resuming with an HTTP Range
request after an interruption), checks its sha256 where the catalogue knows it, checks from the
archive's headers that it unpacks to a bounded size and file count (and keeps counting while it
unpacks), unpacks it member by member with every path checked to stay inside the destination,
checks the expected folders exist and moves the result into place with one rename. An archive
already lying at ``DEST/NAME.<ext>`` is checked and unpacked without any network access, which is
the way to install a dataset on an offline machine. Nothing is written outside ``DEST``; a partial
download is kept only where resuming it makes sense (an interrupted, slow or deadline-hit
transfer, a full disk), and a damaged or refused archive is deleted so the next run starts afresh.
Every failure is a :class:`~ganzoo.errors.DataError` that tells a full disk from an offline
machine, a slow or lying server and a corrupt archive. The resumable, time-bounded fetch
(:func:`fetch`) is shared with the pretrained-model downloads of :mod:`ganzoo.pretrained`. The bounds
(:class:`Limits`) are arguments, or else read from the environment: ``GANZOO_DOWNLOAD_TIMEOUT``
(seconds one download may take, default 4 h), ``GANZOO_DOWNLOAD_MIN_RATE`` (bytes/s the server
must sustain, default 1024; 0 turns the check off), ``GANZOO_DOWNLOAD_RATE_WINDOW`` (seconds
the rate is averaged over, default 60), ``GANZOO_DOWNLOAD_MAX_BYTES`` (largest download, default
20 GB), ``GANZOO_UNPACK_MAX_BYTES`` (largest unpacked size, default 50 GB) and
``GANZOO_UNPACK_MAX_FILES`` (most archive members, default 1,000,000).
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import gzip
import hashlib
import http.client
import math
import os
import re
import shutil
import socket
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Callable

from ganzoo._names import did_you_mean
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
TIMEOUT_S = 30.0  # to connect, and the longest a single read may wait
_TAIL_WAIT_S = 0.5  # after the announced last byte: how long to watch for bytes the server should not send
_CHUNK = 1 << 16
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on one download and on what its archive unpacks to.

    Every field can also be set by the environment variable in its metadata (see
    :meth:`from_env`), so a user on a slow link or with a genuine huge archive can widen them.

    Args:
        timeout: seconds the whole download may take, connecting included.
        min_rate: bytes per second the server must sustain over each ``rate_window``; 0 turns
            the check off. It is what stops a server that drips a byte every few seconds,
            which no socket timeout notices.
        rate_window: seconds the rate is averaged over.
        max_download: largest file accepted, in bytes.
        max_unpacked: largest total an archive may unpack to, in bytes.
        max_files: most members an archive may hold.

    Example:
        >>> download_dataset("horse2zebra", Path("data"), limits=Limits(timeout=600))
    """

    timeout: float = dataclasses.field(default=4 * 3600.0, metadata={"env": "GANZOO_DOWNLOAD_TIMEOUT"})
    min_rate: float = dataclasses.field(default=1024.0, metadata={"env": "GANZOO_DOWNLOAD_MIN_RATE"})
    rate_window: float = dataclasses.field(default=60.0, metadata={"env": "GANZOO_DOWNLOAD_RATE_WINDOW"})
    max_download: int = dataclasses.field(default=20 * 10**9, metadata={"env": "GANZOO_DOWNLOAD_MAX_BYTES"})
    max_unpacked: int = dataclasses.field(default=50 * 10**9, metadata={"env": "GANZOO_UNPACK_MAX_BYTES"})
    max_files: int = dataclasses.field(default=1_000_000, metadata={"env": "GANZOO_UNPACK_MAX_FILES"})

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, overridden by whichever ``GANZOO_DOWNLOAD_*`` / ``GANZOO_UNPACK_*`` are set."""
        values: dict[str, float | int] = {}
        for field in dataclasses.fields(cls):
            var = field.metadata["env"]
            raw = os.environ.get(var, "").strip()
            if not raw:
                continue
            try:
                value: float | int = float(raw)
            except ValueError:
                value = math.nan
            whole = field.type == "int"
            zero_ok = field.name == "min_rate"
            if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok) or (whole and value != int(value)):
                need = ("a whole number of bytes > 0" if whole else
                        "bytes per second >= 0 (0 turns the check off)" if zero_ok else "a number of seconds > 0")
                example = f"{field.default:.0f}" if field.default == int(field.default) else field.default
                raise DataError(f"environment variable {var}={raw!r}: expected {need}, e.g. {var}={example}. "
                                "Fix or unset it.")
            values[field.name] = int(value) if whole else value
        return cls(**values)


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
        sha256: hex digest of the archive, checked after every download; None where unknown.
    """

    name: str
    host: str
    archive: str
    pairing: str
    summary: str
    manual: str = ""
    sha256: str | None = None

    @property
    def url(self) -> str:
        return f"{URL_BASES[self.host]}/{self.archive}" if self.host else ""


# The reference publishes no checksums. These are the ones tensorflow/datasets records
# (tensorflow_datasets/url_checksums/cycle_gan.txt) for the same archives at the reference's
# former host, people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets; horse2zebra.zip has the
# same size (116867962 bytes) on efrosgans. The other archives (ae_photos, grumpifycat, mini,
# mini_pix2pix and every pix2pix tarball) have no published checksum that could be looked up from
# an offline machine, so they stay None: compute them with `sha256sum` from a trusted download.
_CYCLEGAN_SHA256 = {
    "apple2orange": "845a191e9af8926408ea597001cd03a452e3300a1f44a79fe329b3d59f6e3eb8",
    "cezanne2photo": "3a6c10ca21f9485862f1cbd707744b9dc258954a04631271d23a3605eeb63cff",
    "facades": "9a31ebf3a31b9b5cd195dd5bf62e9308e00cb94604d1019e3889ac84248695c0",
    "horse2zebra": "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1",
    "iphone2dslr_flower": "8fcb5e374d631b107e1d961b8c4cd0a186aa2a4ff3e279923f4c426128de7113",
    "maps": "639534f69dbf9f36bef8d6292a7698006361221f83f0285d7c9ca78afe6e8a9e",
    "monet2photo": "88f91b00fc228f97c9411fbf1880ec1d119c98f1722e4cfcfaa2fb35fac05b04",
    "summer2winter_yosemite": "167fe1726807a9d22bd106b4a6c0bd7953b688af924ac1bf967439c4961e49f9",
    "ukiyoe2photo": "02a2a2fb5ecf425ca1bf86aca7304377da64a2a1d3b86df54eb65e4068bf3b08",
    "vangogh2photo": "362c3473e70be0944bda08d49d660eafdc2854df55d697835b8186d1d79caaff",
}


def _cyclegan(name: str, summary: str, pairing: str = "unaligned") -> DatasetInfo:
    return DatasetInfo(name, "cyclegan", f"{name}.zip", pairing, summary, sha256=_CYCLEGAN_SHA256.get(name))


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
    hint = did_you_mean(name, DATASETS).rstrip()
    raise DataError(f'dataset "{name}": unknown dataset.{" " + hint if hint else ""} Available: {", ".join(DATASETS)}.')


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


def download_dataset(name: str, dest_root: Path, *, progress: bool = True, limits: Limits | None = None) -> Path:
    """Download and unpack dataset ``name`` into ``dest_root/name``; return that folder.

    Does nothing when the folder is already there. ``glyphs`` is rendered locally.

    Args:
        name: a name of :data:`DATASETS`.
        dest_root: the folder that receives ``NAME/``; nothing is written outside it.
        progress: show a progress bar.
        limits: deadline, minimum rate and size bounds; default :meth:`Limits.from_env`.

    Example:
        >>> download_dataset("horse2zebra", Path("data"))
        PosixPath('data/horse2zebra')

    Raises:
        DataError: unknown name, network failure, full disk, checksum mismatch, archive bomb,
            damaged archive; the message says which, where and what to do.
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
    limits = limits or Limits.from_env()
    try:
        dest_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{dest_root}: cannot create the folder: {exc.strerror}. Choose another --root.") from None
    archive = dest_root / (name + (".zip" if info.archive.endswith(".zip") else ".tar.gz"))
    if archive.exists():  # placed by hand, or left by a run that failed to unpack
        verify_sha256(archive, info.sha256, source=info.url, fix=(
            f"Put the archive published at {info.url} there, or unpack it yourself to {target} "
            f"({LAYOUT_TEXT[info.pairing]})."))
    else:
        part = archive.with_name(archive.name + ".part")
        try:
            fetch(info.url, part, label=info.name, progress=progress, sha256=info.sha256, limits=limits)
        except DownloadError as exc:
            raise _download_failed(info, exc, archive, target) from None
        part.replace(archive)
    _unpack(info, archive, target, limits)
    archive.unlink()
    return target


class DownloadError(DataError):
    """A transfer failed for a reason on the network side; :func:`fetch` raises it.

    Args:
        url: what was being downloaded.
        kind: ``"offline"`` (DNS failure, connection refused or unreachable), ``"network"``
            (another connection failure), ``"http"`` (an error status), ``"slow"`` (minimum rate
            or deadline missed), ``"short"`` (fewer bytes than announced), ``"long"`` (more bytes
            than announced, or sizes that contradict each other) or ``"too_big"``.
        reason: what happened, one sentence without the URL.
    """

    def __init__(self, url: str, kind: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url, self.kind, self.reason = url, kind, reason


def _download_failed(info: DatasetInfo, exc: DownloadError, archive: Path, target: Path) -> DataError:
    part = archive.with_name(archive.name + ".part")
    by_hand = (f"download {info.url} elsewhere and put it at {archive} (it is unpacked on the next run) or unpack "
               f"it to {target} (layout: {LAYOUT_TEXT[info.pairing]})")
    fix = {
        "offline": f"This machine may be offline, or the host is down: run again when online, or {by_hand}.",
        "network": f"Check the network (proxy, firewall, certificates) and run again, or {by_hand}.",
        "http": f"The file may have moved or the server is failing: run again later, or {by_hand}.",
        "slow": ("The server or the link is too slow: run again to continue, set GANZOO_DOWNLOAD_TIMEOUT higher or "
                 f"GANZOO_DOWNLOAD_MIN_RATE lower (bytes/s) for a slow link, or {by_hand}."),
        "short": ("The connection dropped, or the server announces a wrong size: run again to continue; if this "
                  f"repeats, the server is misbehaving: {by_hand}."),
        "long": f"The server (or a proxy) is misbehaving: run again later, or {by_hand}.",
        "too_big": (f"The URL may not serve this dataset (check URL_BASES or the mirror); if it does, set "
                    f"GANZOO_DOWNLOAD_MAX_BYTES higher, or {by_hand}."),
    }[exc.kind]
    kept = (f" The partial download {part} ({_size(part.stat().st_size)}) is kept and resumes on the next run."
            if part.exists() else "")
    return DataError(f"cannot download {info.name} from {info.url}: {exc.reason}. {fix}{kept}")


def fetch(url: str, part: Path, *, label: str, progress: bool, fail: Callable[[str], Exception] | None = None,
          sha256: str | None = None, limits: Limits | None = None) -> None:
    """Stream ``url`` into ``part``, resuming a previous partial ``part`` with an HTTP Range request.

    A server that ignores Range (or resumes at another offset) restarts the file; a 416 on a
    complete ``part`` is success. The whole transfer must end within ``limits.timeout`` and keep
    ``limits.min_rate``, enforced by a watchdog thread that shuts the socket (so a server that
    drips bytes cannot hold a read forever). A body that ends before its Content-Length keeps
    ``part`` (the next call resumes); one that runs past it, or past ``limits.max_download``,
    deletes ``part``. Shared by dataset and pretrained-model downloads.

    Args:
        url: what to download.
        part: the partial file, created or extended in place; nothing else is written.
        label: name shown on the progress bar.
        progress: show a tqdm progress bar.
        fail: when given, builds the exception to raise for a network-side failure from its
            one-line reason (e.g. ``"HTTP 404 Not Found"``) instead of :class:`DownloadError`.
        sha256: expected hex digest of the complete file; a mismatch deletes ``part``.
        limits: deadline, minimum rate and largest size; default :meth:`Limits.from_env`.

    Raises:
        DownloadError: (or ``fail(reason)``) for network-side failures; ``part`` is kept only
            when resuming makes sense (check ``part.exists()``).
        DataError: a full disk or an unwritable ``part`` (kept for resuming), or a checksum mismatch.
    """
    limits = limits or Limits.from_env()
    try:
        for _attempt in range(2):
            if _attempt_fetch(url, part, label, progress, limits):
                if sha256:
                    verify_sha256(part, sha256, source=url, fix="Run again to download it afresh; if this repeats, "
                                  "the published file has changed or a proxy alters it.")
                return
        raise DownloadError(url, "http", "the server refused to resume the partial download")
    except DownloadError as exc:
        if fail is None:
            raise
        raise fail(exc.reason) from None


class _Watchdog:
    """Enforces the deadline and the minimum rate from a second thread.

    The reading thread cannot do it: a server that sends one byte just before each socket
    timeout keeps every read busy. Shutting the socket down makes the blocked read return.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.received = 0  # body bytes so far, counted by the reading thread
        self.reason: str | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ganzoo-download-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.reason:
                self._shut()

    def settimeout(self, seconds: float) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.settimeout(seconds)

    def _run(self) -> None:
        lim = self.limits
        start = time.monotonic()
        mark_t, mark_n = start, 0
        tick = min(max(min(lim.rate_window, lim.timeout) / 10, 0.01), 1.0)
        while not self._done.wait(tick):
            now = time.monotonic()
            if now - start >= lim.timeout:
                return self._fire(f"it did not finish within {lim.timeout:g} s (GANZOO_DOWNLOAD_TIMEOUT)")
            if now - mark_t >= lim.rate_window:
                got = self.received - mark_n
                if got / (now - mark_t) < lim.min_rate:
                    return self._fire(
                        f"the server sent {got} bytes in {now - mark_t:.3g} s, slower than the minimum of "
                        f"{lim.min_rate:g} bytes/s (GANZOO_DOWNLOAD_MIN_RATE)")
                mark_t, mark_n = now, self.received

    def _fire(self, reason: str) -> None:
        with self._lock:
            self.reason = reason
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):  # the plain socket's shutdown: an SSL one's would drop its state
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)


def _opener(watch: _Watchdog) -> urllib.request.OpenerDirector:
    """urllib's opener (proxies, redirects) whose connections report their socket to ``watch``."""

    def watched(conn_cls: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        class Watched(conn_cls):  # type: ignore[valid-type,misc]
            def connect(self) -> None:
                super().connect()
                watch.track(self.sock)

        return Watched

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):  # noqa: ANN001, ANN202 (urllib's signature)
            return self.do_open(watched(http.client.HTTPConnection), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):  # noqa: ANN001, ANN202
            return self.do_open(watched(http.client.HTTPSConnection), req, context=self._context)

    return urllib.request.build_opener(HTTP, HTTPS)


def _attempt_fetch(url: str, part: Path, label: str, progress: bool, limits: Limits) -> bool:
    """One request; True when ``part`` is complete, False to start over without a Range."""
    from ganzoo import __version__

    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"ganzoo/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    with _Watchdog(limits) as watch:
        try:
            resp = _opener(watch).open(urllib.request.Request(url, headers=headers),
                                       timeout=min(TIMEOUT_S, limits.timeout))
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and have:  # nothing left to send: complete, or a stale .part
                if _range_total(exc.headers.get("Content-Range", "")) == have:
                    return True
                part.unlink()
                return False
            raise DownloadError(url, "http", f"the server answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            if watch.reason:
                raise DownloadError(url, "slow", f"no answer in time: {watch.reason}") from None
            raise DownloadError(url, *_network_reason(url, exc)) from None
        with resp:
            return _receive(url, part, resp, have, watch, label, progress)


def _receive(url: str, part: Path, resp: http.client.HTTPResponse, have: int, watch: _Watchdog,
             label: str, progress: bool) -> bool:
    from tqdm import tqdm

    if resp.status == 206:
        start, whole = _content_range(resp.headers.get("Content-Range", ""))
        if start != have:  # resumed somewhere else: what we have cannot be extended
            part.unlink()
            return False
    else:  # a fresh download, or a server that ignores Range
        have, whole = 0, None
    length = resp.headers.get("Content-Length")
    if length is not None and not length.strip().isdigit():
        raise DownloadError(url, "long", f"the server sent an invalid Content-Length {length!r}")
    total = have + int(length) if length is not None else whole
    if total is not None and whole is not None and total != whole:
        raise DownloadError(url, "long", f"the server's Content-Length ({length}) contradicts its Content-Range "
                                         f"({resp.headers.get('Content-Range')})")
    max_bytes = watch.limits.max_download
    if total is not None and total > max_bytes:
        raise DownloadError(url, "too_big", f"the file is {_size(total)}, more than the limit of {_size(max_bytes)} "
                                            "(GANZOO_DOWNLOAD_MAX_BYTES)")
    if total is not None:
        free = shutil.disk_usage(part.parent).free
        if free < total - have:
            raise _disk_full(part, url, f"{_size(total - have)} are needed but only {_size(free)} are free")
    resp.length = None  # read to the end ourselves, so a body longer than announced is noticed
    try:
        out = open(part, "ab" if have else "wb")  # noqa: SIM115 (closed below, with the bar)
    except OSError as exc:
        raise _write_failed(part, url, exc) from None
    got = have
    with out, tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=label, disable=not progress) as bar:
        while True:
            try:
                chunk = resp.read1(_CHUNK)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if watch.reason:
                    raise DownloadError(url, "slow", watch.reason) from None
                if isinstance(exc, TimeoutError):
                    raise DownloadError(url, "slow", f"the server sent nothing for {TIMEOUT_S:g} s after {got} "
                                                     "bytes") from None
                raise DownloadError(url, "short", f"the connection broke after {got} bytes"
                                                  f"{f' of {total}' if total else ''} ({type(exc).__name__}: {exc})"
                                    ) from None
            if not chunk:
                break
            got += len(chunk)
            watch.received += len(chunk)
            if (total is not None and got > total) or got > max_bytes:
                raise _overrun(url, part, out, total, max_bytes)
            try:
                _write(out, chunk)
            except OSError as exc:
                with contextlib.suppress(OSError):  # flush what fits, so the message tells what is kept
                    out.close()
                raise _write_failed(part, url, exc, total - got + len(chunk) if total else None) from None
            bar.update(len(chunk))
            if got == total:
                watch.settimeout(_TAIL_WAIT_S)
                with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                    if resp.read1(1):  # the announced end is not the end
                        raise _overrun(url, part, out, total, max_bytes)
                break
    if total is not None and got < total:
        if watch.reason:
            raise DownloadError(url, "slow", watch.reason)
        raise DownloadError(url, "short", f"the server announced {total} bytes (Content-Length) but the connection "
                                          f"closed after {got}")
    if total is None and watch.reason:  # the shutdown looks like the end of a body of unknown length
        raise DownloadError(url, "slow", watch.reason)
    return True


def _overrun(url: str, part: Path, out: BinaryIO, total: int | None, max_bytes: int) -> DownloadError:
    """The body ran past its Content-Length or the size limit: what arrived cannot be trusted."""
    out.close()
    part.unlink()
    if total is not None:
        return DownloadError(url, "long", f"the server sent more than the {total} bytes it announced (Content-Length), "
                                          "so the partial download was deleted")
    return DownloadError(url, "too_big", f"the server sent more than the limit of {_size(max_bytes)} "
                                         "(GANZOO_DOWNLOAD_MAX_BYTES), so the partial download was deleted")


def _write(out: BinaryIO, data: bytes) -> None:
    """Every downloaded and unpacked byte goes to disk here, so a full disk reads the same everywhere."""
    out.write(data)


def _write_failed(path: Path, url: str, exc: OSError, need: int | None = None) -> DataError:
    if exc.errno in _DISK_FULL:
        return _disk_full(path, url, f"{exc.strerror}{f'; {_size(need)} more are needed' if need else ''}")
    return DataError(f"{path}: cannot write the download of {url}: {exc.strerror or exc}. Fix the permissions of "
                     f"{path.parent} or choose another --root, then run again.")


def _disk_full(path: Path, url: str, what: str) -> DataError:
    kept = (f" The partial download ({_size(path.stat().st_size)}) is kept and resumes after that; delete it instead "
            "to get its space back." if path.exists() and path.stat().st_size else "")
    return DataError(f"{path}: the disk is full ({what}) while downloading {url}. Free some space on {path.parent} "
                     f"or choose another --root, then run again.{kept}")


def _network_reason(url: str, exc: BaseException) -> tuple[str, str]:
    """``(kind, reason)`` for a failure to connect: DNS, refusal and unreachable networks read as offline."""
    err = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    where = urllib.parse.urlsplit(url)
    if isinstance(err, socket.gaierror):
        return "offline", f"cannot look up the host name {where.hostname} ({err.strerror or err})"
    if isinstance(err, ConnectionRefusedError):
        return "offline", f"{where.netloc} refused the connection"
    if isinstance(err, TimeoutError):
        return "offline", f"{where.netloc} did not answer within {TIMEOUT_S:g} s"
    if isinstance(err, OSError) and err.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN):
        return "offline", f"no route to {where.netloc} ({err.strerror})"
    return "network", f"{type(err).__name__}: {err}"


def _content_range(header: str) -> tuple[int | None, int | None]:
    """``(first byte, total size)`` of ``bytes 100-199/200``; None for parts that are missing or ``*``."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", header.strip())
    if not match:
        return None, None
    return int(match.group(1)), (int(match.group(2)) if match.group(2) != "*" else None)


def _range_total(content_range: str) -> int | None:
    match = re.fullmatch(r"bytes \*/(\d+)", content_range.strip())
    return int(match.group(1)) if match else None


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def verify_sha256(path: Path, expected: str | None, *, source: str, fix: str) -> None:
    """Check ``path`` against ``expected`` (a hex sha256; None skips); a mismatch deletes the file.

    Args:
        path: the complete file.
        expected: the digest the catalogue holds.
        source: where the file came from, for the message.
        fix: the sentence telling what to do next.
    """
    if not expected:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
    got = digest.hexdigest()
    if got != expected.lower():
        path.unlink()
        raise DataError(f"{path}: sha256 {got} does not match {expected}, the checksum of {source}: the file is "
                        f"damaged or not the published one, so it was deleted. {fix}")


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


def _bomb(archive: Path, what: str, limits: Limits, files: bool = False) -> DataError:
    limit = (f"{limits.max_files} files (GANZOO_UNPACK_MAX_FILES)" if files
             else f"{_size(limits.max_unpacked)} (GANZOO_UNPACK_MAX_BYTES)")
    return DataError(
        f"{archive}: {what}, more than the limit of {limit}. A dataset archive does not do that: it is corrupt "
        "or malicious (an archive bomb), so it was deleted and nothing was kept. Download it again from a trusted "
        "source; if it is genuine, set the limit higher and run again."
    )


def _measure(archive: Path, limits: Limits) -> int:
    """The total unpacked size from the archive's headers; a bomb is refused before anything is written.

    A zip lists every member in its central directory. A tar has no index, so its headers are
    read one after another, stopping as soon as a limit is passed.
    """
    files = total = 0
    at_least = ""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
        files, total = len(infos), sum(info.file_size for info in infos)
    else:
        with tarfile.open(archive, "r:*") as tf:
            for member in tf:
                files, total = files + 1, total + member.size
                if files > limits.max_files or total > limits.max_unpacked:
                    at_least = "at least "
                    break
    if files > limits.max_files:
        raise _bomb(archive, f"its headers list {at_least}{files} files", limits, files=True)
    if total > limits.max_unpacked:
        raise _bomb(archive, f"its headers announce {at_least}{_size(total)} of files", limits)
    return total


class _Budget:
    """Counts files and bytes while unpacking, in case the headers understate them."""

    def __init__(self, archive: Path, limits: Limits) -> None:
        self.archive, self.limits, self.files, self.bytes = archive, limits, 0, 0

    def copy(self, src: BinaryIO, path: Path, name: str) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise _bomb(self.archive, f"unpacking reached member {name!r}, file number {self.files}", self.limits,
                        files=True)
        with open(path, "wb") as dst:
            while chunk := src.read(_CHUNK):
                self.bytes += len(chunk)
                if self.bytes > self.limits.max_unpacked:
                    raise _bomb(self.archive, f"unpacking passed {_size(self.bytes)} at member {name!r}", self.limits)
                _write(dst, chunk)


def _extract(archive: Path, into: Path, limits: Limits) -> None:
    """Unpack regular files and folders only; links, devices and escaping paths are refused."""
    refused = "is a link or special file"
    budget = _Budget(archive, limits)
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
                with zf.open(member) as src:
                    budget.copy(src, path, member.filename)
        return
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            path = _member_path(into, member.name, archive)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                path.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(member) as src:  # type: ignore[union-attr]
                    budget.copy(src, path, member.name)
            else:
                raise DataError(f"{archive}: archive member {member.name!r} {refused}; it was deleted.")


def _content_root(work: Path) -> Path:
    """The single top folder most archives have (``horse2zebra/...``), else ``work`` itself."""
    entries = [p for p in work.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else work


@contextlib.contextmanager
def _bad_archive_deleted(archive: Path, into: Path, size: int = 0) -> Iterator[None]:
    """A refused or damaged archive is deleted so the next run downloads it afresh; one that
    only failed to be written out (full disk, permissions) is kept."""
    try:
        yield
    except DataError:
        archive.unlink(missing_ok=True)
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive}: cannot unpack: {exc}. The archive is damaged, so it was deleted: run again to "
                        "download it afresh.") from None
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise DataError(f"{archive}: the disk is full ({exc.strerror}) while unpacking into {into}: free at least "
                            f"{_size(size)} on {into.parent} and run again (the archive is kept, the partly unpacked "
                            "files were removed).") from None
        raise DataError(f"{archive}: cannot unpack into {into}: {exc.strerror or exc}. Fix the permissions of "
                        f"{into.parent}, then run again (the archive is kept).") from None


def _unpack(info: DatasetInfo, archive: Path, target: Path, limits: Limits) -> None:
    work = target.with_name(f".{target.name}.unpacking")
    with _bad_archive_deleted(archive, work):
        size = _measure(archive, limits)
    free = shutil.disk_usage(target.parent).free
    if size > free:
        raise DataError(f"{archive}: unpacks to {_size(size)} but only {_size(free)} are free on {target.parent}: "
                        "free some space and run again (the archive is kept).")
    try:
        with _bad_archive_deleted(archive, work, size):
            if work.exists():  # ours, left by an interrupted run
                shutil.rmtree(work)
            work.mkdir(parents=True)
            _extract(archive, work, limits)
            content = _content_root(work)
            if not has_layout(content, info.pairing):
                found = ", ".join(sorted(p.name for p in content.iterdir())[:10]) or "nothing"
                raise DataError(
                    f"{archive}: unpacked, but found {found} instead of {LAYOUT_TEXT[info.pairing]}. The archive "
                    "is not this dataset, so it was deleted: check the URL or mirror and run again."
                )
            os.replace(content, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
