"""Registry: the components every plugin registered, gathered once, looked up by name."""
from __future__ import annotations

import dataclasses
import difflib

from ganzoo.components import KINDS, ComponentSpec
from ganzoo.errors import PluginError
from ganzoo.plugins import GanzooPluginManager


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered component and the plugin that registered it."""

    spec: ComponentSpec
    plugin: str


class Registry:
    """Components by kind and name, gathered from the ``ganzoo_register_*`` hooks.

    Each hook implementation is called one by one (rather than through the hook relay) so
    that a failure or a bad return value names the plugin responsible.
    """

    def __init__(self, pm: GanzooPluginManager) -> None:
        self.pm = pm
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        for kind, plural in KINDS.items():
            hook = getattr(pm.hook, f"ganzoo_register_{plural}")
            for impl in hook.get_hookimpls():  # in registration order
                self._collect(kind, impl)

    def _collect(self, kind: str, impl) -> None:
        dist, version = self.pm.distribution(impl.plugin_name)
        where = f"plugin '{impl.plugin_name}' ({dist} {version}), ganzoo_register_{KINDS[kind]}"
        try:
            specs = impl.function()
        except Exception as exc:
            raise PluginError(f"{where} raised {type(exc).__name__}: {exc}") from exc
        if specs is None:
            return
        if not isinstance(specs, (list, tuple)):
            raise PluginError(f"{where}: expected a list of ComponentSpec. Got {type(specs).__name__}.")
        for spec in specs:
            if not isinstance(spec, ComponentSpec):
                raise PluginError(f"{where}: expected ComponentSpec items. Got {spec!r}.")
            if not dataclasses.is_dataclass(spec.config_cls):
                raise PluginError(f"{where}: '{spec.name}' config_cls must be a dataclass.")
            if not spec.name.isidentifier() or spec.name != spec.name.lower():
                raise PluginError(f"{where}: '{spec.name}' is not a snake_case name.")
            other = self._entries[kind].get(spec.name)
            if other is not None:
                raise PluginError(
                    f"{where}: {kind} '{spec.name}' is already registered by plugin "
                    f"'{other.plugin}'. Rename one of them or uninstall one plugin."
                )
            self._entries[kind][spec.name] = Entry(spec, impl.plugin_name)

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        return sorted(self._entries[kind])

    def list(self, kind: str) -> list[Entry]:
        """Entries registered for ``kind``, sorted by name."""
        return [self._entries[kind][n] for n in self.names(kind)]

    def entry(self, kind: str, name: str) -> Entry | None:
        return self._entries[kind].get(name)

    def get(self, kind: str, name: str) -> ComponentSpec:
        """Return the spec of ``name``; raise a KeyError whose message suggests the fix."""
        entry = self._entries[kind].get(name)
        if entry is None:
            raise KeyError(self.unknown_message(kind, name))
        return entry.spec

    def unknown_message(self, kind: str, name: str) -> str:
        names = self.names(kind)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f'Did you mean "{close[0]}"? ' if close else ""
        return (
            f'unknown {kind} "{name}". {hint}Available: {", ".join(names) or "(none)"} '
            f"(ganzoo list {KINDS[kind]})"
        )
