"""Joint jumps: single-frame steps in a joint angle far faster than a body moves (retargeting glitches).

In g1_moves (60 fps) clean motion peaks at about 28 rad/s (a three-frame elbow swing) while the glitches,
almost all in the shoulders, reach 36 to 104 rad/s in one frame; 30 rad/s separates the two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue

logger = logging.getLogger(__name__)

DEFAULT_JUMP_THRESHOLD = 30.0
"""rad/s between consecutive frames; see the module docstring for how it was chosen."""
_REPAIR_TARGET = 0.5
"""A repair widens its window until the bridged speed is below this fraction of the threshold."""
_LOGGED_PER_CLIP = 8


@dataclass(frozen=True)
class JointJump:
    """One joint moving faster than the threshold from ``frame - 1`` to ``frame``."""

    clip: str
    joint: str
    joint_index: int
    frame: int
    speed: float  # rad/s


def _check_threshold(threshold: float) -> None:
    if not threshold > 0:
        raise InvalidValue(f"jump_threshold must be a positive speed in rad/s, got {threshold!r}")


def find_joint_jumps(motion: Motion, threshold: float = DEFAULT_JUMP_THRESHOLD) -> list[JointJump]:
    """Every (frame, joint) moving faster than ``threshold`` rad/s since the previous frame, by frame."""
    _check_threshold(threshold)
    speed = np.abs(np.diff(motion.dof, axis=0)) * motion.fps  # (T-1, N)
    frames, joints = np.nonzero(speed > threshold)
    names = motion.joint_names or [f"dof_{j}" for j in range(motion.num_dof)]
    return [
        JointJump(motion.name, names[j], int(j), int(f) + 1, float(speed[f, j]))
        for f, j in zip(frames.tolist(), joints.tolist(), strict=True)
    ]


def log_joint_jumps(jumps: list[JointJump], threshold: float, repaired: bool) -> None:
    """One warning per clip listing its jumps (the first few, then a count)."""
    by_clip: dict[str, list[JointJump]] = {}
    for jump in jumps:
        by_clip.setdefault(jump.clip, []).append(jump)
    for clip, clip_jumps in by_clip.items():
        first = clip_jumps[:_LOGGED_PER_CLIP]
        shown = ", ".join(f"{j.joint} at frame {j.frame} ({j.speed:.1f} rad/s)" for j in first)
        more = len(clip_jumps) - _LOGGED_PER_CLIP
        action = "repaired by interpolation" if repaired else "pass repair_jumps=True to interpolate them"
        logger.warning(
            "clip '%s': %d joint jump(s) above %g rad/s (retargeting glitches?): %s%s; %s",
            clip,
            len(clip_jumps),
            threshold,
            shown,
            f" and {more} more" if more > 0 else "",
            action,
        )


def _bridge(values: np.ndarray, frame: int, fps: float, limit: float) -> None:
    """Replace frames around the step into ``frame`` by a line slow enough to stay below ``limit``."""
    last = len(values) - 1
    for half in range(1, len(values) + 1):
        lo, hi = frame - 1 - half, frame + half  # anchor frames, kept
        if lo < 0 and hi > last:
            values[:] = values[frame]  # a clip shorter than the window: nothing left to anchor a line on
            return
        if lo < 0:
            values[:hi] = values[hi]  # the window reached the clip start: hold the first good value
            return
        if hi > last:
            values[lo + 1 :] = values[lo]
            return
        if abs(values[hi] - values[lo]) * fps / (hi - lo) <= limit:
            values[lo + 1 : hi] = np.interp(np.arange(lo + 1, hi), [lo, hi], [values[lo], values[hi]])
            return


def repair_joint_jumps(motion: Motion, threshold: float = DEFAULT_JUMP_THRESHOLD) -> Motion:
    """The motion with every joint jump bridged by linear interpolation; frames away from jumps are untouched.

    Each jump grows a window of frames around it until a straight line between the window's anchor frames
    moves at most half the threshold, then replaces the frames inside; repeats until no jump remains.
    """
    _check_threshold(threshold)
    dof = motion.dof.copy()
    for j in range(motion.num_dof):
        column = dof[:, j]
        for _ in range(len(column)):
            fast = np.flatnonzero(np.abs(np.diff(column)) * motion.fps > threshold)
            if not fast.size:
                break
            _bridge(column, int(fast[0]) + 1, motion.fps, _REPAIR_TARGET * threshold)
    return Motion(motion.name, motion.fps, motion.root_pos, motion.root_quat, dof, motion.joint_names)
