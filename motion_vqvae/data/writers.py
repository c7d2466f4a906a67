"""Writers for the NPY layout and headerless CSV; read -> write -> read gives back the same numbers.

Writes are atomic (a temporary file in the target folder, then ``os.replace``), so an interrupted run
never leaves a half-written motion file where a reader would find it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.data.npy_format import NPY_QUAT_ORDER
from motion_vqvae.data.validation import check_quat_order, quat_from_xyzw
from motion_vqvae.errors import InvalidValue
from motion_vqvae.rotations import quat_slerp


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then move it into place in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


MAX_STEM_BYTES = 120
"""File names stay well under the usual 255-byte limit, with room for a suffix, an extension and a temp."""


def file_stems(names: Sequence[str], max_bytes: int = MAX_STEM_BYTES) -> list[str]:
    """One distinct, safe file stem per clip name, in order: what writers name per-clip outputs after.

    Clip names come from users' files: ``walk/1``, ``walk:1`` and ``walk 1`` all sanitise to ``walk_1``,
    and a 300-character name is longer than any file system allows. Characters other than letters, digits,
    ``-``, ``_`` and ``.`` become ``_`` (a leading ``.`` too, so nothing is hidden), a stem is cut to
    ``max_bytes`` of UTF-8, and a stem already taken (compared case-insensitively, as macOS and Windows
    do) gets ``_2``, ``_3``, ...: no clip's output overwrites another's.
    """
    stems: list[str] = []
    taken: set[str] = set()
    for name in names:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "clip"
        safe = "_" + safe[1:] if safe.startswith(".") else safe
        stem, count = _cut(safe, max_bytes), 1
        while stem.casefold() in taken:
            count += 1
            stem = _cut(safe, max_bytes - len(f"_{count}")) + f"_{count}"
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


def _cut(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode(errors="ignore")


def _rows(motion: Motion, quat_order: str) -> np.ndarray:
    """``root_pos(3), root_quat(4, in quat_order), dof(N)`` per frame."""
    return np.concatenate([motion.root_pos, quat_from_xyzw(motion.root_quat, quat_order), motion.dof], axis=1)


def _blend(a: Motion, b: Motion, frames: int) -> np.ndarray:
    """``frames`` rows (wxyz) going from ``a``'s last frame to ``b``'s first: lerp, slerp for the root."""
    t = np.arange(1, frames + 1) / (frames + 1)  # (frames,), never 0 or 1
    pos = a.root_pos[-1] + t[:, None] * (b.root_pos[0] - a.root_pos[-1])
    dof = a.dof[-1] + t[:, None] * (b.dof[0] - a.dof[-1])
    quat = quat_slerp(np.repeat(a.root_quat[-1:], frames, 0), np.repeat(b.root_quat[:1], frames, 0), t)
    return np.concatenate([pos, quat_from_xyzw(quat, NPY_QUAT_ORDER), dof], axis=1)


def save_npy(motions: Motion | Sequence[Motion], path: str | Path, blend_frames: int = 1) -> Path:
    """Write clips into one trajectory ``[time, root_pos, root_quat (wxyz), dof, transition_flag]``.

    Clip frames get flag 0. Between two clips ``blend_frames`` (at least 1) frames flagged 1 blend from
    the earlier clip's last frame to the next one's first: that 1 -> 0 edge is how the reader finds where
    the next clip starts, and the reader drops flagged frames by default (``keep_transitions=True`` keeps
    them at the end of the earlier clip). Time runs ``row / fps`` over the whole file; all clips must share
    fps and joint names. Clip names are not stored: they read back as ``<file stem>_<index>``.
    """
    clips = [motions] if isinstance(motions, Motion) else list(motions)
    if not clips:
        raise InvalidValue(f"save_npy {path}: no motions to write")
    if isinstance(blend_frames, bool) or not isinstance(blend_frames, int) or blend_frames < 1:
        raise InvalidValue(
            f"save_npy {path}: blend_frames must be an int >= 1 (clip boundaries are flagged frames), "
            f"got {blend_frames!r}"
        )
    first = clips[0]
    for clip in clips[1:]:
        if clip.fps != first.fps:
            raise InvalidValue(
                f"save_npy {path}: clip '{clip.name}' is at {clip.fps} fps, '{first.name}' at {first.fps}; "
                "one NPY file has one frame rate: resample() the clips to a common fps first"
            )
        if clip.joint_names != first.joint_names:
            raise InvalidValue(
                f"save_npy {path}: clip '{clip.name}' has different joint names from '{first.name}'; "
                "map them onto one robot (load_motions(..., robot=...)) first"
            )
    blocks = []
    for index, clip in enumerate(clips):
        blocks.append(np.concatenate([_rows(clip, NPY_QUAT_ORDER), np.zeros((clip.num_frames, 1))], axis=1))
        if index < len(clips) - 1:
            blocks.append(
                np.concatenate(
                    [_blend(clip, clips[index + 1], blend_frames), np.ones((blend_frames, 1))], axis=1
                )
            )
    body = np.concatenate(blocks, axis=0)
    time = np.arange(len(body), dtype=np.float64)[:, None] / first.fps
    table = np.concatenate([time, body], axis=1)
    return atomic_write(path, lambda handle: np.save(handle, table, allow_pickle=False))


def save_csv(motion: Motion, path: str | Path, quat_order: str = "xyzw") -> Path:
    """Write one clip as a headerless CSV ``root_pos, root_quat (quat_order), dof`` at full precision.

    fps and joint names are not in the file: read it back with ``fps=`` (or a meta.json beside it).
    """
    check_quat_order(quat_order, f"save_csv {path}")
    table = _rows(motion, quat_order)
    return atomic_write(path, lambda handle: np.savetxt(handle, table, delimiter=",", fmt="%.17g"))
