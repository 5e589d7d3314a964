"""A registry with ganzoo's built-ins and this plugin only (installed plugins are not loaded)."""
import pytest

import ganzoo_pix2pix
from ganzoo import testing


@pytest.fixture
def registry():
    return testing.registry(ganzoo_pix2pix)
