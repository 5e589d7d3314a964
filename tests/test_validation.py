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
