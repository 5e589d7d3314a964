"""User-facing errors: everything a user can fix themselves derives from GanzooError.

The CLI prints the message of a GanzooError without a traceback and exits with code 2;
every other exception is a bug and keeps its traceback.
"""
from __future__ import annotations


class GanzooError(Exception):
    """A problem the user can fix: the message says where, what and how to fix it."""


class RecipeError(GanzooError):
    """A recipe file or an override is malformed or names something that does not exist."""


class PluginError(GanzooError):
    """A plugin failed to import, registered a duplicate name or returned something invalid."""


class DataError(GanzooError):
    """A dataset folder is missing, empty, malformed or holds an unreadable file."""


class CheckpointError(GanzooError):
    """A checkpoint is missing, truncated, unsafe or does not fit the model."""
