"""[eval] during training: scores on the validation split (never the test split) every N steps,
to metrics.jsonl and TensorBoard; the best checkpoint by [eval] select is kept beside the latest
and picked by --which best; a bad [eval] section stops before anything is written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganzoo import checkpoint
from ganzoo.checkpoint import RunCheckpoints
from cliinvoke import invoke
from imagefiles import write_images
from recipefiles import tiny_toml

pytest.importorskip("torchmetrics")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("val") / "ds"
    for split, seed in (("train", 1), ("val", 3)):
        write_images(base / f"{split}A", 3, seed=seed)
        write_images(base / f"{split}B", 3, seed=seed + 1)
    return base


def recipe(root: Path, path: Path, **eval_keys) -> Path:
    keys = {"every": 2, "images": 3, "metrics": ["fid", "kid"], "select": "fid", **eval_keys}
    path.write_text(tiny_toml(root, run={"n_epochs": 2, "n_epochs_decay": 0}, eval=keys))
    return path


def test_scores_are_logged_and_the_best_checkpoint_is_kept(root, tmp_path):
    out = tmp_path / "run"
    invoke("run", recipe(root, tmp_path / "r.toml"), "--out", out, "--steps", 4)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval" in r]
    assert [r["step"] for r in evals] == [2, 4] and all(r["split"] == "val" for r in evals)
    assert all(set(r["eval"]) == {"fid", "kid"} for r in evals)
    best_step = min(evals, key=lambda r: r["eval"]["fid"])["step"]
    best = checkpoint.load(RunCheckpoints(out).best_path)
    assert best["best"]["step"] == best["step"] == best_step and best["best"]["metric"] == "fid"
    assert RunCheckpoints(out).latest().name == "step_000000004.safetensors"  # the latest is kept apart
    src = write_images(tmp_path / "in", 1, size=32, seed=9)[0]
    invoke("translate", "--checkpoint", out, "--which", "best", "--input", src, "--output", tmp_path / "t")
    missing = invoke("translate", "--checkpoint", out, "--which", "3", "--input", src, "--output", tmp_path / "u",
                     code=2)
    assert "no checkpoint of step 3 (kept steps: 4)" in missing.output


def test_the_test_split_is_refused_and_a_missing_split_writes_nothing(root, tmp_path):
    test_split = invoke("run", recipe(root, tmp_path / "a.toml", split="test"), "--out", tmp_path / "a", code=2)
    assert "[eval] split" in test_split.output and 'split "test" is kept for the final report' in test_split.output
    no_val = tmp_path / "noval"
    write_images(no_val / "trainA", 2, seed=1)
    write_images(no_val / "trainB", 2, seed=2)
    missing = invoke("run", recipe(no_val, tmp_path / "b.toml"), "--out", tmp_path / "b", code=2)
    assert '[eval] split = "val"' in missing.output and "valA" in missing.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_paired_metrics_need_pairs(root, tmp_path):
    result = invoke("run", recipe(root, tmp_path / "c.toml", metrics=["psnr"], select="psnr"), "--out", tmp_path / "c",
                    code=2)
    assert "PSNR, SSIM and L1 need true pairs" in result.output


def _registry():
    from ganzoo.plugins import get_plugin_manager
    from ganzoo.registry import Registry

    return Registry(get_plugin_manager())


def _recipe(root: Path, seed: int = 0, **sections):
    import tomllib

    from ganzoo.config import load_recipe

    raw = tomllib.loads(tiny_toml(root, run={"seed": seed}, eval={"holdout": 2}, **sections))
    return load_recipe(raw, _registry())


@pytest.mark.parametrize("layout", ["unaligned", "aligned", "named"])
def test_the_holdout_is_carved_from_train_by_seed(tmp_path, layout):
    from ganzoo.build import build_dataset, hold_out

    root = tmp_path / "ds"
    if layout == "aligned":
        write_images(root / "train", 6, size=32, seed=1)
        sections = {"data": {"pairing": "aligned"}}
    else:
        write_images(root / "trainA", 6, size=32, seed=1)
        write_images(root / "trainB", 6 if layout == "named" else 5, size=32, seed=2)
        sections = {"data": {"pairing": layout}} if layout == "named" else {}
    recipe = _recipe(root, **sections)
    registry = _registry()
    full = registry.get("pairing", recipe.pairing.name).build(
        recipe.pairing.config, split="train", data=recipe.data, augment=recipe.augment, seed=0)

    def files(ds):  # every file the dataset draws from (unaligned items pair B at random)
        if layout == "unaligned":
            return set(ds.a_paths) | set(ds.b_paths)
        return set(ds.paths) if layout == "aligned" else {p for pair in ds.pairs for p in pair}

    train = build_dataset(recipe, registry, "train")
    rest, held = hold_out(full, recipe)
    assert files(train) == files(rest) and not files(rest) & files(held)
    assert files(rest) | files(held) == files(full)
    assert len(held) == 2 and len(train) == len(full) - 2
    if layout == "unaligned":  # two A and two B images held out, paired serially
        assert len(held.a_paths) == len(held.b_paths) == 2 and held.serial
    again = hold_out(full, _recipe(root, **sections))[1]
    other = [hold_out(full, _recipe(root, seed=s, **sections))[1] for s in range(1, 6)]
    assert files(again) == files(held) and any(files(o) != files(held) for o in other)


def test_a_run_without_a_val_folder_evaluates_on_its_holdout(tmp_path):
    root = tmp_path / "ds"
    write_images(root / "trainA", 5, seed=1)
    write_images(root / "trainB", 5, seed=2)
    out = tmp_path / "run"
    invoke("run", recipe(root, tmp_path / "r.toml", holdout=2, images=2), "--out", out, "--steps", 2)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval" in r]
    assert [r["step"] for r in evals] == [2] and evals[0]["split"] == "holdout"
    too_many = invoke("run", recipe(root, tmp_path / "b.toml", holdout=5), "--out", tmp_path / "b", code=2)
    assert "[eval] holdout = 5: holding out 5 leaves none of the 5 A images to train on" in too_many.output
    assert not (tmp_path / "b").exists()
    one = invoke("run", recipe(root, tmp_path / "c.toml", holdout=1), "--out", tmp_path / "c", code=2)
    assert "holdout must be 0" in one.output
