"""The few exception types every motion reader raises, whatever numpy, gzip or pickle raised underneath.

A caller (the training CLI, a user script) can catch :class:`MotionFileError` alone and print its message
as one line: the message always names the file, and the clip, row and column where they exist. The
subclasses say *why* a file was refused, for callers that want to react differently:

- :class:`UnsafePickleError`: the pickle names a global outside the allow-list (it would run code).
- :class:`MotionSizeError`: a declared size (array shape, byte length, decompressed size, nested
  container) is out of proportion to the file's size: a memory bomb or a corrupted header.
- :class:`ImplausibleMotionError`: the numbers parse but no robot moves like that (joint angles far past
  the limits, a root 10^30 m away, an fps of 10^300, a body lying on its side for the whole clip).
- :class:`MotionFileNotFoundError`: the path, folder or glob holds no motion file (also a
  ``FileNotFoundError``).

All are ``ValueError`` subclasses, so code written against the readers' earlier ``ValueError`` keeps working,
and members of the project's :class:`~motion_vqvae.errors.UserError` family, so a command prints them as one
line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from motion_vqvae.errors import UserError

WRONG_QUAT_ORDER = "the quaternion order is probably wrong"
"""Said by every check that finds a root quaternion read in the wrong order; ``load_motions`` looks for it."""
_MAX_CAUSE_CHARS = 300  # a library's message can embed a huge repr; the cause is cut to this length


class MotionFileError(UserError, ValueError):
    """A motion file (or its ``meta.json``) cannot become valid clips; the message says why and how."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        clip: str | None = None,
        row: int | None = None,
        column: int | str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = None if file is None else str(file)
        self.clip = clip
        self.row = row
        self.column = column


class UnsafePickleError(MotionFileError):
    """The pickle references a global outside the allow-list, or is not a data-only pickle."""


class MotionSizeError(MotionFileError):
    """A declared size is out of proportion to the file: refused before anything that large is allocated."""


class ImplausibleMotionError(MotionFileError):
    """The values parse but are physically impossible for the robot (``relax=`` turns it into a warning)."""


class MotionFileNotFoundError(MotionFileError, FileNotFoundError):
    """No motion file at the given path, folder or glob."""


def flag_hint(key: str, value: object) -> str:
    """How to give a source setting, as the command line spells it and as Python does.

    Most people meet a reader's error through a command (``--fps 30``); library callers pass keywords
    (``fps=30``). Naming both costs one parenthesis and no guess about who is calling.
    """
    return f"pass --{key.replace('_', '-')} {value} (from Python: {key}={value!r})"


def _short(text: str) -> str:
    return text if len(text) <= _MAX_CAUSE_CHARS else text[:_MAX_CAUSE_CHARS] + "..."


@contextlib.contextmanager
def reading(path: str | Path, what: str = "motion file") -> Iterator[None]:
    """Turn anything raised while reading ``path`` into a :class:`MotionFileError` that names the file.

    Our own errors pass through (with the file filled in and prefixed when the message lacks it); any other
    exception (``EOFError`` from numpy, ``zlib.error``, ``MemoryError``, a ``TypeError`` from deep inside
    pickle...) becomes a ``MotionFileError`` chained to the original, so callers need one ``except``.
    """
    name = str(path)
    try:
        yield
    except MotionFileError as err:
        if err.file is None:
            err.file = name
        if name not in str(err):
            err.args = (f"{name}: {err}", *err.args[1:])
        raise
    except Exception as err:  # noqa: BLE001 - the point is to catch whatever the library raised
        raise MotionFileError(
            f"{name}: not a readable {what} ({type(err).__name__}: {_short(str(err))}); check that the file "
            "is complete and in one of the supported layouts (see README, 'Reading motion')",
            file=name,
        ) from err
