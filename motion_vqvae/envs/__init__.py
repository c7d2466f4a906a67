"""Token-space RL: G1 environments (registered with gymnasium on import) and the token action wrapper.

    import gymnasium as gym
    import motion_vqvae.envs
    inner = gym.make("motion_vqvae/G1Kinematic-v0")
    env = motion_vqvae.envs.TokenActionWrapper(inner, "runs/g1/checkpoints/best.pt")  # or an export dir

Importing this package needs numpy, gymnasium and mujoco only; torch is imported when a checkpoint is
decoded (an ONNX export directory needs onnxruntime instead).
"""

from __future__ import annotations

import gymnasium as gym

from motion_vqvae.envs.decoders import (
    CheckpointTokenSource,
    ExportTokenSource,
    TokenSource,
    load_token_source,
)
from motion_vqvae.envs.kinematic import G1KinematicEnv
from motion_vqvae.envs.pd import G1PDEnv
from motion_vqvae.envs.wrapper import TokenActionWrapper

__all__ = [
    "CheckpointTokenSource",
    "ExportTokenSource",
    "G1KinematicEnv",
    "G1PDEnv",
    "TokenActionWrapper",
    "TokenSource",
    "load_token_source",
]

_ENVS = {
    "motion_vqvae/G1Kinematic-v0": ("motion_vqvae.envs.kinematic:G1KinematicEnv", 300),
    "motion_vqvae/G1PD-v0": ("motion_vqvae.envs.pd:G1PDEnv", 300),
    "motion_vqvae/G1Track-v0": ("motion_vqvae.tracking.env:G1TrackEnv", 500),
    "motion_vqvae/G1TokenTrack-v0": ("motion_vqvae.tracking.token_env:G1TokenTrackEnv", 500),
}
for _env_id, (_entry, _steps) in _ENVS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry, max_episode_steps=_steps)
