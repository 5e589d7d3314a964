"""ganzoo: a plugin-based GAN zoo for image-to-image translation.

This module is the public API for plugin authors: the hook marker, the specs registration
hooks return, the method interface and its build context, the features protocol, the
reference-checkpoint types and the errors. ``ganzoo.testing`` is the kit for a plugin's own
tests, ``ganzoo.layers`` and ``ganzoo.losses`` hold reusable building blocks. Everything else
is internal.
"""
from __future__ import annotations

from ganzoo.components import ComponentSpec, KindSpec, MethodSpec
from ganzoo.context import MethodContext
from ganzoo.errors import CheckpointError, DataError, GanzooError, PluginError, RecipeError
from ganzoo.hookspecs import hookimpl
from ganzoo.losses import AdversarialLoss
from ganzoo.method import FeatureGenerator, Method, set_requires_grad
from ganzoo.reference import PretrainedModel, ReferenceLayout

__version__ = "0.1.0"

__all__ = [
    "AdversarialLoss",
    "CheckpointError",
    "ComponentSpec",
    "DataError",
    "FeatureGenerator",
    "GanzooError",
    "KindSpec",
    "Method",
    "MethodContext",
    "MethodSpec",
    "PluginError",
    "PretrainedModel",
    "RecipeError",
    "ReferenceLayout",
    "__version__",
    "hookimpl",
    "set_requires_grad",
]
