"""The CycleGAN plugin passes ganzoo's testing kit: the method trains, saves and restores
exactly and translates both ways; every generator it registers builds, runs forward and
backward, round-trips its state_dict and exposes its features."""
from __future__ import annotations

import re

import pytest

import ganzoo_cyclegan
from ganzoo import FeatureGenerator, testing

GENERATORS = [spec.name for spec in ganzoo_cyclegan.ganzoo_register_generators()]


def test_method(registry):
    metrics = testing.check_method(registry, "cyclegan")
    assert set(metrics) == {"G", "G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"}


@pytest.mark.parametrize("name", GENERATORS)
def test_generator(registry, name):
    assert registry.entry("generator", name).plugin == "ganzoo_cyclegan"
    assert isinstance(testing.check_component(registry, "generator", name), FeatureGenerator)


@pytest.mark.parametrize("n_blocks", [0, 5])
def test_resnet_of_any_depth(registry, n_blocks):
    net = testing.check_component(registry, "generator", "resnet", ngf=4, n_blocks=n_blocks)
    blocks = {k.split(".")[1] for k in net.state_dict() if re.fullmatch(r"model\.\d+\.conv_block\.1\.weight", k)}
    assert len(blocks) == n_blocks
