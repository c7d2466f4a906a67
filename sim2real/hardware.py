"""Which limits a robot has: the package's own YAML for a known robot, and robot files that only restrict it.

The hardware limits of a known robot are ``sim2real/robots/<name>.yaml`` (package data) and nothing else:
an export names its robot by that name, never by a path, so no file beside an export and no path on the
training machine can stand in for it. A robot file given as a path (a training config's ``robot``, or
``TokenDecoder(export, robot=...)``) restricts the packaged robot its ``name`` field names: every joint
range, velocity limit and ``safety`` value must be inside that robot's, and the joint orders and the
sim-to-real convention the same, or it is refused. It can therefore only tighten what the robot does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim2real.robot import RobotDescription, available_robots, is_robot_path, load_robot

# SafetySpec fields and the direction that tightens them: a larger margin, smaller scales and accelerations.
_SAFETY_TIGHTER = {
    "position_margin": 1.0,
    "velocity_scale": -1.0,
    "acceleration": -1.0,
    "max_acceleration": -1.0,
}


def packaged_robot(name: Any, source: str = "robot") -> RobotDescription:
    """The robot shipped as ``sim2real/robots/<name>.yaml``; a path or an unknown name is refused.

    ``source`` says where the name was read (a manifest's ``robot`` key, a robot file's ``name``).
    """
    known = available_robots()
    if not isinstance(name, str) or name not in known:
        raise ValueError(
            f"{source}: {name!r} is not a robot shipped with sim2real (sim2real/robots: {known}); the "
            "hardware limits come from the package's own robot YAML, named by its name, never from a path. "
            "Re-export with this version of motion-vqvae, or update sim2real if the robot is newer"
        )
    return load_robot(name)


def resolve_robot(name_or_path: str | Path) -> RobotDescription:
    """A packaged robot by name, or a robot file (a path) whose limits are all inside the packaged robot its
    ``name`` names; see the module docstring. Returns the description whose limits apply."""
    if not is_robot_path(name_or_path):
        return packaged_robot(str(name_or_path))
    robot = load_robot(name_or_path)
    hardware = packaged_robot(robot.name, source=f"{robot.source}: name")
    check_inside(robot, hardware)
    return robot


def check_inside(robot: RobotDescription, hardware: RobotDescription) -> None:
    """Refuse ``robot`` (a file) unless every limit it sets is inside the packaged ``hardware``'s, naming each
    joint and value that is not."""
    where = f"{robot.source}"
    orders = (robot.sim_joint_names, robot.real_joint_names)
    if orders != (hardware.sim_joint_names, hardware.real_joint_names):
        raise ValueError(
            f"{where}: its joint orders differ from the packaged robot '{hardware.name}' "
            f"({hardware.source}); a robot file may only tighten the limits of the robot it names, with "
            "the same joints in the same order"
        )
    problems = []
    for name, hard in hardware.joints.items():
        spec = robot.joints[name]
        if spec.lower < hard.lower:
            problems.append(f"joints.{name}.lower {spec.lower} < {hard.lower}")
        if spec.upper > hard.upper:
            problems.append(f"joints.{name}.upper {spec.upper} > {hard.upper}")
        if spec.velocity > hard.velocity:
            problems.append(f"joints.{name}.velocity {spec.velocity} > {hard.velocity}")
        if (spec.sign, spec.offset) != (hard.sign, hard.offset):
            problems.append(
                f"joints.{name} sign/offset ({spec.sign}, {spec.offset}) != ({hard.sign}, {hard.offset})"
            )
    for key, tighter in _SAFETY_TIGHTER.items():
        value, hard_value = getattr(robot.safety, key), getattr(hardware.safety, key)
        if (value - hard_value) * tighter < 0:
            problems.append(f"safety.{key} {value} is looser than {hard_value}")
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise ValueError(
            f"{where}: limits outside the packaged robot '{hardware.name}' ({hardware.source}): {shown}. "
            f"A robot file may only tighten the robot it names; the hardware limits are "
            f"sim2real/robots/{hardware.name}.yaml"
        )
