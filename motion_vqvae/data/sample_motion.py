"""A small procedural G1 29-DOF motion (stepping, arm swings, squats, a wave, a sway) for tests and demos.

Smooth sinusoids around a standing pose, within the G1 joint limits, root at ~0.79 m turning in yaw with a
slight pelvis tilt. Seeded and purely procedural, so the bundled file can be regenerated bit for bit and
carries no third-party data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from motion_vqvae.data.joint_names import G1_29DOF_JOINTS
from motion_vqvae.data.motion import Motion
from motion_vqvae.data.writers import save_npy
from motion_vqvae.rotations import expmap_to_quat, quat_from_yaw, quat_mul

SAMPLE_FPS = 30.0
SAMPLE_BLEND_FRAMES = 10
STAND_HEIGHT = 0.79
STAND_POSE = {
    "left_hip_pitch_joint": -0.1,
    "right_hip_pitch_joint": -0.1,
    "left_knee_joint": 0.3,
    "right_knee_joint": 0.3,
    "left_ankle_pitch_joint": -0.2,
    "right_ankle_pitch_joint": -0.2,
    "left_shoulder_pitch_joint": 0.2,
    "right_shoulder_pitch_joint": 0.2,
    "left_shoulder_roll_joint": 0.2,
    "right_shoulder_roll_joint": -0.2,
    "left_elbow_joint": 0.9,
    "right_elbow_joint": 0.9,
}

# A clip body fills joint offsets, height offset, roll/pitch and forward/lateral speed from time and phase.
_Pose = dict[str, np.ndarray]
_Clip = Callable[[np.ndarray, float], _Pose]


def _bump(x: np.ndarray) -> np.ndarray:
    """max(0, x)^2: a smooth one-sided pulse."""
    return np.maximum(x, 0.0) ** 2


def _step(t: np.ndarray, w: float) -> _Pose:
    left, right = _bump(np.sin(w * t)), _bump(-np.sin(w * t))
    return {
        "left_hip_pitch_joint": -0.4 * left,
        "left_knee_joint": 0.7 * left,
        "left_ankle_pitch_joint": -0.3 * left,
        "right_hip_pitch_joint": -0.4 * right,
        "right_knee_joint": 0.7 * right,
        "right_ankle_pitch_joint": -0.3 * right,
        "left_shoulder_pitch_joint": 0.3 * np.sin(w * t),
        "right_shoulder_pitch_joint": -0.3 * np.sin(w * t),
        "height": -0.02 * (left + right),
        "roll": 0.04 * np.sin(w * t),
        "pitch": 0.03 + 0 * t,
        "forward": 0.15 + 0 * t,
    }


def _arm_swing(t: np.ndarray, w: float) -> _Pose:
    return {
        "left_shoulder_pitch_joint": 0.7 * np.sin(w * t),
        "right_shoulder_pitch_joint": -0.7 * np.sin(w * t),
        "left_shoulder_roll_joint": 0.3 * _bump(np.sin(0.5 * w * t)),
        "right_shoulder_roll_joint": -0.3 * _bump(-np.sin(0.5 * w * t)),
        "left_elbow_joint": 0.4 * np.sin(w * t + 0.5),
        "right_elbow_joint": -0.4 * np.sin(w * t + 0.5),
        "waist_yaw_joint": 0.25 * np.sin(w * t),
        "pitch": 0.02 * np.sin(2 * w * t),
    }


def _squat(t: np.ndarray, w: float) -> _Pose:
    depth = 0.5 * (1.0 - np.cos(w * t))
    pose = {
        f"{side}_{joint}": amp * depth
        for side in ("left", "right")
        for joint, amp in (
            ("hip_pitch_joint", -0.9),
            ("knee_joint", 1.5),
            ("ankle_pitch_joint", -0.5),
            ("shoulder_pitch_joint", -0.9),
        )
    }
    return {**pose, "waist_pitch_joint": 0.15 * depth, "height": -0.2 * depth, "pitch": 0.12 * depth}


def _wave(t: np.ndarray, w: float) -> _Pose:
    raise_arm = np.minimum(t / 1.0, 1.0) ** 2
    return {
        "right_shoulder_roll_joint": -1.2 * raise_arm,
        "right_shoulder_pitch_joint": -0.5 * raise_arm,
        "right_elbow_joint": 0.3 * raise_arm + 0.4 * raise_arm * np.sin(2 * w * t),
        "right_wrist_roll_joint": 0.5 * raise_arm * np.sin(2 * w * t),
        "right_wrist_pitch_joint": 0.3 * raise_arm * np.sin(w * t),
        "waist_yaw_joint": 0.3 * np.sin(w * t),
        "waist_roll_joint": 0.08 * np.sin(w * t),
        "roll": 0.03 * np.sin(w * t),
    }


def _sway(t: np.ndarray, w: float) -> _Pose:
    s = np.sin(w * t)
    return {
        "left_hip_roll_joint": 0.15 * s,
        "right_hip_roll_joint": 0.15 * s,
        "left_ankle_roll_joint": -0.15 * s,
        "right_ankle_roll_joint": -0.15 * s,
        "waist_roll_joint": -0.1 * s,
        "left_wrist_yaw_joint": 0.4 * s,
        "right_wrist_yaw_joint": 0.4 * s,
        "roll": 0.05 * s,
        "lateral": 0.12 * np.cos(w * t),
    }


# name, body, frames, base angular frequency (rad/s)
_CLIPS: tuple[tuple[str, _Clip, int, float], ...] = (
    ("step_in_place", _step, 240, 2 * np.pi * 0.9),
    ("arm_swing", _arm_swing, 210, 2 * np.pi * 0.7),
    ("squat", _squat, 270, 2 * np.pi / 3.0),
    ("wave_and_twist", _wave, 180, 2 * np.pi * 0.8),
    ("side_sway", _sway, 150, 2 * np.pi * 0.6),
)


def _build(name: str, body: _Clip, frames: int, w: float, rng: np.random.Generator) -> Motion:
    t = np.arange(frames) / SAMPLE_FPS
    w = w * rng.uniform(0.9, 1.1)
    pose = body(t, w)
    dof = np.tile([STAND_POSE.get(n, 0.0) for n in G1_29DOF_JOINTS], (frames, 1))
    for j, joint in enumerate(G1_29DOF_JOINTS):
        dof[:, j] += pose.get(joint, 0.0)
    yaw = rng.uniform(-np.pi, np.pi) + rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.35) * t
    tilt = np.stack([pose.get("roll", 0 * t), pose.get("pitch", 0 * t), 0 * t], axis=-1)
    quat = quat_mul(quat_from_yaw(yaw), expmap_to_quat(tilt))
    heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
    side = np.stack([-np.sin(yaw), np.cos(yaw)], axis=-1)
    xy = np.cumsum(pose.get("forward", 0 * t)[:, None] * heading, axis=0) / SAMPLE_FPS
    xy += pose.get("lateral", 0 * t)[:, None] * side + rng.uniform(-0.5, 0.5, size=2)
    height = STAND_HEIGHT + pose.get("height", 0 * t)
    root_pos = np.concatenate([xy, height[:, None]], axis=1)
    return Motion(name, SAMPLE_FPS, root_pos, quat, dof, list(G1_29DOF_JOINTS)).canonical()


def make_sample_motions(seed: int = 0) -> list[Motion]:
    """The sample clips, identical for the same seed."""
    rng = np.random.default_rng(seed)
    return [_build(name, body, frames, w, rng) for name, body, frames, w in _CLIPS]


def write_sample_motion(path: str | Path, seed: int = 0) -> Path:
    """Write the sample clips in the NPY layout joined by blend transitions flagged 1."""
    return save_npy(make_sample_motions(seed), path, blend_frames=SAMPLE_BLEND_FRAMES)
