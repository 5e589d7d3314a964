"""A registry with ganzoo's built-ins and this plugin only (installed plugins are not loaded)."""
import pytest

import ganzoo_pix2pix
from ganzoo.plugins import get_plugin_manager
from ganzoo.registry import Registry


@pytest.fixture
def registry():
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(ganzoo_pix2pix, name="pix2pix")
    return Registry(pm)
