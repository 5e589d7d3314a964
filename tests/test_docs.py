"""docs/plugins.md documents every hook: a new hookspec without its own section fails here."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ganzoo import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("ganzoo_"))


def _headings() -> set[str]:
    """Hook names used as headings, e.g. ``### `ganzoo_on_run_end` ``."""
    text = DOCS.read_text(encoding="utf-8")
    return set(re.findall(r"^#{2,4} `(ganzoo_\w+)`", text, flags=re.MULTILINE))


def test_hookspecs_are_found():
    assert "ganzoo_register_generators" in HOOKS and "ganzoo_on_run_end" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_section(hook):
    assert hook in _headings(), (
        f"{hook} (ganzoo/hookspecs.py) is not documented: add a '### `{hook}`' section to {DOCS} "
        "with its arguments, return value and when it is called."
    )


def test_no_section_for_a_hook_that_does_not_exist():
    stale = _headings() - set(HOOKS)
    assert not stale, f"{DOCS} documents hooks that ganzoo.hookspecs does not define: {sorted(stale)}"
