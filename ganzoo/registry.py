"""Registry: the kinds and components every plugin registered, gathered once, looked up by name."""
from __future__ import annotations

import dataclasses

from ganzoo._names import unknown_name
from ganzoo.components import BUILTIN_KINDS, ComponentSpec, KindSpec, MethodSpec
from ganzoo.errors import PluginError
from ganzoo.plugins import GanzooPluginManager


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered component and the plugin that registered it."""

    spec: ComponentSpec
    plugin: str


class Registry:
    """Kinds, and components by kind and name, gathered from the ``ganzoo_register_*`` hooks.

    Each hook implementation is called one by one (rather than through the hook relay) so
    that a failure or a bad return value names the plugin responsible.
    """

    def __init__(self, pm: GanzooPluginManager) -> None:
        self.pm = pm
        self.kinds: dict[str, KindSpec] = {k: KindSpec(k, p) for k, p in BUILTIN_KINDS.items()}
        self._kind_plugin: dict[str, str] = {}
        for impl in pm.hook.ganzoo_register_kinds.get_hookimpls():
            for spec in self._call(impl, "ganzoo_register_kinds", KindSpec):
                self._add_kind(spec, impl)
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in self.kinds}
        for kind, plural in BUILTIN_KINDS.items():
            hook = f"ganzoo_register_{plural}"
            for impl in getattr(pm.hook, hook).get_hookimpls():  # in registration order
                for spec in self._call(impl, hook, ComponentSpec):
                    self._add(dataclasses.replace(spec, kind=kind), impl, hook)
        for impl in pm.hook.ganzoo_register_components.get_hookimpls():
            for spec in self._call(impl, "ganzoo_register_components", ComponentSpec):
                self._add(spec, impl, "ganzoo_register_components")
        for entry in self._entries["method"].values():
            self._check_sections(entry)

    def _where(self, impl, hook: str) -> str:
        dist, version = self.pm.distribution(impl.plugin_name)
        return f"plugin '{impl.plugin_name}' ({dist} {version}), {hook}"

    def _call(self, impl, hook: str, cls: type) -> list:
        where = self._where(impl, hook)
        try:
            specs = impl.function()
        except Exception as exc:
            raise PluginError(f"{where} raised {type(exc).__name__}: {exc}") from exc
        if specs is None:
            return []
        if not isinstance(specs, (list, tuple)):
            raise PluginError(f"{where}: expected a list of {cls.__name__}. Got {type(specs).__name__}.")
        for spec in specs:
            if not isinstance(spec, cls):
                raise PluginError(f"{where}: expected {cls.__name__} items. Got {spec!r}.")
            if not isinstance(spec.name, str) or not spec.name.isidentifier() or spec.name != spec.name.lower():
                raise PluginError(f"{where}: {spec.name!r} is not a snake_case name.")
        return list(specs)

    def _add_kind(self, spec: KindSpec, impl) -> None:
        where = self._where(impl, "ganzoo_register_kinds")
        if spec.name in self.kinds:
            owner = self._kind_plugin.get(spec.name, "ganzoo")
            raise PluginError(f"{where}: kind '{spec.name}' is already defined by {owner}. Rename the kind.")
        if not spec.plural.isidentifier() or spec.plural in {k.plural for k in self.kinds.values()}:
            raise PluginError(f"{where}: kind '{spec.name}' needs a unique snake_case plural, got {spec.plural!r}.")
        self.kinds[spec.name] = spec
        self._kind_plugin[spec.name] = f"plugin '{impl.plugin_name}'"

    def _add(self, spec: ComponentSpec, impl, hook: str) -> None:
        where = self._where(impl, hook)
        if spec.kind not in self.kinds:
            raise PluginError(f"{where}: '{spec.name}' has {unknown_name('kind', spec.kind, self.kinds)} "
                              "Define new kinds with ganzoo_register_kinds.")
        if not dataclasses.is_dataclass(spec.config_cls):
            raise PluginError(f"{where}: '{spec.name}' config_cls must be a dataclass.")
        if not callable(spec.build):
            raise PluginError(f"{where}: '{spec.name}' build is not callable.")
        if spec.kind == "method" and not isinstance(spec, MethodSpec):
            # a plain ComponentSpec: the classic three sections; `paired` read off the class
            fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(ComponentSpec)}
            spec = MethodSpec(**fields, paired=bool(getattr(spec.build, "paired", False)))
        other = self._entries[spec.kind].get(spec.name)
        if other is not None:
            raise PluginError(
                f"{where}: {spec.kind} '{spec.name}' is already registered by plugin "
                f"'{other.plugin}'. Rename one of them or uninstall one plugin."
            )
        self._entries[spec.kind][spec.name] = Entry(spec, impl.plugin_name)

    def _check_sections(self, entry: Entry) -> None:
        from ganzoo.config import CORE_SECTIONS  # recipe loading sits above the registry

        spec: MethodSpec = entry.spec  # type: ignore[assignment]
        where = f"plugin '{entry.plugin}', method '{spec.name}'"
        for section, kind in spec.sections.items():
            if section in CORE_SECTIONS or section == "method" or not section.isidentifier():
                raise PluginError(f"{where}: section name [{section}] is reserved or not an identifier.")
            if kind not in self.kinds:
                raise PluginError(f"{where}: section [{section}] holds {unknown_name('kind', kind, self.kinds)}")

    def kind_of(self, plural_or_kind: str) -> str | None:
        """The kind called ``plural_or_kind`` (singular or plural), or None."""
        for kind, spec in self.kinds.items():
            if plural_or_kind in (kind, spec.plural):
                return kind
        return None

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        return sorted(self._entries.get(kind, {}))

    def list(self, kind: str) -> list[Entry]:
        """Entries registered for ``kind``, sorted by name."""
        return [self._entries[kind][n] for n in self.names(kind)]

    def entry(self, kind: str, name: str) -> Entry | None:
        return self._entries.get(kind, {}).get(name)

    def get(self, kind: str, name: str) -> ComponentSpec:
        """Return the spec of ``name``; raise a KeyError whose message suggests the fix."""
        entry = self.entry(kind, name)
        if entry is None:
            raise KeyError(self.unknown_message(kind, name))
        return entry.spec

    def method(self, name: str) -> MethodSpec:
        return self.get("method", name)  # type: ignore[return-value]

    def unknown_message(self, kind: str, name: str) -> str:
        plural = self.kinds[kind].plural if kind in self.kinds else f"{kind}s"
        return f"{unknown_name(kind, name, self.names(kind))} (ganzoo list {plural})"
