"""Checks every reader runs before handing out a ``Motion``: finite values, unit quaternions, upright root.

Errors name the file, the clip, the row and the column, and say what to change, because a wrong quaternion
order or a shifted column otherwise surfaces much later as a model that silently learns garbage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from motion_vqvae.data.errors import WRONG_QUAT_ORDER, MotionFileError, flag_hint
from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue
from motion_vqvae.rotations import quat_make_continuous, quat_normalize, quat_rotate

QUAT_ORDERS = ("xyzw", "wxyz")
QUAT_NORM_TOLERANCE = 0.05
"""Quaternions with ``|norm - 1|`` below this are renormalised (float32 rounding, 6-digit CSVs); beyond it
the four columns are most likely not a quaternion at all, so the reader refuses."""
_UNIT_EPS = 1e-12
UPSIDE_DOWN_FRACTION = 0.5
"""A clip whose body z axis points below the horizon on more than this fraction of frames is refused."""


def check_quat_order(order: str, source: str) -> str:
    """The order itself, or a ValueError listing the allowed ones."""
    if order not in QUAT_ORDERS:
        raise InvalidValue(f"{source}: quat_order={order!r} is not supported; use one of {QUAT_ORDERS}")
    return order


def other_quat_order(order: str) -> str:
    return "wxyz" if order == "xyzw" else "xyzw"


def quat_to_xyzw(q: np.ndarray, order: str) -> np.ndarray:
    """Quaternions given in ``order`` as xyzw (the project convention)."""
    if order == "xyzw":
        return np.asarray(q, dtype=np.float64)
    if order == "wxyz":
        return np.asarray(q, dtype=np.float64)[..., [1, 2, 3, 0]]
    raise InvalidValue(f"quat_order={order!r} is not supported; use one of {QUAT_ORDERS}")


def quat_from_xyzw(q: np.ndarray, order: str) -> np.ndarray:
    """xyzw quaternions rewritten in ``order`` (for writers)."""
    if order == "xyzw":
        return np.asarray(q, dtype=np.float64)
    if order == "wxyz":
        return np.asarray(q, dtype=np.float64)[..., [3, 0, 1, 2]]
    raise InvalidValue(f"quat_order={order!r} is not supported; use one of {QUAT_ORDERS}")


def column_labels(prefix: Sequence[str], quat_order: str, joint_names: Sequence[str]) -> list[str]:
    """Human names of a table's columns: ``prefix`` + root_pos + root_quat (in file order) + joints."""
    quat = [f"root_quat.{c}" for c in quat_order]
    return [*prefix, "root_pos.x", "root_pos.y", "root_pos.z", *quat, *joint_names]


def check_finite(table: np.ndarray, where: str, labels: Sequence[str], row_offset: int = 0) -> None:
    """Raise on the first NaN/Inf, naming its row (0-based, in the file) and column."""
    bad = ~np.isfinite(table)
    if not bad.any():
        return
    row, col = np.argwhere(bad)[0]
    count = int(bad.sum())
    label = labels[col] if col < len(labels) else "?"
    raise MotionFileError(
        f"{where}: {table[row, col]} at row {row + row_offset} (0-based), column {col} ({label}); "
        f"{count} non-finite value(s) in total. Fix or cut those frames in the file before loading.",
        row=int(row) + row_offset,
        column=label,
    )


def normalize_root_quat(q: np.ndarray, where: str, row_offset: int = 0) -> np.ndarray:
    """Unit, sign-continuous xyzw quaternions; refuses zero or far-from-unit rows."""
    with np.errstate(over="ignore"):  # 1e308 components: an infinite norm, refused just below
        norm = np.linalg.norm(q, axis=-1)
    off = np.abs(norm - 1.0) > QUAT_NORM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise MotionFileError(
            f"{where}: root quaternion at row {row + row_offset} (0-based) has norm {norm[row]:.4g} "
            f"({int(off.sum())} row(s) off by more than {QUAT_NORM_TOLERANCE}). A zero or far-from-unit "
            "quaternion means the columns are shifted or are not a quaternion: check the column layout "
            "root_pos(3), root_quat(4), dof(N).",
            row=row + row_offset,
            column="root_quat",
        )
    # Rows already unit to rounding are kept bit for bit, so read -> write -> read is exact.
    q = np.where((np.abs(norm - 1.0) > _UNIT_EPS)[:, None], quat_normalize(q), q)
    return quat_make_continuous(q)


def upside_down_fraction(q_xyzw: np.ndarray) -> float:
    """Fraction of frames whose body z axis points below the horizon."""
    up = quat_rotate(q_xyzw, np.array([0.0, 0.0, 1.0]))
    return float(np.mean(up[:, 2] < 0.0))


def check_upright(q_raw: np.ndarray, quat_order: str, where: str) -> None:
    """Refuse a root that looks upside down: the usual symptom of reading wxyz data as xyzw or back."""
    frac = upside_down_fraction(quat_normalize(quat_to_xyzw(q_raw, quat_order)))
    if frac <= UPSIDE_DOWN_FRACTION:
        return
    other = other_quat_order(quat_order)
    other_frac = upside_down_fraction(quat_normalize(quat_to_xyzw(q_raw, other)))
    if other_frac <= UPSIDE_DOWN_FRACTION:
        hint = (
            f"read as {other} it is upright on {100 * (1 - other_frac):.0f}% of frames, so "
            f"{WRONG_QUAT_ORDER}: {flag_hint('quat_order', other)}."
        )
    else:
        hint = f"it is upside down as {other} too, so check the root columns and the data itself."
    raise MotionFileError(
        f"{where}: the root looks upside down (body z axis points down on {100 * frac:.0f}% of frames) "
        f"when the quaternion is read as {quat_order}; {hint}",
        column="root_quat",
    )


def make_motion(
    *,
    where: str,
    name: str,
    fps: float,
    root_pos: np.ndarray,
    root_quat: np.ndarray,
    dof: np.ndarray,
    joint_names: Sequence[str],
    quat_order: str,
    row_offset: int = 0,
) -> Motion:
    """Validate one clip's raw arrays (quaternion in ``quat_order``) and build the canonical ``Motion``."""
    root_pos = np.asarray(root_pos, dtype=np.float64)
    dof = np.asarray(dof, dtype=np.float64)
    q_raw = np.asarray(root_quat, dtype=np.float64)
    if len(root_pos) == 0:
        raise MotionFileError(f"{where}: the clip has no frames; remove it from the file")
    if not len(root_pos) == len(q_raw) == len(dof):
        raise MotionFileError(
            f"{where}: root_pos, root_quat and dof have {len(root_pos)}, {len(q_raw)} and {len(dof)} frames; "
            "they must have one row per frame each"
        )
    table = np.concatenate([root_pos, q_raw, dof], axis=1)
    check_finite(table, where, column_labels([], quat_order, joint_names), row_offset)
    check_upright(q_raw, quat_order, where)
    q = normalize_root_quat(quat_to_xyzw(q_raw, quat_order), where, row_offset)
    return Motion(name=name, fps=fps, root_pos=root_pos, root_quat=q, dof=dof, joint_names=list(joint_names))
