"""Usage errors click catches (bad option values, unknown options or commands, missing
arguments) read like every other user error: one ``error: ...`` line naming the command, with
click's "Try '... --help'" hint on that line, exit status 2, no usage block."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganzoo.cli import cli

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.toml"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", str(RECIPE), "--steps", "0"],
         "error: ganzoo run: Invalid value for '--steps': 0 is not in the range x>=1. "
         "Try 'ganzoo run --help' for help."),
        (["run", str(RECIPE), "--bogus"], "error: ganzoo run: No such option '--bogus'"),
        (["rnu"], "error: ganzoo: No such command 'rnu'"),
        (["--bogus"], "error: ganzoo: No such option '--bogus'. Try 'ganzoo --help' for help."),
        (["models", "download"],
         "error: ganzoo models download: Missing argument 'NAME'. Try 'ganzoo models download --help' for help."),
        (["translate", "--input", "x"], "error: ganzoo translate: Missing option '--checkpoint'."),
        (["list", "widgets"], "error: ganzoo list: Invalid value for"),
        (["run", str(RECIPE), "--dry-run", "--set"], "error: ganzoo run: Option '--set' requires an argument."),
    ],
    ids=["bad-value", "unknown-option", "unknown-command", "group-option", "nested-group", "missing-option",
         "bad-choice", "missing-value"],
)
def test_click_usage_errors_are_one_error_line(args, expected):
    result = CliRunner().invoke(cli, args, catch_exceptions=False, prog_name="ganzoo")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(expected), result.output
    assert len(result.output.splitlines()) == 1, result.output
    assert "Usage:" not in result.output and "Error: " not in result.output
    assert result.output.rstrip().endswith("--help' for help."), result.output


def test_bare_command_still_shows_the_help():
    result = CliRunner().invoke(cli, [], catch_exceptions=False)
    assert "Usage: " in result.output and "Commands:" in result.output
    assert "error:" not in result.output


def test_user_errors_keep_their_form():
    result = CliRunner().invoke(cli, ["run", "/nonexistent/recipe.toml"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.output.startswith("error: /nonexistent/recipe.toml: recipe file not found")
    assert "Try '" not in result.output


def test_usage_error_through_the_installed_command(tmp_path):
    ganzoo = Path(sys.executable).with_name("ganzoo")
    proc = subprocess.run([str(ganzoo), "run", str(RECIPE), "--steps", "0"], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: ganzoo run: Invalid value for '--steps': 0 is not in the range x>=1. Try 'ganzoo run --help' for help."
    ]
    assert not any(tmp_path.iterdir())
