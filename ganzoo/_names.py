"""Did-you-mean messages, shared by every lookup of a name (components, sections, keys, kinds)."""
from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: str, choices: Iterable[str], form: str = '"{}"') -> str:
    """``'Did you mean "x"? '`` for the closest choice (written as ``form``), or an empty string."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f"Did you mean {form.format(close[0])}? " if close else ""


def unknown_name(what: str, name: str, choices: Iterable[str]) -> str:
    """``unknown <what> "name". Did you mean ...? Available: a, b, c`` (sorted)."""
    choices = sorted(choices)
    return f'unknown {what} "{name}". {did_you_mean(name, choices)}Available: {", ".join(choices) or "(none)"}'
