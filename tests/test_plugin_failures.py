"""Plugins cannot break the CLI silently (issue 14, item 6), through the real CLI: a plugin that
raises or calls sys.exit on import, registers a name that is not a string, or builds something
that is not a module is one `error:` line naming it (exit 2, no traceback); `ganzoo plugins`
lists the others and says which failed and why; and no plugin turns a failed run into status 0.

Test plugins are modules written into tmp_path at test time and loaded through GANZOO_PLUGINS,
or through a fake distribution's entry point (as pip-installed plugins are).
"""
from __future__ import annotations

import copy
import importlib
import importlib.metadata as md
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganzoo import hookimpl
from ganzoo.cli import cli
from ganzoo.plugins import get_plugin_manager
from ganzoo.config import dump_toml
from recipefiles import TINY

GANZOO = Path(sys.executable).with_name("ganzoo")
HEADER = """
import dataclasses, sys
from torch import nn
from ganzoo import ComponentSpec, KindSpec, MethodSpec, hookimpl

@dataclasses.dataclass(frozen=True)
class Cfg:
    pass
"""


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)  # the bundled plugins load
    monkeypatch.delenv("GANZOO_PLUGINS", raising=False)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """plugin(name, source): write module ``name`` into tmp_path, importable for this test only."""
    names = []
    folder = tmp_path / "plugin_modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))

    def write(name: str, source: str) -> str:
        (folder / f"{name}.py").write_text(HEADER + textwrap.dedent(source))
        importlib.invalidate_caches()
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def load_by_env(monkeypatch, *names: str) -> None:
    monkeypatch.setenv("GANZOO_PLUGINS", ",".join(names))


