"""`ganzoo run RECIPE --init-from DIR`: training starts from the reference's ``{epoch}_net_{NAME}.pth``.

The reference-layout files are written here with plain ``torch.save`` of random tensors in
the networks' key layout (not by ganzoo's exporter), including the quirks of old saves:
instance-norm running stats (PyTorch < 0.4), batch norm without ``num_batches_tracked`` and the
``module.`` prefix of DataParallel. A lifecycle hook captures the networks when the run starts,
so a run that skipped loading fails; a second check reads the first checkpoint instead.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shlex
import tomllib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from ganzoo import checkpoint, hookimpl
from ganzoo.runlog import read_metrics
from ganzoo._typed import build_dataclass
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.cli import cli
from ganzoo.registry import Registry
from imagefiles import write_images
from recipefiles import tiny_toml

CYCLEGAN = {"run": {"n_epochs_decay": 2}, "generator": {"ngf": 8}, "discriminator": {"ndf": 8}}

PIX2PIX = {"data": {"pairing": "named"}, "method": {"name": "pix2pix"},
           "generator": {"name": "unet", "num_downs": 5, "ngf": 8},
           "discriminator": {"ndf": 8, "norm": "batch"}, "loss": {"name": "vanilla"}}

# The reference's file names: networks and the channels each sees (3-channel data)
CYCLEGAN_NETS = {"G_A": ("generator", "resnet_6blocks", {"ngf": 8}, 3),
                 "G_B": ("generator", "resnet_6blocks", {"ngf": 8}, 3),
                 "D_A": ("discriminator", "patchgan_70", {"ndf": 8}, 3),
                 "D_B": ("discriminator", "patchgan_70", {"ndf": 8}, 3)}
PIX2PIX_NETS = {"G": ("generator", "unet", {"ngf": 8, "num_downs": 5}, 3),
                "D": ("discriminator", "patchgan_70", {"ndf": 8, "norm": "batch"}, 6)}


@pytest.fixture(autouse=True)
def autoload_plugins(monkeypatch):
    monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)


class StartCapture:
    """A test plugin: the networks' state_dicts and the optimisers' state when the run starts."""

    def __init__(self) -> None:
        self.networks: dict[str, dict[str, torch.Tensor]] = {}
        self.optimizer_states: dict[str, int] = {}

    @hookimpl
    def ganzoo_on_run_start(self, trainer):
        self.networks = {n: {k: v.detach().clone() for k, v in net.state_dict().items()}
                         for n, net in trainer.method.networks.items()}
        self.optimizer_states = {n: len(o.state) for n, o in trainer.method.optimizers.items()}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def reference_state(kind: str, name: str, settings: dict, in_channels: int, registry: Registry,
                    seed: int) -> dict[str, torch.Tensor]:
    """A network's key layout filled with random values no initialisation would produce."""
    spec = registry.get(kind, name)
    cfg = build_dataclass(spec.config_cls, settings)
    net = spec.build(cfg, in_channels=in_channels, out_channels=3) if kind == "generator" else \
        spec.build(cfg, in_channels=in_channels)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in net.state_dict().items():
        if not value.is_floating_point():
            state[key] = torch.full_like(value, 7)  # num_batches_tracked
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=gen) * 0.1 + 0.01
    state["_legacy_instance_norms"] = [p for p, m in net.named_modules() if isinstance(m, nn.InstanceNorm2d)]
    return state


