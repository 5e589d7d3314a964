"""Every option of the reference exists as a recipe key, builds, and takes a training step.

Network and loss options run ``build_method`` + ``train_step`` on random tensors (fast); data
and schedule options go through the datasets, the learning-rate schedulers and one full
``ganzoo run``. docs/migrating.md maps each reference flag to the keys exercised here.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from ganzoo.build import build_dataset, build_method
from ganzoo.cli import cli
from ganzoo.config import CORE_SECTIONS, OptimConfig, Recipe, RunConfig, load_recipe
from ganzoo.data.augment import build_augment
from ganzoo.losses.adversarial import WganGpConfig, WganGpLoss
from ganzoo.errors import RecipeError
from ganzoo.schedule import Schedule
from ganzoo.train import Trainer

CPU = torch.device("cpu")
BASE: dict[str, dict[str, Any]] = {
    "run": {"device": "cpu"},
    "data": {"root": ".", "pairing": "unaligned"},
    "method": {"name": "cyclegan"},
    "generator": {"name": "resnet_6blocks", "ngf": 2},
    "discriminator": {"name": "patchgan_70", "ndf": 2},
    "loss": {"name": "lsgan"},
}
PIX2PIX = {"data": {"pairing": "aligned"}, "method": {"name": "pix2pix"},
           "generator": {"name": "unet", "num_downs": 5, "ngf": 2}}


def make_recipe(registry, *layers: dict[str, dict[str, Any]]) -> Recipe:
    raw = {k: dict(v) for k, v in BASE.items()}
    for layer in layers:
        for section, values in layer.items():
            if "name" in values and values["name"] != raw.get(section, {}).get("name"):
                raw[section] = {}  # another component: the old one's keys do not apply
            raw.setdefault(section, {}).update(values)
    return load_recipe(raw, registry, source="test")


def train_step(registry, *layers: dict[str, dict[str, Any]], size: int = 32, batch: int = 1, seed: int = 0):
    """Build the method, take one step on random images; check every network learned something."""
    recipe = make_recipe(registry, *layers)
    torch.manual_seed(seed)
    method = build_method(recipe, registry, CPU)
    ca, cb = recipe.data.channels_a, recipe.data.channels_b
    real_a, real_b = torch.rand(batch, ca, size, size) * 2 - 1, torch.rand(batch, cb, size, size) * 2 - 1
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in method.networks.items()}
    torch.manual_seed(seed + 1)
    metrics = method.train_step(real_a, real_b)
    assert metrics and all(math.isfinite(v) for v in metrics.values()), metrics
    for name, net in method.networks.items():
        changed = any(not torch.equal(p, q) for p, q in zip(net.parameters(), before[name]))
        assert changed, f"{name} was not updated"
    return method, metrics


# ---- networks --------------------------------------------------------------------------------
@pytest.mark.parametrize(("generator", "size", "method"), [
    ({"name": "resnet_6blocks", "ngf": 2}, 32, "cyclegan"),
    ({"name": "resnet_9blocks", "ngf": 2}, 32, "cyclegan"),
    ({"name": "unet_128", "ngf": 2}, 128, "pix2pix"),
    ({"name": "unet_256", "ngf": 1}, 256, "pix2pix"),
    ({"name": "unet", "ngf": 2, "num_downs": 5}, 32, "pix2pix"),
])
def test_generators(registry, generator, size, method):
    layers = [PIX2PIX] if method == "pix2pix" else []
    train_step(registry, *layers, {"generator": generator}, size=size)


@pytest.mark.parametrize(("discriminator", "size"), [
    ({"name": "patchgan_70"}, 32),
    ({"name": "patchgan", "n_layers": 1}, 32),
    ({"name": "patchgan", "n_layers": 2}, 32),
    ({"name": "patchgan", "n_layers": 3}, 32),
    ({"name": "patchgan", "n_layers": 4}, 64),
    ({"name": "pixelgan"}, 32),
])
def test_discriminators(registry, discriminator, size):
    method, _ = train_step(registry, {"discriminator": {"ndf": 2, **discriminator}}, size=size)
    convs = [m for m in method.networks["D_A"].modules() if isinstance(m, nn.Conv2d)]
    n_layers = {"patchgan_70": 3, "pixelgan": None}.get(discriminator["name"], discriminator.get("n_layers"))
    if n_layers is None:
        assert all(c.kernel_size == (1, 1) for c in convs) and len(convs) == 3
    else:
        assert sum(c.stride == (2, 2) for c in convs) == n_layers


@pytest.mark.parametrize("norm", ["instance", "batch", "none", "syncbatch"])
@pytest.mark.parametrize("method", ["cyclegan", "pix2pix"])
def test_norms(registry, norm, method):
    layers = [PIX2PIX] if method == "pix2pix" else []
    trained, _ = train_step(registry, *layers, {"generator": {"norm": norm}, "discriminator": {"norm": norm}})
    kind = {"instance": nn.InstanceNorm2d, "batch": nn.BatchNorm2d, "syncbatch": nn.SyncBatchNorm}.get(norm)
    for net in trained.networks.values():
        norms = [m for m in net.modules() if isinstance(m, (nn.InstanceNorm2d, nn.modules.batchnorm._BatchNorm))]
        assert all(type(m) is kind for m in norms) and (bool(norms) == (kind is not None))


def test_syncbatch_in_one_process_is_batch_norm(registry):
    """Without a process group SyncBatchNorm falls back to batch norm: same outputs in training mode."""
    nets = []
    for norm in ("batch", "syncbatch"):
        torch.manual_seed(0)
        method = build_method(make_recipe(registry, {"generator": {"norm": norm}}), registry, CPU)
        nets.append(method.networks["G_A"].train())
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(nets[1](x), nets[0](x))


@pytest.mark.parametrize("init_type", ["normal", "xavier", "kaiming", "orthogonal"])
@pytest.mark.parametrize("gain", [0.02, 0.5])
def test_inits(registry, init_type, gain):
    init = {"init_type": init_type, "init_gain": gain}
    recipe = make_recipe(registry, {"generator": {"ngf": 8, "norm": "batch", **init}, "discriminator": init})
    torch.manual_seed(0)
    g = build_method(recipe, registry, CPU).networks["G_A"]
    conv = g.model[10].conv_block[1]  # 32 x 32 x 3 x 3: fan_in = fan_out = 288
    w = conv.weight.detach().flatten(1)
    expected_std = {"normal": gain, "xavier": gain * math.sqrt(2 / (288 + 288)), "kaiming": math.sqrt(2 / 288)}
    if init_type == "orthogonal":
        torch.testing.assert_close(w @ w.T, gain**2 * torch.eye(32), atol=1e-5 * max(gain**2, 1), rtol=1e-4)
    else:
        assert abs(w.std().item() / expected_std[init_type] - 1) < 0.05
    bn = g.model[2]
    assert abs(bn.weight.std().item() / gain - 1) < 0.6 and abs(bn.weight.mean().item() - 1) < 3 * gain
    assert all(not m.bias.any() for m in g.modules() if isinstance(m, nn.Conv2d) and m.bias is not None)
    train_step(registry, {"generator": init, "discriminator": init})


@pytest.mark.parametrize("dropout", [True, False])
def test_dropout(registry, dropout):
    method, _ = train_step(registry, {"generator": {"dropout": dropout}})
    assert sum(isinstance(m, nn.Dropout) for m in method.networks["G_A"].modules()) == (6 if dropout else 0)
    method, _ = train_step(registry, PIX2PIX, {"generator": {"name": "unet", "num_downs": 7, "dropout": dropout}},
                           size=128)
    assert sum(isinstance(m, nn.Dropout) for m in method.networks["G"].modules()) == (2 if dropout else 0)


@pytest.mark.parametrize("loss", ["lsgan", "vanilla", "wgangp", "hinge"])
@pytest.mark.parametrize("method", ["cyclegan", "pix2pix"])
def test_gan_modes(registry, loss, method):
    layers = [PIX2PIX] if method == "pix2pix" else []
    train_step(registry, *layers, {"loss": {"name": loss}})


def test_method_options(registry):
    _, m = train_step(registry, {"method": {"lambda_a": 0.0, "lambda_b": 5.0, "lambda_identity": 0.0, "pool_size": 0}},
                      batch=2)
    assert m["cycle_A"] == 0 and m["cycle_B"] > 0 and "idt_A" not in m
    _, full = train_step(registry, {"method": {"lambda_identity": 0.5, "pool_size": 50}})
    _, half = train_step(registry, {"method": {"lambda_identity": 0.25, "pool_size": 50}})
    assert half["idt_A"] == pytest.approx(full["idt_A"] / 2, rel=1e-5)
    _, l1_100 = train_step(registry, PIX2PIX, {"method": {"lambda_l1": 100.0}})
    _, l1_50 = train_step(registry, PIX2PIX, {"method": {"lambda_l1": 50.0}})
    assert l1_50["G_L1"] == pytest.approx(l1_100["G_L1"] / 2, rel=1e-5)


def test_optimiser_options(registry):
    method, _ = train_step(registry, {"optim": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.99}})
    for opt in method.optimizers.values():
        assert opt.param_groups[0]["lr"] == 1e-3 and opt.param_groups[0]["betas"] == (0.9, 0.99)


@pytest.mark.parametrize(("ca", "cb", "method"), [(1, 1, "cyclegan"), (4, 4, "cyclegan"), (3, 1, "cyclegan"),
                                                  (1, 4, "pix2pix")])
def test_channels(registry, ca, cb, method):
    layers = [PIX2PIX] if method == "pix2pix" else [{"method": {"lambda_identity": 0.5 if ca == cb else 0.0}}]
    trained, _ = train_step(registry, *layers, {"data": {"channels_a": ca, "channels_b": cb}})
    g = trained.generator("AtoB")
    assert g(torch.zeros(1, ca, 32, 32)).shape == (1, cb, 32, 32)


# ---- WGAN-GP -----------------------------------------------------------------------------------
class LinearCritic(nn.Module):
    """D(x) = sum(w * x): its input gradient is w everywhere, so the penalty is known exactly."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(1, *shape))

    def forward(self, x):
        return (self.w * x).sum(dim=(1, 2, 3))


