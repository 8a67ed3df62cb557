"""``python -m threecad``: the same as the ``threecad`` command."""

from .cli import entry_point

entry_point()