def write_reference(folder: Path, nets: dict, registry: Registry, epoch: str = "latest", *, legacy: bool = False,
                    old_batch_norm: bool = False, data_parallel: str = "") -> dict[str, dict[str, torch.Tensor]]:
    """Write ``{epoch}_net_{NAME}.pth`` files; return what a strict load must leave in each network."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for i, (net_name, (kind, name, settings, cin)) in enumerate(nets.items()):
        state = reference_state(kind, name, settings, cin, registry, seed=100 + i)
        norms = state.pop("_legacy_instance_norms")
        expected[net_name] = dict(state)
        saved = dict(state)
        if legacy:  # what PyTorch < 0.4 saved for every InstanceNorm2d
            for prefix in norms:
                saved[f"{prefix}.running_mean"] = torch.zeros(1)
                saved[f"{prefix}.running_var"] = torch.ones(1)
        if old_batch_norm:  # PyTorch < 0.4.1: no counters; loading fills in 0
            for key in [k for k in saved if k.endswith("num_batches_tracked")]:
                del saved[key]
                expected[net_name][key] = torch.tensor(0)
        if net_name == data_parallel:
            saved = {f"module.{k}": v for k, v in saved.items()}
        torch.save(saved, folder / f"{epoch}_net_{net_name}.pth")
    return expected


def write_recipe(tmp_path: Path, changes: dict, root: Path) -> Path:
    """The tiny recipe with ``changes`` (CYCLEGAN or PIX2PIX) on the data in ``root``."""
    path = tmp_path / "recipe.toml"
    path.write_text(tiny_toml(root, **changes))
    return path


@pytest.fixture
def unaligned(tmp_path) -> Path:
    root = tmp_path / "ds"
    write_images(root / "trainA", 3, size=36, seed=1)
    write_images(root / "trainB", 3, size=36, seed=2)
    return root


@pytest.fixture
def named(tmp_path) -> Path:
    root = tmp_path / "pairs"
    write_images(root / "trainA", 2, size=36, seed=1, names=["p", "q"])
    write_images(root / "trainB", 2, size=36, seed=2, names=["p", "q"])
    return root


@pytest.fixture
def capture(pm, monkeypatch) -> StartCapture:
    plugin = StartCapture()
    pm.register(plugin, name="capture")
    monkeypatch.setattr("ganzoo.cli._registry", lambda: (pm, Registry(pm)))
    return plugin


def assert_started_from(capture: StartCapture, expected: dict[str, dict[str, torch.Tensor]]) -> None:
    assert set(capture.networks) == set(expected)
    for net_name, state in expected.items():
        started = capture.networks[net_name]
        assert set(started) == set(state), net_name
        for key, value in state.items():
            assert torch.equal(started[key], value), f"{net_name} {key} did not start from the file"
    assert all(n == 0 for n in capture.optimizer_states.values()), "optimisers must start fresh"


# ---- training starts from the files --------------------------------------------------------
def test_cyclegan_starts_from_legacy_reference_files(tmp_path, unaligned, registry, capture):
    ckpts = tmp_path / "checkpoints" / "horse2zebra"
    expected = write_reference(ckpts, CYCLEGAN_NETS, registry, legacy=True, data_parallel="D_B")
    out = tmp_path / "run"
    result = invoke("run", write_recipe(tmp_path, CYCLEGAN, unaligned), "--out", out, "--steps", 1,
                    "--init-from", ckpts)
    assert result.exit_code == 0, result.output
    assert_started_from(capture, expected)
    assert f"initialised G_A, G_B, D_A, D_B from {ckpts}/latest_net_*.pth" in result.output
    record = tomllib.loads((out / "init_from.toml").read_text())
    assert record["init_from"] == {"origin": str(ckpts), "epoch": "latest", "epoch_count": 1}
    for name in CYCLEGAN_NETS:
        path = ckpts / f"latest_net_{name}.pth"
        assert record["files"][name] == {"path": str(path.resolve()),
                                         "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_a_skipped_load_would_fail_the_capture(tmp_path, unaligned, registry, capture):
    """The same run without --init-from starts elsewhere: the capture really tells them apart."""
    expected = write_reference(tmp_path / "ckpts", CYCLEGAN_NETS, registry)
    result = invoke("run", write_recipe(tmp_path, CYCLEGAN, unaligned), "--out", tmp_path / "run", "--steps", 1)
    assert result.exit_code == 0, result.output
    with pytest.raises(AssertionError, match="did not start from the file"):
        assert_started_from(capture, expected)
    assert not (tmp_path / "run" / "init_from.toml").exists()


@pytest.mark.parametrize("form", ["folder+epoch", "prefix", "file"])
def test_pix2pix_batch_norm_files_of_an_epoch(tmp_path, named, registry, capture, form):
    ckpts = tmp_path / "checkpoints" / "facades"
    expected = write_reference(ckpts, PIX2PIX_NETS, registry, epoch="5", old_batch_norm=True)
    write_reference(ckpts, PIX2PIX_NETS, registry, epoch="latest")  # other values: must not be taken
    args = {"folder+epoch": ["--init-from", ckpts, "--init-epoch", "5"], "prefix": ["--init-from", ckpts / "5"],
            "file": ["--init-from", ckpts / "5_net_G.pth"]}[form]
    out = tmp_path / "run"
    result = invoke("run", write_recipe(tmp_path, PIX2PIX, named), "--out", out, "--steps", 1, *args)
    assert result.exit_code == 0, result.output
    assert_started_from(capture, expected)
    assert "initialised G, D from" in result.output and "5_net_*.pth" in result.output
    assert tomllib.loads((out / "init_from.toml").read_text())["init_from"]["epoch"] == "5"


def test_first_checkpoint_continues_the_files_with_fresh_optimisers_and_schedule(tmp_path, unaligned, registry):
    """Without hooks: after one step at a negligible lr the checkpoint still holds the files'
    weights; Adam has taken exactly one step; the lr follows [run] epoch_count (--epoch_count)."""
    ckpts = tmp_path / "ckpts"
    expected = write_reference(ckpts, CYCLEGAN_NETS, registry)
    out = tmp_path / "run"
    result = invoke("run", write_recipe(tmp_path, CYCLEGAN, unaligned), "--out", out, "--steps", 1,
                    "--init-from", ckpts, "--set", "optim.lr=3e-12", "--set", "run.epoch_count=2")
    assert result.exit_code == 0, result.output
    assert "schedule from epoch 2" in result.output
    tree = checkpoint.load(RunCheckpoints(out).latest())
    for name, state in expected.items():
        for key, value in state.items():
            assert torch.allclose(tree["networks"][name][key], value, rtol=0, atol=1e-9), (name, key)
    for opt in tree["optimizers"].values():
        assert {int(s["step"]) for s in opt["state"].values()} == {1}
    first = read_metrics(out / "metrics.jsonl")[0]
    # the reference's linear rule at its epoch 2 of n_epochs 1 + n_epochs_decay 2: 1 - 1/3
    assert first["epoch"] == 2 and first["lr"]["G"] == pytest.approx(3e-12 * 2 / 3)
    # a resumed run continues from its own checkpoint and keeps the record
    record = (out / "init_from.toml").read_bytes()
    resumed = invoke("run", "--resume", out, "--steps", 2)
    assert resumed.exit_code == 0, resumed.output
    assert (out / "init_from.toml").read_bytes() == record


def test_files_of_ganzoo_export_train_on(tmp_path, unaligned, capture):
    recipe = write_recipe(tmp_path, CYCLEGAN, unaligned)
    first = tmp_path / "first"
    assert invoke("run", recipe, "--out", first, "--steps", 1).exit_code == 0
    exported = tmp_path / "exported"
    assert invoke("export", "--checkpoint", first, "--output", exported).exit_code == 0
    result = invoke("run", recipe, "--out", tmp_path / "second", "--steps", 1, "--init-from", exported)
    assert result.exit_code == 0, result.output
    assert_started_from(capture, checkpoint.load(RunCheckpoints(first).latest())["networks"])


def test_dry_run_checks_the_files(tmp_path, unaligned, registry):
    ckpts = tmp_path / "ckpts"
    write_reference(ckpts, CYCLEGAN_NETS, registry)
    recipe = write_recipe(tmp_path, CYCLEGAN, unaligned)
    result = invoke("run", recipe, "--dry-run", "--init-from", ckpts)
    assert result.exit_code == 0, result.output
    assert "latest_net_G_A.pth, latest_net_G_B.pth, latest_net_D_A.pth, latest_net_D_B.pth fit" in result.output
    bad = invoke("run", recipe, "--dry-run", "--init-from", ckpts, "--set", "generator.ngf=4")
    assert bad.exit_code == 2 and "--set generator.ngf=8" in bad.output


# ---- errors: exit 2, one message, nothing written -------------------------------------------
def snapshot(path: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def assert_one_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert [line for line in lines if line.lower().startswith("error")] == lines[:1], result.output
    message = result.output
    assert message.startswith("error: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    return message


class Payload:
    """Unpickling this runs ``touch marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _missing_dir(c):
    return ["--init-from", c.tmp / "checkpoints" / "nowhere"], ["nowhere: no such folder", "--checkpoints_dir/--name"]


