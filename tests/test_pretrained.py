"""Pretrained-model downloads against a loopback HTTP server: verify, resume, refuse, offline."""
from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import torch
from click.testing import CliRunner

from ganzoo import pretrained as zoo
from ganzoo.cli import cli
from ganzoo.errors import CheckpointError
from httpserver import Server, serve
from ganzoo.pretrained import catalogue, download_model

CYCLEGAN_BASE = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
PIX2PIX_BASE = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch"

CYCLEGAN_NAMES = {
    "apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
    "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh", "sat2map",
    "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label", "facades_label2photo",
    "iphone2dslr_flower",
}
PIX2PIX_FILES = {"facades_label2photo", "edges2shoes", "sat2map", "map2sat", "day2night"}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    with serve() as state:
        monkeypatch.setitem(zoo.URL_REWRITES, CYCLEGAN_BASE, state.url + "/cyclegan")
        monkeypatch.setitem(zoo.URL_REWRITES, PIX2PIX_BASE, state.url + "/pix2pix")
        yield state


def _state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _reference_resnet_bytes(ngf: int = 1, n_blocks: int = 9) -> bytes:
    """A reference-layout ResNet state_dict, keys and shapes written out from the documented layout."""
    c4 = 4 * ngf
    state = {"model.1.weight": torch.randn(ngf, 3, 7, 7), "model.1.bias": torch.zeros(ngf),
             "model.4.weight": torch.randn(2 * ngf, ngf, 3, 3), "model.4.bias": torch.zeros(2 * ngf),
             "model.7.weight": torch.randn(c4, 2 * ngf, 3, 3), "model.7.bias": torch.zeros(c4)}
    for b in range(10, 10 + n_blocks):
        for i in (1, 5):
            state[f"model.{b}.conv_block.{i}.weight"] = torch.randn(c4, c4, 3, 3)
            state[f"model.{b}.conv_block.{i}.bias"] = torch.zeros(c4)
    up = 10 + n_blocks
    state |= {f"model.{up}.weight": torch.randn(c4, 2 * ngf, 3, 3), f"model.{up}.bias": torch.zeros(2 * ngf),
              f"model.{up + 3}.weight": torch.randn(2 * ngf, ngf, 3, 3), f"model.{up + 3}.bias": torch.zeros(ngf),
              f"model.{up + 7}.weight": torch.randn(3, ngf, 7, 7), f"model.{up + 7}.bias": torch.zeros(3)}
    return _state_bytes(state)


def test_every_reference_name_is_listed_with_its_url(registry):
    PRETRAINED = {k: v for k, v in catalogue(registry).items() if v.family in ("cyclegan", "pix2pix")}
    cyclegan = {i.url.rsplit("/", 1)[1].removesuffix(".pth") for i in PRETRAINED.values() if i.family == "cyclegan"}
    pix2pix = {i.url.rsplit("/", 1)[1].removesuffix(".pth") for i in PRETRAINED.values() if i.family == "pix2pix"}
    assert (cyclegan, pix2pix) == (CYCLEGAN_NAMES, PIX2PIX_FILES)
    assert len(PRETRAINED) == 23 and all(i.summary for i in PRETRAINED.values())
    host = "http://efrosgans.eecs.berkeley.edu"
    assert PRETRAINED["horse2zebra"].url == f"{host}/cyclegan/pretrained_models/horse2zebra.pth"
    assert PRETRAINED["sat2map_pix2pix"].url == f"{host}/pix2pix/models-pytorch/sat2map.pth"
    assert PRETRAINED["edges2shoes"].family == "pix2pix"


def test_download_verifies_and_is_idempotent(registry, server, tmp_path):
    server.files["/cyclegan/horse2zebra.pth"] = _reference_resnet_bytes()
    path = download_model("horse2zebra", tmp_path, registry, progress=False)
    assert path == tmp_path / "horse2zebra_pretrained" / "latest_net_G.pth"
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest_net_G.pth"]
    assert download_model("horse2zebra", tmp_path, registry, progress=False) == path
    assert len(server.requests) == 1


