"""``motion_vqvae/G1Track-v0``: one G1 tracking a reference motion in MuJoCo physics (gymnasium API).

A single-environment view of :class:`~motion_vqvae.tracking.batch.TrackingBatch` (physics 200 Hz, control
50 Hz, BeyondMimic's MDP), for tools that want a plain ``gym.Env``; training steps the batch directly. The
reference is ``motion_file`` (any reader's format, ``fps`` for files that state none) or, by default, the
bundled sample motion. Actions are in [-1, 1]-ish units: PD target = reference frame + ``action_scale *
action`` (see :class:`~motion_vqvae.tracking.config.TrackerConfig` ``action_offset``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from motion_vqvae.data import sample_motion_path
from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.tracking.batch import TrackingBatch
from motion_vqvae.tracking.config import TrackerConfig
from motion_vqvae.tracking.reference import ReferenceMotion


class G1TrackEnv(gym.Env[np.ndarray, np.ndarray]):
    """Physics G1 tracking a clip; reward = BeyondMimic's tracking terms and penalties."""

    metadata = {"render_modes": [], "render_fps": 50}

    def __init__(
        self,
        motion_file: str | Path | None = None,
        fps: float | None = None,
        config: TrackerConfig | None = None,
        reference: ReferenceMotion | None = None,
    ) -> None:
        config = config or TrackerConfig()
        self.config = TrackerConfig(**{**config.__dict__, "num_envs": 1})
        body = G1Body(timestep=1.0 / self.config.physics_hz)
        if reference is None:
            reference = ReferenceMotion.from_file(
                motion_file or sample_motion_path(), fps, body, self.config.control_fps
            )
        self.batch = TrackingBatch(reference, self.config, body)
        self.metadata = {**self.metadata, "render_fps": self.config.control_fps}
        n = self.batch.num_dof
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (n,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.batch.obs_size,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.batch.rng = np.random.default_rng(seed)
        frame = None if not options or "frame" not in options else np.array([int(options["frame"])])
        obs = self.batch.reset(frames=frame)
        return obs[0], {"frame": int(self.batch.frame[0])}

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=np.float64).reshape(1, -1)
        obs, reward, terminated, truncated, info = self.batch.step(action)
        out = {"terms": {k: float(v[0]) for k, v in info["terms"].items()}, "frame": int(info["frame"][0])}
        if "final_obs" in info:
            obs = info["final_obs"]  # gymnasium's caller resets; show the state the episode ended in
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), out