@pytest.mark.parametrize("gp_type", ["mixed", "real", "fake"])
@pytest.mark.parametrize(("lambda_gp", "constant"), [(10.0, 1.0), (3.0, 2.0)])
def test_wgangp_penalty_of_a_linear_critic(gp_type, lambda_gp, constant):
    critic = LinearCritic((3, 8, 8))
    loss = WganGpLoss(WganGpConfig(lambda_gp=lambda_gp, constant=constant, gp_type=gp_type))
    real, fake = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    expected = lambda_gp * (critic.w.detach().norm() - constant) ** 2
    penalty = loss.penalty(critic, real, fake)
    assert penalty.item() > 0
    torch.testing.assert_close(penalty.detach(), expected, rtol=1e-5, atol=0)
    penalty.backward()  # create_graph: the penalty trains the critic
    torch.testing.assert_close(critic.w.grad, 2 * lambda_gp * (1 - constant / critic.w.norm()) * critic.w,
                               rtol=1e-4, atol=1e-6)


def test_wgangp_penalty_is_in_the_pix2pix_d_loss(registry):
    layers = (PIX2PIX, {"loss": {"name": "wgangp", "gp_type": "real"}, "discriminator": {"norm": "instance"}})
    recipe = make_recipe(registry, *layers)
    torch.manual_seed(0)
    method = build_method(recipe, registry, CPU)
    real_a, real_b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    real_ab = torch.cat((real_a, real_b), 1)
    expected = method.gan_loss.penalty(copy.deepcopy(method.networks["D"]), real_ab, real_ab).item()
    m = method.train_step(real_a, real_b)
    assert expected > 0
    assert m["D"] - 0.5 * (m["D_real"] + m["D_fake"]) == pytest.approx(expected, rel=1e-4)
    _, without = train_step(registry, PIX2PIX, {"loss": {"name": "wgangp", "lambda_gp": 0.0}})
    assert without["D"] == pytest.approx(0.5 * (without["D_real"] + without["D_fake"]), abs=1e-6)


