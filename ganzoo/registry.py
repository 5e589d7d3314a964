"""Registry: the kinds and components every plugin registered, gathered once, looked up by name."""
from __future__ import annotations

import dataclasses
from typing import Mapping

from ganzoo._names import unknown_name
from ganzoo.components import BUILTIN_KINDS, ComponentSpec, KindSpec, MethodSpec
from ganzoo.plugins import GanzooPluginManager, PluginExitError


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered component and the plugin that registered it."""

    spec: ComponentSpec
    plugin: str
    hook: str = ""  # the registration hook that returned it


class Registry:
    """Kinds, and components by kind and name, gathered from the ``ganzoo_register_*`` hooks.

    Each hook implementation is called one by one (rather than through the hook relay) so
    that a failure or a bad return value names the plugin responsible. It is a PluginError,
    unless the manager was made with ``keep_going``: then the failed part is left out and the
    failure recorded in ``pm.failures`` (``ganzoo plugins`` lists them).
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
        for entry in list(self._entries["method"].values()):
            self._check_sections(entry)

    def _where(self, impl, hook: str) -> str:
        return f"{self.pm.label(impl.plugin_name)}, {hook}"

    def _fail(self, plugin: str, hook: str, message: str) -> None:
        """A PluginError, or with ``pm.keep_going`` a recorded failure (the caller then skips the part)."""
        self.pm.fail(plugin, hook, message)

    def _call(self, impl, hook: str, cls: type) -> list:
        """The specs ``impl`` returns, checked; [] when it failed and ``pm.keep_going`` records that."""
        where, fix = self._where(impl, hook), self.pm.fix(impl.plugin_name)
        try:
            specs = impl.function()
        except PluginExitError as exc:  # sys.exit inside the hook: the message already names it
            self._fail(impl.plugin_name, hook, str(exc))
            return []
        except Exception as exc:
            self._fail(impl.plugin_name, hook, f"{where} raised {type(exc).__name__}: {exc}. {fix}")
            return []
        if specs is None:
            return []
        if not isinstance(specs, (list, tuple)):
            self._fail(impl.plugin_name, hook,
                       f"{where}: expected a list of {cls.__name__}. Got {type(specs).__name__}. {fix}")
            return []
        for spec in specs:
            problem = _spec_problem(spec, cls)
            if problem:
                self._fail(impl.plugin_name, hook, f"{where}: {problem} {fix}")
                return []
        return list(specs)

    def _add_kind(self, spec: KindSpec, impl) -> None:
        where = self._where(impl, "ganzoo_register_kinds")
        if spec.name in self.kinds:
            owner = self._kind_plugin.get(spec.name, "ganzoo")
            return self._fail(impl.plugin_name, "ganzoo_register_kinds",
                              f"{where}: kind '{spec.name}' is already defined by {owner}. Rename the kind.")
        if not _snake(spec.plural) or spec.plural in {k.plural for k in self.kinds.values()}:
            return self._fail(impl.plugin_name, "ganzoo_register_kinds",
                              f"{where}: kind '{spec.name}' needs a unique snake_case plural, got {spec.plural!r}.")
        self.kinds[spec.name] = spec
        self._kind_plugin[spec.name] = f"plugin '{impl.plugin_name}'"

    def _add(self, spec: ComponentSpec, impl, hook: str) -> None:
        where, fix = self._where(impl, hook), self.pm.fix(impl.plugin_name)
        if spec.kind not in self.kinds:
            return self._fail(impl.plugin_name, hook,
                              f"{where}: '{spec.name}' has {unknown_name('kind', str(spec.kind), self.kinds)} "
                              "Define new kinds with ganzoo_register_kinds.")
        if not dataclasses.is_dataclass(spec.config_cls):
            return self._fail(impl.plugin_name, hook, f"{where}: '{spec.name}' config_cls must be a dataclass. {fix}")
        if not callable(spec.build):
            return self._fail(impl.plugin_name, hook, f"{where}: '{spec.name}' build is not callable. {fix}")
        if spec.kind == "method" and not isinstance(spec, MethodSpec):
            # a plain ComponentSpec: the classic three sections; `paired` read off the class
            fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(ComponentSpec)}
            spec = MethodSpec(**fields, paired=bool(getattr(spec.build, "paired", False)))
        other = self._entries[spec.kind].get(spec.name)
        if other is not None:
            return self._fail(
                impl.plugin_name, hook,
                f"{where}: {spec.kind} '{spec.name}' is already registered by plugin "
                f"'{other.plugin}'. Rename one of them or uninstall one plugin."
            )
        self._entries[spec.kind][spec.name] = Entry(spec, impl.plugin_name, hook)

    def _check_sections(self, entry: Entry) -> None:
        from ganzoo.config import CORE_SECTIONS  # recipe loading sits above the registry

        spec: MethodSpec = entry.spec  # type: ignore[assignment]
        where = f"{self.pm.label(entry.plugin)}, {entry.hook}, method '{spec.name}'"
        sections = spec.sections if isinstance(spec.sections, Mapping) else {None: None}
        for section, kind in sections.items():
            problem = ""
            if not isinstance(section, str) or not section.isidentifier() or section in CORE_SECTIONS \
                    or section == "method":
                problem = f"section name [{section}] is reserved or not an identifier."
            elif not isinstance(kind, str) or kind not in self.kinds:
                problem = f"section [{section}] holds {unknown_name('kind', str(kind), self.kinds)}"
            if problem:
                del self._entries["method"][spec.name]
                return self._fail(entry.plugin, entry.hook,
                                  f"{where}: {problem} {self.pm.fix(entry.plugin)}")

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

    def owner(self, kind: str, name: str) -> str:
        """Who registered ``name``, for messages: ``plugin 'x' (ganzoo-x 1.0), ganzoo_register_generators``
        ("" when nothing of that name is registered)."""
        entry = self.entry(kind, name)
        if entry is None:
            return ""
        return f"{self.pm.label(entry.plugin)}, {entry.hook}" if entry.hook else self.pm.label(entry.plugin)

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


def _snake(name) -> bool:
    return isinstance(name, str) and name.isidentifier() and name == name.lower()


def _spec_problem(spec, cls: type) -> str:
    """What is wrong with a returned spec (its type, its names), or ""."""
    if not isinstance(spec, cls):
        return f"expected {cls.__name__} items. Got {spec!r}."
    if not isinstance(spec.name, str):
        return f"the name {spec.name!r} ({type(spec.name).__name__}) is not a string: names are snake_case strings."
    if not _snake(spec.name):
        return f"{spec.name!r} is not a snake_case name."
    if isinstance(spec, ComponentSpec) and not isinstance(spec.kind, str):
        return f"'{spec.name}' has kind {spec.kind!r} ({type(spec.kind).__name__}): kinds are strings."
    if isinstance(spec, KindSpec) and not isinstance(spec.plural, str):
        return f"kind '{spec.name}' has the plural {spec.plural!r} ({type(spec.plural).__name__}): plurals are strings."
    return ""
