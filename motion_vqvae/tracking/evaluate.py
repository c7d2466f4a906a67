"""Score a tracker: run every clip from its first frame with the deterministic policy, in physics.

Per clip: ``survival_share`` (tracked time / clip time: control steps before a termination over the clip's
steps), ``success`` (the whole clip tracked), ``mpjpe_local_mm`` and ``root_error_mm`` (the project's
:func:`~motion_vqvae.metrics.body_metrics` over the tracked frames and the tracked bodies: heading-frame body
positions, pelvis position) and the physics room's feasibility metrics of the *executed* motion beside the
reference's. Set figures are means over clips (each clip weighs the same); ``success_rate`` is the share
of clips tracked to the end. No start noise, no adaptive sampling, no episode time limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from motion_vqvae.data import Motion
from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.metrics import body_metrics
from motion_vqvae.physics import feasibility_per_clip, set_means
from motion_vqvae.tracking.batch import TrackingBatch
from motion_vqvae.tracking.config import TrackerConfig
from motion_vqvae.tracking.reference import ReferenceMotion

Policy = Callable[[np.ndarray], np.ndarray]
"""``(E, obs) float32 -> (E, N)`` actions."""


def policy_of(model: torch.nn.Module) -> Policy:
    """A network's deterministic actions as a numpy :data:`Policy`."""

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(obs)).double().numpy()

    return policy


def run_clips(
    policy: Policy, reference: ReferenceMotion, config: TrackerConfig
) -> list[dict[str, np.ndarray]]:
    """One environment per clip, from its first frame until it fails or the clip ends.

    Returns per clip the executed and the reference trajectories over the tracked frames (root pose,
    joint angles, tracked body positions) and ``steps``/``clip_steps``.
    """
    clips = len(reference.names)
    config = replace(
        config,
        num_envs=clips,
        init_pos_noise=0.0,
        init_dof_noise=0.0,
        episode_seconds=1e9,
        adaptive_uniform=1.0,
    )
    batch = TrackingBatch(reference, config, G1Body(timestep=1.0 / config.physics_hz))
    obs = batch.reset(frames=reference.clip_start.copy())
    keys = ("root_pos", "root_quat", "dof", "body_pos")
    sim = {k: [[batch.state[k][c].copy()] for c in range(clips)] for k in keys}
    alive = np.ones(clips, dtype=bool)
    steps = np.zeros(clips, dtype=np.int64)
    clip_steps = reference.clip_stop - reference.clip_start - 1
    while alive.any():
        obs, _, terminated, truncated, _ = batch.step(policy(obs))
        for c in np.flatnonzero(alive & ~terminated):
            steps[c] += 1
            for k in keys:  # the state the step ended in (read before the auto-reset replaced it)
                sim[k][c].append(batch.last_state[k][c].copy())
        alive &= ~(terminated | truncated)
    out = []
    for c in range(clips):
        frames = np.arange(reference.clip_start[c], reference.clip_start[c] + steps[c] + 1)
        out.append(
            {
                "name": reference.names[c],
                "steps": int(steps[c]),
                "clip_steps": int(clip_steps[c]),
                **{f"sim_{k}": np.array(sim[k][c]) for k in keys},
                "ref_root_pos": reference.root_pos[frames],
                "ref_root_quat": reference.root_quat[frames],
                "ref_dof": reference.dof[frames],
                "ref_body_pos": reference.body_pos[frames],
            }
        )
    return out


def score(runs: list[dict[str, Any]], fps: float, joint_names: list[str]) -> dict[str, Any]:
    """``results.json``'s figures from :func:`run_clips`' trajectories."""
    per_clip = []
    for run in runs:
        kin = body_metrics(
            run["sim_body_pos"], run["ref_body_pos"], run["sim_root_pos"], run["ref_root_pos"],
            run["sim_root_quat"], run["ref_root_quat"],
        )  # fmt: skip
        per_clip.append(
            {
                "clip": run["name"],
                "survival_share": run["steps"] / max(run["clip_steps"], 1),
                "success": run["steps"] >= run["clip_steps"],
                "mpjpe_local_mm": kin["mpjpe_local_mm"],
                "root_error_mm": kin["root_pos_error_mm"],
                "tracked_s": run["steps"] / fps,
            }
        )
    executed = [
        Motion(r["name"], fps, r["sim_root_pos"], r["sim_root_quat"], r["sim_dof"], joint_names) for r in runs
    ]
    reference = [
        Motion(r["name"], fps, r["ref_root_pos"], r["ref_root_quat"], r["ref_dof"], joint_names) for r in runs
    ]
    executed_phys = feasibility_per_clip(executed)
    reference_phys = feasibility_per_clip(reference)
    for row, e, r in zip(per_clip, executed_phys, reference_phys, strict=True):
        row["physics"] = {"executed": e, "reference": r}
    mean = {
        k: float(np.mean([row[k] for row in per_clip]))
        for k in ("survival_share", "mpjpe_local_mm", "root_error_mm")
    }
    return {
        "success_rate": float(np.mean([row["success"] for row in per_clip])),
        **mean,
        "physics": {"executed": set_means(executed_phys), "reference": set_means(reference_phys)},
        "clips": [r["name"] for r in runs],
        "per_clip": per_clip,
    }
