"""Errors that the CLI turns into a message and an exit code (never a traceback).

Exit codes: 0 success, 1 the data has problems, 2 usage errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterable

__all__ = [
    "EXIT_OK",
    "EXIT_DATA",
    "EXIT_USAGE",
    "ThreecadError",
    "UsageError",
    "DataError",
    "BadFileError",
    "Severity",
    "Problem",
    "format_problems",
    "ProblemsView",
]

EXIT_OK = 0
EXIT_DATA = 1
EXIT_USAGE = 2


class ThreecadError(Exception):
    """Base class of errors meant for the user; ``exit_code`` says how the CLI exits."""

    exit_code = EXIT_DATA


class UsageError(ThreecadError):
    """The command was asked for something impossible (bad path, unknown category, ...)."""

    exit_code = EXIT_USAGE


class DataError(ThreecadError):
    """The data has problems; ``problems`` lists all of them."""

    exit_code = EXIT_DATA

    def __init__(self, message: str, problems: Iterable["Problem"] = ()) -> None:
        self.problems = list(problems)
        if self.problems:
            message = message + "\n" + format_problems(self.problems)
        super().__init__(message)


class BadFileError(DataError):
    """One input file cannot be used; ``problems`` holds the one :class:`Problem`.

    Raised by the readers of untrusted files (a submission's maps, ``scores.csv``,
    ``submission.json``) for anything from "not a regular file" to "corrupt header".
    ``str()`` is ``"<path>: <message>"``.

    Parameters
    ----------
    path : str or Path
        The file.
    message : str
        What is wrong with it (never its contents).
    kind : str
        The problem kind (``not_regular_file``, ``unreadable_map``, ``bad_scores``, ...).
    """

    def __init__(self, path: "str | Path", message: str, kind: str) -> None:
        self.path = Path(path)
        self.message = message
        self.kind = kind
        self.problems = [Problem(kind, self.path, message)]
        Exception.__init__(self, f"{self.path}: {message}")

    def __reduce__(self):
        """Pickle with the constructor's arguments (errors cross process boundaries on a cluster)."""
        return type(self), (self.path, self.message, self.kind)


class Severity(str, Enum):
    """How bad a problem is: errors stop a command, warnings are reported."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One problem found in a dataset tree, with the path it concerns."""

    kind: str
    path: Path
    message: str
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        """True for problems of severity ``error``."""
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, str]:
        """Plain-value form, for JSON reports."""
        return {
            "kind": self.kind,
            "severity": self.severity.value,
            "path": str(self.path),
            "message": self.message,
        }


class ProblemsView:
    """Mixin for results holding ``problems``: the errors and warnings among them."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        """The problems of severity ``error``."""
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        """The problems of severity ``warning``."""
        return [p for p in self.problems if not p.is_error]


def format_problems(problems: Iterable[Problem], *, limit_per_kind: int = 20) -> str:
    """Readable listing of problems grouped by kind, errors first.

    At most ``limit_per_kind`` paths are shown per kind, followed by a count of the rest.
    """
    groups: dict[tuple[str, str], list[Problem]] = {}
    for p in problems:
        groups.setdefault((p.severity.value, p.kind), []).append(p)
    lines: list[str] = []
    order = sorted(groups, key=lambda k: (k[0] != Severity.ERROR.value, k[1]))
    for severity, kind in order:
        items = groups[(severity, kind)]
        lines.append(f"  {severity} {kind} ({len(items)}):")
        for p in items[:limit_per_kind]:
            lines.append(f"    {p.path}: {p.message}")
        if len(items) > limit_per_kind:
            lines.append(f"    ... and {len(items) - limit_per_kind} more")
    return "\n".join(lines)
