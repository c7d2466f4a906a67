"""Env steps per CPU second of ``G1Track-v0``'s batched core against ``G1PD-v0``, in one run.

Both step the project's G1 model at 200 Hz physics; ``G1PD-v0`` at its default 30 Hz control with a Python
PD law at every physics step, the tracker at 50 Hz with MuJoCo position servos and ``num_envs`` MjData
batched in one process. CPU time (``time.process_time``) of this process only, so other jobs on a shared
machine do not count; the bar is ``speedup >= 2``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.data import sample_motion_path
from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.envs.pd import G1PDEnv
from motion_vqvae.tracking.batch import TrackingBatch
from motion_vqvae.tracking.config import TrackerConfig
from motion_vqvae.tracking.reference import ReferenceMotion


def pd_steps_per_cpu_s(steps: int = 600, seed: int = 0) -> float:
    """``G1PD-v0`` env steps per CPU second, holding the stand pose (resetting when it falls)."""
    env = G1PDEnv()
    env.reset(seed=seed)
    target = env.stand_pose.astype(np.float32)
    start = time.process_time()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(target)
        if terminated or truncated:
            env.reset()
    return steps / (time.process_time() - start)


def tracking_steps_per_cpu_s(
    motion_file: str | Path | None = None, num_envs: int = 32, control_steps: int = 40, seed: int = 0
) -> float:
    """Tracker env steps per CPU second (``num_envs * control_steps`` steps, zero actions)."""
    body = G1Body()
    config = TrackerConfig(num_envs=num_envs)
    reference = ReferenceMotion.from_file(motion_file or sample_motion_path(), None, body, config.control_fps)
    batch = TrackingBatch(reference, config, body, seed=seed)
    batch.reset()
    actions = np.zeros((num_envs, batch.num_dof))
    start = time.process_time()
    for _ in range(control_steps):
        batch.step(actions)
    return num_envs * control_steps / (time.process_time() - start)


def bench_tracking(motion_file: str | Path | None = None) -> dict[str, Any]:
    """The ``tracking`` section: both rates and their ratio."""
    pd = pd_steps_per_cpu_s()
    track = tracking_steps_per_cpu_s(motion_file)
    return {
        "g1pd_env_steps_per_cpu_s": round(pd, 1),
        "g1track_env_steps_per_cpu_s": round(track, 1),
        "speedup": round(track / pd, 2),
        "physics_hz": 200.0,
        "g1pd_control_fps": 30.0,
        "g1track_control_fps": TrackerConfig().control_fps,
    }
