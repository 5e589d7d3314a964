"""The CLI commands that have grown beyond a few lines, one module each (ganzoo.cli adds them)."""
