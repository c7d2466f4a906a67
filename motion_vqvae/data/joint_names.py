"""The Unitree G1 joint orders, the one place they are written down on the training side.

Used only as the last fallback for files that carry no joint names (no ``meta.json`` beside them and
no ``robot=``): a headerless CSV with 29 or 23 joint columns is assumed to be in the G1 order.
"""

from __future__ import annotations

G1_29DOF_JOINTS: tuple[str, ...] = (
    "left_hip_pitch_joint",
    "left_hip_roll_joint",
    "left_hip_yaw_joint",
    "left_knee_joint",
    "left_ankle_pitch_joint",
    "left_ankle_roll_joint",
    "right_hip_pitch_joint",
    "right_hip_roll_joint",
    "right_hip_yaw_joint",
    "right_knee_joint",
    "right_ankle_pitch_joint",
    "right_ankle_roll_joint",
    "waist_yaw_joint",
    "waist_roll_joint",
    "waist_pitch_joint",
    "left_shoulder_pitch_joint",
    "left_shoulder_roll_joint",
    "left_shoulder_yaw_joint",
    "left_elbow_joint",
    "left_wrist_roll_joint",
    "left_wrist_pitch_joint",
    "left_wrist_yaw_joint",
    "right_shoulder_pitch_joint",
    "right_shoulder_roll_joint",
    "right_shoulder_yaw_joint",
    "right_elbow_joint",
    "right_wrist_roll_joint",
    "right_wrist_pitch_joint",
    "right_wrist_yaw_joint",
)

# The 23-DOF G1 (as in ASAP/PHC) is the 29-DOF order without the six wrist joints.
G1_23DOF_JOINTS: tuple[str, ...] = tuple(n for n in G1_29DOF_JOINTS if "wrist" not in n)

G1_JOINTS_BY_COUNT: dict[int, tuple[str, ...]] = {29: G1_29DOF_JOINTS, 23: G1_23DOF_JOINTS}
