"""Robot descriptions: joint names in simulator and real-robot order, limits, and the sim-to-real convention.

A description is a small YAML file (see ``sim2real/robots/g1_29dof.yaml``, package data read through
``importlib.resources`` so a wheel install finds it)::

    name: g1_29dof
    mjcf: ../../motion_vqvae/assets/g1_29dof.xml   # optional, relative to the YAML
    sim_joint_names: [...]                           # simulator (MJCF / training data) order
    real_joint_names: [...]                          # optional, the real robot's motor order
    safety: {position_margin: 0.05, velocity_scale: 0.5, acceleration: 400.0, max_acceleration: 1000.0}
    joints:                                          # every joint of either order
      left_hip_pitch_joint: {lower: -2.53, upper: 2.88, velocity: 32.0, sign: 1, offset: 0.0, kp: 100, kd: 2}
    body_parts:                                      # optional partitions for body-part tokenizers
      upper_lower:                                   # a partition's name (config key body_parts)
        upper: {joints: [...], root: []}             # every sim joint in exactly one part
        lower: {joints: [...], root: [root_height, root_tilt, root_lin_vel, yaw_rate]}

Limits are in the simulator's convention; ``real = sign * sim + offset`` (sign and offset only for joints
the simulator drives). Real slots the simulator does not drive are left to the joint map's fill value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim2real.joint_map import JointMap

ROBOTS_DIR = Path(str(resources.files("sim2real") / "robots"))

_TOP_KEYS = ("name", "mjcf", "sim_joint_names", "real_joint_names", "safety", "joints", "body_parts")
_PART_KEYS = ("joints", "root")
_JOINT_KEYS = ("lower", "upper", "velocity", "sign", "offset", "kp", "kd")
_REQUIRED_JOINT_KEYS = ("lower", "upper", "velocity")


@dataclass(frozen=True)
class JointSpec:
    """One joint's limits (simulator convention) and its sim-to-real transform."""

    lower: float  # rad
    upper: float  # rad
    velocity: float  # rad/s, > 0
    sign: float = 1.0  # +1 or -1
    offset: float = 0.0  # rad
    kp: float | None = None  # N m/rad, the motor driver's position gain (None: not stated)
    kd: float | None = None  # N m s/rad, its damping gain


@dataclass(frozen=True)
class SafetySpec:
    """The safety filter's defaults for one robot (the YAML's ``safety`` section); see the G1 YAMLs."""

    position_margin: float = 0.05
    """rad kept free inside each joint's [lower, upper] (a narrower range is pinned at its middle)."""
    velocity_scale: float = 0.5
    """Fraction of each joint's velocity limit the filter allows, in (0, 1]."""
    acceleration: float = 400.0
    """rad/s², every joint."""
    max_acceleration: float = 1000.0
    """rad/s²: the hardware ceiling; a manifest or a loosened ``acceleration`` above it is refused."""

    def __post_init__(self) -> None:
        if not self.position_margin >= 0:
            raise ValueError(f"safety.position_margin must be >= 0 rad, got {self.position_margin}")
        if not 0 < self.velocity_scale <= 1:
            raise ValueError(f"safety.velocity_scale must be in (0, 1], got {self.velocity_scale}")
        if not 0 < self.acceleration <= self.max_acceleration:
            raise ValueError(
                f"safety.acceleration must be in (0, max_acceleration={self.max_acceleration}] rad/s², "
                f"got {self.acceleration}"
            )


@dataclass(frozen=True)
class BodyPart:
    """What one body part owns: simulator joints and root-feature groups (names of the feature layout)."""

    joints: tuple[str, ...]
    root: tuple[str, ...]


