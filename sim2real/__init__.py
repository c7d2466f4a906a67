"""Robot-side runtime: numpy, onnxruntime and pyyaml only. Never imports torch or motion_vqvae.

``TokenDecoder`` and ``TokenPrior`` (and their modules) load onnxruntime on first use only, so
``import sim2real`` and ``from sim2real import JointMap`` stay cheap where nothing is decoded (training,
data tools).
"""

from __future__ import annotations

from typing import Any

from sim2real.joint_map import JointMap, remap_columns
from sim2real.robot import JointSpec, RobotDescription, SafetySpec, available_robots, load_robot
from sim2real.safety import SafetyFilter, SafetyLimits
from sim2real.token_spec import TokenSpec

__all__ = [
    "JointMap",
    "JointSpec",
    "RobotDescription",
    "SafetyFilter",
    "SafetyLimits",
    "SafetySpec",
    "TokenDecoder",
    "TokenPrior",
    "TokenSpec",
    "available_robots",
    "load_robot",
    "remap_columns",
]


def __getattr__(name: str) -> Any:
    if name == "TokenDecoder":
        from sim2real.runtime import TokenDecoder

        return TokenDecoder
    if name == "TokenPrior":
        from sim2real.prior import TokenPrior

        return TokenPrior
    raise AttributeError(f"module 'sim2real' has no attribute {name!r}")
