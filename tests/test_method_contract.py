"""A new GAN family as a pure plugin (tests/contract_plugin.py, loaded through GANZOO_PLUGINS):
its own section kind, a network built lazily from the first batch's features, a loss that reads
the generator's features. It is listed, validated, trained, resumed exactly and exported
through the CLI, without a line of it in ganzoo/."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganzoo import checkpoint, testing
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.config import dump_toml
from cliinvoke import invoke
from imagefiles import write_images

import contract_plugin


@pytest.fixture(autouse=True)
def _plugin(monkeypatch):
    monkeypatch.setenv("GANZOO_PLUGINS", "contract_plugin")


def recipe(root: Path, path: Path, **changes) -> Path:
    raw = {
        "run": {"seed": 3, "device": "cpu", "n_epochs": 1, "n_epochs_decay": 1, "log_every": 1, "image_every": 0,
                "save_every": 0},
        "data": {"root": root.as_posix(), "num_workers": 0},
        "augment": {"load_size": 36, "crop_size": 32},
        "optim": {"lr_policy": "linear_steps", "decay_start_step": 2},
        "method": {"name": "featuregan", "layers": [0, 4]},
        "generator": {"name": "resnet_6blocks", "ngf": 4},
        "discriminator": {"name": "patchgan_70", "ndf": 4},
        "loss": {"name": "lsgan"},
        "head": {"name": "conv1x1", "width": 4},
    }
    for section, values in changes.items():
        if values is None:
            raw.pop(section)
        else:
            raw[section] = values
    path.write_text(dump_toml(raw))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("contract") / "ds"
    write_images(root / "trainA", 3, seed=1)
    write_images(root / "trainB", 3, seed=2)
    return root


def test_the_family_and_its_kind_are_listed():
    assert "featuregan" in invoke("list", "methods").output
    assert "conv1x1" in invoke("list", "feature_heads").output
    assert "method featuregan" in invoke("plugins").output


def test_the_registry_wide_checks_cover_a_plugin_kind_and_method():
    registry = testing.registry(contract_plugin, entrypoints=True)
    built = testing.check_component(registry, "feature_head", "conv1x1")  # with the kind's example_args
    assert len(built.heads) == 2
    assert testing.check_method(registry, "featuregan")["feat"] >= 0


def test_the_recipe_has_exactly_the_methods_sections(data, tmp_path):
    missing = invoke("run", recipe(data, tmp_path / "a.toml", head=None), "--out", tmp_path / "a", code=2).output
    assert '[head]: missing key "name": which feature head to use. Available: conv1x1 (ganzoo list feature_heads)' in missing
    typo = recipe(data, tmp_path / "b.toml")
    typo.write_text(typo.read_text().replace("[head]", "[haed]"))
    unknown = invoke("run", typo, "--out", tmp_path / "b", code=2).output
    assert 'unknown section [haed]. Did you mean "[head]"?' in unknown and 'method "featuregan"' in unknown
    plain = invoke("run", recipe(data, tmp_path / "c.toml", generator={"name": "plain_conv"}),
                   "--out", tmp_path / "c", code=2).output
    assert "PlainGenerator has no encode(x, layers)" in plain
    assert not any((tmp_path / d).exists() for d in "abc")  # nothing written


def test_trains_resumes_exactly_and_exports(data, tmp_path):
    path = recipe(data, tmp_path / "r.toml")
    invoke("run", path, "--out", tmp_path / "straight", "--steps", 5)
    invoke("run", path, "--out", tmp_path / "split", "--steps", 2)
    halfway = checkpoint.load(RunCheckpoints(tmp_path / "split").latest())
    assert set(halfway["networks"]) == {"G", "D", "H"} and set(halfway["optimizers"]) == {"G", "D", "H"}
    assert "resuming" in invoke("run", "--resume", tmp_path / "split", "--steps", 5).output

    a = checkpoint.load(RunCheckpoints(tmp_path / "straight").latest())
    b = checkpoint.load(RunCheckpoints(tmp_path / "split").latest())
    for name in ("G", "D", "H"):
        for key, value in a["networks"][name].items():
            assert torch.equal(value, b["networks"][name][key]), f"{name}.{key}"
    assert a["schedulers"] == b["schedulers"] and a["step"] == b["step"] == 5
    # the lazily built network is trained and scheduled like the others
    lrs = {name: a["optimizers"][name]["param_groups"][0]["lr"] for name in ("G", "D", "H")}
    assert len(set(lrs.values())) == 1 and lrs["H"] < 2e-4
    assert not torch.equal(a["networks"]["H"]["heads.0.weight"], halfway["networks"]["H"]["heads.0.weight"])

    out = invoke("export", "--checkpoint", tmp_path / "straight", "--format", "reference", "--output", tmp_path / "e")
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [
        "ganzoo_recipe.toml", "latest_net_D.pth", "latest_net_G.pth", "latest_net_H.pth"], out.output
