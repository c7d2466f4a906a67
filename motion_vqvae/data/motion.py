"""The one motion type every reader returns and every consumer takes.

Conventions (fixed, converted only in readers and writers): metres, z up; root quaternion **xyzw**, unit
and sign-continuous along time; joint angles in radians, columns named by ``joint_names``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from motion_vqvae.rotations import quat_make_continuous, quat_normalize


@dataclass
class Motion:
    """One clip of a floating-base robot: root pose per frame plus joint angles."""

    name: str
    fps: float
    root_pos: np.ndarray  # (T, 3) metres, world frame, z up
    root_quat: np.ndarray  # (T, 4) xyzw, unit, sign-continuous
    dof: np.ndarray  # (T, N) radians
    joint_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root_pos = np.asarray(self.root_pos, dtype=np.float64)
        self.root_quat = np.asarray(self.root_quat, dtype=np.float64)
        self.dof = np.asarray(self.dof, dtype=np.float64)
        self.fps = float(self.fps)
        self.joint_names = list(self.joint_names)
        t = len(self.root_pos)
        if self.root_pos.shape != (t, 3):
            raise ValueError(f"Motion '{self.name}': root_pos must be (T, 3), got {self.root_pos.shape}")
        if self.root_quat.shape != (t, 4):
            raise ValueError(
                f"Motion '{self.name}': root_quat must be ({t}, 4) to match root_pos, "
                f"got {self.root_quat.shape}"
            )
        if self.dof.ndim != 2 or len(self.dof) != t:
            raise ValueError(f"Motion '{self.name}': dof must be ({t}, N), got {self.dof.shape}")
        if self.joint_names and len(self.joint_names) != self.dof.shape[1]:
            raise ValueError(
                f"Motion '{self.name}': {len(self.joint_names)} joint_names "
                f"for {self.dof.shape[1]} dof columns"
            )
        if not self.fps > 0:
            raise ValueError(f"Motion '{self.name}': fps must be positive, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return len(self.root_pos)

    @property
    def num_dof(self) -> int:
        return self.dof.shape[1]

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps

    def slice(self, start: int, stop: int, name: str | None = None) -> Motion:
        """Frames ``start:stop`` as a new Motion (copies, so edits never leak back)."""
        return Motion(
            name=name or self.name,
            fps=self.fps,
            root_pos=self.root_pos[start:stop].copy(),
            root_quat=self.root_quat[start:stop].copy(),
            dof=self.dof[start:stop].copy(),
            joint_names=self.joint_names,
        )

    def canonical(self) -> Motion:
        """The same motion with unit, sign-continuous quaternions (what readers guarantee)."""
        return Motion(
            name=self.name,
            fps=self.fps,
            root_pos=self.root_pos,
            root_quat=quat_make_continuous(quat_normalize(self.root_quat)),
            dof=self.dof,
            joint_names=self.joint_names,
        )
