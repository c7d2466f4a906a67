"""Reader for the PHC/ASAP motion-lib format: a (joblib) pickle of one motion dict or ``{name: dict}``.

Each motion dict has ``root_trans_offset`` (or ``root_pos``) (T, 3), ``root_rot`` (T, 4) xyzw, ``dof`` (T, N)
and ``fps``; other keys (``pose_aa``, ``smpl_joints``, ...) are ignored. Files go through
:mod:`motion_vqvae.data.safe_pickle`, so a data file never executes code.
"""

from __future__ import annotations

import logging
import math
import reprlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.data.errors import MotionFileError, flag_hint, reading
from motion_vqvae.data.meta import resolve_joint_names, warn_ignored
from motion_vqvae.data.motion import Motion
from motion_vqvae.data.safe_pickle import safe_load
from motion_vqvae.data.validation import make_motion

ROOT_POS_KEYS = ("root_trans_offset", "root_pos")
logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("root_rot", "dof")
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


def _is_motion_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and "dof" in obj and "root_rot" in obj


def _array(clip: Mapping[str, Any], key: str, where: str, width: int | None) -> np.ndarray:
    value = clip[key]
    if not isinstance(value, np.ndarray):  # nested lists: must be a rectangular table of plain numbers
        try:
            value = np.array(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise MotionFileError(f"{where}: '{key}' is not a rectangular table of numbers ({err})") from err
    if value.dtype.kind not in "fiu" or value.ndim != 2 or (width is not None and value.shape[1] != width):
        want = f"(T, {width})" if width is not None else "(T, N)"
        raise MotionFileError(
            f"{where}: '{key}' must be a numeric {want} array, got {value.dtype} {value.shape}"
        )
    return value.astype(np.float64)


def _clip_fps(clip: Mapping[str, Any], fps: float | None, where: str) -> float:
    """The clip's own ``fps`` key; ``fps`` only fills in when the key is missing."""
    if "fps" not in clip:
        if fps is None:
            raise MotionFileError(f"{where}: no 'fps' key in the motion dict; {flag_hint('fps', 30)}")
        return float(fps)
    raw = clip["fps"]
    value = raw.item() if isinstance(raw, (np.generic, np.ndarray)) and np.ndim(raw) == 0 else raw
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise MotionFileError(
            f"{where}: 'fps' must be one positive finite number, got {_short.repr(raw)}", column="fps"
        )
    warn_ignored(where, "fps", float(value), fps, "the clip's 'fps' key says")
    return float(value)


def read_pkl(
    path: str | Path,
    *,
    fps: float | None = None,
    quat_order: str = "xyzw",
    robot_joint_names: Sequence[str] | None = None,
) -> list[Motion]:
    """All clips of a motion-lib pickle; ``fps`` is used for clips without an ``fps`` key."""
    path = Path(path)
    with reading(path, "pickle/joblib file"):
        return _read_pkl_clips(path, fps, quat_order, robot_joint_names)


def _read_pkl_clips(
    path: Path, fps: float | None, quat_order: str, robot_joint_names: Sequence[str] | None
) -> list[Motion]:
    obj = safe_load(path)
    if _is_motion_dict(obj):
        clips = {path.stem: obj}
    elif isinstance(obj, Mapping) and obj and all(_is_motion_dict(v) for v in obj.values()):
        clips = dict(obj)
    else:
        found = sorted(map(_short.repr, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise MotionFileError(
            f"{path}: expected one motion dict with keys {REQUIRED_KEYS} and one of {ROOT_POS_KEYS}, or a "
            f"{{name: motion dict}} mapping; found {found}"
        )
    motions = []
    for key, clip in clips.items():
        name = key if isinstance(key, str) else _short.repr(key)
        where = f"{path} clip '{name}'"
        pos_key = next((k for k in ROOT_POS_KEYS if k in clip), None)
        if pos_key is None:
            raise MotionFileError(f"{where}: no root position; expected one of the keys {ROOT_POS_KEYS}")
        dof = _array(clip, "dof", where, None)
        motions.append(
            make_motion(
                where=where,
                name=name,
                fps=_clip_fps(clip, fps, where),
                root_pos=_array(clip, pos_key, where, 3),
                root_quat=_array(clip, "root_rot", where, 4),
                dof=dof,
                joint_names=resolve_joint_names(path, dof.shape[1], robot_joint_names),
                quat_order=quat_order,
            )
        )
    return motions
