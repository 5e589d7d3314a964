"""The plugin manager: hookspecs, built-in plugins and plugins found through entry points.

Nothing here runs at import time: call :func:`get_plugin_manager` for a fresh manager.
Third-party plugins (and ganzoo's own CycleGAN and pix2pix plugins) are found through the
``ganzoo`` entry-point group; set ``GANZOO_DISABLE_PLUGIN_AUTOLOAD=1`` to skip them,
``GANZOO_PLUGINS=pkg.mod,other`` to load plugin modules by import path without installing
them (as ``PYTEST_PLUGINS``), and ``GANZOO_TRACE_PLUGINS=1`` to print every hook call.
A plugin that fails (raises or calls ``sys.exit`` on import, has a misspelt hook, calls
``sys.exit`` inside a hook) is a PluginError naming the plugin, its distribution, the stage and
the fix; ``get_plugin_manager(keep_going=True)`` records such failures in ``pm.failures``
instead and goes on with the other plugins (``ganzoo plugins``).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import os
import sys
import traceback

import pluggy

from ganzoo import hookspecs
from ganzoo.errors import GanzooError, PluginError

ENTRY_POINT_GROUP = "ganzoo"
DISABLE_HINT = "set GANZOO_DISABLE_PLUGIN_AUTOLOAD=1 to skip installed plugins"

# Generic pieces every method can use; model families come in through entry points.
BUILTIN_PLUGINS = (
    "ganzoo.losses.adversarial",
    "ganzoo.layers.patchgan",
    "ganzoo.data.pairing",
)


@dataclasses.dataclass(frozen=True)
class PluginFailure:
    """A plugin that failed to load, or a part of a loaded plugin that failed.

    Args:
        plugin: the plugin's name (its entry-point name or its GANZOO_PLUGINS module).
        origin: where it comes from: ``ganzoo-x 0.3`` (its distribution) or ``GANZOO_PLUGINS``.
        stage: ``import``, ``register`` (with pluggy), or the hook that failed.
        message: the one-line error: which plugin, what went wrong and the fix.
    """

    plugin: str
    origin: str
    stage: str
    message: str


class PluginExitError(PluginError):
    """A plugin called ``sys.exit`` (raised SystemExit) inside a hook: ganzoo does not let it end
    the process, least of all with status 0 after a failure."""


class GanzooPluginManager(pluggy.PluginManager):
    """A PluginManager that remembers where each plugin came from and how a failure is reported.

    Args:
        keep_going: record plugin failures in :attr:`failures` and go on without the failed
            plugin (or the failed part of it) instead of raising the first as a PluginError.
    """

    def __init__(self, *, keep_going: bool = False) -> None:
        super().__init__("ganzoo")
        self.dists: dict[str, tuple[str, str]] = {}
        self.from_env: set[str] = set()  # plugins loaded through GANZOO_PLUGINS
        self.keep_going = keep_going
        self.failures: list[PluginFailure] = []

    def distribution(self, name: str) -> tuple[str, str]:
        """Return (distribution, version) of plugin ``name``; ganzoo's own for the rest."""
        from ganzoo import __version__

        return self.dists.get(name, ("ganzoo", __version__))

    def origin(self, name: str) -> str:
        """``ganzoo-x 0.3``, or ``GANZOO_PLUGINS`` for a module loaded by import path."""
        return "GANZOO_PLUGINS" if name in self.from_env else " ".join(self.distribution(name))

    def label(self, name: str) -> str:
        """``plugin 'x' (ganzoo-x 0.3)``: a plugin as messages name it."""
        return f"plugin '{name}' ({self.origin(name)})"

    def fix(self, name: str) -> str:
        """How the user repairs or gets rid of the broken plugin ``name``."""
        if name in self.dists:
            return _uninstall_hint(self.dists[name][0])
        if name in self.from_env:
            return f"Fix the module, or remove {name} from GANZOO_PLUGINS."
        if name.startswith("builtin:"):
            return "This is a bug in ganzoo: please report it."
        return "Fix the plugin, or do not register it."  # registered by code (tests, ganzoo.testing)

    def fail(self, plugin: str, stage: str, message: str, origin: str | None = None) -> None:
        """Raise ``message`` as a PluginError, or record it when :attr:`keep_going`."""
        if not self.keep_going:
            raise PluginError(message)
        self.failures.append(PluginFailure(plugin, origin or self.origin(plugin), stage, message))

    def register(self, plugin, name: str | None = None) -> str | None:
        """Register ``plugin``; each of its hook implementations is guarded (see :func:`_guarded`)."""
        name = super().register(plugin, name)
        if name is not None:
            for caller in self.get_hookcallers(plugin) or []:
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper):
                        impl.function = _guarded(impl.function, self, name, caller.name)
        return name


