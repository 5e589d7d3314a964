"""ganzoo: a plugin-based GAN zoo for image-to-image translation.

This module is the public API for plugin authors: the hook marker, the component spec, the
method interface and the errors. Everything else is internal.
"""
from __future__ import annotations

from ganzoo.components import ComponentSpec
from ganzoo.errors import CheckpointError, DataError, GanzooError, PluginError, RecipeError
from ganzoo.hookspecs import hookimpl
from ganzoo.losses import AdversarialLoss
from ganzoo.method import Method, MethodParts

__version__ = "0.1.0"

__all__ = [
    "AdversarialLoss",
    "CheckpointError",
    "ComponentSpec",
    "DataError",
    "GanzooError",
    "Method",
    "MethodParts",
    "PluginError",
    "RecipeError",
    "__version__",
    "hookimpl",
]
