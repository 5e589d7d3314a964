"""The third-party path end to end: pip-install the example plugin, then use it from the CLI.

The plugin in plugins/example_timm_unet is a separate distribution. ganzoo finds it only
through its ``ganzoo`` entry point, and entry points are read from installed metadata, so
every check runs ganzoo in a fresh interpreter after the install.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "example_timm_unet"
PROJECT = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text(encoding="utf-8"))["project"]
DIST, VERSION = PROJECT["name"], PROJECT["version"]


def _cannot_install() -> str:
    """Why the plugin cannot be pip-installed offline into this environment ("" if it can)."""
    if importlib.util.find_spec("pip") is None:
        return "pip is not available in this interpreter (python -m pip)"
    # --no-build-isolation builds with this environment's setuptools instead of fetching one.
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return "setuptools is not installed, and the offline editable install builds with it"
    if tuple(int(n) for n in re.findall(r"\d+", version)[:2]) < (70, 1) and importlib.util.find_spec("wheel") is None:
        return f"setuptools {version} needs the 'wheel' package for an editable install (or setuptools >= 70.1)"
    return ""


_WHY_NOT = _cannot_install()
pytestmark = pytest.mark.skipif(bool(_WHY_NOT), reason=f"cannot install the example plugin offline: {_WHY_NOT}")

RECIPE = """\
[run]
name = "timm_unet_smoke"
max_steps = 2
log_every = 1
image_every = 0
save_every = 0
device = "cpu"

[data]
root = {root}
pairing = "unaligned"
batch_size = 1
num_workers = 0

[augment]
load_size = 36
crop_size = 32

[method]
name = "cyclegan"

[generator]
name = "timm_unet"
backbone = "resnet18"

[discriminator]
name = "patchgan_70"
ndf = 8

[loss]
name = "lsgan"
"""


def _pip(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _is_installed() -> bool:
    try:
        importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def installed_plugin():
    """Install the example plugin (editable) for this module; uninstall it afterwards.

    ``--no-deps --no-build-isolation --no-index`` keeps pip off the network: ganzoo, timm
    and setuptools are already in the environment. If the plugin was installed before the
    tests ran, it is used as it is and left installed.
    """
    if _is_installed():
        yield None
        return
    start = time.perf_counter()
    result = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(PLUGIN_DIR))
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        pytest.fail(f"pip install -e {PLUGIN_DIR} failed ({seconds:.1f} s):\n{result.stdout}\n{result.stderr}")
    try:
        yield seconds
    finally:
        _pip("uninstall", "-y", DIST)


def _ganzoo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m ganzoo.cli ARGS`` in a fresh interpreter, with plugin autoload on."""
    env = {k: v for k, v in os.environ.items() if k not in ("GANZOO_DISABLE_PLUGIN_AUTOLOAD", "GANZOO_TRACE_PLUGINS")}
    cmd = [sys.executable, "-m", "ganzoo.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _check(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (
        f"{' '.join(result.args[2:])} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result.stdout


def test_list_generators_names_the_plugin(installed_plugin, tmp_path):
    out = _check(_ganzoo("list", "generators", cwd=tmp_path))
    lines = [line for line in out.splitlines() if line.split()[:1] == ["timm_unet"]]
    assert len(lines) == 1, out
    assert lines[0].rstrip().endswith("[timm_unet]"), lines[0]


def test_plugins_shows_distribution_and_version(installed_plugin, tmp_path):
    out = _check(_ganzoo("plugins", cwd=tmp_path))
    assert f"timm_unet ({DIST} {VERSION})" in out, out
    section = out.split(f"timm_unet ({DIST} {VERSION})", 1)[1]
    assert "ganzoo_register_generators" in section and "generator timm_unet" in section, out


def _write_dataset(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB", "testA", "testB"):
        (root / split).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / f"{i:03d}.png")


def test_trains_two_steps_from_a_recipe(installed_plugin, tmp_path):
    _write_dataset(tmp_path / "ds")
    recipe = tmp_path / "timm_unet.toml"
    # A JSON string is a valid TOML basic string, whatever the path contains.
    recipe.write_text(RECIPE.format(root=json.dumps((tmp_path / "ds").as_posix())), encoding="utf-8")
    run_dir = tmp_path / "run"
    _check(_ganzoo("run", str(recipe), "--steps", "2", "--out", str(run_dir), cwd=tmp_path))
    assert (run_dir / "checkpoints" / "latest").is_file()
