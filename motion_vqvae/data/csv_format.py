"""Reader for headerless CSV clips: one row per frame, ``root_pos(3), root_quat(4), dof(N)``.

A CSV carries neither fps nor joint names, so they come from the caller or from a ``meta.json`` beside the
file (keys ``fps`` and ``dof_names``), see :mod:`motion_vqvae.data.meta`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from motion_vqvae.data.errors import MotionFileError, reading
from motion_vqvae.data.meta import resolve_joint_names, source_fps
from motion_vqvae.data.motion import Motion
from motion_vqvae.data.validation import make_motion

ROOT_COLUMNS = 7  # root_pos(3) + root_quat(4)


def read_csv_table(path: Path) -> np.ndarray:
    """The numbers of a headerless comma-separated file as a (rows, columns) float64 array."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as err:
        raise MotionFileError(
            f"{path}: not a headerless numeric CSV ({err}). Remove any header line and keep only numbers "
            "separated by commas."
        ) from err
    return table


def read_csv(
    path: str | Path,
    *,
    fps: float | None = None,
    quat_order: str = "xyzw",
    robot_joint_names: Sequence[str] | None = None,
) -> list[Motion]:
    """The one clip in a CSV file, named after the file stem."""
    path = Path(path)
    with reading(path, "CSV file"):
        return [_read_csv_clip(path, fps, quat_order, robot_joint_names)]


def _read_csv_clip(
    path: Path, fps: float | None, quat_order: str, robot_joint_names: Sequence[str] | None
) -> Motion:
    fps = source_fps(path, fps)
    table = read_csv_table(path)
    num_dof = table.shape[1] - ROOT_COLUMNS
    if num_dof <= 0:
        raise MotionFileError(
            f"{path}: {table.shape[1]} columns, expected root_pos(3), root_quat(4) and at least one "
            "joint column"
        )
    joint_names = resolve_joint_names(path, num_dof, robot_joint_names)
    return make_motion(
        where=str(path),
        name=path.stem,
        fps=fps,
        root_pos=table[:, :3],
        root_quat=table[:, 3:ROOT_COLUMNS],
        dof=table[:, ROOT_COLUMNS:],
        joint_names=joint_names,
        quat_order=quat_order,
    )
