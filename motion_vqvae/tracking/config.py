"""The tracker's typed config: environment (MDP), PPO and run settings, each key documented.

Keys are set with ``train_tracker.py --set key=value`` and saved beside the run (``config.yaml``) and in
every checkpoint, so a tracker rebuilds its environment exactly. The MDP constants are BeyondMimic's
(``whole_body_tracking/tasks/tracking/tracking_env_cfg.py``), so the same clips train on mjlab or Isaac Lab.
"""

from __future__ import annotations

from dataclasses import dataclass

from motion_vqvae.errors import InvalidValue
from motion_vqvae.typed_fields import config_field as _opt

ACTION_OFFSETS = ("reference", "default")


@dataclass
class TrackerConfig:
    """Every key the tracker understands."""

    control_fps: float = _opt(50.0, "policy rate, Hz (BeyondMimic's 50 Hz)", min=1.0)
    physics_hz: float = _opt(200.0, "MuJoCo rate, Hz; must be a whole multiple of control_fps", min=1.0)
    action_offset: str = _opt(
        "reference", "PD targets = offset + action_scale * action; offset 'reference' or 'default' pose"
    )
    episode_seconds: float = _opt(10.0, "longest episode, s (a clip's end also ends it)", min=0.1)
    anchor_height_limit: float = _opt(0.25, "terminate when |anchor height error| exceeds this, m", min=0.0)
    anchor_gravity_limit: float = _opt(
        0.8, "terminate when the anchor's projected-gravity z differs by more than this", min=0.0
    )
    end_effector_height_limit: float = _opt(0.25, "terminate on a hand/foot height error above this, m")
    init_pos_noise: float = _opt(0.01, "reset: uniform noise on the root position, m", min=0.0)
    init_dof_noise: float = _opt(0.1, "reset: uniform noise on the joint angles, rad", min=0.0)
    adaptive_bin_seconds: float = _opt(1.0, "adaptive sampling: width of a start bin, s", min=0.02)
    adaptive_uniform: float = _opt(
        0.1, "adaptive sampling: share of starts drawn uniformly", min=0.0, max=1.0
    )
    adaptive_alpha: float = _opt(
        0.01, "adaptive sampling: EMA rate of a bin's failure count", min=0.0, max=1.0
    )
    soft_limit_share: float = _opt(0.9, "joint-limit penalty starts at this share of the range", min=0.0)
    action_rate_weight: float = _opt(-0.1, "reward weight of the squared action change")
    joint_limit_weight: float = _opt(-10.0, "reward weight of the joint-limit excess")
    num_envs: int = _opt(64, "MjData batched in the process", min=1)
    steps_per_env: int = _opt(24, "PPO rollout length per env", min=1)
    epochs: int = _opt(5, "PPO epochs per rollout", min=1)
    minibatches: int = _opt(4, "PPO minibatches per epoch", min=1)
    lr: float = _opt(1e-3, "Adam learning rate (adapted by the KL target)", min=0.0)
    desired_kl: float = _opt(0.01, "adaptive learning-rate KL target", min=0.0)
    gamma: float = _opt(0.99, "discount", min=0.0, max=1.0)
    lam: float = _opt(0.95, "GAE lambda", min=0.0, max=1.0)
    clip: float = _opt(0.2, "PPO ratio clip", min=0.0)
    entropy_coef: float = _opt(0.005, "entropy bonus weight", min=0.0)
    value_coef: float = _opt(1.0, "value loss weight", min=0.0)
    max_grad_norm: float = _opt(1.0, "gradient clip norm", min=0.0)
    init_std: float = _opt(1.0, "initial action standard deviation", min=1e-6)
    hidden: list[int] = _opt([512, 256, 128], "actor and critic hidden sizes")
    total_iter: int = _opt(100000, "PPO iterations (the time budget usually ends training first)", min=1)
    save_every: int = _opt(20, "iterations between checkpoints", min=1)
    seed: int = _opt(0, "random seed (environment and network)")

    def __post_init__(self) -> None:
        if self.action_offset not in ACTION_OFFSETS:
            raise InvalidValue(
                f"tracker config: action_offset must be one of {ACTION_OFFSETS}, got {self.action_offset!r}"
            )
        ratio = self.physics_hz / self.control_fps
        if abs(ratio - round(ratio)) > 1e-9 or ratio < 1:
            raise InvalidValue(
                f"tracker config: physics_hz ({self.physics_hz}) must be a whole multiple of control_fps "
                f"({self.control_fps}); e.g. 200 and 50"
            )

    @property
    def substeps(self) -> int:
        return round(self.physics_hz / self.control_fps)
