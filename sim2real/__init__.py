"""Robot-side runtime: numpy, onnxruntime and pyyaml only. Never imports torch or motion_vqvae."""

from sim2real.joint_map import JointMap, remap_columns
from sim2real.robot import JointSpec, RobotDescription, available_robots, load_robot

__all__ = ["JointMap", "JointSpec", "RobotDescription", "available_robots", "load_robot", "remap_columns"]