def install(monkeypatch, ep_name: str, dist_name: str, version: str, module: str) -> None:
    """Make ``module`` look like the entry point ``ep_name`` of an installed distribution."""

    class EntryPoint:
        name, group, value = ep_name, "ganzoo", module

        def load(self):
            return importlib.import_module(module)

    class Distribution:
        metadata, entry_points = {"name": dist_name}, [EntryPoint()]

    Distribution.version = version
    real = md.distributions
    monkeypatch.setattr(md, "distributions", lambda: [*real(), Distribution()])


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error(result, *fragments: str) -> str:
    """The result's only `error:` line, after checking there is no traceback and status 2."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    return errors[0]


# ---- import ------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, what", [
    ("raise RuntimeError('boom on import')", "RuntimeError: boom on import"),
    ("sys.exit(0)", "called sys.exit(0)"),
    ("sys.exit(3)", "called sys.exit(3)"),
    ("raise SystemExit", "called sys.exit()"),
    ("exit('bye')", "called sys.exit('bye')"),
])
def test_a_plugin_module_failing_on_import_is_one_error(plugin, monkeypatch, body, what):
    name = plugin(f"gzp_import_{abs(hash(body))}", body)
    load_by_env(monkeypatch, name)
    one_error(invoke("list", "generators"), f'GANZOO_PLUGINS: cannot import plugin module "{name}"', what,
              "remove it from GANZOO_PLUGINS")


@pytest.mark.parametrize("body, what", [
    ("sys.exit(0)", "called sys.exit(0)"),
    ("import ganzoo_not_installed", "ModuleNotFoundError: No module named 'ganzoo_not_installed'"),
])
def test_an_installed_plugin_failing_on_import_is_one_error(plugin, monkeypatch, body, what):
    module = plugin(f"gzp_installed_{abs(hash(body))}", body)
    install(monkeypatch, "exiter", "ganzoo-exiter", "1.0", module)
    one_error(invoke("list", "generators"), 'Error importing plugin "exiter" (ganzoo-exiter 1.0)', what,
              "pip uninstall ganzoo-exiter", "GANZOO_DISABLE_PLUGIN_AUTOLOAD=1")


def test_ctrl_c_during_a_plugin_import_is_not_swallowed(plugin, monkeypatch):
    load_by_env(monkeypatch, plugin("gzp_ctrl_c", "raise KeyboardInterrupt"))
    with pytest.raises(KeyboardInterrupt):
        get_plugin_manager(load_entrypoints=False)


# ---- registration ------------------------------------------------------------------------------
BAD_REGISTRATIONS = {
    "name-not-a-string": ("""
        @hookimpl
        def ganzoo_register_generators():
            return [ComponentSpec(42, Cfg, nn.Identity, "a number for a name")]
    """, "ganzoo_register_generators", "the name 42 (int) is not a string"),
    "kind-plural-not-a-string": ("""
        @hookimpl
        def ganzoo_register_kinds():
            return [KindSpec("widget", 7)]
    """, "ganzoo_register_kinds", "plural 7 (int)"),
    "section-not-a-string": ("""
        @hookimpl
        def ganzoo_register_methods():
            return [MethodSpec("odd", Cfg, object, sections={3: "generator"})]
    """, "ganzoo_register_methods", "section name [3]"),
    "exits-in-hook": ("""
        @hookimpl
        def ganzoo_register_generators():
            sys.exit(0)
    """, "ganzoo_register_generators", "called sys.exit(0)"),
    "raises-in-hook": ("""
        @hookimpl
        def ganzoo_register_losses():
            raise ValueError("no losses today")
    """, "ganzoo_register_losses", "raised ValueError: no losses today"),
    "misspelt-hook": ("""
        @hookimpl
        def ganzoo_register_generator():
            return []
    """, "ganzoo_register_generator", "unknown hook"),
}


@pytest.mark.parametrize("case", list(BAD_REGISTRATIONS))
def test_a_bad_registration_is_one_error_naming_plugin_distribution_and_hook(plugin, monkeypatch, case):
    source, hook, what = BAD_REGISTRATIONS[case]
    module = plugin(f"gzp_reg_{case.replace('-', '_')}", source)
    install(monkeypatch, "badplug", "ganzoo-badplug", "2.1", module)
    one_error(invoke("list", "generators"), "plugin 'badplug' (ganzoo-badplug 2.1)", hook, what,
              "pip uninstall ganzoo-badplug", "GANZOO_DISABLE_PLUGIN_AUTOLOAD=1")


def test_ganzoo_plugins_lists_the_working_plugins_and_each_failure(plugin, monkeypatch):
    install(monkeypatch, "ghost", "ganzoo-ghost", "0.3", "ganzoo_ghost_not_installed")
    install(monkeypatch, "exiter", "ganzoo-exiter", "1.0", plugin("gzp_list_exit", "sys.exit(0)"))
    half = plugin("gzp_list_half", """
        @hookimpl
        def ganzoo_register_discriminators():
            return [ComponentSpec("fine_disc", Cfg, nn.Identity, "works")]

        @hookimpl
        def ganzoo_register_generators():
            return [ComponentSpec(42, Cfg, nn.Identity, "broken")]
    """)
    typo = plugin("gzp_list_typo", """
        @hookimpl
        def ganzoo_on_run_strat(trainer):
            pass
    """)
    load_by_env(monkeypatch, half, typo)
    result = invoke("plugins")
    one_error(result, "4 plugin(s) failed: ghost, exiter, gzp_list_typo, gzp_list_half",
              "the cause and the fix of each failure are listed above")
    out = result.output
    assert "cyclegan (ganzoo " in out and "pix2pix (ganzoo " in out  # the others are listed
    assert "generator resnet_9blocks" in out
    assert 'ghost (ganzoo-ghost 0.3): not loaded\n    FAILED (import): Error importing plugin "ghost"' in out
    assert "ModuleNotFoundError" in out and "pip uninstall ganzoo-ghost" in out
    assert "exiter (ganzoo-exiter 1.0): not loaded\n    FAILED (import):" in out and "called sys.exit(0)" in out
    assert "gzp_list_typo (GANZOO_PLUGINS): not loaded\n    FAILED (register):" in out and "ganzoo_on_run_strat" in out
    # the part that works is registered; the part that failed is named
    section = out.split("gzp_list_half (GANZOO_PLUGINS)\n", 1)[1].split("\n", 4)
    assert section[1] == "    registers: discriminator fine_disc", out
    assert section[2].startswith("    FAILED (ganzoo_register_generators): plugin 'gzp_list_half' (GANZOO_PLUGINS)")
    assert "remove gzp_list_half from GANZOO_PLUGINS" in section[2]


def test_ganzoo_plugins_without_failures_exits_0():
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    assert "error" not in result.output.lower()


# ---- builds ------------------------------------------------------------------------------------
def recipe(tmp_path: Path, unaligned_root: Path, **sections) -> Path:
    """The tiny 2-step recipe with whole ``sections`` replaced."""
    raw = {**copy.deepcopy(TINY), **sections}
    raw["data"]["root"], raw["run"]["max_steps"] = unaligned_root.as_posix(), 2
    path = tmp_path / "r.toml"
    path.write_text(dump_toml(raw))
    return path


def test_a_generator_build_that_returns_no_module_is_one_error(plugin, monkeypatch, tmp_path, unaligned_root):
    load_by_env(monkeypatch, plugin("gzp_not_a_net", """
        @hookimpl
        def ganzoo_register_generators():
            return [ComponentSpec("not_a_net", Cfg, lambda cfg, **kw: "a string", "builds no module")]
    """))
    path = recipe(tmp_path, unaligned_root, generator={"name": "not_a_net"})
    one_error(invoke("run", path, "--out", tmp_path / "run"), "network 'G_A'", "the plugin built a str",
              "not a torch.nn.Module")
    assert not (tmp_path / "run").exists()


def test_a_method_build_that_returns_no_method_is_one_error(plugin, monkeypatch, tmp_path, unaligned_root):
    load_by_env(monkeypatch, plugin("gzp_not_a_method", """
        @hookimpl
        def ganzoo_register_methods():
            return [MethodSpec("not_a_method", Cfg, lambda cfg, ctx: 42, "builds no method")]
    """))
    path = recipe(tmp_path, unaligned_root, method={"name": "not_a_method"})
    one_error(invoke("run", path, "--out", tmp_path / "run"), '[method] name="not_a_method"',
              "the plugin built a int, not a ganzoo.Method")
    assert not (tmp_path / "run").exists()


# ---- a plugin never turns a failed run into status 0 -------------------------------------------
@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "raise SystemExit"])
def test_a_run_end_hook_exiting_0_after_a_failure_is_exit_2(plugin, monkeypatch, tmp_path, unaligned_root,
                                                           exit_call):
    (unaligned_root / "trainA" / "bad.png").write_bytes(b"not an image")
    load_by_env(monkeypatch, plugin(f"gzp_end_{abs(hash(exit_call))}", f"""
        @hookimpl
        def ganzoo_on_run_end(trainer, status):
            {exit_call}
    """))
    result = invoke("run", recipe(tmp_path, unaligned_root), "--out", tmp_path / "run")
    one_error(result, "ganzoo_on_run_end: called sys.exit(", "(GANZOO_PLUGINS)",
              "while ganzoo was stopping on an error (", "bad.png: cannot read image",
              "A plugin must not end the process")


def test_a_step_hook_exiting_0_stops_the_run_with_exit_2(plugin, monkeypatch, tmp_path, unaligned_root):
    load_by_env(monkeypatch, plugin("gzp_step_exit", """
        @hookimpl
        def ganzoo_on_step_end(trainer, step, metrics):
            sys.exit(0)
    """))
    result = invoke("run", recipe(tmp_path, unaligned_root), "--out", tmp_path / "run")
    message = one_error(result, "plugin 'gzp_step_exit' (GANZOO_PLUGINS), ganzoo_on_step_end: called sys.exit(0)",
                        "remove gzp_step_exit from GANZOO_PLUGINS")
    assert "while ganzoo was stopping" not in message


def test_sys_exit_0_in_a_plugins_network_is_exit_2_through_the_installed_command(plugin, tmp_path, unaligned_root):
    plugin("gzp_forward_exit", """
        class Quitter(nn.Module):
            def __init__(self, cfg, **kw):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1)

            def forward(self, x):
                sys.exit(0)

        @hookimpl
        def ganzoo_register_generators():
            return [ComponentSpec("quitter", Cfg, Quitter, "exits in forward")]
    """)
    path = recipe(tmp_path, unaligned_root, generator={"name": "quitter"})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANZOO_PLUGINS": "gzp_forward_exit",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "plugin_modules"), os.environ.get("PYTHONPATH")]))}
    env.pop("GANZOO_DISABLE_PLUGIN_AUTOLOAD", None)
    proc = subprocess.run([str(GANZOO), "run", str(path), "--out", str(tmp_path / "run")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert "module 'gzp_forward_exit'" in errors[0] and "gzp_forward_exit.py:" in errors[0] and "in forward" in errors[0]
    assert "called sys.exit(0)" in errors[0] and "status 0" in errors[0]
    assert "remove gzp_forward_exit from GANZOO_PLUGINS" in errors[0]


# ---- hooks keep pluggy's contract otherwise ----------------------------------------------------
def test_other_hook_exceptions_keep_their_traceback_and_name_the_plugin():
    pm = get_plugin_manager(load_entrypoints=False)

    class Buggy:
        @hookimpl
        def ganzoo_on_run_start(self, trainer):
            raise RuntimeError("a bug")

    class Interrupted:
        @hookimpl
        def ganzoo_on_run_end(self, trainer, status):
            raise KeyboardInterrupt

    pm.register(Buggy(), name="buggy")
    pm.register(Interrupted(), name="interrupted")
    with pytest.raises(RuntimeError, match="a bug") as err:
        pm.hook.ganzoo_on_run_start(trainer=None)
    assert err.value.__notes__ == [f"(raised by plugin 'buggy' ({pm.origin('buggy')}), ganzoo_on_run_start)"]
    with pytest.raises(KeyboardInterrupt):
        pm.hook.ganzoo_on_run_end(trainer=None, status="failed")


def test_the_registry_names_who_registered_a_component(registry):
    from ganzoo import __version__

    assert registry.owner("generator", "resnet_9blocks") == \
        f"plugin 'cyclegan' (ganzoo {__version__}), ganzoo_register_generators"
    assert registry.owner("generator", "nothing_of_that_name") == ""
