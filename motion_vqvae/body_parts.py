"""Body-part partitions of the feature columns, from the robot YAML's ``body_parts`` (config key).

A body-part tokenizer gives each part its own encoder and token streams; which columns of the feature
vector a part encodes is decided here, once, and stored in the model's hyper-parameters (``parts``).
"""

from __future__ import annotations

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.errors import InvalidValue, user_input
from motion_vqvae.features import FeatureLayout
from sim2real import load_robot


def part_columns(cfg: AgentConfig, layout: FeatureLayout) -> dict[str, list[int]] | None:
    """Feature columns each body part owns (``body_parts`` of the robot YAML), or None for one part.

    A part owns its joints' angle and velocity columns and the root-feature groups listed for it; every
    column must belong to exactly one part, so the parts' tokens together describe the whole motion.
    """
    if cfg.body_parts is None:
        return None
    with user_input():  # sim2real raises builtins for an unknown robot or a broken robot YAML
        robot = load_robot(cfg.robot)
    partitions = robot.body_parts or {}
    if cfg.body_parts not in partitions:
        raise InvalidValue(
            f"body_parts={cfg.body_parts!r} is not defined in {robot.source}; "
            f"available: {sorted(partitions)} "
            "(add it under body_parts: in the robot YAML, or --set body_parts=null for one token stream)"
        )
    names = layout.joint_names or list(robot.sim_joint_names)
    dof, vel = layout.slices["dof_pos"], layout.slices["dof_vel"]
    columns: dict[str, list[int]] = {}
    for part, spec in partitions[cfg.body_parts].items():
        missing = [j for j in spec.joints if j not in names]
        unknown_root = [r for r in spec.root if r not in layout.slices or r in ("dof_pos", "dof_vel")]
        if missing or unknown_root:
            raise InvalidValue(
                f"{robot.source}: body_parts.{cfg.body_parts}.{part}: joints {missing} are not in the motion "
                f"and root features {unknown_root} are not root groups of the feature layout "
                f"{[k for k in layout.slices if k not in ('dof_pos', 'dof_vel')]}"
            )
        cols = [i for r in spec.root for i in range(layout.slices[r].start, layout.slices[r].stop)]
        joints = [names.index(j) for j in spec.joints]
        columns[part] = sorted(cols + [dof.start + j for j in joints] + [vel.start + j for j in joints])
    owned = sorted(c for cols in columns.values() for c in cols)
    if owned != list(range(layout.dim)):
        orphans = sorted(set(range(layout.dim)) - set(owned))
        raise InvalidValue(
            f"{robot.source}: body_parts.{cfg.body_parts} leaves feature columns {orphans} to no part; list "
            "every root group (root_height, root_tilt, root_lin_vel, yaw_rate) under some part's root"
        )
    return columns
