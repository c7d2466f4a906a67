"""Change a motion's frame rate: slerp for the root rotation, linear interpolation for everything else."""

from __future__ import annotations

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue
from motion_vqvae.rotations import quat_make_continuous, quat_slerp

_ON_FRAME = 1e-9  # source positions this close to a whole frame copy that frame exactly


def resample(motion: Motion, target_fps: float) -> Motion:
    """The motion sampled at ``target_fps`` from its first frame to at most its last.

    Output frames that land on a source frame (every second one for 60 -> 30 fps) are copied bit for bit,
    so downsampling by an integer factor never blurs the data.
    """
    if isinstance(target_fps, bool) or not isinstance(target_fps, (int, float)) or not target_fps > 0:
        raise InvalidValue(
            f"resample '{motion.name}': target_fps must be a positive number, not {target_fps!r}"
        )
    target_fps = float(target_fps)
    if target_fps == motion.fps:
        return motion.slice(0, motion.num_frames)
    last = motion.num_frames - 1
    count = int(np.floor(last * target_fps / motion.fps + _ON_FRAME)) + 1
    pos = np.arange(count) * (motion.fps / target_fps)  # (count,) fractional source frames
    base = np.minimum(np.floor(pos + _ON_FRAME).astype(np.int64), last)
    frac = np.where(np.abs(pos - base) < _ON_FRAME, 0.0, pos - base)
    nxt = np.minimum(base + 1, last)

    def lerp(x: np.ndarray) -> np.ndarray:
        out = x[base] * (1.0 - frac[:, None]) + x[nxt] * frac[:, None]
        on_frame = frac == 0.0
        out[on_frame] = x[base[on_frame]]
        return out

    quat = quat_slerp(motion.root_quat[base], motion.root_quat[nxt], frac)
    on_frame = frac == 0.0
    quat[on_frame] = motion.root_quat[base[on_frame]]
    return Motion(
        name=motion.name,
        fps=target_fps,
        root_pos=lerp(motion.root_pos),
        root_quat=quat_make_continuous(quat),
        dof=lerp(motion.dof),
        joint_names=motion.joint_names,
    )


def change_speed(motion: Motion, speed: float) -> Motion:
    """The same poses played ``speed`` times as fast, at the same frame rate (augmentation)."""
    if not speed > 0:
        raise InvalidValue(f"change_speed '{motion.name}': speed must be positive, got {speed!r}")
    retimed = Motion(
        name=motion.name,
        fps=motion.fps * speed,
        root_pos=motion.root_pos,
        root_quat=motion.root_quat,
        dof=motion.dof,
        joint_names=motion.joint_names,
    )
    out = resample(retimed, motion.fps)
    out.name = f"{motion.name}@x{speed:g}"
    return out
