"""Registry: gathering, duplicates, did-you-mean, errors that name the plugin."""
from __future__ import annotations

import dataclasses

import pytest

from ganzoo import ComponentSpec, PluginError, hookimpl
from ganzoo.registry import Registry


@dataclasses.dataclass(frozen=True)
class _Cfg:
    width: int = 8


def test_builtins_and_bundled_plugins_register(registry):
    assert {"resnet_6blocks", "resnet_9blocks", "unet_128", "unet_256"} <= set(registry.names("generator"))
    assert {"patchgan_70", "patchgan", "pixelgan"} <= set(registry.names("discriminator"))
    assert {"lsgan", "vanilla", "wgangp", "hinge"} <= set(registry.names("loss"))
    assert {"unaligned", "aligned", "named"} <= set(registry.names("pairing"))
    assert {"cyclegan", "pix2pix"} <= set(registry.names("method"))
    assert registry.entry("generator", "resnet_9blocks").plugin == "cyclegan"
    assert registry.entry("generator", "unet_256").plugin == "pix2pix"


def test_every_component_has_a_summary(registry):
    for kind in ("generator", "discriminator", "loss", "pairing", "method"):
        for entry in registry.list(kind):
            assert entry.spec.summary, f"{kind} {entry.spec.name} has no summary"


def test_duplicate_name_names_both_plugins(pm):
    class Dup:
        @hookimpl
        def ganzoo_register_generators(self):
            return [ComponentSpec("resnet_9blocks", _Cfg, lambda cfg, **kw: None, "dup")]

    pm.register(Dup(), name="dupplugin")
    with pytest.raises(PluginError) as err:
        Registry(pm)
    msg = str(err.value)
    assert "plugin 'dupplugin'" in msg and "already registered by plugin 'cyclegan'" in msg
    assert "ganzoo_register_generators" in msg


def test_raising_hook_is_reported_with_plugin_name(pm):
    class Broken:
        @hookimpl
        def ganzoo_register_losses(self):
            raise RuntimeError("boom")

    pm.register(Broken(), name="broken")
    with pytest.raises(PluginError, match=r"plugin 'broken' .*ganzoo_register_losses raised RuntimeError: boom"):
        Registry(pm)


@pytest.mark.parametrize("bad", [None.__class__, "notalist", ["notaspec"]])
def test_bad_return_values_are_plugin_errors(pm, bad):
    value = bad if bad is not None.__class__ else 42

    class Bad:
        @hookimpl
        def ganzoo_register_methods(self):
            return value

    pm.register(Bad(), name="bad")
    with pytest.raises(PluginError, match="plugin 'bad'"):
        Registry(pm)


def test_config_must_be_dataclass_and_name_snake_case(pm):
    class NotDataclass:
        @hookimpl
        def ganzoo_register_generators(self):
            return [ComponentSpec("mygen", dict, lambda cfg, **kw: None, "x")]

    pm.register(NotDataclass(), name="nd")
    with pytest.raises(PluginError, match="config_cls must be a dataclass"):
        Registry(pm)
    pm.unregister(name="nd")

    class BadName:
        @hookimpl
        def ganzoo_register_generators(self):
            return [ComponentSpec("My-Gen", _Cfg, lambda cfg, **kw: None, "x")]

    pm.register(BadName(), name="bn")
    with pytest.raises(PluginError, match="not a snake_case name"):
        Registry(pm)


def test_unknown_name_suggests_close_match(registry):
    with pytest.raises(KeyError) as err:
        registry.get("generator", "resnet9blocks")
    msg = err.value.args[0]
    assert 'Did you mean "resnet_9blocks"' in msg
    assert "ganzoo list generators" in msg


def test_plugin_import_error_names_the_plugin(monkeypatch):
    import importlib.metadata as md

    from ganzoo import plugins

    class FakeEP:
        name, group, value = "ghost", "ganzoo", "ganzoo_ghost_does_not_exist"

        def load(self):
            raise ModuleNotFoundError("No module named 'ganzoo_ghost_does_not_exist'")

    class FakeDist:
        metadata = {"name": "ganzoo-ghost"}
        version = "0.3"
        entry_points = [FakeEP()]

    monkeypatch.setattr(md, "distributions", lambda: [FakeDist()])
    with pytest.raises(PluginError) as err:
        plugins.get_plugin_manager(load_entrypoints=True)
    msg = str(err.value)
    assert 'Error importing plugin "ghost" (ganzoo-ghost 0.3)' in msg
    assert "GANZOO_DISABLE_PLUGIN_AUTOLOAD" in msg


def test_misspelt_hook_is_an_error_naming_the_plugin(pm):
    from ganzoo.plugins import check_hooks

    class Typo:
        @hookimpl
        def ganzoo_register_generator(self):  # missing "s"
            return []

    pm.register(Typo(), name="typo")
    with pytest.raises(PluginError, match=r"plugin 'typo' .*ganzoo_register_generator"):
        check_hooks(pm)


def test_two_distributions_with_one_plugin_name(monkeypatch):
    import importlib.metadata as md

    from ganzoo import plugins

    def dist(name):
        class EP:
            group, value = "ganzoo", "x"

            def load(self):
                return object()

        EP.name = "same"

        class D:
            metadata = {"name": name}
            version = "1.0"
            entry_points = [EP()]

        return D()

    monkeypatch.setattr(md, "distributions", lambda: [dist("ganzoo-one"), dist("ganzoo-two")])
    with pytest.raises(PluginError, match=r'plugin name "same" is also used by distribution ganzoo-one'):
        plugins.get_plugin_manager(load_entrypoints=True)
