"""The errors the project raises on purpose for a user to read: one ``error:`` line and exit 2, never a bug.

``cli.cli_main`` turns exactly this family (plus YAML syntax errors and ``OSError``s that name a path) into
one line. A plain ``ValueError``, ``KeyError`` or ``TypeError`` is what a bug raises, so it keeps its
traceback. Each member also inherits the builtin it replaces (``InvalidValue`` is a ``ValueError``), so
code and tests written against the builtins keep catching them.

This module imports nothing from the project, so every layer (data readers, config, training, export) can
raise from it without an import cycle.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator


class UserError(Exception):
    """A mistake the user can fix (bad flag combination, run directory in use, ...): one line, exit 2."""


class InvalidValue(UserError, ValueError):
    """A value the user gave (flag, config key, file content) is out of its allowed set or range."""


class UnknownKey(UserError, KeyError):
    """A name the user gave (config key, clip, joint, robot) does not exist; the message lists valid ones."""

    def __str__(self) -> str:  # KeyError's str() quotes its argument; a message is read as text
        return str(self.args[0]) if self.args else type(self).__name__


class InvalidType(UserError, TypeError):
    """A value the user gave has the wrong type (a string where a number belongs, ...)."""


class MissingPath(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class OutputExists(UserError, FileExistsError):
    """``--out`` already holds something this command would have to replace."""


class UnsafeOutput(UserError, ValueError):
    """``--out`` would delete or mix with what the command did not write (input data, a run, exports)."""


class OutputInUse(UserError, BlockingIOError):
    """Another process is writing the same ``--out`` right now."""


class DeviceUnavailable(UserError, RuntimeError):
    """The configured torch device does not exist on this machine."""


class EnvironmentFault(UserError, OSError):
    """The machine refused a write or read (disk full, read-only folder, no permission), naming the path."""

    def __str__(self) -> str:  # OSError's str() rebuilds "[Errno N] ..." once errno and filename are set
        return str(self.args[0]) if self.args else type(self).__name__


ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free space on that disk or choose another folder",
    errno.EDQUOT: "free space within your quota or choose another folder",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "choose a folder you may write, or fix its permissions",
    errno.EPERM: "choose a folder you may write, or fix its permissions",
    errno.ENAMETOOLONG: "choose a shorter path",
}
"""errno -> what to do about it: the faults of the machine, not of the program, that a user can fix."""


_FAMILY: tuple[tuple[type[Exception], type[UserError]], ...] = (
    (FileNotFoundError, MissingPath),
    (KeyError, UnknownKey),
    (TypeError, InvalidType),
    (ValueError, InvalidValue),
)


@contextlib.contextmanager
def user_input() -> Iterator[None]:
    """Around code that parses what the user gave but cannot raise this family: its builtins become members.

    ``sim2real`` runs on the robot with numpy only and never imports this package, so its robot-YAML and
    manifest parsers raise the plain builtins. Where the training side hands it the user's robot name or
    file, those refusals are the user's to fix (``--set robot=foo``) and belong on one line.
    """
    try:
        yield
    except UserError:
        raise
    except (FileNotFoundError, KeyError, TypeError, ValueError) as exc:
        family = next(member for builtin, member in _FAMILY if isinstance(exc, builtin))
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise family(text) from exc
