"""Output folders that lose nothing: what every command that writes an ``--out`` folder shares.

git and package managers never delete what they did not create; neither do our commands. The rules:

- ``--out`` never equals, lies inside or contains what the command reads (the input data, the checkpoint's
  run): :func:`check_apart`. ``export_onnx.py --out RUN --overwrite`` once wiped a run's checkpoints.
- An existing folder is replaced only when it holds nothing but what the command itself writes (an
  export's ``manifest.json`` and the files it lists, a cache's ``index.json`` and its shards):
  :func:`check_replaceable`. ``--out exports --overwrite`` once wiped every sibling export.
- One writer per ``--out`` at a time (:func:`claim`, an ``flock`` beside the folder), so two exports into
  one folder cannot both report success while only one survives.
- Work happens in a hidden sibling (``.NAME.partial-PID``, ``.NAME.tmp-PID``) renamed into place at the end
  (:func:`publish`); one left by a killed run is removed by the next run once that PID is dead
  (:func:`clean_stale_temps`).
- The machine's refusals (disk full, read-only folder, no permission) become one line naming the path
  (:func:`environment_errors`) instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from motion_vqvae.errors import (
    ENVIRONMENT_ERRNOS,
    EnvironmentFault,
    OutputExists,
    OutputInUse,
    UnsafeOutput,
    UserError,
)

log = logging.getLogger(__name__)

TEMP_KINDS = ("partial", "tmp", "old")
"""Hidden siblings of ``--out``: work in progress (``partial``, ``tmp``) and a replaced folder (``old``)."""


def temp_sibling(out: Path, kind: str) -> Path:
    """``.NAME.KIND-PID`` beside ``out``: hidden, and named after its writer so a later run sees it died."""
    if kind not in TEMP_KINDS:
        raise ValueError(f"temp kind {kind!r} is not one of {TEMP_KINDS}")  # internal: callers pass constants
    return out.parent / f".{out.name}.{kind}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts: its parent has not seen it end yet)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: past any PID the system can give
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def clean_stale_temps(out: Path) -> list[Path]:
    """Remove the hidden siblings of ``out`` left by killed runs (their PID is dead); return what went.

    A run killed between moving the previous ``out`` aside and moving the new one in leaves ``out`` missing
    and the previous folder in ``.NAME.old-PID``: that folder is moved back instead of deleted.
    """
    if not out.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.({'|'.join(TEMP_KINDS)})-(\d+)$")
    removed = []
    for entry in sorted(out.parent.iterdir()):
        match = pattern.match(entry.name)
        if match is None or pid_alive(int(match[2])):
            continue
        if match[1] == "old" and not out.exists() and entry.is_dir():
            entry.rename(out)
            log.warning("restored %s from %s (a run was killed while replacing it)", out, entry)
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        log.info("removed %s, left by a killed run (pid %s)", entry, match[2])
        removed.append(entry)
    return removed


def motion_inputs(source: str | Path) -> dict[str, Path]:
    """What a motion source reads, for :func:`check_apart`: the file or folder it names, or a glob's files.

    A glob names files, not their folder: ``--motion_file 'data/*.npy' --out data/cache`` is fine.
    """
    text = str(source)
    if not glob.has_magic(text):
        return {"the input data": Path(text)}
    return {f"the input file {name}": Path(name) for name in sorted(glob.glob(text, recursive=True))}


def run_of(checkpoint: str | Path) -> Path:
    """The run folder of ``RUN/checkpoints/NAME.pt``; for a checkpoint elsewhere, the file itself."""
    path = Path(checkpoint)
    return path.parent.parent if path.parent.name == "checkpoints" else path


def check_apart(
    out: Path, inputs: Mapping[str, Path | None], *, allow_inside: frozenset[str] = frozenset()
) -> None:
    """Refuse an ``out`` equal to, inside or containing one of ``inputs`` (label -> path).

    Labels in ``allow_inside`` may hold ``out`` (``evaluate.py --out RUN/eval`` is documented); equal or
    containing is refused for every input, because replacing or filling ``out`` would touch the input.
    """
    mine = out.resolve()
    for label, path in inputs.items():
        if path is None:
            continue
        theirs = Path(path).resolve()
        if mine == theirs:
            relation = "is"
        elif mine in theirs.parents:
            relation = "contains"
        elif theirs in mine.parents and label not in allow_inside:
            relation = "is inside"
        else:
            continue
        raise UnsafeOutput(
            f"--out {out} {relation} {label} ({path}); writing there could overwrite or delete what this "
            "command reads: choose an --out outside it"
        )


def check_replaceable(
    out: Path, overwrite: bool, owned: Callable[[Path], set[str] | None], what: str, marker: str
) -> None:
    """Refuse an ``out`` that would lose something if this command replaced it.

    A missing or empty folder is fine. Anything else needs ``overwrite``, and even then ``owned(out)`` must
    say which entries the command wrote (``None``: ``marker`` is missing or unreadable, so it is not
    ``what``) and there must be no others.
    """
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise OutputExists(f"--out {out} exists and is not a folder; choose another --out")
    entries = set(os.listdir(out))
    if not entries:
        return
    if not overwrite:
        raise OutputExists(
            f"--out {out} already exists; pass --overwrite to replace it, or choose another --out"
        )
    mine = owned(out)
    if mine is None:
        raise UnsafeOutput(
            f"--out {out} holds no readable {marker}, so it is not {what}; --overwrite replaces only {what} "
            "and deleted nothing: choose another --out"
        )
    others = sorted(entries - mine)
    if others:
        listed = ", ".join(others[:8]) + (", ..." if len(others) > 8 else "")
        raise UnsafeOutput(
            f"--out {out} holds files that are not part of {what} ({listed}); --overwrite would delete them "
            "and deleted nothing: move them, or choose another --out"
        )


@contextlib.contextmanager
def claim(out: Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``out`` for the whole command: a second writer gets :class:`OutputInUse`.

    The lock file is removed at the end. A waiter that opened it just before may then lock a deleted file,
    so the inode is compared after locking and the attempt repeated on a mismatch.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    while True:
        handle = lock.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputInUse(
                f"--out {out} is being written by {holder}; wait for it to finish, stop it, or choose "
                "another --out"
            ) from None
        try:
            same = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield
    finally:
        lock.unlink(missing_ok=True)
        handle.close()


def publish(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``; a previous ``out`` is moved aside first, then deleted."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = temp_sibling(out, "old")
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old)


@contextlib.contextmanager
def environment_errors(path: Path) -> Iterator[None]:
    """Turn the machine's refusals (disk full, read-only, permission) into one line naming the path.

    An ``OSError`` without a file name (a ``write`` that hit a full disk) is attributed to ``path``; torch's
    checkpoint writer reports the same faults as a ``RuntimeError``, recognised by its text.
    """
    try:
        yield
    except UserError:
        raise
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        raise _fault(
            Path(exc.filename) if exc.filename else path, exc.errno, exc.strerror or str(exc)
        ) from exc
    except RuntimeError as exc:
        text = str(exc)
        if "PytorchStreamWriter failed" not in text and "cannot be opened" not in text:
            raise
        code = errno.ENOSPC if _free_bytes(path) == 0 else errno.EACCES
        raise _fault(path, code, f"torch could not write ({os.strerror(code)}?)") from exc


def _fault(path: Path, code: int, reason: str) -> EnvironmentFault:
    fault = EnvironmentFault(f"{path}: {reason}; {ENVIRONMENT_ERRNOS[code]}")
    fault.errno, fault.filename = code, str(path)
    return fault


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free
    return None
