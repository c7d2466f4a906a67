"""Robot-side runtime: numpy, onnxruntime and pyyaml only. Never imports torch or motion_vqvae."""

from sim2real.joint_map import JointMap, remap_columns
from sim2real.prior import TokenPrior
from sim2real.robot import JointSpec, RobotDescription, available_robots, load_robot
from sim2real.runtime import SafetyFilter, TokenDecoder

__all__ = [
    "JointMap",
    "JointSpec",
    "RobotDescription",
    "SafetyFilter",
    "TokenDecoder",
    "TokenPrior",
    "available_robots",
    "load_robot",
    "remap_columns",
]
