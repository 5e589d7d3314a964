"""The bad-input catalogue: every way a user can feed ganzoo something wrong, through the real
CLI. Each case must exit with status 2 and print ONE message, starting "error: ", that names
the place and the fix, with no traceback, and must leave earlier outputs as they were.

docs/reliability.md lists every case id (checked below). Also here: data faults that are
not errors (mixed image modes; bad_images = "skip") and the non-finite policy.
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import pickle
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from ganzoo import AdversarialLoss, ComponentSpec, checkpoint, hookimpl
from ganzoo.runlog import read_metrics
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.cli import cli
from ganzoo.data.images import write_image
from ganzoo.registry import Registry
from imagefiles import write_images
from recipefiles import tiny_toml


DOCS = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"



@pytest.fixture(autouse=True)
def autoload_plugins(monkeypatch):
    # the CLI finds CycleGAN and pix2pix through entry points, as installed here
    monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)


@dataclasses.dataclass
class World:
    """Shared, read-only material: a dataset, its recipe and a finished 2-step run."""

    root: Path
    recipe: Path
    run: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    base = tmp_path_factory.mktemp("world")
    root = base / "ds"
    write_images(root / "trainA", 4, seed=1)
    write_images(root / "trainB", 3, seed=2)
    write_images(root / "testA", 2, seed=3, names=["a1", "a2"])  # no shared names: no ground truth
    write_images(root / "testB", 2, seed=4, names=["b1", "b2"])
    recipe = base / "recipe.toml"
    recipe.write_text(tiny_toml(root, run={"max_steps": 2, "save_every": 1}))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
        result = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(base / "run")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return World(root, recipe, base / "run")


def snapshot(path: Path) -> dict[str, str] | None:
    """sha256 of every file under ``path`` (None when it does not exist)."""
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def assert_one_clean_error(output: str, *expected: str, prefix: str | tuple[str, ...] = "error: ") -> None:
    assert "Traceback" not in output, output
    starts = [i for i, line in enumerate(output.splitlines()) if line.startswith(("error: ", "Error: "))]
    assert len(starts) == 1, output
    message = "\n".join(output.splitlines()[starts[0]:])
    assert message.startswith(prefix), output
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{output}"


def poisoned_pickle(marker: Path) -> bytes:
    """A pickle whose loading runs ``touch marker``."""

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)

    return pickle.dumps(Payload())


# ---- the catalogue ---------------------------------------------------------------------------
@dataclasses.dataclass
class Ctx:
    """What a case gets: scratch space, the shared world and pytest's monkeypatch."""

    tmp: Path
    world: World
    monkeypatch: pytest.MonkeyPatch
    pm: object
    marker: Path | None = None  # a file a malicious pickle would create

    def recipe(self, text: str) -> Path:
        path = self.tmp / "recipe.toml"
        path.write_text(text)
        return path

    def data(self, *, bad: dict[str, bytes] | None = None, empty: bool = False) -> Path:
        """A fresh copy of the training data with extra (bad) files in trainA."""
        root = self.tmp / "ds"
        shutil.copytree(self.world.root, root)
        if empty:
            for p in (root / "trainA").iterdir():
                p.unlink()
        for name, data in (bad or {}).items():
            (root / "trainA" / name).write_bytes(data)
        return root

    def run_copy(self) -> Path:
        out = self.tmp / "run"
        shutil.copytree(self.world.run, out)
        return out

    def use_pm(self) -> None:
        self.monkeypatch.setattr("ganzoo.cli._registry", lambda: (self.pm, Registry(self.pm)))


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    what: str
    setup: Callable[[Ctx], tuple[list, list[str], list[Path]]]  # -> (cli args, expected fragments, watched)


CASES: list[Case] = []


def case(id: str, what: str):
    def register(fn):
        CASES.append(Case(id, what, fn))
        return fn

    return register


def new_out(c: Ctx) -> Path:
    return c.tmp / "new-run"


