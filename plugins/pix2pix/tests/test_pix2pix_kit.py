"""The pix2pix plugin passes ganzoo's testing kit: the method trains, saves and restores
exactly and translates A to B; every generator it registers builds, runs forward and
backward, round-trips its state_dict and exposes its features."""
from __future__ import annotations

import pytest
import torch

import ganzoo_pix2pix
from ganzoo import FeatureGenerator, testing

GENERATORS = [spec.name for spec in ganzoo_pix2pix.ganzoo_register_generators()]


def test_method(registry):
    metrics = testing.check_method(registry, "pix2pix")
    assert set(metrics) == {"G", "G_GAN", "G_L1", "D", "D_real", "D_fake"}


@pytest.mark.parametrize("name", GENERATORS)
def test_generator(registry, name):
    assert registry.entry("generator", name).plugin == "ganzoo_pix2pix"
    assert isinstance(testing.check_component(registry, "generator", name), FeatureGenerator)


@pytest.mark.parametrize("num_downs", [5, 6])
def test_unet_of_any_depth(registry, num_downs):
    net = testing.check_component(registry, "generator", "unet", ngf=4, num_downs=num_downs)
    assert net.size_multiple == 2**num_downs
    feats = net.encode(torch.zeros(1, 3, 64, 64), list(range(num_downs)))
    assert [f.shape[-1] for f in feats] == [64 >> (i + 1) for i in range(num_downs)]