def test_wgangp_penalty_is_in_the_cyclegan_d_loss(registry):
    runs = {lam: train_step(registry, {"loss": {"name": "wgangp", "lambda_gp": lam}})[1] for lam in (0.0, 10.0, 20.0)}
    assert runs[10.0]["G"] == runs[0.0]["G"]  # the generator step comes first and has no penalty
    for key in ("D_A", "D_B"):
        p10, p20 = runs[10.0][key] - runs[0.0][key], runs[20.0][key] - runs[0.0][key]
        assert p10 > 0 and p20 == pytest.approx(2 * p10, rel=1e-3)


# ---- learning-rate policies ----------------------------------------------------------------------
def _lrs(policy: str, epochs: int, losses: list[float] | None = None, **run: int) -> list[float]:
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = Schedule(OptimConfig(lr=1.0, lr_policy=policy, lr_decay_iters=2), RunConfig(**run))
    schedule.add("G", opt)
    out = []
    for e in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()  # an epoch of training (no gradients here), then the epoch's scheduler step
        schedule.after_step()  # a no-op for epoch policies
        schedule.after_epoch(losses[e] if losses else 1.0)
    return out


def _step_lrs(steps: int, total: int, **optim) -> list[float]:
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = Schedule(OptimConfig(lr=1.0, lr_policy="linear_steps", **optim), RunConfig())
    schedule.total_steps = total
    schedule.add("G", opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.after_step()
        schedule.after_epoch(1.0)  # ignored by a per-step policy
    return out


def test_linear_steps_constant_then_decay_to_zero():
    # "3,000 steps, constant for the first half, then linear decay to zero", scaled to 12 steps
    got = _step_lrs(12, 12, decay_start_step=6)
    assert got == pytest.approx([1.0] * 7 + [1 - k / 6 for k in range(1, 6)])
    assert _step_lrs(12, 100, decay_start_step=6, decay_end_step=12) == pytest.approx(got)  # explicit end
    # warm-up: lr / warmup_steps, 2 lr / warmup_steps, ... then constant
    assert _step_lrs(5, 100, warmup_steps=4, decay_start_step=50) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])