@case("toml-syntax", "recipe is not valid TOML")
def _(c):
    path = c.recipe("[run\nseed = 1\n")
    return ["run", path, "--out", new_out(c)], [str(path), "not valid TOML", "line 1"], [new_out(c)]


@case("recipe-missing", "recipe file does not exist")
def _(c):
    return ["run", c.tmp / "nope.toml", "--out", new_out(c)], ["nope.toml: recipe file not found"], [new_out(c)]


@case("no-recipe", "neither a recipe nor --resume")
def _(c):
    return ["run"], ["give a RECIPE file", "--resume RUN_DIR"], []


@case("unknown-section", "a section that does not exist")
def _(c):
    path = c.recipe(c.world.recipe.read_text() + "\n[trainer]\nepochs = 3\n")
    return ["run", path, "--out", new_out(c)], ["unknown section [trainer]", "Valid sections"], [new_out(c)]


@case("unknown-key", "a misspelt key in a core section")
def _(c):
    path = c.recipe(c.world.recipe.read_text().replace("log_every", "log_evry"))
    return ["run", path, "--out", new_out(c)], ["[run] log_evry", "unknown key", 'Did you mean "log_every"'], [new_out(c)]


@case("unknown-component-key", "a misspelt key of a component's config")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "generator.ngff=2"],
            ["[generator] ngff", 'Did you mean "ngf"'], [new_out(c)])


@case("wrong-type", "a string where a number belongs")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", 'run.seed="zero"'],
            ["[run] seed", "expected int, got 'zero'"], [new_out(c)])


@case("out-of-range", "a core value out of its range")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "run.log_every=0"],
            ["[run] log_every", "must be >= 1"], [new_out(c)])


@case("component-out-of-range", "a component value out of its range")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "generator.ngf=0"],
            ["[generator] ngf", "must be >= 1"], [new_out(c)])


@case("bad-choice", "a value outside a fixed set of choices")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "run.nonfinite=ignore"],
            ["[run] nonfinite", "'ignore' is not one of 'stop' | 'skip'"], [new_out(c)])


@case("unknown-generator", "a generator name nobody registered")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "generator.name=resnet9"],
            ['[generator] name="resnet9"', "unknown generator", "ganzoo list generators"], [new_out(c)])


@case("unknown-pairing", "a pairing name nobody registered")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "data.pairing=zipped"],
            ['[data] pairing="zipped"', "ganzoo list pairings"], [new_out(c)])


@case("missing-name", "a component section without its name")
def _(c):
    path = c.recipe(c.world.recipe.read_text().replace('name = "patchgan_70"\n', ""))
    return ["run", path, "--out", new_out(c)], ['[discriminator]: missing key "name"', "Available:"], [new_out(c)]


@case("method-pairing-mismatch", "pix2pix on unpaired data")
def _(c):
    path = c.recipe(c.world.recipe.read_text().replace('name = "cyclegan"', 'name = "pix2pix"'))
    return (["run", path, "--out", new_out(c)], ['pairing="unaligned"', "needs aligned pairs", 'pairing = "aligned"'],
            [new_out(c)])


@case("bad-set-syntax", "--set without '='")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "generator.ngf"],
            ['--set "generator.ngf"', "expected section.key=value"], [new_out(c)])


@case("set-unknown-section", "--set naming a section that does not exist")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "trainer.steps=1"],
            ['--set "trainer.steps=1"', "unknown section [trainer]"], [new_out(c)])


@case("steps-zero", "--steps 0 (a click usage error)")
def _(c):
    return ["run", c.world.recipe, "--out", new_out(c), "--steps", "0"], ["'--steps'", "x>=1"], [new_out(c)]


@case("device-unavailable", "device = cuda on a machine without CUDA")
def _(c):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "run.device=cuda"],
            ['[run] device="cuda"', "CUDA is not available", 'device = "auto" or "cpu"'], [new_out(c)])


