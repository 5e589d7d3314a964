"""Checkpoint files, the run's checkpoint folder, metrics.jsonl and the non-finite guard, unit by unit."""
from __future__ import annotations

import errno
import json
import os
import pickle
import shlex

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save as st_save
from torch import nn

from ganzoo import CheckpointError, checkpoint
from ganzoo.runlog import MetricsLog, read_metrics
from ganzoo.checkpoint import RunCheckpoints
from ganzoo.cli import cli
from ganzoo.data.dataset import unwrap_worker_error
from ganzoo.errors import DataError
from ganzoo.update import Updater, nonfinite_networks


def tree(step: int = 1) -> dict:
    return {
        "step": step,
        "networks": {"G": {"w": torch.arange(6.0).view(2, 3) + step, "n": torch.tensor(3)}},
        "optimizers": {"G": {"state": {0: {"step": torch.tensor(2.0)}}, "param_groups": [{"betas": (0.5, 0.999)}]}},
        "rng": {"python": [3, list(range(5)), None]},
        "nan": float("nan"), "flag": True, "none": None, "text": "é",
    }


def test_round_trip_keeps_types_keys_and_values(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, tree())
    back = checkpoint.load(path)
    assert torch.equal(back["networks"]["G"]["w"], tree()["networks"]["G"]["w"])
    assert back["networks"]["G"]["n"].dtype == torch.int64
    assert list(back["optimizers"]["G"]["state"]) == [0]  # int keys stay ints
    assert back["optimizers"]["G"]["param_groups"][0]["betas"] == (0.5, 0.999)  # tuples stay tuples
    assert back["nan"] != back["nan"] and back["flag"] is True and back["none"] is None and back["text"] == "é"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, tree(1))
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        checkpoint.save(path, tree(2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_keyboard_interrupt_mid_write_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, tree(1))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code, fix", [(errno.ENOSPC, "Free space on that disk"), (errno.EROFS, "read-only"),
                                       (errno.EACCES, "permissions"), (errno.EIO, "Check the disk")])
def test_run_checkpoints_turn_os_errors_into_a_message_and_keep_the_previous(tmp_path, monkeypatch, code, fix):
    checkpoints = RunCheckpoints(tmp_path / "run")
    first = checkpoints.save(1, tree(1))
    real = os.replace

    def failing(src, dst):
        if "step_000000002" in str(dst):
            raise OSError(code, os.strerror(code))
        real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(CheckpointError) as err:
        checkpoints.save(2, tree(2))
    msg = str(err.value)
    assert msg.startswith(f"{checkpoints.path_for(2)}: cannot write the checkpoint: {os.strerror(code)}")
    assert fix in msg and "--out" in msg and f"{first} is intact" in msg
    assert checkpoints.latest() == first and checkpoints.all() == [first]
    assert not list(checkpoints.dir.glob(".*.tmp"))


def test_latest_pointer_keep_last_and_stale_temporaries(tmp_path):
    checkpoints = RunCheckpoints(tmp_path / "run", keep_last=2)
    for step in (1, 2, 3):
        checkpoints.save(step, tree(step))
    assert [p.name for p in checkpoints.all()] == ["step_000000002.safetensors", "step_000000003.safetensors"]
    assert (checkpoints.dir / "latest").read_text() == "step_000000003.safetensors\n"
    # a killed writer's leftovers are ignored by readers and removed by the next save
    stale = checkpoints.dir / ".step_000000004.safetensors.abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert checkpoints.latest() == checkpoints.path_for(3)
    checkpoints.save(4, tree(4))
    assert not stale.exists()
    # a pointer to a vanished file falls back to the newest complete one
    (checkpoints.dir / "latest").write_text("step_000000009.safetensors\n")
    assert checkpoints.latest() == checkpoints.path_for(4)


def test_pickles_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)

    raw, zipped = tmp_path / "raw.safetensors", tmp_path / "zipped.safetensors"
    raw.write_bytes(pickle.dumps(Payload()))
    torch.save({"model": Payload()}, zipped)
    for path in (raw, zipped):
        with pytest.raises(CheckpointError, match="not a readable ganzoo checkpoint"):
            checkpoint.load(path)
        result = CliRunner().invoke(cli, ["eval", str(path)], catch_exceptions=False)
        assert result.exit_code == 2 and "not a readable ganzoo checkpoint" in result.output
    assert not marker.exists()
    pickle.loads(raw.read_bytes())  # the payload was live
    assert marker.exists()