@dataclass(frozen=True)
class RobotDescription:
    """Joint orders and per-joint limits of one robot, as loaded by :func:`load_robot`."""

    name: str
    sim_joint_names: tuple[str, ...]
    real_joint_names: tuple[str, ...]
    joints: dict[str, JointSpec]
    mjcf: Path | None = None
    source: Path | None = None
    safety: SafetySpec = field(default_factory=SafetySpec)
    body_parts: dict[str, dict[str, BodyPart]] | None = None
    """Partition name -> part name -> the joints and root features that part owns."""

    @property
    def num_sim(self) -> int:
        return len(self.sim_joint_names)

    @property
    def real_dof(self) -> int:
        return len(self.real_joint_names)

    def sim_limits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lower, upper, velocity)`` arrays in simulator order."""
        specs = [self.joints[n] for n in self.sim_joint_names]
        return (
            np.array([s.lower for s in specs]),
            np.array([s.upper for s in specs]),
            np.array([s.velocity for s in specs]),
        )

    def real_limits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lower, upper, velocity)`` in real order and convention (a sign of -1 swaps the bounds)."""
        specs = [self.joints[n] for n in self.real_joint_names]
        a = np.array([s.sign * s.lower + s.offset for s in specs])
        b = np.array([s.sign * s.upper + s.offset for s in specs])
        return np.minimum(a, b), np.maximum(a, b), np.array([s.velocity for s in specs])

    def real_gains(self, names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(kp, kd)`` PD gains of ``names`` (default: the real order); a joint without gains is an error."""
        names = list(self.real_joint_names) if names is None else list(names)
        unknown = [n for n in names if n not in self.joints]
        missing = [n for n in names if n in self.joints and self.joints[n].kp is None]
        if unknown or missing:
            raise KeyError(
                f"{self.source}: no PD gains for joints {unknown + missing}; add kp (N m/rad) and kd "
                "(N m s/rad) to each under 'joints'"
            )
        return (
            np.array([self.joints[n].kp for n in names], np.float64),
            np.array([self.joints[n].kd for n in names], np.float64),
        )

    def joint_map(self) -> JointMap:
        """The map this description defines: each sim joint goes to the real slot of the same name."""
        real_index = {n: i for i, n in enumerate(self.real_joint_names)}
        return JointMap(
            sim_to_real_idx=[real_index[n] for n in self.sim_joint_names],
            real_dof=self.real_dof,
            sign=[self.joints[n].sign for n in self.sim_joint_names],
            offset=[self.joints[n].offset for n in self.sim_joint_names],
            sim_joint_names=list(self.sim_joint_names),
            real_joint_names=list(self.real_joint_names),
        )


def available_robots() -> list[str]:
    """Names accepted by :func:`load_robot` without a path."""
    return sorted(p.stem for p in ROBOTS_DIR.glob("*.yaml"))


def is_robot_path(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` names a YAML file rather than a robot shipped in ``sim2real/robots``."""
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith((".yaml", ".yml"))


def load_robot(name_or_path: str | Path) -> RobotDescription:
    """Load ``sim2real/robots/<name>.yaml`` for a bare name like ``"g1_29dof"``, else the YAML at the path."""
    text = str(name_or_path)
    if is_robot_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"robot description {path} does not exist")
    else:
        path = ROBOTS_DIR / f"{text}.yaml"
        if not path.is_file():
            raise KeyError(f"unknown robot '{text}'; available in {ROBOTS_DIR}: {available_robots()}")
    with path.open() as f:
        data = yaml.safe_load(f)
    return _parse(data, path.resolve())


def _parse(data: Any, path: Path) -> RobotDescription:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with keys {list(_TOP_KEYS)}, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise KeyError(f"{path}: unknown keys {unknown}; valid keys: {list(_TOP_KEYS)}")
    for key in ("sim_joint_names", "joints"):
        if key not in data:
            raise KeyError(f"{path}: missing key '{key}'")
    sim_names = _names(data["sim_joint_names"], path, "sim_joint_names")
    real_names = _names(data.get("real_joint_names", sim_names), path, "real_joint_names")

    joints_raw = data["joints"]
    if not isinstance(joints_raw, dict):
        raise ValueError(
            f"{path}: 'joints' must map joint names to their limits, got {type(joints_raw).__name__}"
        )
    needed = list(dict.fromkeys([*sim_names, *real_names]))
    missing = [n for n in needed if n not in joints_raw]
    if missing:
        raise KeyError(
            f"{path}: 'joints' has no limits for {missing}; add lower, upper and velocity for each"
        )
    extra = sorted(set(joints_raw) - set(needed))
    if extra:
        raise KeyError(
            f"{path}: 'joints' lists {extra}, which are in neither sim_joint_names nor real_joint_names"
        )
    joints = {n: _joint(joints_raw[n], path, n, in_sim=n in sim_names) for n in needed}

    mjcf = data.get("mjcf")
    if mjcf is not None and not isinstance(mjcf, str):
        raise TypeError(f"{path}: 'mjcf' must be a path string relative to the YAML, got {mjcf!r}")
    safety = _safety(data.get("safety", {}), path)
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{path}: 'name' must be a non-empty string, got {name!r}")
    return RobotDescription(
        name=name,
        sim_joint_names=tuple(sim_names),
        real_joint_names=tuple(real_names),
        joints=joints,
        mjcf=(path.parent / mjcf).resolve() if mjcf else None,
        source=path,
        safety=safety,
        body_parts=_body_parts(data.get("body_parts"), path, sim_names),
    )


