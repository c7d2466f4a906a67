"""What every command shares: user errors as one ``error:`` line (exit 2), logging that keeps tqdm intact.

A user who passes a wrong path, an empty folder or a bad ``--set`` needs the message, not a traceback. The
project raises those on purpose from the :mod:`motion_vqvae.errors` family (``UserError`` and its members,
``MotionFileError`` among them), with messages that name the file, the field and the fix; :func:`cli_main`
turns exactly those, YAML syntax errors and ``OSError``s that name a path (disk full, read-only folder)
into ``error: <message>`` on stderr and exit code 2. A plain ``ValueError``/``KeyError``/``TypeError`` is
what a bug raises, so it keeps its traceback. ``MOTION_VQVAE_DEBUG=1`` shows the traceback of a user error
too.

Adopting it in a script is one line::

    @cli_main
    def main(argv: list[str] | None = None) -> int: ...
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable

import yaml
from tqdm import tqdm

from motion_vqvae.errors import ENVIRONMENT_ERRNOS, UserError

USER_ERROR_EXIT = 2
INTERRUPT_EXIT = 130

USER_ERRORS: tuple[type[BaseException], ...] = (UserError, yaml.MarkedYAMLError)
"""Exception types whose message is meant for the user; an ``OSError`` also is when it names a path."""


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is raised on purpose for the user (one line) rather than by a bug (traceback).

    An ``OSError`` with a ``filename`` (a missing file, a full disk, a read-only folder) is the machine's
    answer about a path the user chose; one without a path says too little to act on and stays a traceback.
    """
    if isinstance(exc, USER_ERRORS):
        return True
    return isinstance(exc, OSError) and exc.filename is not None


def error_message(exc: BaseException) -> str:
    """The one-line text of a user error (``KeyError`` quotes its argument; this does not)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, UserError) and exc.filename is not None:
        hint = ENVIRONMENT_ERRNOS.get(exc.errno or 0, "")
        text = f"{exc.filename}: {exc.strerror or text}" + (f"; {hint}" if hint else "")
    text = " ".join(text.split()) or type(exc).__name__
    return text


def cli_main(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Wrap a command's ``main``: user errors -> ``error: ...`` + exit 2, Ctrl-C -> one line + exit 130."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except Exception as exc:
            if not is_user_error(exc) or os.environ.get("MOTION_VQVAE_DEBUG"):
                raise
            print(f"error: {error_message(exc)}", file=sys.stderr)
            return USER_ERROR_EXIT
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return INTERRUPT_EXIT

    return wrapper


def run(main: Callable[[list[str] | None], int]) -> None:
    """``sys.exit(main())`` for scripts and console entry points."""
    sys.exit(main(None))


def add_run_arguments(parser: argparse.ArgumentParser, replaces: str) -> None:
    """--time-budget, --resume and --overwrite: how a training command treats its run directory (the
    tokenizer's and the prior's, one Trainer); ``replaces`` says what --overwrite removes."""
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="MINUTES",
        help="fit total_iter to this wall-clock budget (measured step time) and stop by then",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue OUT/checkpoints/last.pt with its own config"
    )
    parser.add_argument("--overwrite", action="store_true", help=f"replace {replaces} in OUT")


def add_source_arguments(parser: argparse.ArgumentParser, *, target_fps: str | None = None) -> None:
    """``--fps`` and ``--quat-order`` (and ``--target-fps`` with its help), the same in every command.

    They say how to read files that do not say it themselves; a file's own rate or order (NPY time column,
    PKL ``fps`` key, a ``meta.json`` beside it) wins, see :mod:`motion_vqvae.data.meta`.
    """
    parser.add_argument(
        "--fps",
        type=float,
        help="frame rate of files that do not state one (a CSV without meta.json, a PKL without 'fps')",
    )
    parser.add_argument(
        "--quat-order",
        choices=("xyzw", "wxyz"),
        help="root quaternion order of files whose meta.json does not state one (else NPY wxyz, CSV xyzw)",
    )
    if target_fps is not None:
        parser.add_argument("--target-fps", type=float, help=target_fps)


class _TqdmHandler(logging.Handler):
    """Writes log lines above an active progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never kill the run
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """Root logging through tqdm.write, so validation lines print above the bar rather than inside it."""
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    # Replace console handlers (ours, basicConfig's); keep others such as file or test-capture handlers.
    root.handlers[:] = [h for h in root.handlers if type(h) not in (logging.StreamHandler, _TqdmHandler)]
    root.addHandler(handler)
    root.setLevel(level)
