"""Physical plausibility: values that parse but that no robot produces are refused, not trained on.

A corrupted or mis-described file often survives parsing: joint angles of 50 rad (or x10^6), a root 10^30 m
away, an fps of 10^300, or xyzw quaternions read as wxyz, which leaves most clips upright enough to pass
the upside-down check while the body lies on its side. Each check here compares a clip with the robot
description (joint limits from ``configs/robots/*.yaml``) or with bounds no legged robot reaches, and
raises :class:`ImplausibleMotionError` naming the file, clip, frame and joint. For data a user knows is
odd, ``load_motions(..., relax=("joint_limits",))`` turns a check into a logged warning.

Thresholds were set on the real data in ``../shared/data`` (g1_moves, the seed NPY, 52 ASAP clips, kimodo):
every real clip passes with a wide margin (worst joint 0.02 rad past its limit, root within 5.3 m of the
origin and 0.31-1.32 m high, at most 7.1 m/s, median tilt at most 55 degrees, and the other quaternion order
never more upright than the right one), see ``tests/test_hostile_files.py``. Read in the wrong order, all
51 g1_moves clips and 49 of 52 ASAP clips are refused (tilt or upside down); the other three face straight
ahead, where a misread root is an upright pose turned by 180 degrees and no tilt statistic can tell.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from motion_vqvae.data.errors import WRONG_QUAT_ORDER, ImplausibleMotionError, flag_hint
from motion_vqvae.data.motion import Motion
from motion_vqvae.data.validation import other_quat_order, quat_from_xyzw, quat_to_xyzw
from motion_vqvae.errors import InvalidValue
from motion_vqvae.rotations import quat_normalize, quat_rotate

logger = logging.getLogger(__name__)

PLAUSIBILITY_CHECKS = ("joint_limits", "root_position", "root_speed", "fps", "tilt")
JOINT_LIMIT_TOLERANCE = 0.5
"""rad beyond a joint's position limit before a frame is refused (retargeting overshoots a little)."""
MAX_ROOT_DISTANCE = 1000.0
"""m from the origin, horizontally: far beyond any capture volume or treadmill clip."""
ROOT_HEIGHT_RANGE = (-1.0, 5.0)
"""m; the pelvis of a legged robot stays within this band even when it jumps or lies down."""
MAX_ROOT_SPEED = 20.0
"""m/s between two frames; a sprinting human peaks near 12 m/s, the real clips at 7.1 m/s."""
FPS_RANGE = (1.0, 1000.0)
"""Frame rates outside this band are a corrupted header or time column, not motion capture."""
TILT_MIN_DEG = 15.0
"""A clip's median tilt (body z axis vs world z) above this is examined for a wrong quaternion order."""
TILT_MARGIN_DEG = 5.0
"""... and refused when the other quaternion order would be at least this much more upright."""


def check_relax(relax: Collection[str], source: str) -> frozenset[str]:
    """``relax`` as a set, or a ValueError naming the checks that exist."""
    if isinstance(relax, str):
        relax = (relax,)
    unknown = sorted(set(relax) - set(PLAUSIBILITY_CHECKS))
    if unknown:
        raise InvalidValue(f"{source}: relax={unknown} names no check; choose from {PLAUSIBILITY_CHECKS}")
    return frozenset(relax)


@functools.lru_cache(maxsize=8)
def _robot_limits(robot: str) -> dict[str, tuple[float, float]]:
    from sim2real.robot import load_robot

    description = load_robot(robot)
    return {name: (spec.lower, spec.upper) for name, spec in description.joints.items()}