@pytest.mark.parametrize(
    "meta, message",
    [
        ({"format": "ganzoo-checkpoint", "tree": "{not json"}, "metadata is damaged (JSONDecodeError"),
        ({"format": "ganzoo-checkpoint", "tree": json.dumps({"w": {"__tensor__": "/missing"}})}, "KeyError"),
        ({"format": "ganzoo-checkpoint", "tree": "[1, 2]"}, "the tree is not a table"),
        ({"format": "ganzoo-checkpoint", "tree": "[" * 100_000 + "]" * 100_000}, "metadata is damaged"),
        ({"format": "ganzoo-checkpoint"}, "metadata is damaged (KeyError"),
        ({}, "a safetensors file but not a ganzoo checkpoint"),
    ],
    ids=["bad-json", "missing-tensor", "not-a-table", "deep-nesting", "no-tree", "no-format"],
)
def test_damaged_or_hostile_metadata_is_a_checkpoint_error(tmp_path, meta, message):
    path = tmp_path / "c.safetensors"
    path.write_bytes(st_save({"x": torch.zeros(1)}, metadata=meta))
    with pytest.raises(CheckpointError, match=None) as err:
        checkpoint.load(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_truncated_files_are_refused_at_every_length(tmp_path):
    whole = checkpoint.to_bytes(tree())
    path = tmp_path / "c.safetensors"
    for cut in (0, 7, 8, 100, len(whole) // 2, len(whole) - 1):
        path.write_bytes(whole[:cut])
        with pytest.raises(CheckpointError, match="not a readable ganzoo checkpoint"):
            checkpoint.load(path)


def test_metrics_log_rewinds_to_a_step_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    for step in (1, 2, 3, 4):
        log.write({"step": step, "loss": {"G": float(step)}})
    log.close()
    with open(path, "a") as f:
        f.write('{"step": 5, "lo')  # kill -9 in the middle of a line
    MetricsLog(path).rewind(2)
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    log = MetricsLog(path)
    log.write({"step": 3, "loss": {"G": float("inf"), "D": float("-inf"), "E": float("nan")}})
    log.close()
    assert read_metrics(path)[-1]["loss"] == {"G": "inf", "D": "-inf", "E": "nan"}


def test_metrics_log_warns_once_and_goes_on_when_it_cannot_write(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").mkdir()  # something in the way
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write({"step": 1})
    log.write({"step": 2})
    assert capsys.readouterr().err.count("warning: ") == 1


def test_worker_errors_are_unwrapped_to_the_original_message():
    original = DataError("ds/trainA/x.png: cannot read image: truncated.\nSecond line. Remove or replace the file.")
    try:
        raise original
    except DataError:
        from torch._utils import ExceptionWrapper

        wrapped = ExceptionWrapper(where="in DataLoader worker process 1")
    with pytest.raises(DataError) as err:
        wrapped.reraise()
    assert "Traceback" in str(err.value)  # what torch makes of it
    clean = unwrap_worker_error(err.value)
    assert type(clean) is DataError and str(clean) == str(original)
    assert unwrap_worker_error(original) is original


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 1)

    def forward(self, x):
        return self.b(self.a(x))


@pytest.mark.parametrize("poison", ["none", "loss", "grad"])
def test_the_updater_never_applies_a_non_finite_update(poison):
    torch.manual_seed(0)
    net = _Net()
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    precision = Updater("fp32", torch.device("cpu"))
    precision.watch({"net": net})
    before = [p.detach().clone() for p in net.parameters()]
    out = net(torch.ones(1, 2)).sum()
    if poison == "loss":
        out = out + float("nan")
    elif poison == "grad":
        out = out + 0.0 * torch.sqrt(net.a(torch.ones(1, 2)).sum() * 0.0)
    precision.backward_step(out, opt, "G")
    changed = any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    dropped = precision.take_dropped()
    if poison == "none":
        assert changed and not dropped
        return
    assert not changed and not opt.state  # no step, no Adam state
    assert all(p.grad is None for p in net.parameters())
    assert [d.optimizer for d in dropped] == ["G"]
    assert dropped[0].networks == (() if poison == "loss" else ("net",))
    assert precision.take_dropped() == []


def test_nonfinite_weights_are_found_before_a_save():
    net = _Net()
    assert nonfinite_networks({"net": net}) == []
    with torch.no_grad():
        net.b.weight[0, 0] = float("inf")
    assert nonfinite_networks({"ok": _Net(), "net": net}) == ["net"]
