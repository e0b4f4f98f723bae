"""User-facing errors.

Every problem a user can cause (a bad file, a bad option, a missing model) is raised as a
`DistpaintError` whose message names the file or option and the problem. The CLI prints these
as one red line and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["DistpaintError", "InputError", "ConfigError"]


class DistpaintError(Exception):
    """A problem the user can fix; the message says what and where."""


class InputError(DistpaintError):
    """An input file or store is unreadable, empty, non-binary, too small, ..."""


class ConfigError(DistpaintError):
    """A configuration file, search space or command-line option is invalid."""