def _safety(raw: Any, path: Path) -> SafetySpec:
    valid = [f.name for f in fields(SafetySpec)]
    if not isinstance(raw, dict):
        raise TypeError(f"{path}: 'safety' must be a mapping with keys {valid}, got {raw!r}")
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise KeyError(f"{path}: safety: unknown keys {unknown}; valid keys: {valid}")
    values = {k: _float(v, f"{path}: safety.{k}") for k, v in raw.items()}
    try:
        return SafetySpec(**values)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _body_parts(raw: Any, path: Path, sim_names: list[str]) -> dict[str, dict[str, BodyPart]] | None:
    """Partitions of the simulator joints: each joint in exactly one part, each root group at most once."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        raise TypeError(f"{path}: 'body_parts' must map partition names to parts, got {raw!r}")
    out: dict[str, dict[str, BodyPart]] = {}
    for partition, parts in raw.items():
        where = f"{path}: body_parts.{partition}"
        if not isinstance(parts, dict) or len(parts) < 2:
            raise TypeError(f"{where} must map at least two part names to {{joints, root}}, got {parts!r}")
        built = {}
        for part, spec in parts.items():
            if not isinstance(spec, dict) or set(spec) - set(_PART_KEYS) or "joints" not in spec:
                raise KeyError(
                    f"{where}.{part}: expected keys {list(_PART_KEYS)} ('joints' required), got {spec!r}"
                )
            root = spec.get("root") or []
            if not isinstance(root, list) or not all(isinstance(r, str) for r in root):
                raise TypeError(f"{where}.{part}.root must be a list of root-feature names, got {root!r}")
            built[str(part)] = BodyPart(
                tuple(_names(spec["joints"], path, f"body_parts.{partition}.{part}.joints")), tuple(root)
            )
        owned = [j for p in built.values() for j in p.joints]
        unknown = sorted(set(owned) - set(sim_names))
        missing = [j for j in sim_names if j not in owned]
        twice = sorted(j for j, count in Counter(owned).items() if count > 1)
        roots = [r for p in built.values() for r in p.root]
        root_twice = sorted(r for r, count in Counter(roots).items() if count > 1)
        if unknown or missing or twice or root_twice:
            raise ValueError(
                f"{where} must partition sim_joint_names: unknown joints {unknown}, "
                f"joints in no part {missing}, "
                f"joints in two parts {twice}, root features in two parts {root_twice}"
            )
        out[str(partition)] = built
    return out


def _names(value: Any, path: Path, key: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(n, str) and n for n in value):
        raise TypeError(f"{path}: '{key}' must be a non-empty list of joint-name strings, got {value!r}")
    dups = sorted(n for n, count in Counter(value).items() if count > 1)
    if dups:
        raise ValueError(f"{path}: '{key}' lists {dups} more than once; each joint appears once")
    return list(value)


def _joint(raw: Any, path: Path, name: str, in_sim: bool) -> JointSpec:
    where = f"{path}: joints.{name}"
    if not isinstance(raw, dict):
        raise TypeError(f"{where} must be a mapping with keys {list(_JOINT_KEYS)}, got {raw!r}")
    unknown = sorted(set(raw) - set(_JOINT_KEYS))
    if unknown:
        raise KeyError(f"{where}: unknown keys {unknown}; valid keys: {list(_JOINT_KEYS)}")
    missing = [k for k in _REQUIRED_JOINT_KEYS if k not in raw]
    if missing:
        raise KeyError(
            f"{where}: missing {missing}; every joint needs lower, upper (rad) and velocity (rad/s)"
        )
    values = {k: _float(raw[k], f"{where}.{k}") for k in raw}
    spec = JointSpec(**values)
    if not spec.lower < spec.upper:
        raise ValueError(f"{where}: lower ({spec.lower}) must be below upper ({spec.upper})")
    if not spec.velocity > 0:
        raise ValueError(f"{where}: velocity limit must be positive, got {spec.velocity}")
    if spec.sign not in (1.0, -1.0):
        raise ValueError(f"{where}: sign must be 1 or -1, got {spec.sign}")
    if (spec.kp is None) != (spec.kd is None) or (spec.kp is not None and not (spec.kp > 0 and spec.kd >= 0)):
        raise ValueError(f"{where}: give kp > 0 and kd >= 0 together, got kp={spec.kp}, kd={spec.kd}")
    if not in_sim and (spec.sign != 1.0 or spec.offset != 0.0):
        raise ValueError(f"{where}: sign/offset only apply to joints in sim_joint_names; remove them here")
    return spec


def _float(value: Any, where: str) -> float:
    """PyYAML reads ``2e-4`` as a string: convert explicitly, refusing bools and non-numbers."""
    if isinstance(value, bool):
        raise TypeError(f"{where}: expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected a number, got {value!r}") from None
    if not np.isfinite(out):
        raise ValueError(f"{where}: must be finite, got {value!r}")
    return out
