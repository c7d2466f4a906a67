"""Joint maps between the simulator's joint order and the real robot's, plus a by-name column remap.

The model is trained and decoded in simulator order; the robot takes commands in its motor order, possibly
with more slots than the simulator drives (the G1 driven with 23 DOF still has 29 motors). A ``JointMap``
is that permutation plus a per-joint ``real = sign * sim + offset``; it serializes to plain lists so it can
ride along in checkpoints and ONNX manifests.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

_DICT_KEYS = (
    "sim_to_real_idx",
    "real_dof",
    "sign",
    "offset",
    "default",
    "sim_joint_names",
    "real_joint_names",
)


class MappedRobot(Protocol):
    """What :meth:`JointMap.from_config` reads of a robot (a :class:`sim2real.robot.RobotDescription`).

    Written as a protocol so that this module stays below ``sim2real.robot``, which builds its maps here.
    """

    @property
    def name(self) -> str: ...

    @property
    def sim_joint_names(self) -> tuple[str, ...]: ...

    @property
    def source(self) -> Path | None: ...

    @property
    def num_sim(self) -> int: ...

    @property
    def real_dof(self) -> int: ...

    def joint_map(self) -> JointMap: ...


@dataclass
class JointMap:
    """``sim_to_real_idx[i]`` is the real slot of sim joint ``i``; unmapped real slots get ``default``."""

    sim_to_real_idx: np.ndarray  # (n_sim,) int, unique, < real_dof
    real_dof: int
    sign: np.ndarray | None = None  # (n_sim,) +1/-1, None = all +1
    offset: np.ndarray | None = None  # (n_sim,) rad, None = all 0
    default: float = 0.0  # value of real slots no sim joint maps to
    sim_joint_names: list[str] | None = None
    real_joint_names: list[str] | None = None

    def __post_init__(self) -> None:
        self.real_dof = _check_real_dof(self.real_dof, "real_dof")
        self.sim_to_real_idx = _check_index(self.sim_to_real_idx, self.real_dof, "sim_to_real_idx")
        n = self.num_sim
        self.sign = np.ones(n) if self.sign is None else np.asarray(self.sign, dtype=np.float64)
        self.offset = np.zeros(n) if self.offset is None else np.asarray(self.offset, dtype=np.float64)
        for key, arr in (("sign", self.sign), ("offset", self.offset)):
            if arr.shape != (n,):
                raise ValueError(
                    f"JointMap: '{key}' must have one value per sim joint ({n}), got shape {arr.shape}"
                )
        if not np.all(np.isin(self.sign, (-1.0, 1.0))):
            raise ValueError(f"JointMap: 'sign' entries must be 1 or -1, got {self.sign.tolist()}")
        if not np.all(np.isfinite(self.offset)):
            raise ValueError(f"JointMap: 'offset' must be finite, got {self.offset.tolist()}")
        self.default = float(self.default)
        for key, names, size in (
            ("sim_joint_names", self.sim_joint_names, n),
            ("real_joint_names", self.real_joint_names, self.real_dof),
        ):
            if names is not None and len(names) != size:
                raise ValueError(f"JointMap: '{key}' has {len(names)} names for {size} joints")
        if self.sim_joint_names is not None:
            self.sim_joint_names = list(self.sim_joint_names)
        if self.real_joint_names is not None:
            self.real_joint_names = list(self.real_joint_names)

    @property
    def num_sim(self) -> int:
        return len(self.sim_to_real_idx)

    @property
    def real_to_sim_idx(self) -> np.ndarray:
        """``(real_dof,)``: for each real slot, the sim joint that drives it, or -1 when none does."""
        inverse = np.full(self.real_dof, -1, dtype=np.int64)
        inverse[self.sim_to_real_idx] = np.arange(self.num_sim)
        return inverse

    @property
    def is_identity(self) -> bool:
        return (
            self.real_dof == self.num_sim
            and bool(np.all(self.sim_to_real_idx == np.arange(self.num_sim)))
            and bool(np.all(self.sign == 1.0) and np.all(self.offset == 0.0))
        )

    @classmethod
    def identity(cls, num_joints: int, joint_names: Sequence[str] | None = None) -> JointMap:
        """Outputs stay in simulator order."""
        names = list(joint_names) if joint_names is not None else None
        return cls(np.arange(num_joints), num_joints, sim_joint_names=names, real_joint_names=names)

    @classmethod
    def from_config(
        cls,
        robot: MappedRobot,
        apply_sim_to_real_map: bool,
        real_dof: int | None = None,
        sim_to_real_idx: Sequence[int] | None = None,
    ) -> JointMap:
        """The map the original tool's agent config asks for.

        ``apply_sim_to_real_map`` false: identity (sim order). True: the robot YAML's map, unless
        ``sim_to_real_idx`` is given, which overrides it (``real_dof`` defaults to the robot's). Duplicate
        or out-of-range indices are refused, never dropped.
        """
        where = f"agent config for robot '{robot.name}' ({robot.source})"
        if not isinstance(apply_sim_to_real_map, bool):
            raise TypeError(
                f"{where}: apply_sim_to_real_map must be true or false, got {apply_sim_to_real_map!r}"
            )
        if not apply_sim_to_real_map:
            if real_dof is not None and real_dof != robot.num_sim:
                raise ValueError(
                    f"{where}: apply_sim_to_real_map is false, so outputs stay in sim order with "
                    f"{robot.num_sim} joints, but real_dof is {real_dof}; set real_dof null or enable the map"
                )
            if sim_to_real_idx is not None:
                logger.warning("%s: sim_to_real_idx is ignored because apply_sim_to_real_map is false", where)
            return cls.identity(robot.num_sim, robot.sim_joint_names)

        base = robot.joint_map()
        if sim_to_real_idx is None:
            if real_dof is not None and real_dof != base.real_dof:
                raise ValueError(
                    f"{where}: real_dof {real_dof} disagrees with the {base.real_dof} real joints of "
                    f"{robot.source}; drop real_dof or give a matching sim_to_real_idx"
                )
            return base
        dof = robot.real_dof if real_dof is None else _check_real_dof(real_dof, f"{where}: real_dof")
        idx = _check_index(sim_to_real_idx, dof, f"{where}: sim_to_real_idx")
        if len(idx) != robot.num_sim:
            raise ValueError(
                f"{where}: sim_to_real_idx has {len(idx)} entries, the robot has {robot.num_sim} sim joints"
            )
        agrees = dof == base.real_dof and np.array_equal(idx, base.sim_to_real_idx)
        if not agrees:
            logger.info("%s: explicit sim_to_real_idx overrides the map of %s", where, robot.source)
        real_names = base.real_joint_names if agrees else _names_for_slots(robot.sim_joint_names, idx, dof)
        return cls(idx, dof, base.sign, base.offset, 0.0, list(robot.sim_joint_names), real_names)

    def sim_to_real(self, values: np.ndarray, *, velocity: bool = False) -> np.ndarray:
        """``(..., n_sim) -> (..., real_dof)``. ``velocity=True`` applies the sign only and fills with 0."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1:] != (self.num_sim,):
            raise ValueError(
                f"JointMap.sim_to_real: expected {self.num_sim} sim joints last, got {values.shape}"
            )
        out = np.full((*values.shape[:-1], self.real_dof), 0.0 if velocity else self.default)
        out[..., self.sim_to_real_idx] = self.sign * values + (0.0 if velocity else self.offset)
        return out

    def real_to_sim(self, values: np.ndarray, *, velocity: bool = False) -> np.ndarray:
        """``(..., real_dof) -> (..., n_sim)``: the inverse of :meth:`sim_to_real` on the mapped slots."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1:] != (self.real_dof,):
            raise ValueError(
                f"JointMap.real_to_sim: expected {self.real_dof} real joints last, got {values.shape}"
            )
        picked = values[..., self.sim_to_real_idx]
        return self.sign * (picked if velocity else picked - self.offset)  # sign is +-1: its own inverse

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able types for checkpoints (``weights_only=True``) and ONNX manifests."""
        return {
            "sim_to_real_idx": self.sim_to_real_idx.tolist(),
            "real_dof": self.real_dof,
            "sign": self.sign.tolist(),
            "offset": self.offset.tolist(),
            "default": self.default,
            "sim_joint_names": self.sim_joint_names,
            "real_joint_names": self.real_joint_names,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JointMap:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        unknown = sorted(set(data) - set(_DICT_KEYS))
        if unknown:
            raise KeyError(f"JointMap.from_dict: unknown keys {unknown}; valid keys: {list(_DICT_KEYS)}")
        for key in ("sim_to_real_idx", "real_dof"):
            if key not in data:
                raise KeyError(f"JointMap.from_dict: missing key '{key}'")
        return cls(**data)


def remap_columns(
    values: np.ndarray, src_names: Sequence[str], dst_names: Sequence[str], fill: float = 0.0
) -> np.ndarray:
    """Reorder the last axis from ``src_names`` to ``dst_names`` by name; missing columns get ``fill``.

    Source columns absent from ``dst_names`` are dropped (29-DOF data onto a 23-DOF robot drops the wrists).
    """
    values = np.asarray(values)
    src, dst = list(src_names), list(dst_names)
    if values.shape[-1:] != (len(src),):
        raise ValueError(
            f"remap_columns: values have shape {values.shape} but {len(src)} source names were given"
        )
    for key, names in (("src_names", src), ("dst_names", dst)):
        dups = sorted(n for n, count in Counter(names).items() if count > 1)
        if dups:
            raise ValueError(f"remap_columns: {key} lists {dups} more than once")
    position = {n: i for i, n in enumerate(src)}
    common = [n for n in dst if n in position]
    if not common:
        raise ValueError(
            f"remap_columns: no joint name is shared between src {src[:3]}... and dst {dst[:3]}...; "
            "check the naming convention of the data against the robot description"
        )
    out = np.full((*values.shape[:-1], len(dst)), fill, dtype=np.result_type(values, np.float64))
    dst_idx = [i for i, n in enumerate(dst) if n in position]
    out[..., dst_idx] = values[..., [position[n] for n in common]]
    return out


def _check_real_dof(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: real_dof must be a positive integer, got {value!r}")
    return int(value)


def _check_index(idx: Any, real_dof: int, where: str) -> np.ndarray:
    """Validate an index list: integers, 1-D, unique, each in ``[0, real_dof)``."""
    arr = np.asarray(idx)
    if arr.ndim != 1 or len(arr) == 0 or arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{where} must be a non-empty list of integers, got {idx!r}")
    bad = sorted({int(i) for i in arr if not 0 <= i < real_dof})
    if bad:
        raise ValueError(f"{where}: indices {bad} are outside [0, {real_dof}) for real_dof={real_dof}")
    dups = sorted(int(i) for i, count in Counter(arr.tolist()).items() if count > 1)
    if dups:
        raise ValueError(
            f"{where}: indices {dups} appear more than once; two sim joints cannot share a real slot"
        )
    return arr.astype(np.int64)


def _names_for_slots(sim_names: Sequence[str], idx: np.ndarray, real_dof: int) -> list[str]:
    """Real slot names implied by an explicit index: the sim joint's name, or ``slot_<j>`` when unmapped."""
    names = [f"slot_{j}" for j in range(real_dof)]
    for name, j in zip(sim_names, idx, strict=True):
        names[int(j)] = name
    return names