@case("plugin-import-error", "an installed plugin fails to import")
def _(c):
    import importlib.metadata as md

    class EP:
        name, group, value = "ghost", "ganzoo", "ganzoo_ghost"

        def load(self):
            raise ModuleNotFoundError("No module named 'ganzoo_ghost'")

    class Dist:
        metadata, version, entry_points = {"name": "ganzoo-ghost"}, "0.3", [EP()]

    real = md.distributions
    c.monkeypatch.setattr(md, "distributions", lambda: [*real(), Dist()])
    c.monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return (["run", c.world.recipe, "--out", new_out(c)],
            ['Error importing plugin "ghost" (ganzoo-ghost 0.3)', "pip uninstall ganzoo-ghost",
             "GANZOO_DISABLE_PLUGIN_AUTOLOAD"], [new_out(c)])


@case("duplicate-registration", "an installed plugin registers a name another plugin has")
def _(c):
    import importlib.metadata as md

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        pass

    class Plugin:
        @hookimpl
        def ganzoo_register_generators(self):
            return [ComponentSpec("resnet_6blocks", Cfg, lambda cfg, **kw: None, "a clash")]

    class EP:
        name, group, value = "clash", "ganzoo", "ganzoo_clash"

        def load(self):
            return Plugin()

    class Dist:
        metadata, version, entry_points = {"name": "ganzoo-clash"}, "1.0", [EP()]

    real = md.distributions
    c.monkeypatch.setattr(md, "distributions", lambda: [*real(), Dist()])
    c.monkeypatch.delenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return (["run", c.world.recipe, "--out", new_out(c)],
            ["plugin 'clash'", "'resnet_6blocks' is already registered by plugin 'cyclegan'"], [new_out(c)])


# -- data
@case("data-root-missing", "[data] root does not exist")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", f"data.root={c.tmp / 'nowhere'}"],
            ["nowhere: dataset folder ([data] root) not found", "trainA/"], [new_out(c)])


@case("empty-dataset", "trainA holds no images")
def _(c):
    root = c.data(empty=True)
    return (["run", c.world.recipe, "--out", new_out(c), "--set", f"data.root={root}"],
            [f"{root / 'trainA'}: no images found", "Put the images there"], [new_out(c)])


@case("corrupt-image", "random bytes named .png")
def _(c):
    root = c.data(bad={"bad.png": b"\x89PNG\r\n\x1a\n" + os.urandom(200)})
    return (["run", c.world.recipe, "--out", new_out(c), "--set", f"data.root={root}", "--set", "data.serial_batches=true"],
            [f"{root / 'trainA' / 'bad.png'}: cannot read image", "Remove or replace the file"], [])


@case("zero-byte-image", "an empty .png file")
def _(c):
    root = c.data(bad={"empty.png": b""})
    return (["run", c.world.recipe, "--out", new_out(c), "--set", f"data.root={root}", "--set", "data.serial_batches=true"],
            [f"{root / 'trainA' / 'empty.png'}: cannot read image: the file is empty (0 bytes)"], [])


@case("text-as-png", "a text file renamed .png")
def _(c):
    root = c.data(bad={"a-notes.png": b"just some notes, not an image\n"})
    return (["run", c.world.recipe, "--out", new_out(c), "--set", f"data.root={root}", "--set", "data.serial_batches=true"],
            [f"{root / 'trainA' / 'a-notes.png'}: cannot read image", "cannot identify image file"], [])