def _missing_prefix_dir(c):
    return ["--init-from", c.tmp / "nowhere" / "200"], [f"{c.tmp / 'nowhere'}: no such folder"]


def _missing_network(c):
    (c.ckpts / "latest_net_D_B.pth").unlink()
    return ["--init-from", c.ckpts], [
        f"no latest_net_D_B.pth in {c.ckpts}", "found: latest_net_D_A.pth, latest_net_G_A.pth, latest_net_G_B.pth",
        "needs the networks G_A, G_B, D_A, D_B"]


def _other_epoch_complete(c):
    (c.ckpts / "latest_net_D_B.pth").unlink()
    write_reference(c.ckpts, CYCLEGAN_NETS, c.registry, epoch="10")
    return ["--init-from", c.ckpts], ["no latest_net_D_B.pth", "10_net_G_A.pth", "--init-epoch (10)"]


def _pix2pix_files_for_cyclegan(c):
    folder = c.tmp / "facades"
    write_reference(folder, PIX2PIX_NETS, c.registry)
    return ["--init-from", folder], [
        "no latest_net_G_A.pth, latest_net_G_B.pth, latest_net_D_A.pth, latest_net_D_B.pth in",
        "found: latest_net_D.pth, latest_net_G.pth", "check [method] name"]


def _empty_folder(c):
    (c.tmp / "empty").mkdir()
    return ["--init-from", c.tmp / "empty"], ["it holds no *_net_*.pth files"]


