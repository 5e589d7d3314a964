"""CUT and FastCUT for ganzoo (Park et al. 2020): contrastive unpaired translation.

Loaded through the ``ganzoo`` entry-point group, like any third-party plugin.
"""
from __future__ import annotations