def _uninstall_hint(dist: str) -> str:
    return f"Fix or uninstall that package (pip uninstall {dist}), or {DISABLE_HINT}."


def describe_failure(exc: BaseException) -> str:
    """``ValueError: boom``; ``called sys.exit(0)`` for a SystemExit."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({'' if exc.code is None else repr(exc.code)})"
    return f"{type(exc).__name__}: {exc}"


def _guarded(function, pm: GanzooPluginManager, name: str, hook: str):
    """``function`` (a hook implementation of plugin ``name``), except that a SystemExit it raises
    becomes a PluginExitError naming the plugin and the hook, and other exceptions (bugs, with
    their traceback) carry a note naming them. pluggy re-raises an implementation's exception
    unchanged, so without this a ``sys.exit(0)`` in ``ganzoo_on_run_end`` after a failed step
    would end ``ganzoo run`` with status 0 and no word."""
    if getattr(function, "_ganzoo_guarded", False):
        return function

    @functools.wraps(function)
    def call(*args, **kwargs):
        failing = sys.exc_info()[1]  # set when the hook runs in a `finally` on a failure's way out
        try:
            return function(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except SystemExit as exc:
            during = ""
            if failing is not None:
                text = str(failing) if isinstance(failing, GanzooError) else describe_failure(failing)
                during = f" while ganzoo was stopping on an error ({text})"
            raise PluginExitError(
                f"{pm.label(name)}, {hook}: {describe_failure(exc)}{during}. A plugin must not end the "
                f"process: raise an exception instead. {pm.fix(name)}"
            ) from None
        except Exception as exc:
            note = f"(raised by {pm.label(name)}, {hook})"
            if not isinstance(exc, GanzooError) and note not in getattr(exc, "__notes__", ()):
                exc.add_note(note)
            raise

    call._ganzoo_guarded = True
    return call


def get_plugin_manager(*, load_entrypoints: bool | None = None, keep_going: bool = False) -> GanzooPluginManager:
    """Return a new PluginManager with the hookspecs, the built-ins and installed plugins.

    Args:
        load_entrypoints: load plugins of the ``ganzoo`` entry-point group. ``None`` means
            yes unless ``GANZOO_DISABLE_PLUGIN_AUTOLOAD`` is set.
        keep_going: record failing plugins in ``pm.failures`` and load the others, rather
            than raising a PluginError for the first (see :class:`GanzooPluginManager`).
    """
    pm = GanzooPluginManager(keep_going=keep_going)
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
    """Reject hook implementations that match no hookspec (a misspelt ``ganzoo_*`` name); with
    ``keep_going``, unregister such a plugin and record it."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            message = (f"{pm.label(name)}: {exc}. Hook names are listed in docs/plugins.md "
                       f"(`ganzoo_register_generators`, ...). {pm.fix(name)}")
            if not pm.keep_going:
                raise PluginError(message) from None
            pm.fail(name, "register", message)
            pm.unregister(exc.plugin)


def _register(pm: GanzooPluginManager, plugin, name: str, where: str, origin: str, fix: str) -> bool:
    """``pm.register(plugin, name)``; a plugin pluggy refuses is a failure. True when registered."""
    try:
        pm.register(plugin, name=name)
        return True
    except pluggy.PluginValidationError as exc:
        pm.fail(name, "register", f"{where}: invalid hook implementation: {exc}. {fix}", origin)
    except Exception as exc:  # noqa: BLE001 - e.g. a module whose attributes raise when pluggy scans them
        pm.fail(name, "register", f"{where}: cannot be registered: {describe_failure(exc)}. {fix}", origin)
    return False