def _generator_width(c):
    return ["--init-from", c.ckpts, "--set", "generator.ngf=4"], [
        f"{c.ckpts / 'latest_net_G_A.pth'}: does not fit network G_A", 'name = "resnet_6blocks", ngf = 4',
        "model.1.weight is (8, 3, 7, 7) in the file, (4, 3, 7, 7) in the recipe's network",
        "The file holds resnet_6blocks (ngf = 8", "--set generator.ngf=8"]


def _generator_depth_and_norm(c):
    return ["--init-from", c.ckpts, "--set", "generator.name=resnet_9blocks", "--set", "generator.norm=batch"], [
        "does not fit network G_A", "key(s) missing from the file", "--set generator.name=resnet_6blocks",
        "--set generator.norm=instance"]


def _discriminator_layout(c):
    return (["--init-from", c.ckpts, "--set", "discriminator.name=patchgan", "--set", "discriminator.n_layers=2"],
            ["latest_net_D_A.pth: does not fit network D_A", "--set discriminator.name=patchgan_70"])


def _discriminator_norm(c):
    return (["--init-from", c.ckpts, "--set", "discriminator.norm=batch"],
            ["does not fit network D_A", "unexpected key(s) in the file: model.2.bias",
             'The file holds patchgan_70 (ndf = 8, norm = "instance")', "--set discriminator.norm=instance"])


def _channels(c):
    return (["--init-from", c.ckpts, "--set", "data.channels_a=1", "--set", "data.channels_b=1"],
            ["does not fit network G_A", "(8, 3, 7, 7) in the file, (8, 1, 7, 7)", "channels_a/channels_b"])


def _malicious_pickle(c):
    torch.save({"model.1.weight": Payload(c.marker)}, c.ckpts / "latest_net_G_B.pth")  # a pickled .pth
    return ["--init-from", c.ckpts], [f"{c.ckpts / 'latest_net_G_B.pth'}: not a plain state_dict",
                                      "it refers to", "nothing from it was run", "never executes code"]


def _a_model_not_a_state_dict(c):
    torch.save([torch.zeros(2)], c.ckpts / "latest_net_G_A.pth")
    return ["--init-from", c.ckpts], ["latest_net_G_A.pth: not a plain state_dict (it holds a list)"]


def _with_resume(c):
    return ["--init-from", c.ckpts, "--resume", c.tmp / "old"], ["--init-from", "--resume", "Drop --init-from"]


def _bad_epoch(c):
    return ["--init-from", c.ckpts, "--init-epoch", "last"], ["--init-epoch last: not an epoch", "latest"]


def _epoch_without_folder(c):
    return ["--init-epoch", "5"], ["--init-epoch 5", "give --init-from DIR too"]


def _two_epochs(c):
    return ["--init-from", c.ckpts / "5", "--init-epoch", "7"], ["two different epochs (5 and 7)"]


ERRORS = {f.__name__.lstrip("_"): f for f in (
    _missing_dir, _missing_prefix_dir, _missing_network, _other_epoch_complete, _pix2pix_files_for_cyclegan,
    _empty_folder, _generator_width, _generator_depth_and_norm, _discriminator_layout, _discriminator_norm,
    _channels, _malicious_pickle, _a_model_not_a_state_dict, _with_resume, _bad_epoch, _epoch_without_folder,
    _two_epochs)}


class ErrorCtx:
    def __init__(self, tmp: Path, registry: Registry) -> None:
        self.tmp, self.registry = tmp, registry
        self.ckpts = tmp / "checkpoints" / "horse2zebra"
        self.marker = tmp / "pwned"
        write_reference(self.ckpts, CYCLEGAN_NETS, registry)


@pytest.mark.parametrize("case", list(ERRORS))
def test_init_from_errors_exit_2_with_one_message_and_write_nothing(case, tmp_path, unaligned, registry):
    c = ErrorCtx(tmp_path, registry)
    args, fragments = ERRORS[case](c)
    recipe = write_recipe(tmp_path, CYCLEGAN, unaligned)
    out = tmp_path / "new-run"
    before = snapshot(tmp_path)
    result = invoke("run", recipe, "--out", out, "--steps", 1, *args)
    assert_one_error(result, *fragments)
    assert not out.exists(), "a failed --init-from must not create the run directory"
    assert snapshot(tmp_path) == before
    assert not c.marker.exists(), "the pickle ran code"
    if case == "malicious_pickle":  # ... and it would have: the payload is live
        pickle.loads(pickle.dumps(Payload(c.marker)))
        assert c.marker.exists()
