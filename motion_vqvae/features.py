"""Invertible, heading-invariant per-frame motion features.

Per frame ``t`` (columns in this order):

* ``root_height`` (1): root z in metres; absolute, because the height above the ground matters.
* ``root_tilt`` (3 exp-map or 6 for the 6D representation): root rotation relative to the heading frame,
  ``quat_from_yaw(yaw)^-1 * q``, i.e. roll and pitch without the heading.
* ``root_lin_vel`` (3): ``(p[t+1] - p[t]) * fps`` expressed in the heading frame of frame ``t``.
* ``yaw_rate`` (1): wrapped ``yaw[t+1] - yaw[t]`` times fps.
* ``dof_pos`` (N): joint angles, radians.
* ``dof_vel`` (N): ``(dof[t+1] - dof[t]) * fps``.

Forward differences make the last frame repeat the previous one's velocities. Nothing depends on the
world heading or the horizontal position, so a clip rotated about z and shifted on the ground has the same
features; :meth:`FeatureLayout.to_motion` integrates them back from a given start pose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue, UnknownKey
from motion_vqvae.normalization import Normalizer
from motion_vqvae.rotations import (
    expmap_to_quat,
    quat_conjugate,
    quat_from_yaw,
    quat_make_continuous,
    quat_mul,
    quat_rotate,
    quat_to_6d,
    quat_to_expmap,
    quat_yaw,
    sixd_to_quat,
    wrap_angle,
)

# Smallest std per feature group, in the group's units. Below these the variation in retargeted mocap is
# noise (a few mm, ~0.6 deg, a few cm/s), and normalizing by less would turn that noise into large inputs;
# the constant ankle-roll joints of asap_g1_23dof are the case in point.
DEFAULT_STD_FLOOR: dict[str, float] = {
    "root_height": 0.01,  # m
    "root_tilt": 0.01,  # rad (exp-map) or unitless (6D matrix entries)
    "root_lin_vel": 0.05,  # m/s
    "yaw_rate": 0.05,  # rad/s
    "dof_pos": 0.01,  # rad
    "dof_vel": 0.1,  # rad/s
}


@dataclass
class FeatureLayout:
    """The feature vector's slices, its inverse and (once fitted) its z-score normalization."""

    num_dof: int
    prefer_expmap: bool = True
    joint_names: list[str] | None = None
    normalizer: Normalizer | None = None
    slices: dict[str, slice] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if (
            isinstance(self.num_dof, bool)
            or not isinstance(self.num_dof, (int, np.integer))
            or self.num_dof < 1
        ):
            raise ValueError(f"FeatureLayout: num_dof must be a positive int, got {self.num_dof!r}")
        self.num_dof = int(self.num_dof)
        if not isinstance(self.prefer_expmap, bool):
            raise TypeError(f"FeatureLayout: prefer_expmap must be a bool, got {self.prefer_expmap!r}")
        if self.joint_names is not None:
            self.joint_names = [str(n) for n in self.joint_names]
            if len(self.joint_names) != self.num_dof:
                raise ValueError(
                    f"FeatureLayout: {len(self.joint_names)} joint_names for num_dof={self.num_dof}"
                )
        sizes = {
            "root_height": 1,
            "root_tilt": 3 if self.prefer_expmap else 6,
            "root_lin_vel": 3,
            "yaw_rate": 1,
            "dof_pos": self.num_dof,
            "dof_vel": self.num_dof,
        }
        self.slices = {}
        start = 0
        for name, size in sizes.items():
            self.slices[name] = slice(start, start + size)
            start += size
        if self.normalizer is not None and self.normalizer.dim != self.dim:
            raise ValueError(
                f"FeatureLayout: normalizer has {self.normalizer.dim} columns, layout has {self.dim}"
            )

    @property
    def dim(self) -> int:
        """Number of feature columns."""
        return self.slices["dof_vel"].stop

    @classmethod
    def for_motion(cls, motion: Motion, prefer_expmap: bool = True) -> FeatureLayout:
        """Layout matching a motion's joints (names included when the motion has them)."""
        return cls(motion.num_dof, prefer_expmap, list(motion.joint_names) or None)

    # ----------------------------------------------------------------------------------- forward
    def from_motion(self, motion: Motion) -> np.ndarray:
        """Features ``(T, dim)`` float64 of a clip with at least two frames."""
        self._check_motion(motion)
        fps = motion.fps
        quat = motion.root_quat  # (T, 4) xyzw
        yaw = quat_yaw(quat)  # (T,)
        inv_heading = quat_conjugate(quat_from_yaw(yaw))  # (T, 4)
        tilt_q = quat_mul(inv_heading, quat)
        tilt = quat_to_expmap(tilt_q) if self.prefer_expmap else quat_to_6d(tilt_q)
        lin_vel = _forward_diff(motion.root_pos) * fps  # (T, 3) world frame
        lin_vel_local = quat_rotate(inv_heading, lin_vel)
        yaw_rate = _repeat_last(wrap_angle(np.diff(yaw)) * fps)  # (T,)
        dof_vel = _forward_diff(motion.dof) * fps  # (T, N)

        out = np.empty((motion.num_frames, self.dim))
        out[:, self.slices["root_height"]] = motion.root_pos[:, 2:3]
        out[:, self.slices["root_tilt"]] = tilt
        out[:, self.slices["root_lin_vel"]] = lin_vel_local
        out[:, self.slices["yaw_rate"]] = yaw_rate[:, None]
        out[:, self.slices["dof_pos"]] = motion.dof
        out[:, self.slices["dof_vel"]] = dof_vel
        return out

    @staticmethod
    def start_pose(motion: Motion) -> tuple[np.ndarray, float]:
        """Root position and heading of the first frame: what :meth:`to_motion` needs to place a clip."""
        return motion.root_pos[0].copy(), float(quat_yaw(motion.root_quat[0]))

    # ----------------------------------------------------------------------------------- inverse
    def to_motion(
        self,
        features: np.ndarray,
        *,
        fps: float,
        start_pos: np.ndarray,
        start_yaw: float,
        name: str = "decoded",
        joint_names: list[str] | None = None,
    ) -> Motion:
        """Integrate (un-normalized) features back into a global trajectory starting at the given pose.

        Height and tilt are taken per frame; the horizontal position and the heading are cumulative sums
        of the velocities from ``start_pos[:2]`` and ``start_yaw`` (``start_pos[2]`` is not used: the
        height feature sets z). Joint angles come from ``dof_pos``; ``dof_vel`` is redundant here.
        """
        feats = np.asarray(features, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[1] != self.dim or len(feats) == 0:
            raise ValueError(
                f"FeatureLayout.to_motion '{name}': features must be (T>0, {self.dim}), got {feats.shape}"
            )
        start_pos = np.asarray(start_pos, dtype=np.float64)
        if start_pos.shape != (3,):
            raise ValueError(
                f"FeatureLayout.to_motion '{name}': start_pos must be (3,), got {start_pos.shape}"
            )
        if not fps > 0:
            raise ValueError(f"FeatureLayout.to_motion '{name}': fps must be positive, got {fps}")

        yaw_rate = feats[:, self.slices["yaw_rate"]][:, 0]
        yaw = float(start_yaw) + _exclusive_cumsum(yaw_rate) / fps  # (T,)
        heading = quat_from_yaw(yaw)  # (T, 4)
        vel_world = quat_rotate(heading, feats[:, self.slices["root_lin_vel"]])  # (T, 3)
        root_pos = np.empty((len(feats), 3))
        root_pos[:, :2] = start_pos[:2] + _exclusive_cumsum(vel_world[:, :2]) / fps
        root_pos[:, 2] = feats[:, self.slices["root_height"]][:, 0]

        tilt = feats[:, self.slices["root_tilt"]]
        tilt_q = expmap_to_quat(tilt) if self.prefer_expmap else sixd_to_quat(tilt)
        root_quat = quat_make_continuous(quat_mul(heading, tilt_q))
        return Motion(
            name=name,
            fps=fps,
            root_pos=root_pos,
            root_quat=root_quat,
            dof=feats[:, self.slices["dof_pos"]].copy(),
            joint_names=joint_names if joint_names is not None else (self.joint_names or []),
        )

    # ----------------------------------------------------------------------------------- normalization
    def default_std_floor(self) -> np.ndarray:
        """Per-column std floor from :data:`DEFAULT_STD_FLOOR`."""
        floor = np.empty(self.dim)
        for group, sl in self.slices.items():
            floor[sl] = DEFAULT_STD_FLOOR[group]
        return floor

    def fit_normalizer(
        self, features: list[np.ndarray], std_floor: float | np.ndarray | None = None
    ) -> Normalizer:
        """Fit z-score statistics on training features, keep them on this layout and return them."""
        for i, f in enumerate(features):
            if np.shape(f)[-1:] != (self.dim,):
                raise ValueError(
                    f"FeatureLayout.fit_normalizer: array {i} has shape {np.shape(f)}, "
                    f"layout has {self.dim} columns"
                )
        floor = self.default_std_floor() if std_floor is None else std_floor
        self.normalizer = Normalizer.fit(features, std_floor=floor)
        return self.normalizer

    def normalize(self, features: np.ndarray) -> np.ndarray:
        """z-scored features; needs :meth:`fit_normalizer` (or a normalizer from a checkpoint) first."""
        return self._require_normalizer().normalize(features)

    def denormalize(self, features: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize`."""
        return self._require_normalizer().denormalize(features)

    def _require_normalizer(self) -> Normalizer:
        if self.normalizer is None:
            raise ValueError("FeatureLayout: no normalizer yet; call fit_normalizer(train_features) first")
        return self.normalizer

    # ----------------------------------------------------------------------------------- (de)serialization
    def root_slices(self) -> dict[str, list[int]]:
        """``{name: [start, stop]}`` of the root features (the columns before the joints), as an export's
        manifest stores them once (``root_features``) for readers that cannot import this module."""
        root_dim = self.slices["dof_pos"].start
        return {k: [s.start, s.stop] for k, s in self.slices.items() if s.stop <= root_dim}

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], source: str = "manifest.json") -> FeatureLayout:
        """An export's layout: its ``feature_layout`` (width, tilt form, normalization) with the simulator
        joint names of its ``joint_map``, refused when this code lays the root features out otherwise
        than its ``root_features`` say."""
        from sim2real.manifest import manifest_joint_map

        names = manifest_joint_map(manifest, source).sim_joint_names
        layout = cls.from_dict({**manifest["feature_layout"], "joint_names": names})
        if layout.root_slices() != manifest["root_features"]:
            raise InvalidValue(
                f"{source}: root_features {manifest['root_features']} disagree with this code's layout "
                f"{layout.root_slices()}; re-export with this version of motion-vqvae"
            )
        return layout

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able types (for checkpoints loaded with ``weights_only=True`` and ONNX manifests).

        ``dim`` and ``slices`` are written for readers that cannot import this module (the robot side).
        """
        return {
            "num_dof": self.num_dof,
            "prefer_expmap": self.prefer_expmap,
            "joint_names": list(self.joint_names) if self.joint_names is not None else None,
            "normalizer": self.normalizer.to_dict() if self.normalizer is not None else None,
            "dim": self.dim,
            "slices": {k: [s.start, s.stop] for k, s in self.slices.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureLayout:
        """Inverse of :meth:`to_dict`; refuses unknown keys and slices that disagree with this code."""
        allowed = {"num_dof", "prefer_expmap", "joint_names", "normalizer", "dim", "slices"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise UnknownKey(f"FeatureLayout.from_dict: unknown keys {unknown}; allowed: {sorted(allowed)}")
        if "num_dof" not in data:
            raise UnknownKey("FeatureLayout.from_dict: missing key 'num_dof'")
        norm = data.get("normalizer")
        layout = cls(
            num_dof=data["num_dof"],
            prefer_expmap=data.get("prefer_expmap", True),
            joint_names=data.get("joint_names"),
            normalizer=Normalizer.from_dict(norm) if norm is not None else None,
        )
        saved = data.get("slices")
        if saved is not None:
            mine = {k: [s.start, s.stop] for k, s in layout.slices.items()}
            if {k: list(v) for k, v in saved.items()} != mine:
                raise InvalidValue(
                    f"FeatureLayout.from_dict: saved slices {saved} disagree with this code's {mine}"
                )
        if "dim" in data and data["dim"] != layout.dim:
            raise InvalidValue(f"FeatureLayout.from_dict: saved dim {data['dim']} != computed {layout.dim}")
        return layout

    def _check_motion(self, motion: Motion) -> None:
        if motion.num_dof != self.num_dof:
            raise InvalidValue(
                f"FeatureLayout: clip '{motion.name}' has {motion.num_dof} dof, layout expects "
                f"{self.num_dof}; remap its columns (sim2real.remap_columns) or build a layout for it"
            )
        if self.joint_names and motion.joint_names and list(motion.joint_names) != self.joint_names:
            raise InvalidValue(
                f"FeatureLayout: clip '{motion.name}' joint order {motion.joint_names} differs from the "
                f"layout's {self.joint_names}; remap its columns first"
            )
        if motion.num_frames < 2:
            raise InvalidValue(
                f"FeatureLayout: clip '{motion.name}' has {motion.num_frames} frame(s); "
                "velocities need at least 2"
            )


def _forward_diff(x: np.ndarray) -> np.ndarray:
    """``x[t+1] - x[t]`` along axis 0, the last row repeating the previous one."""
    return _repeat_last(np.diff(x, axis=0))


def _repeat_last(d: np.ndarray) -> np.ndarray:
    return np.concatenate([d, d[-1:]], axis=0)


def _exclusive_cumsum(x: np.ndarray) -> np.ndarray:
    """``[0, x0, x0+x1, ...]`` of length ``len(x)``: the integral up to (not including) each frame."""
    out = np.zeros_like(x)
    np.cumsum(x[:-1], axis=0, out=out[1:])
    return out