def load_module_plugins(pm: GanzooPluginManager, modules: str) -> None:
    """Import and register the comma-separated modules of ``GANZOO_PLUGINS``."""
    for name in filter(None, (m.strip() for m in modules.split(","))):
        if pm.get_plugin(name) is not None:
            continue
        fix = "Fix the module or the import path (it must be importable, e.g. on PYTHONPATH), or remove it " \
              "from GANZOO_PLUGINS."
        try:
            plugin = importlib.import_module(name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - third-party code, sys.exit included: the user's to fix
            pm.fail(name, "import", f'GANZOO_PLUGINS: cannot import plugin module "{name}": '
                                    f"{describe_failure(exc)}. {fix}", "GANZOO_PLUGINS")
            continue
        pm.from_env.add(name)
        if not _register(pm, plugin, name, f'GANZOO_PLUGINS: plugin module "{name}"', "GANZOO_PLUGINS", fix):
            pm.from_env.discard(name)


def load_entrypoint_plugins(pm: GanzooPluginManager) -> None:
    """Import and register every plugin of the ``ganzoo`` entry-point group."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            dist_name = dist.metadata["name"]
            origin = f"{dist_name} {dist.version}"
            where = f'plugin "{ep.name}" ({origin})'
            if ep.name in seen:
                if seen[ep.name] == dist_name:
                    continue  # the same distribution found twice on sys.path
                pm.fail(ep.name, "register", f"{where}: the plugin name \"{ep.name}\" is also used by distribution "
                        f"{seen[ep.name]}. Uninstall one of them, or rename the entry point in "
                        "[project.entry-points.ganzoo].", origin)
                continue
            seen[ep.name] = dist_name
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - any failure of third-party code, sys.exit included
                pm.fail(ep.name, "import", f"Error importing {where} from entry point '{ep.value}': "
                        f"{describe_failure(exc)}. {_uninstall_hint(dist_name)}", origin)
                continue
            if _register(pm, plugin, ep.name, where, origin, _uninstall_hint(dist_name)):
                pm.dists[ep.name] = (dist_name, dist.version)


def foreign_exit_message(exc: SystemExit) -> str | None:
    """The one-line error for a SystemExit raised by code outside ganzoo and click (a plugin's
    network, method or build calling ``sys.exit``), or None for ganzoo's and click's own exits.

    Hooks are guarded where they are called (:func:`_guarded`); this covers the plugin code
    that the core calls directly, for ``main()`` to turn into status 2.
    """
    frames = list(traceback.walk_tb(exc.__traceback__))
    if not frames:
        return None

    def package(frame) -> str:
        return (frame.f_globals.get("__name__") or "").partition(".")[0]

    if package(frames[-1][0]) in ("ganzoo", "click"):
        return None
    # the innermost frame that is neither the standard library (exit(), argparse) nor ganzoo's
    frame, line = next(((f, n) for f, n in reversed(frames)
                        if package(f) not in sys.stdlib_module_names and package(f) not in ("ganzoo", "click")),
                       frames[-1])
    module, top = frame.f_globals.get("__name__") or "?", package(frame)
    dists = importlib.metadata.packages_distributions().get(top, [])
    env = {m.strip().partition(".")[0] for m in os.environ.get("GANZOO_PLUGINS", "").split(",")}
    if top in env:
        fix = f"Fix the module, or remove {top} from GANZOO_PLUGINS."
    elif dists:
        fix = _uninstall_hint(dists[0])
    else:
        fix = f"Fix that code (it is not part of ganzoo), or {DISABLE_HINT}."
    origin = ""
    if dists:
        try:
            origin = f" ({dists[0]} {importlib.metadata.version(dists[0])})"
        except importlib.metadata.PackageNotFoundError:
            origin = f" ({dists[0]})"
    status = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    during = f", while handling {describe_failure(exc.__context__)}" if exc.__context__ is not None else ""
    return (f"module '{module}'{origin}, {frame.f_code.co_filename}:{line} in {frame.f_code.co_name}: "
            f"{describe_failure(exc)}{during}, which would have ended ganzoo with status {status} and no message. "
            f"A plugin must not end the process: raise an exception instead. {fix}")