def joint_limits(names: Sequence[str], robot: str | Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(lower, upper)`` per named joint (NaN where unknown) from ``robot``, else the description that
    knows most of the names (the G1 for the bundled data); None when no description knows any of them."""
    from sim2real.robot import available_robots

    candidates = [str(robot)] if robot is not None else available_robots()
    best = max((_robot_limits(r) for r in candidates), key=lambda lim: sum(n in lim for n in names))
    if not any(n in best for n in names):
        return None
    lower = np.array([best.get(n, (np.nan, np.nan))[0] for n in names])
    upper = np.array([best.get(n, (np.nan, np.nan))[1] for n in names])
    return lower, upper


def tilt_degrees(q_xyzw: np.ndarray) -> np.ndarray:
    """Per frame, the angle between the body z axis and world z (0 upright, 90 on its side)."""
    up = quat_rotate(quat_normalize(q_xyzw), np.array([0.0, 0.0, 1.0]))
    return np.degrees(np.arccos(np.clip(up[:, 2], -1.0, 1.0)))


class _Checker:
    """Runs the checks on one clip; a failure raises, or only warns for the checks in ``relax``."""

    def __init__(self, motion: Motion, where: str, file: Path, relax: frozenset[str]) -> None:
        self.motion, self.where, self.file, self.relax = motion, where, file, relax

    def fail(self, check: str, message: str, row: int | None = None, column: str | None = None) -> None:
        if check in self.relax:
            logger.warning("%s: %s (check '%s' relaxed: loading anyway)", self.where, message, check)
            return
        raise ImplausibleMotionError(
            f"{self.where}: {message}. If the data really is like this, pass relax=('{check}',) to load "
            "it with a warning.",
            file=self.file,
            clip=self.motion.name,
            row=row,
            column=column,
        )

    def fps(self) -> None:
        low, high = FPS_RANGE
        if not low <= self.motion.fps <= high:
            message = f"fps {self.motion.fps:g} is outside [{low:g}, {high:g}]; check the time column or fps"
            self.fail("fps", message, column="fps")

    def joints(self, limits: tuple[np.ndarray, np.ndarray] | None, tolerance: float) -> None:
        if limits is None:
            logger.info("%s: no robot description names its joints; joint limits not checked", self.where)
            return
        lower, upper = limits
        with np.errstate(invalid="ignore"):
            excess = np.fmax(self.motion.dof - upper, lower - self.motion.dof)  # NaN where limits unknown
        bad = excess > tolerance
        if not bad.any():
            return
        frame, joint = (int(i) for i in np.argwhere(bad)[0])
        name = self.motion.joint_names[joint]
        self.fail(
            "joint_limits",
            f"joint '{name}' is {self.motion.dof[frame, joint]:.6g} rad at frame {frame} (0-based), outside "
            f"its limits [{lower[joint]:.4g}, {upper[joint]:.4g}] rad by more than the tolerance "
            f"{tolerance:g} rad ({int(bad.sum())} value(s) in {int(bad.any(axis=0).sum())} joint(s)); check "
            "the units (rad, not degrees), the column order and the joint names",
            row=frame,
            column=name,
        )

    def root(self) -> None:
        pos = self.motion.root_pos
        low, high = ROOT_HEIGHT_RANGE
        bad = (np.hypot(pos[:, 0], pos[:, 1]) > MAX_ROOT_DISTANCE) | (pos[:, 2] < low) | (pos[:, 2] > high)
        if bad.any():
            frame = int(np.argmax(bad))
            self.fail(
                "root_position",
                f"root position {pos[frame].tolist()} m at frame {frame} (0-based) is more than "
                f"{MAX_ROOT_DISTANCE:g} m from the origin or outside the height band [{low:g}, {high:g}] m "
                f"({int(bad.sum())} frame(s)); check the units (metres) and that z is up",
                row=frame,
                column="root_pos",
            )
            return
        with np.errstate(over="ignore"):  # an absurd fps (already reported when relaxed) overflows
            speed = np.linalg.norm(np.diff(pos, axis=0), axis=1) * self.motion.fps
        if speed.size and speed.max() > MAX_ROOT_SPEED:
            frame = int(np.argmax(speed > MAX_ROOT_SPEED)) + 1
            self.fail(
                "root_speed",
                f"the root moves at {speed[frame - 1]:.4g} m/s into frame {frame} (0-based), faster than "
                f"{MAX_ROOT_SPEED:g} m/s; check the fps and the root position units",
                row=frame,
                column="root_pos",
            )

    def tilt(self, file_quat_order: str) -> None:
        """Body on its side for most of the clip while the other quaternion order would stand it up."""
        as_read = float(np.median(tilt_degrees(self.motion.root_quat)))
        if as_read <= TILT_MIN_DEG:
            return
        other = other_quat_order(file_quat_order)
        columns = quat_from_xyzw(self.motion.root_quat, file_quat_order)
        as_other = float(np.median(tilt_degrees(quat_to_xyzw(columns, other))))
        if as_other < as_read - TILT_MARGIN_DEG:
            self.fail(
                "tilt",
                f"the body is tilted {as_read:.0f} degrees from upright on the median frame when the "
                f"quaternion is read as {file_quat_order}, but only {as_other:.0f} degrees read as {other}: "
                f"{WRONG_QUAT_ORDER}, {flag_hint('quat_order', other)}",
                column="root_quat",
            )


def check_plausible(
    motion: Motion,
    *,
    where: str,
    file: Path,
    file_quat_order: str,
    limits: tuple[np.ndarray, np.ndarray] | None,
    relax: frozenset[str] = frozenset(),
    tolerance: float = JOINT_LIMIT_TOLERANCE,
) -> None:
    """Raise :class:`ImplausibleMotionError` on the first implausibility (warn for checks in ``relax``)."""
    checker = _Checker(motion, where, file, relax)
    checker.fps()
    checker.joints(limits, tolerance)
    checker.root()
    checker.tilt(file_quat_order)
