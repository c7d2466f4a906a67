"""Reader for the MotionVQVAE NPY layout: one float array ``[time, root_pos(3), root_quat(4), dof(N), flag]``.

Several clips are concatenated into one trajectory joined by transition frames (``flag`` = 1); a new clip
starts where the flag goes from 1 to 0. Transition frames belong to the clip before them and are dropped
unless ``keep_transitions``. The frame rate comes from the time column; the quaternion order of the layout
is wxyz.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from motion_vqvae.data.errors import MotionFileError, MotionSizeError, reading
from motion_vqvae.data.meta import resolve_joint_names
from motion_vqvae.data.motion import Motion
from motion_vqvae.data.validation import check_finite, column_labels, make_motion

logger = logging.getLogger(__name__)

NPY_QUAT_ORDER = "wxyz"
FIXED_COLUMNS = 9  # time + root_pos(3) + root_quat(4) + transition_flag
TIME_JITTER_TOLERANCE = 0.01  # relative spread of frame intervals tolerated before warning


def fps_from_time(time: np.ndarray, path: Path) -> float:
    """Frame rate from a strictly increasing time column; integers are snapped to (1/30 s steps -> 30)."""
    if len(time) < 2:
        raise MotionFileError(f"{path}: needs at least two rows to read the frame rate from the time column")
    dt = np.diff(time)
    bad = np.flatnonzero(dt <= 0)
    if bad.size:
        row = int(bad[0]) + 1
        raise MotionFileError(
            f"{path}: time column does not increase at row {row} (0-based): {time[row - 1]!r} then "
            f"{time[row]!r} ({bad.size} such row(s)). Column 0 must be the time in seconds, strictly "
            "increasing."
        )
    step = float(np.median(dt))
    spread = float(np.max(np.abs(dt - step))) / step
    if spread > TIME_JITTER_TOLERANCE:
        logger.warning(
            "%s: frame intervals vary by up to %.1f%% of the median; using fps from the median",
            path,
            100 * spread,
        )
    fps = 1.0 / step
    return float(round(fps)) if abs(fps - round(fps)) < 1e-6 * fps else fps


def clip_ranges(flags: np.ndarray, keep_transitions: bool) -> list[tuple[int, int]]:
    """``(start, stop)`` rows per clip; transition rows (flag 1) trail their clip, cut unless kept."""
    starts = [0, *(np.flatnonzero((flags[:-1] == 1) & (flags[1:] == 0)) + 1).tolist()]
    stops = [*starts[1:], len(flags)]
    ranges = []
    for start, stop in zip(starts, stops, strict=True):
        if not keep_transitions:
            flagged = np.flatnonzero(flags[start:stop] == 1)
            stop = start + int(flagged[0]) if flagged.size else stop
        if stop > start:  # empty when the file opens with transition rows and they are cut
            ranges.append((start, stop))
    return ranges


def read_npy(
    path: str | Path,
    *,
    quat_order: str = NPY_QUAT_ORDER,
    keep_transitions: bool = False,
    robot_joint_names: Sequence[str] | None = None,
) -> list[Motion]:
    """The clips of one NPY trajectory, named ``<file stem>_<index>``."""
    path = Path(path)
    with reading(path, ".npy file"):
        return _read_npy_clips(path, quat_order, keep_transitions, robot_joint_names)


_read_header_2_0 = np.lib.format.read_array_header_2_0  # versions 2 and 3 share the 4-byte header length


def load_npy_table(path: Path) -> np.ndarray:
    """The array in a ``.npy`` file, its header checked against the file size before any data is read.

    ``np.load`` allocates what the header claims before reading, so a 900-byte file claiming (10^9, 38)
    float64 would ask for 300 GB; here that claim is refused first, as are ``.npz`` archives and pickles.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        magic = fh.read(6)
        if magic[:4] == b"PK\x03\x04":
            raise MotionFileError(
                f"{path}: this is an .npz archive (a zip of arrays), not an .npy array; rename it to .npz "
                "and save the table alone with np.save",
                file=path,
            )
        if magic != np.lib.format.MAGIC_PREFIX:
            raise MotionFileError(
                f"{path}: not an .npy file ({size} bytes, starting {magic!r}); expected numpy's magic "
                f"{np.lib.format.MAGIC_PREFIX!r}",
                file=path,
            )
        fh.seek(0)
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else _read_header_2_0
        shape, fortran, dtype = read_header(fh)
        if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
            raise MotionFileError(
                f"{path}: the array has dtype {dtype}; expected plain numbers (object arrays are refused)",
                file=path,
            )
        claimed = math.prod(shape) * dtype.itemsize
        available = size - fh.tell()
        if claimed > available:
            raise MotionSizeError(
                f"{path}: the header claims a {dtype} array of shape {shape} ({claimed} bytes) but the file "
                f"holds {available} bytes of data; the file is truncated or its header corrupted",
                file=path,
            )
        flat = np.fromfile(fh, dtype=dtype, count=math.prod(shape))
        return flat.reshape(shape, order="F" if fortran else "C")


def _read_npy_clips(
    path: Path, quat_order: str, keep_transitions: bool, robot_joint_names: Sequence[str] | None
) -> list[Motion]:
    table = load_npy_table(path)
    if table.ndim != 2 or table.dtype.kind not in "fiu" or table.shape[1] <= FIXED_COLUMNS:
        raise MotionFileError(
            f"{path}: expected a 2-D numeric array [time, root_pos(3), root_quat(4), dof(N), "
            f"transition_flag] with more than {FIXED_COLUMNS} columns, got {table.dtype} {table.shape}"
        )
    table = table.astype(np.float64, copy=False)
    joint_names = resolve_joint_names(path, table.shape[1] - FIXED_COLUMNS, robot_joint_names)
    check_finite(table, str(path), [*column_labels(["time"], quat_order, joint_names), "transition_flag"])
    fps = fps_from_time(table[:, 0], path)
    flags = table[:, -1]
    not_binary = np.flatnonzero((flags != 0) & (flags != 1))
    if not_binary.size:
        row = int(not_binary[0])
        raise MotionFileError(
            f"{path}: transition_flag (last column) must be 0 or 1, got {flags[row]!r} at row {row} "
            f"(0-based); check that the file has the layout [time, root_pos(3), root_quat(4), dof(N), flag]"
        )
    motions = []
    for index, (start, stop) in enumerate(clip_ranges(flags, keep_transitions)):
        name = f"{path.stem}_{index}"
        rows = table[start:stop]
        motions.append(
            make_motion(
                where=f"{path} clip '{name}' (rows {start}-{stop - 1})",
                name=name,
                fps=fps,
                root_pos=rows[:, 1:4],
                root_quat=rows[:, 4:8],
                dof=rows[:, 8:-1],
                joint_names=joint_names,
                quat_order=quat_order,
                row_offset=start,
            )
        )
    return motions