@case("truncated-image", "a PNG cut in half")
def _(c):
    whole = (c.world.root / "trainA" / "img000.png").read_bytes()
    root = c.data(bad={"cut.png": whole[: len(whole) // 2]})
    return (["run", c.world.recipe, "--out", new_out(c), "--set", f"data.root={root}", "--set", "data.serial_batches=true"],
            [f"{root / 'trainA' / 'cut.png'}: cannot read image", "Remove or replace the file"], [])


@case("corrupt-image-in-worker", "a corrupt image read by a DataLoader worker process")
def _(c):
    root = c.data(bad={"bad.png": b"\x89PNG\r\n\x1a\n" + os.urandom(200)})
    return (["run", c.world.recipe, "--out", new_out(c), "--set", f"data.root={root}",
             "--set", "data.serial_batches=true", "--set", "data.num_workers=2"],
            [f"{root / 'trainA' / 'bad.png'}: cannot read image", "Remove or replace the file"], [])


@case("all-images-unreadable", 'bad_images = "skip" but no image can be read')
def _(c):
    root = c.data(empty=True, bad={f"bad{i}.png": b"junk" for i in range(4)})
    return (["run", c.world.recipe, "--out", new_out(c), "--set", f"data.root={root}", "--set", "data.bad_images=skip"],
            ['bad_images = "skip": none of the 4 items could be read', "cannot read image"], [])


@case("crop-larger-than-image", "crop_size larger than the preprocessed images")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "augment.preprocess=crop", "--set", "augment.crop_size=64"],
            ["[augment] crop_size = 64: larger than the real_a images (40x40", "Lower crop_size"], [])


# -- output
@case("out-under-a-file", "--out below a regular file (unwritable even for root)")
def _(c):
    blocker = c.tmp / "a-file"
    blocker.write_text("not a folder")
    return (["run", c.world.recipe, "--out", blocker / "run"],
            [f"{blocker / 'run'}: cannot create the run directory", "Choose a writable place with --out"], [blocker])


@case("existing-run-dir", "a new run into a directory that holds checkpoints")
def _(c):
    return (["run", c.world.recipe, "--out", c.world.run],
            ["already holds checkpoints", f"ganzoo run --resume {c.world.run}", "nothing was overwritten"],
            [c.world.run])


def _failing_checkpoint_write(c: Ctx, code: int) -> Path:
    """A copy of the run whose step-3 checkpoint write fails with ``code`` at its fsync, when
    the data is in the temporary file (as a full disk or a remount fails a real write)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the file being fsynced")
    real = os.fsync

    def fsync(fd: int) -> None:
        if ".step_000000003.safetensors." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(code, os.strerror(code))
        real(fd)

    c.monkeypatch.setattr(os, "fsync", fsync)
    return c.run_copy()


@case("disk-full-checkpoint", "the disk fills up while a checkpoint is written")
def _(c):
    run = _failing_checkpoint_write(c, errno.ENOSPC)
    return (["run", "--resume", run, "--steps", "4"],
            ["step_000000003.safetensors: cannot write the checkpoint: No space left on device",
             "Free space on that disk", "step_000000002.safetensors is intact", f"ganzoo run --resume {run}"],
            [run / "checkpoints"])


@case("read-only-checkpoint", "the filesystem turns read-only")
def _(c):
    run = _failing_checkpoint_write(c, errno.EROFS)
    return (["run", "--resume", run, "--steps", "4"],
            ["cannot write the checkpoint: Read-only file system", "--out", "is intact"], [run / "checkpoints"])


@case("permission-denied-checkpoint", "no permission to write the checkpoint")
def _(c):
    run = _failing_checkpoint_write(c, errno.EACCES)
    return (["run", "--resume", run, "--steps", "4"],
            ["cannot write the checkpoint: Permission denied", "Fix the folder's permissions", "is intact"],
            [run / "checkpoints"])


# -- checkpoints
@case("resume-missing-dir", "--resume of a directory that does not exist")
def _(c):
    return ["run", "--resume", c.tmp / "gone"], ["--resume", "gone: no such run directory"], []


@case("resume-without-checkpoints", "--resume of a directory with no checkpoint")
def _(c):
    (c.tmp / "empty").mkdir()
    return ["run", "--resume", c.tmp / "empty"], ["no checkpoint there", "ganzoo run RECIPE --out DIR"], [c.tmp / "empty"]


@case("resume-with-other-out", "--resume together with a different --out")
def _(c):
    return (["run", "--resume", c.world.run, "--out", c.tmp / "elsewhere"],
            ["a resumed run continues in its own directory", "Drop --out"], [c.world.run])


@case("resume-truncated", "the latest checkpoint is truncated")
def _(c):
    run = c.run_copy()
    latest = RunCheckpoints(run).latest()
    latest.write_bytes(latest.read_bytes()[:5000])
    return (["run", "--resume", run],
            [f"{latest}: not a readable ganzoo checkpoint", "step_000000001.safetensors",
             f"move {latest.name} out of"], [run])


@case("resume-wrong-architecture", "resume with overrides that change the networks")
def _(c):
    run = c.run_copy()
    return (["run", "--resume", run, "--set", "generator.ngf=8"],
            ["network 'G_A': the weights do not fit this architecture", "shape mismatch",
             "model.1.weight is (4, 3, 7, 7) in the file, (8, 3, 7, 7) in the network", "use the recipe it was trained with"],
            [run])


@case("resume-malicious-pickle", "a pickle that runs code, named as the latest checkpoint")
def _(c):
    run = c.run_copy()
    marker = c.tmp / "pwned"
    (run / "checkpoints" / "step_000000009.safetensors").write_bytes(poisoned_pickle(marker))
    (run / "checkpoints" / "latest").write_text("step_000000009.safetensors\n")
    c.marker = marker
    return ["run", "--resume", run], ["step_000000009.safetensors: not a readable ganzoo checkpoint"], [run]


@case("translate-malicious-pickle", "translate --checkpoint of a pickle (torch.save) named .safetensors")
def _(c):
    marker = c.tmp / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)

    evil = c.tmp / "model.safetensors"
    torch.save({"G": Payload()}, evil)
    c.marker = marker
    return (["translate", "--checkpoint", evil, "--input", c.world.root / "testA", "--output", c.tmp / "o"],
            [f"{evil}: not a readable ganzoo checkpoint"], [c.tmp / "o"])


@case("foreign-safetensors", "a safetensors file that is not a ganzoo checkpoint")
def _(c):
    from safetensors.torch import save_file

    path = c.tmp / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    return (["eval", path], [f"{path}: a safetensors file but not a ganzoo checkpoint"], [path])


@case("resume-not-a-training-checkpoint", "a ganzoo checkpoint without training state")
def _(c):
    run = c.tmp / "partial"
    RunCheckpoints(run).save(1, {"networks": {}, "step": 1})
    return (["run", "--resume", run], ["not a ganzoo training checkpoint (missing recipe, epoch"], [run])


# -- hostile files and careless values (confinement, bounds)
@case("run-name-escapes", "[run] name climbing out of runs/")
def _(c):
    text = tiny_toml(c.world.root, run={"name": "../../escaped"})
    return (["run", c.recipe(text)], ["[run] name: name '../../escaped' must be a plain name"], [c.tmp])


@case("absurd-width", "ngf = 6400: a typo that would need terabytes")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "generator.ngf=6400"],
            ["training needs at least", "GiB free", "[generator] ngf"], [new_out(c)])


@case("absurd-load-size", "load_size = 200000")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "augment.load_size=200000"],
            ["[augment] load_size: load_size must be in [1, 16384]"], [new_out(c)])


@case("nan-in-recipe", "lr = nan (TOML allows it)")
def _(c):
    return (["run", c.world.recipe, "--out", new_out(c), "--set", "optim.lr=nan"],
            ["[optim].lr: nan is not a finite number"], [new_out(c)])


@case("huge-recipe", "a 2 MB file passed as a recipe")
def _(c):
    path = c.tmp / "big.toml"
    path.write_bytes(b"#" * (2 << 20))
    return (["run", path, "--out", new_out(c)], ["big.toml: 2097152 bytes, not a recipe"], [new_out(c)])


@case("export-hostile-network-name", "a crafted checkpoint whose network name climbs out of --output")
def _(c):
    run = c.run_copy()
    latest = RunCheckpoints(run).latest()
    tree = checkpoint.load(latest)
    tree["networks"]["x/../../../escaped"] = tree["networks"].pop("G_A")
    checkpoint.save(latest, tree)
    return (["export", "--checkpoint", run, "--format", "reference", "--output", c.tmp / "out" / "deep"],
            ["network name 'x/../../../escaped' is not a plain name", "nothing was written"], [c.tmp])


@case("hostile-training-state", "a checkpoint whose step counter is negative")
def _(c):
    run = c.run_copy()
    latest = RunCheckpoints(run).latest()
    tree = checkpoint.load(latest)
    tree["step"] = -5
    checkpoint.save(latest, tree)
    return (["run", "--resume", run], ["the training state does not fit this run", "step = -5"], [run])


@case("control-characters-in-a-file-name", "a corrupt image whose name holds a terminal escape sequence")
def _(c):
    root = c.data(bad={"bad\x1b[31m.png": b"not an image"})
    text = tiny_toml(root, run={"max_steps": 2}, data={"serial_batches": True})
    return (["run", c.recipe(text), "--out", new_out(c)], ["bad\\x1b[31m.png"], [c.world.root])


@case("eval-unknown-split", "ganzoo eval --split on a split that does not exist")
def _(c):
    return (["eval", "--checkpoint", c.world.run, "--split", "tset"],
            ["Invalid value for '--split': 'tset' is not one of 'test', 'val', 'train'"], [c.world.run])


@case("translate-output-under-a-file", "translate into a folder below a regular file")
def _(c):
    (c.tmp / "afile").write_text("x")
    return (["translate", "--checkpoint", c.world.run, "--input", c.world.root / "testA", "--output",
             c.tmp / "afile" / "sub"], ["cannot write the translations (Not a directory); 0 image(s)"], [c.tmp / "afile"])


# -- other commands
@case("translate-missing-input", "translate an input that does not exist")
def _(c):
    return (["translate", "--checkpoint", c.world.run, "--input", c.tmp / "nope.png", "--output", c.tmp / "o"],
            ["nope.png: no such image or folder"], [c.tmp / "o"])


@case("translate-missing-checkpoint", "translate with a checkpoint that does not exist")
def _(c):
    return (["translate", "--checkpoint", c.tmp / "nope", "--input", c.world.root / "testA", "--output", c.tmp / "o"],
            ["nope: no such checkpoint file or run directory"], [c.tmp / "o"])


@case("eval-without-ground-truth", "eval of an unpaired test split")
def _(c):
    return (["eval", c.world.run, "--metrics", "psnr,ssim,l1"], ["no ground truth for split 'test'", "Evaluation needs paired test images"],
            [c.world.run])


# -- non-finite values
class PoisonableLoss(AdversarialLoss):
    """LSGAN whose generator side turns NaN while ``poison`` is set ("loss" or "grad")."""

    poison: str | None = None

    def __call__(self, prediction, target_is_real, *, for_discriminator=True):
        loss = F.mse_loss(prediction, torch.full_like(prediction, 1.0 if target_is_real else 0.0))
        if for_discriminator or self.poison is None:
            return loss
        if self.poison == "loss":
            return loss + float("nan")
        # finite value, NaN gradient: d sqrt(u)/du is infinite at u = 0, and 0 * inf = NaN
        return loss + 0.0 * torch.sqrt(prediction.mean() * 0.0)


class Poison:
    """A test plugin: the loss "poisonable_lsgan", poisoned during the given steps."""

    def __init__(self, kind: str, steps: set[int]) -> None:
        self.kind, self.steps = kind, steps

    @hookimpl
    def ganzoo_register_losses(self):
        @dataclasses.dataclass(frozen=True)
        class NoConfig:
            pass

        return [ComponentSpec("poisonable_lsgan", NoConfig, lambda cfg: PoisonableLoss(), "LSGAN, poisonable")]

    def _arm(self, trainer, step: int) -> None:
        trainer.method.gan_loss.poison = self.kind if step + 1 in self.steps else None

    @hookimpl
    def ganzoo_on_run_start(self, trainer):
        self._arm(trainer, trainer.step)

    @hookimpl
    def ganzoo_on_step_end(self, trainer, step):
        self._arm(trainer, step)


def _poisoned(c: Ctx, kind: str, steps: set[int], mode: str = "stop", total: int = 4) -> list:
    c.pm.register(Poison(kind, steps), name="poison")
    c.use_pm()
    return ["run", c.world.recipe, "--out", new_out(c), "--steps", total, "--set", "loss.name=poisonable_lsgan",
            "--set", "run.save_every=2", "--set", f"run.nonfinite={mode}", "--set", "run.n_epochs=10"]


@case("nonfinite-loss", "a loss becomes NaN (nonfinite = stop)")
def _(c):
    return (_poisoned(c, "loss", {3}),
            ["step 3 (epoch 1): a loss or gradient is not finite", "loss G_A=nan", "optimiser G (loss nan) not updated",
             "Nothing of this state was saved", "step_000000002.safetensors", "--set run.nonfinite=skip",
             "Lower [optim] lr"], [])


@case("nonfinite-gradient", "a finite loss with NaN gradients (nonfinite = stop)")
def _(c):
    return (_poisoned(c, "grad", {3}),
            ["step 3 (epoch 1): a loss or gradient is not finite", "non-finite gradients in G_A, G_B",
             "step_000000002.safetensors"], [])


@case("nonfinite-every-step", "nonfinite = skip, but every step is NaN")
def _(c):
    return (_poisoned(c, "loss", set(range(2, 100)), mode="skip", total=30),
            ["step 12 (epoch 3): 11 steps in a row were not finite", "the last good checkpoint is"], [])


@pytest.mark.parametrize("item", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_clean_message(item: Case, world, tmp_path, monkeypatch, pm):
    ctx = Ctx(tmp_path, world, monkeypatch, pm)
    args, expected, watched = item.setup(ctx)
    before = {p: snapshot(p) for p in watched}
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert_one_clean_error(result.output, *expected)
    for path, digest in before.items():
        assert snapshot(path) == digest, f"{path} changed"
    if ctx.marker is not None:
        assert not ctx.marker.exists(), "the pickle ran code"
        pickle.loads(poisoned_pickle(ctx.marker))  # ... and it would have: the payload is live
        assert ctx.marker.exists()


def test_a_hostile_latest_pointer_is_ignored(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world.run, run)
    (run / "checkpoints" / "latest").write_text("../../../../etc/passwd\n")
    assert RunCheckpoints(run).latest() == RunCheckpoints(run).all()[-1]


def test_the_catalogue_is_large_and_documented():
    assert len(CASES) >= 30
    text = DOCS.read_text()
    missing = [c.id for c in CASES if f"`{c.id}`" not in text]
    assert not missing, f"docs/reliability.md lacks catalogue entries: {missing}"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "{tmp}/broken.toml"], "not valid TOML"),
        (["run", "{recipe}", "--out", "{tmp}/run", "--set", "data.root={tmp}/nowhere"], "dataset folder ([data] root) not found"),
        (["run", "{recipe}", "--out", "{tmp}/run", "--set", "data.root={tmp}/ds", "--set", "data.num_workers=2",
          "--set", "data.serial_batches=true"], "bad.png: cannot read image"),
    ],
    ids=["toml-syntax", "data-root-missing", "corrupt-image-in-worker"],
)
def test_bad_input_through_the_installed_command(world, tmp_path, args, expected):
    (tmp_path / "broken.toml").write_text("[run\n")
    shutil.copytree(world.root, tmp_path / "ds")
    (tmp_path / "ds" / "trainA" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    ganzoo = Path(sys.executable).with_name("ganzoo")
    argv = [str(ganzoo)] + [a.format(tmp=tmp_path, recipe=world.recipe) for a in args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert_one_clean_error(proc.stderr, expected)
    assert proc.stderr.startswith("error: ") or "\nerror: " in proc.stderr


# ---- data faults that are not errors ------------------------------------------------------
def mixed_modes(folder: Path) -> list[str]:
    """One file per mode a folder of real-world images may hold."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(folder / "grey.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(folder / "rgba.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(rgb[..., 0]).convert("1").save(folder / "bilevel.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / "grey16.png")
    Image.fromarray(rgb).convert("L").convert("LA").save(folder / "grey_alpha.png")
    Image.fromarray(rgb).save(folder / "photo.jpg", quality=90)
    Image.fromarray(rgb).convert("CMYK").save(folder / "print.tif")
    write_image(folder / "rgb16.png", torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0)), bits=16)
    return sorted(p.name for p in folder.iterdir())


