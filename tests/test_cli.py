"""The command line end to end through click's CliRunner (in-process, real files)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ganzoo.cli import cli


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture
def env(monkeypatch):
    # only the bundled plugins, as installed in this environment
    monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def test_run_two_steps_writes_events_checkpoint_samples_recipe(tiny_recipe, tmp_path, env):
    out = tmp_path / "run"
    result = invoke("run", tiny_recipe, "--out", out)
    assert result.exit_code == 0, result.output
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_000000002.safetensors"
    assert (out / "checkpoints" / "step_000000002.safetensors").stat().st_size > 0
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["step_000000001.png", "step_000000002.png"]
    text = (out / "recipe.toml").read_text()
    assert 'name = "resnet_6blocks"' in text and "lambda_identity = 0.5" in text
    # the end-of-run report evaluated the paired test split
    report = json.loads((out / "eval_test_AtoB.json").read_text())
    assert report["images"] == 2 and set(report["translated"]) == {"psnr", "ssim", "l1"}


def test_tensorboard_events_hold_losses_and_images(tiny_recipe, tmp_path, env):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    result = invoke("run", tiny_recipe, "--out", out)
    assert result.exit_code == 0, result.output
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    tags = acc.Tags()
    assert {"loss/G_A", "loss/D_A", "loss/cycle_A", "loss/idt_A", "lr/G", "time/step_seconds"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("loss/G")] == [1, 2]
    assert "samples" in tags["images"]


def test_resume_continues_the_step_count(tiny_recipe, tmp_path, env):
    out = tmp_path / "run"
    result = invoke("run", tiny_recipe, "--out", out)
    assert result.exit_code == 0, result.output
    refused = invoke("run", tiny_recipe, "--out", out)
    assert refused.exit_code == 2
    assert "already holds checkpoints" in refused.output and "--resume" in refused.output
    resumed = invoke("run", "--resume", out, "--steps", 4)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.output and "at step 2" in resumed.output
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_000000004.safetensors"


def test_steps_and_set_overrides(tiny_recipe, tmp_path, env):
    out = tmp_path / "run"
    result = invoke("run", tiny_recipe, "--out", out, "--steps", 1, "--set", "generator.ngf=2", "--set", "run.image_every=0")
    assert result.exit_code == 0, result.output
    assert (out / "checkpoints" / "step_000000001.safetensors").exists()
    assert "ngf = 2" in (out / "recipe.toml").read_text()
    assert not (out / "samples").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "generator.ngff=2"], 'Did you mean "ngf"'),
        (["--set", "generator.name=resnet9"], "unknown generator"),
        (["--set", "data.root=/nonexistent/horse2zebra"], "ganzoo data download horse2zebra"),
    ],
)
def test_bad_input_exits_2_with_one_message(tiny_recipe, tmp_path, env, extra, message):
    out = tmp_path / "run"
    result = invoke("run", tiny_recipe, "--out", out, *extra)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ")
    assert not out.exists()  # nothing half-made


def test_list_and_plugins(env):
    result = invoke("list", "generators")
    assert result.exit_code == 0
    assert "resnet_9blocks" in result.output and "[cyclegan]" in result.output
    assert "unet_256" in result.output and "[pix2pix]" in result.output
    result = invoke("plugins")
    assert result.exit_code == 0
    assert "cyclegan (ganzoo " in result.output and "ganzoo_register_generators" in result.output


def test_translate_keeps_each_input_size(tiny_recipe, tmp_path, env):
    out = tmp_path / "run"
    assert invoke("run", tiny_recipe, "--out", out, "--steps", 1).exit_code == 0
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sizes = {"a": (37, 23), "b": (64, 48), "c": (37, 23)}
    for name, (w, h) in sizes.items():
        Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(inputs / f"{name}.png")
    for direction in ("AtoB", "BtoA"):
        dest = tmp_path / f"out_{direction}"
        result = invoke("translate", "--checkpoint", out, "--input", inputs, "--output", dest,
                        "--direction", direction, "--batch-size", 2)
        assert result.exit_code == 0, result.output
        for name, size in sizes.items():
            with Image.open(dest / f"{name}.png") as img:
                assert img.size == size


def test_translate_and_eval_errors(tmp_path, env):
    result = invoke("translate", "--checkpoint", tmp_path / "nope", "--input", tmp_path, "--output", tmp_path / "o")
    assert result.exit_code == 2 and "no such checkpoint" in result.output
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"\x80\x04not a checkpoint")
    result = invoke("eval", bogus)
    assert result.exit_code == 2 and "not a readable ganzoo checkpoint" in result.output