def test_resume_from_partial_file(registry, server, tmp_path):
    body = server.files["/cyclegan/style_monet.pth"] = _reference_resnet_bytes()
    folder = tmp_path / "style_monet_pretrained"
    folder.mkdir()
    (folder / "latest_net_G.pth.part").write_bytes(body[:5000])
    download_model("style_monet", tmp_path, registry, progress=False)
    assert server.requests == [("/cyclegan/style_monet.pth", "bytes=5000-")]
    assert (folder / "latest_net_G.pth").read_bytes() == body


def test_html_page_and_wrong_family_are_deleted_and_reported(registry, server, tmp_path):
    server.files["/cyclegan/zebra2horse.pth"] = b"<html><body>Service moved</body></html>"
    with pytest.raises(CheckpointError, match=r"zebra2horse\.pth: the downloaded file is not a usable cyclegan "
                                              r"generator: .*HTML error page.*It was deleted"):
        download_model("zebra2horse", tmp_path, registry, progress=False)
    assert list((tmp_path / "zebra2horse_pretrained").iterdir()) == []
    server.files["/pix2pix/edges2shoes.pth"] = _reference_resnet_bytes()  # a ResNet where a U-Net belongs
    with pytest.raises(CheckpointError, match="holds a resnet_9blocks generator, but the reference's pix2pix models "
                                              "are unet generators"):
        download_model("edges2shoes", tmp_path, registry, progress=False)
    assert list((tmp_path / "edges2shoes_pretrained").iterdir()) == []


def test_unknown_name_suggests_and_lists(registry, tmp_path):
    with pytest.raises(CheckpointError, match=r'"horse2zebr": unknown name\. Did you mean "horse2zebra"\? '
                                              r"Available: apple2orange, .*day2night.* \(ganzoo models list\)"):
        download_model("horse2zebr", tmp_path, registry)


def test_offline_says_where_to_put_the_file_and_uses_it(registry, tmp_path, monkeypatch):
    monkeypatch.setitem(zoo.URL_REWRITES, PIX2PIX_BASE, "http://127.0.0.1:1")
    with pytest.raises(CheckpointError) as info:
        download_model("day2night", tmp_path, registry, progress=False)
    target = tmp_path / "day2night_pretrained" / "latest_net_G.pth"
    msg = str(info.value)
    assert msg.startswith("cannot download day2night from http://127.0.0.1:1/day2night.pth: ")
    assert "may be offline" in msg and f"put it at {target}" in msg
    unet = {"model.model.0.weight": torch.randn(1, 3, 4, 4), "model.model.3.weight": torch.randn(2, 3, 4, 4),
            "model.model.3.bias": torch.zeros(3)}  # a placed-by-hand file is verified like a download
    target.write_bytes(_state_bytes(unet))
    with pytest.raises(CheckpointError, match=r"exists but is not a usable pix2pix generator.*U-Net with 1 levels"
                                              r".*Delete it and run again"):
        download_model("day2night", tmp_path, registry, progress=False)


def test_models_cli(server, tmp_path, monkeypatch):
    monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    runner = CliRunner()
    listing = runner.invoke(cli, ["models", "list"], catch_exceptions=False)
    assert listing.exit_code == 0 and "horse2zebra" in listing.output and "edges2shoes" in listing.output
    server.files["/cyclegan/monet2photo.pth"] = _reference_resnet_bytes(n_blocks=6)
    done = runner.invoke(cli, ["models", "download", "monet2photo", "--root", str(tmp_path)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert str(tmp_path / "monet2photo_pretrained" / "latest_net_G.pth") in done.output
    bad = runner.invoke(cli, ["models", "download", "monet", "--root", str(tmp_path)], catch_exceptions=False)
    assert bad.exit_code == 2 and "unknown name" in bad.output