def test_mixed_image_modes_are_converted_not_errors(world, tmp_path):
    root = tmp_path / "ds"
    names = mixed_modes(root / "trainA")
    shutil.copytree(world.root / "trainB", root / "trainB")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", str(world.recipe), "--out", str(out), "--set", f"data.root={root}",
                                      "--steps", str(len(names)), "--set", "data.serial_batches=true"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    assert len(read_metrics(out / "metrics.jsonl")) == len(names) + 1  # every image was a step


def test_skip_policy_warns_once_per_file_and_counts(world, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(world.root, root)
    bad = {"zero.png": b"", "text.png": b"hello", "cut.png": (root / "trainA" / "img000.png").read_bytes()[:300]}
    for name, data in bad.items():
        (root / "trainA" / name).write_bytes(data)
    out = tmp_path / "run"
    args = ["run", str(world.recipe), "--out", str(out), "--set", f"data.root={root}", "--set", "data.bad_images=skip",
            "--set", "data.num_workers=2", "--set", "run.n_epochs=3", "--steps", "21"]  # 3 epochs of 7 items
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3  # once per file, not once per epoch
    for name in bad:
        assert sum(str(root / "trainA" / name) in w for w in warnings) == 1
    assert all(w.endswith('Skipped ([data] bad_images = "skip").') for w in warnings)
    assert "skipped 3 unreadable image file(s) in this run" in result.output
    records = read_metrics(out / "metrics.jsonl")
    assert records[-1]["event"] == "end" and records[-1]["skipped_images"] == 3
    assert len([r for r in records if "loss" in r]) == 21  # the run still did every step
    # the count survives a resume (it is in the checkpoint), and no file is warned about twice
    resumed = CliRunner().invoke(cli, ["run", "--resume", str(out), "--steps", "28"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert "warning: " not in resumed.output
    assert read_metrics(out / "metrics.jsonl")[-1]["skipped_images"] == 3


# ---- non-finite: skip mode ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["loss", "grad"])
def test_nonfinite_skip_drops_the_bad_update_and_goes_on(world, tmp_path, monkeypatch, pm, kind):
    ctx = Ctx(tmp_path, world, monkeypatch, pm)
    args = _poisoned(ctx, kind, {3}, mode="skip")
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert 'warning: step 3 (epoch 1): not finite' in result.output
    assert 'Skipped ([run] nonfinite = "skip")' in result.output
    assert "skipped 1 step(s) with non-finite values" in result.output
    tree = checkpoint.load(RunCheckpoints(new_out(ctx)).latest())
    # G's update of step 3 was dropped, D's was not; nothing non-finite reached the weights
    assert {s["step"].item() for s in tree["optimizers"]["G"]["state"].values()} == {3.0}
    assert {s["step"].item() for s in tree["optimizers"]["D"]["state"].values()} == {4.0}
    assert all(torch.isfinite(t).all() for net in tree["networks"].values() for t in net.values())
    records = [r for r in read_metrics(new_out(ctx) / "metrics.jsonl") if "loss" in r]
    assert [("nonfinite" in r) for r in records] == [False, False, True, False]
    assert "optimiser G" in records[2]["nonfinite"] and records[-1]["skipped_steps"] == 1


def test_metrics_log_writes_nonfinite_values_as_strict_json(world, tmp_path, monkeypatch, pm):
    import json

    ctx = Ctx(tmp_path, world, monkeypatch, pm)
    args = _poisoned(ctx, "loss", {2}, mode="skip")
    assert CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False).exit_code == 0
    for line in (new_out(ctx) / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert read_metrics(new_out(ctx) / "metrics.jsonl")[1]["loss"]["G_A"] == "nan"