def test_step_keys_need_the_step_policy(registry):
    with pytest.raises(RecipeError, match=r'\[optim\] decay_start_step.*lr_policy = "linear_steps"'):
        make_recipe(registry, {"optim": {"decay_start_step": 10}})
    with pytest.raises(RecipeError, match=r"decay_end_step 5 must come after decay_start_step 10"):
        make_recipe(registry, {"optim": {"lr_policy": "linear_steps", "decay_start_step": 10, "decay_end_step": 5}})


def test_lr_policies_follow_the_reference_formulas():
    # linear: 1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1), epoch counted from 0
    for epoch_count in (1, 3):
        got = _lrs("linear", 7, n_epochs=3, n_epochs_decay=4, epoch_count=epoch_count)
        want = [1 - max(0, e + epoch_count - 3) / 5 for e in range(7)]
        assert got == pytest.approx(want)
    assert _lrs("linear", 7, n_epochs=3, n_epochs_decay=4)[-1] == pytest.approx(1 / 5)  # lr / (decay + 1) at the end
    assert _lrs("step", 7) == pytest.approx([0.1 ** (e // 2) for e in range(7)])
    assert _lrs("cosine", 5, n_epochs=4) == pytest.approx([(1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)])
    # plateau: x0.2 after more than 5 epochs without a 1 % improvement
    assert _lrs("plateau", 14) == pytest.approx([1.0] * 7 + [0.2] * 6 + [0.04])
    assert _lrs("plateau", 14, losses=[0.9**e for e in range(14)]) == [1.0] * 14


# ---- data options ----------------------------------------------------------------------------
def _folders(root: Path, size: tuple[int, int], n_a: int = 3, n_b: int = 3) -> Path:
    """trainA/ trainB/ with random RGB images of (width, height) ``size``."""
    for sub, n in (("trainA", n_a), ("trainB", n_b)):
        folder = root / sub
        folder.mkdir(parents=True)
        rng = np.random.default_rng(n)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize(("augment", "image_size", "expected"), [
    ({"preprocess": "resize_and_crop", "load_size": 36, "crop_size": 32}, (48, 72), (32, 32)),
    ({"preprocess": "crop", "crop_size": 32}, (48, 72), (32, 32)),
    ({"preprocess": "scale_width", "load_size": 32, "crop_size": 32}, (48, 72), (48, 32)),
    ({"preprocess": "scale_width_and_crop", "load_size": 32, "crop_size": 24}, (48, 72), (24, 24)),
    ({"preprocess": "none", "flip": False}, (50, 70), (72, 48)),
])
def test_preprocess_modes(registry, tmp_path, augment, image_size, expected):
    recipe = make_recipe(registry, {"data": {"root": str(_folders(tmp_path, image_size))}, "augment": augment})
    dataset = build_dataset(recipe, registry, "train")
    aug = build_augment(recipe.augment, aligned=False, train=True)
    item = dataset[0]
    real_a, real_b = aug(item["A"][None], item["B"][None])
    assert real_a.shape[-2:] == real_b.shape[-2:] == expected
    if not recipe.augment.flip and "crop" not in recipe.augment.preprocess:
        assert torch.equal(real_a[0], item["A"] * 2 - 1)  # no_flip: nothing random left
    torch.manual_seed(0)
    method = build_method(recipe, registry, CPU)
    assert all(math.isfinite(v) for v in method.train_step(real_a, real_b).values())


def test_serial_batches_and_max_dataset_size(registry, tmp_path, pm):
    root = _folders(tmp_path / "ds", (8, 8), n_a=5, n_b=3)
    for serial in (True, False):
        recipe = make_recipe(registry, {"data": {"root": str(root), "serial_batches": serial, "max_dataset_size": 4}})
        dataset = build_dataset(recipe, registry, "train")
        assert len(dataset) == 4 and len(dataset.a_paths) == 4 and len(dataset.b_paths) == 3
        trainer = Trainer(recipe=recipe, method=build_method(recipe, registry, CPU), dataset=dataset,
                          run_dir=tmp_path / f"run{serial}", pm=pm, device=CPU)
        orders, b_orders = [], []
        for epoch in range(4):
            trainer.sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
            orders.append(list(trainer.sampler))
            b_orders.append([dataset.b_index(i) for i in range(4)])
        if serial:
            assert orders == [[0, 1, 2, 3]] * 4 and b_orders == [[0, 1, 2, 0]] * 4
        else:
            assert any(o != [0, 1, 2, 3] for o in orders) and sorted(orders[0]) == [0, 1, 2, 3]
            assert any(b != [0, 1, 2, 0] for b in b_orders)


def test_direction(registry, tmp_path):
    (tmp_path / "train").mkdir()
    pair = np.zeros((8, 16, 3), dtype=np.uint8)
    pair[:, 8:] = 255  # A|B: black | white
    Image.fromarray(pair).save(tmp_path / "train" / "0.png")
    for direction, a_value in (("AtoB", 0.0), ("BtoA", 1.0)):
        recipe = make_recipe(registry, PIX2PIX, {"data": {"root": str(tmp_path), "direction": direction},
                                                 "augment": {"preprocess": "none"}})
        item = build_dataset(recipe, registry, "train")[0]
        assert item["A"].unique().tolist() == [a_value] and item["B"].unique().tolist() == [1.0 - a_value]


# ---- one whole run: schedule, frequencies, epochs ------------------------------------------------
def test_full_run_schedule_and_frequencies(registry, tmp_path, unaligned_root, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"""
[run]
device = "cpu"
n_epochs = 1
n_epochs_decay = 2
save_every = 4
log_every = 1
image_every = 3
[data]
root = "{unaligned_root.as_posix()}"
num_workers = 0
max_dataset_size = 2
serial_batches = true
[augment]
load_size = 36
crop_size = 32
flip = false
[optim]
lr = 0.0003
lr_policy = "linear"
[method]
name = "cyclegan"
[generator]
name = "resnet_6blocks"
ngf = 2
[discriminator]
name = "patchgan"
n_layers = 2
ndf = 2
[loss]
name = "lsgan"
""")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == [
        "step_000000004.safetensors", "step_000000006.safetensors"]
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["step_000000003.png", "step_000000006.png"]
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    lrs = [e.value for e in acc.Scalars("lr/G")]  # 2 steps per epoch, 3 epochs
    assert lrs == pytest.approx([3e-4, 3e-4, 2e-4, 2e-4, 1e-4, 1e-4], rel=1e-6)


# ---- docs/migrating.md names every reference flag and only real keys ---------------------------
MIGRATING = Path(__file__).resolve().parents[1] / "docs" / "migrating.md"
REFERENCE_FLAGS = """
dataroot name use_wandb wandb_project_name gpu_ids checkpoints_dir model input_nc output_nc ngf ndf netD netG
n_layers_D norm init_type init_gain no_dropout dataset_mode direction serial_batches num_threads batch_size
load_size crop_size max_dataset_size preprocess no_flip display_winsize epoch load_iter verbose suffix
display_freq display_ncols display_id display_server display_env display_port update_html_freq print_freq no_html
save_latest_freq save_epoch_freq save_by_iter continue_train epoch_count phase n_epochs n_epochs_decay beta1 lr
gan_mode pool_size lr_policy lr_decay_iters lambda_A lambda_B lambda_identity lambda_L1 model_suffix
results_dir aspect_ratio eval num_test
""".split()


def test_migrating_guide_lists_every_reference_flag():
    text = MIGRATING.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `--(\w+)", text, flags=re.MULTILINE))
    assert not set(REFERENCE_FLAGS) - rows, f"flags missing from {MIGRATING}: {sorted(set(REFERENCE_FLAGS) - rows)}"


def test_migrating_guide_names_only_existing_recipe_keys(registry):
    valid = {s: {f.name for f in dataclasses.fields(cls)} for s, cls in CORE_SECTIONS.items()}
    valid["data"] |= {f.name for e in registry.list("pairing") for f in dataclasses.fields(e.spec.config_cls)}
    sections = {s: k for e in registry.list("method") for s, k in e.spec.sections.items()}
    for section, kind in {"method": "method", **sections}.items():
        fields = {f.name for e in registry.list(kind) for f in dataclasses.fields(e.spec.config_cls)}
        valid[section] = {"name"} | fields
    sections = "|".join(valid)
    named = set(re.findall(rf"`({sections})\.(\w+)", MIGRATING.read_text(encoding="utf-8")))
    assert len(named) > 40
    unknown = sorted(f"{s}.{k}" for s, k in named if k not in valid[s])
    assert not unknown, f"{MIGRATING} names recipe keys that do not exist: {unknown}"
