"""The plugin manager: hookspecs, built-in plugins and plugins found through entry points.

Nothing here runs at import time: call :func:`get_plugin_manager` for a fresh manager.
Third-party plugins (and ganzoo's own CycleGAN and pix2pix plugins) are found through the
``ganzoo`` entry-point group; set ``GANZOO_DISABLE_PLUGIN_AUTOLOAD=1`` to skip them,
``GANZOO_PLUGINS=pkg.mod,other`` to load plugin modules by import path without installing
them (as ``PYTEST_PLUGINS``), and ``GANZOO_TRACE_PLUGINS=1`` to print every hook call.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys

import pluggy

from ganzoo import hookspecs
from ganzoo.errors import PluginError

ENTRY_POINT_GROUP = "ganzoo"

# Generic pieces every method can use; model families come in through entry points.
BUILTIN_PLUGINS = (
    "ganzoo.losses.adversarial",
    "ganzoo.layers.patchgan",
    "ganzoo.data.pairing",
)


class GanzooPluginManager(pluggy.PluginManager):
    """A PluginManager that remembers which distribution each entry-point plugin came from."""

    def __init__(self) -> None:
        super().__init__("ganzoo")
        self.dists: dict[str, tuple[str, str]] = {}

    def distribution(self, name: str) -> tuple[str, str]:
        """Return (distribution, version) of plugin ``name``; ganzoo's own for the rest."""
        from ganzoo import __version__

        return self.dists.get(name, ("ganzoo", __version__))


def get_plugin_manager(*, load_entrypoints: bool | None = None) -> GanzooPluginManager:
    """Return a new PluginManager with the hookspecs, the built-ins and installed plugins.

    Args:
        load_entrypoints: load plugins of the ``ganzoo`` entry-point group. ``None`` means
            yes unless ``GANZOO_DISABLE_PLUGIN_AUTOLOAD`` is set.
    """
    pm = GanzooPluginManager()
    pm.add_hookspecs(hookspecs)
    for modname in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(modname), name=f"builtin:{modname.rsplit('.', 1)[1]}")
    if load_entrypoints is None:
        load_entrypoints = not os.environ.get("GANZOO_DISABLE_PLUGIN_AUTOLOAD")
    if load_entrypoints:
        load_entrypoint_plugins(pm)
    load_module_plugins(pm, os.environ.get("GANZOO_PLUGINS", ""))
    check_hooks(pm)
    if os.environ.get("GANZOO_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    return pm


def check_hooks(pm: GanzooPluginManager) -> None:
    """Reject hook implementations that match no hookspec (a misspelt ``ganzoo_*`` name)."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        dist, version = pm.distribution(name)
        raise PluginError(
            f"plugin '{name}' ({dist} {version}): {exc}. Hook names are listed in docs/plugins.md "
            "(`ganzoo_register_generators`, ...)."
        ) from None


def load_module_plugins(pm: GanzooPluginManager, modules: str) -> None:
    """Import and register the comma-separated modules of ``GANZOO_PLUGINS``."""
    for name in filter(None, (m.strip() for m in modules.split(","))):
        if pm.get_plugin(name) is not None:
            continue
        try:
            plugin = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - third-party code: every failure is the user's to fix
            raise PluginError(
                f'GANZOO_PLUGINS: cannot import plugin module "{name}": {type(exc).__name__}: {exc}. Fix the module '
                "or the import path (it must be importable, e.g. on PYTHONPATH), or remove it from GANZOO_PLUGINS."
            ) from exc
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f'GANZOO_PLUGINS: plugin module "{name}": invalid hook implementation: {exc}') from exc


def load_entrypoint_plugins(pm: GanzooPluginManager) -> None:
    """Import and register every plugin of the ``ganzoo`` entry-point group."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            where = f'plugin "{ep.name}" ({dist.metadata["name"]} {dist.version})'
            if ep.name in seen:
                if seen[ep.name] == dist.metadata["name"]:
                    continue  # the same distribution found twice on sys.path
                raise PluginError(
                    f"{where}: the plugin name \"{ep.name}\" is also used by distribution "
                    f"{seen[ep.name]}. Uninstall one of them, or rename the entry point in "
                    "[project.entry-points.ganzoo]."
                )
            seen[ep.name] = dist.metadata["name"]
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure of third-party code is the user's to fix
                raise PluginError(
                    f"Error importing {where} from entry point '{ep.value}': "
                    f"{type(exc).__name__}: {exc}. Fix or uninstall that package "
                    f"(pip uninstall {dist.metadata['name']}), or set "
                    "GANZOO_DISABLE_PLUGIN_AUTOLOAD=1 to skip installed plugins."
                ) from exc
            try:
                pm.register(plugin, name=ep.name)
            except pluggy.PluginValidationError as exc:
                raise PluginError(f"{where}: invalid hook implementation: {exc}") from exc
            pm.dists[ep.name] = (dist.metadata["name"], dist.version)

