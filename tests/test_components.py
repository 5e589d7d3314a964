"""Every registered component of every kind and every method passes the testing kit's checks
(as timm's test_models does for its registry): a new plugin is tested the moment it registers."""
from __future__ import annotations

import pytest

from ganzoo import testing

REGISTRY = testing.registry(entrypoints=True)  # the installed plugins, the bundled ones included
COMPONENTS = [(kind, e.spec.name) for kind in REGISTRY.kinds if kind not in ("pairing", "method")
              for e in REGISTRY.list(kind)]


def test_the_bundled_families_are_registered():
    assert {"cyclegan", "pix2pix"} <= set(REGISTRY.names("method"))
    assert len(COMPONENTS) > 10


@pytest.mark.parametrize(("kind", "name"), COMPONENTS, ids=[f"{k}-{n}" for k, n in COMPONENTS])
def test_component(kind, name):
    testing.check_component(REGISTRY, kind, name)


@pytest.mark.parametrize("name", REGISTRY.names("method"))
def test_method(name):
    metrics = testing.check_method(REGISTRY, name)
    assert metrics


def test_a_broken_component_fails_the_check():
    import dataclasses

    from torch import nn

    from ganzoo import ComponentSpec, hookimpl

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        ngf: int = 4

    class Shrinks(nn.Module):  # halves the image: not a generator
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, stride=2, padding=1)

        def forward(self, x):
            return self.conv(x)

    class Plugin:
        @hookimpl
        def ganzoo_register_generators(self):
            return [ComponentSpec("shrinks", Cfg, lambda cfg, **kw: Shrinks(), "broken")]

    registry = testing.registry(Plugin())
    with pytest.raises(AssertionError, match=r"generator shrinks: maps \(2, 3, 32, 32\) to \(2, 3, 16, 16\)"):
        testing.check_component(registry, "generator", "shrinks")
