"""Many G1 tracking environments in one process: one ``MjModel``, one ``MjData`` each, numpy in between.

Physics runs at ``physics_hz`` (200 Hz) and the policy at ``control_fps`` (50 Hz), four substeps per action.
The joint servos are MuJoCo position actuators with armature-based gains (:mod:`.gains`), so the substeps
of one environment are a single ``mj_step(nstep=4)`` call in C and only the per-control-step bookkeeping is
Python; observations, rewards, terminations and resets are numpy over the whole batch. That is what makes
an env step cheaper than ``G1PD-v0``'s (a Python PD law at every physics step), see
``benchmarks/tracking.py``.

The MDP is BeyondMimic's: reference-state initialisation at a start frame drawn by adaptive sampling (bins
where episodes failed are drawn more often), exp-kernel tracking rewards plus action-rate and joint-limit
penalties (scaled by the control period, as Isaac Lab's reward manager does), termination on anchor height,
anchor orientation (projected gravity) and end-effector height errors, and a time-out at the clip's end or
after ``episode_seconds``.
"""

from __future__ import annotations

import json
from typing import Any

import mujoco
import numpy as np

from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.rotations import quat_conjugate, quat_rotate
from motion_vqvae.tracking import rewards
from motion_vqvae.tracking.config import TrackerConfig
from motion_vqvae.tracking.gains import (
    ACTION_SCALE_SHARE,
    armature_gains,
    joint_armature,
    make_position_servos,
)
from motion_vqvae.tracking.reference import END_EFFECTORS, TRACKED_BODIES, ReferenceMotion
from sim2real.tracker_obs import tracker_observation, tracker_observation_size


class TrackingBatch:
    """``num_envs`` G1s tracking ``reference``; ``step`` auto-resets finished environments."""

    def __init__(
        self, reference: ReferenceMotion, config: TrackerConfig, body: G1Body, seed: int = 0
    ) -> None:
        if abs(reference.fps - config.control_fps) > 1e-9:
            raise ValueError(
                f"TrackingBatch: the reference is at {reference.fps} fps but control_fps is "
                f"{config.control_fps}; build it with ReferenceMotion.from_*(..., control_fps)"
            )
        self.ref, self.config, self.body = reference, config, body
        self.model = body.model
        self.model.opt.timestep = 1.0 / config.physics_hz
        armature = joint_armature(body.joint_names)
        self.model.dof_armature[body.dof_qvel] = armature
        self.kp, self.kd = armature_gains(armature)
        make_position_servos(self.model, body.actuator, body.dof_qvel, self.kp, self.kd)
        self.action_scale = ACTION_SCALE_SHARE * body.torque_limit / self.kp
        self.default_dof = body.stand_pose()
        self.body_ids = np.array([self.model.body(n).id for n in TRACKED_BODIES])
        self.root_of_body = self.model.body_rootid[self.body_ids]
        self.ee = np.array([TRACKED_BODIES.index(n) for n in END_EFFECTORS])
        self.anchor = reference.anchor
        self.num_envs, self.num_dof = config.num_envs, body.num_dof
        self.obs_size = tracker_observation_size(self.num_dof)
        self.dt = 1.0 / config.control_fps
        self.datas = [mujoco.MjData(self.model) for _ in range(self.num_envs)]
        self.rng = np.random.default_rng(seed)
        self.frame = np.zeros(self.num_envs, dtype=np.int64)
        self.elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self.last_action = np.zeros((self.num_envs, self.num_dof))
        bins = np.ceil(
            (reference.clip_stop - reference.clip_start) / (config.adaptive_bin_seconds * reference.fps)
        )
        self.bin_clip = np.repeat(np.arange(len(bins)), bins.astype(int))
        self.bin_first = np.concatenate(
            [
                reference.clip_start[c] + np.arange(int(n)) * config.adaptive_bin_seconds * reference.fps
                for c, n in enumerate(bins)
            ]
        ).astype(np.int64)
        self.bin_failures = np.zeros(len(self.bin_first))
        self.state: dict[str, np.ndarray] = {}
        self.last_state: dict[str, np.ndarray] = {}

    # -- episodes -------------------------------------------------------------------------------------

    def start_frames(self, count: int) -> np.ndarray:
        """Start frames by adaptive sampling: bins weighted by their failure EMA, plus a uniform share."""
        n = len(self.bin_first)
        failures = self.bin_failures
        share = self.config.adaptive_uniform if failures.sum() > 0 else 1.0
        p = share / n + (1.0 - share) * failures / max(failures.sum(), 1e-12)
        bins = self.rng.choice(n, size=count, p=p / p.sum())
        stop = self.ref.clip_stop[self.bin_clip[bins]] - 2  # at least one step before the clip's end
        width = max(int(round(self.config.adaptive_bin_seconds * self.ref.fps)), 1)
        frames = self.bin_first[bins] + self.rng.integers(0, width, size=count)
        return np.minimum(frames, stop)

    def reset(self, envs: np.ndarray | None = None, frames: np.ndarray | None = None) -> np.ndarray:
        """Put ``envs`` (all by default) into the reference state at ``frames`` (adaptive by default)."""
        envs = np.arange(self.num_envs) if envs is None else np.asarray(envs)
        frames = self.start_frames(len(envs)) if frames is None else np.asarray(frames)
        ref, body, cfg = self.ref, self.body, self.config
        for e, f in zip(envs, frames, strict=True):
            data = self.datas[e]
            mujoco.mj_resetData(self.model, data)
            pos = ref.root_pos[f] + self.rng.uniform(-cfg.init_pos_noise, cfg.init_pos_noise, 3)
            dof = ref.dof[f] + self.rng.uniform(-cfg.init_dof_noise, cfg.init_dof_noise, self.num_dof)
            q = ref.root_quat[f]
            a, v = body.root_qpos, body.root_qvel
            data.qpos[a : a + 3] = pos
            data.qpos[a + 3 : a + 7] = q[[3, 0, 1, 2]]
            data.qpos[body.dof_qpos] = np.clip(dof, body.lower, body.upper)
            data.qvel[v : v + 3] = ref.root_lin_vel[f]
            data.qvel[v + 3 : v + 6] = quat_rotate(quat_conjugate(q), ref.root_ang_vel[f])  # body frame
            data.qvel[body.dof_qvel] = ref.dof_vel[f]
            mujoco.mj_forward(self.model, data)
        self.frame[envs] = frames
        self.elapsed[envs] = 0
        self.last_action[envs] = 0.0
        self._read_state(envs)
        return self.observation()

    def get_state(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit: simulator states, episode counters,
        adaptive-sampling weights and the random generator."""
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        sims = np.empty((self.num_envs, mujoco.mj_stateSize(self.model, spec)))
        for e, data in enumerate(self.datas):
            mujoco.mj_getState(self.model, data, sims[e], spec)
        return {
            "sim": sims, "frame": self.frame.copy(), "elapsed": self.elapsed.copy(),
            "last_action": self.last_action.copy(), "bin_failures": self.bin_failures.copy(),
            "rng": json.dumps(self.rng.bit_generator.state),
        }  # fmt: skip

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`'s result (arrays may come back as torch tensors or numpy)."""
        sims = np.asarray(state["sim"], dtype=np.float64)
        if sims.shape[0] != self.num_envs:
            raise ValueError(
                f"TrackingBatch.set_state: state holds {sims.shape[0]} envs, this batch {self.num_envs}"
            )
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        for e, data in enumerate(self.datas):
            mujoco.mj_setState(self.model, data, sims[e], spec)
            self._refresh(data)
        self.frame = np.asarray(state["frame"], dtype=np.int64).copy()
        self.elapsed = np.asarray(state["elapsed"], dtype=np.int64).copy()
        self.last_action = np.asarray(state["last_action"], dtype=np.float64).copy()
        self.bin_failures = np.asarray(state["bin_failures"], dtype=np.float64).copy()
        self.rng.bit_generator.state = json.loads(state["rng"])
        self._read_state(np.arange(self.num_envs))

    def set_reference(self, reference: ReferenceMotion) -> None:
        """Swap the reference (a streaming caller such as ``G1TokenTrack-v0`` passes a short window);
        frame indices and the adaptive-sampling bins of the first reference stay as they are."""
        self.ref = reference

    # -- stepping -------------------------------------------------------------------------------------

    def targets(self, actions: np.ndarray) -> np.ndarray:
        """PD targets ``(E, N)``: the offset (reference frame now, or the default pose) + scaled action."""
        offset = self.ref.dof[self.frame] if self.config.action_offset == "reference" else self.default_dof
        return offset + self.action_scale * actions

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply ``actions`` ``(E, N)``; returns obs, reward, terminated, truncated and per-env info.

        Finished environments are reset before returning: ``obs`` is then their first observation and
        ``info["final_obs"]`` keeps the last one (for the value bootstrap of a time-out).
        """
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, self.num_dof) or not np.isfinite(actions).all():
            raise ValueError(
                f"TrackingBatch.step: actions must be finite, shape {(self.num_envs, self.num_dof)}; got "
                f"shape {actions.shape}"
            )
        targets = self.targets(actions)
        act, steps = self.body.actuator, self.config.substeps
        for e, data in enumerate(self.datas):
            data.ctrl[act] = targets[e]
            mujoco.mj_step(self.model, data, nstep=steps)
            self._refresh(data)
        self.frame += 1
        self.elapsed += 1
        self._read_state(np.arange(self.num_envs))
        terms = self.reward_terms()
        rate = np.sum((actions - self.last_action) ** 2, axis=-1)
        limit = rewards.joint_limit_excess(
            self.state["dof"], self.body.lower, self.body.upper, self.config.soft_limit_share
        )
        reward = sum(rewards.TRACKING_TERMS[k][0] * v for k, v in terms.items())
        reward = (
            reward + self.config.action_rate_weight * rate + self.config.joint_limit_weight * limit
        ) * self.dt
        self.last_action = actions.copy()
        terminated = self.failed()
        clip_end = self.frame >= self.ref.clip_stop[self.ref.clip_of(self.frame - 1)] - 1
        truncated = ~terminated & (clip_end | (self.elapsed * self.dt >= self.config.episode_seconds))
        obs = self.observation()
        info: dict[str, Any] = {"terms": terms, "frame": self.frame.copy()}
        done = np.flatnonzero(terminated | truncated)
        # The state each env ended the step in, before auto-resets overwrite the finished ones.
        self.last_state = {k: v.copy() for k, v in self.state.items()} if done.size else self.state
        if done.size:
            info["final_obs"] = obs.copy()
            self._record_failures(np.flatnonzero(terminated))
            self.reset(done)
            obs = self.observation()
        return obs, reward, terminated, truncated, info

    def _refresh(self, data: mujoco.MjData) -> None:
        """Body poses and velocities of the state ``mj_step`` ended in (it leaves those of the state before
        its last integration); nothing here feeds back into the next step, so a resumed run matches."""
        mujoco.mj_kinematics(self.model, data)
        mujoco.mj_comPos(self.model, data)
        mujoco.mj_comVel(self.model, data)

    def _record_failures(self, failed: np.ndarray) -> None:
        """EMA of failures per start bin (every bin decays, the failing ones count one)."""
        alpha = self.config.adaptive_alpha
        counts = np.bincount(self._bin_of(self.frame[failed]), minlength=len(self.bin_first))
        self.bin_failures = (1.0 - alpha) * self.bin_failures + alpha * counts

    def _bin_of(self, frames: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.bin_first, frames, side="right") - 1

    # -- state, observation, reward -------------------------------------------------------------------

    def _read_state(self, envs: np.ndarray) -> None:
        """Copy the simulated state of ``envs`` into the batch arrays (one pass over their MjData)."""
        if not self.state:
            e, b, n = self.num_envs, len(self.body_ids), self.num_dof
            self.state = {
                "root_pos": np.zeros((e, 3)), "root_quat": np.zeros((e, 4)), "base_ang_vel": np.zeros((e, 3)),
                "dof": np.zeros((e, n)), "dof_vel": np.zeros((e, n)), "body_pos": np.zeros((e, b, 3)),
                "body_quat": np.zeros((e, b, 4)), "body_lin_vel": np.zeros((e, b, 3)),
                "body_ang_vel": np.zeros((e, b, 3)),
            }  # fmt: skip
        s, body, ids = self.state, self.body, self.body_ids
        a, v = body.root_qpos, body.root_qvel
        com = np.empty((len(envs), len(ids), 3))
        cvel = np.empty((len(envs), len(ids), 6))
        for i, e in enumerate(envs):
            d = self.datas[e]
            s["root_pos"][e] = d.qpos[a : a + 3]
            s["root_quat"][e] = d.qpos[[a + 4, a + 5, a + 6, a + 3]]
            s["base_ang_vel"][e] = d.qvel[v + 3 : v + 6]
            s["dof"][e] = d.qpos[body.dof_qpos]
            s["dof_vel"][e] = d.qvel[body.dof_qvel]
            s["body_pos"][e] = d.xpos[ids]
            s["body_quat"][e] = d.xquat[ids]
            cvel[i] = d.cvel[ids]  # [angular, linear at the subtree centre of mass], world axes
            com[i] = d.subtree_com[self.root_of_body]
        s["body_quat"][envs] = s["body_quat"][envs][..., [1, 2, 3, 0]]  # MuJoCo wxyz -> xyzw
        s["body_ang_vel"][envs] = cvel[..., :3]
        s["body_lin_vel"][envs] = cvel[..., 3:] + np.cross(cvel[..., :3], s["body_pos"][envs] - com)

    def reference_bodies(self) -> dict[str, np.ndarray]:
        """The reference at each env's current frame (body arrays ``(E, B, ...)``)."""
        f = self.frame
        ref = self.ref
        return {
            "body_pos": ref.body_pos[f], "body_quat": ref.body_quat[f],
            "body_lin_vel": ref.body_lin_vel[f], "body_ang_vel": ref.body_ang_vel[f],
        }  # fmt: skip

    def reward_terms(self) -> dict[str, np.ndarray]:
        s, r = self.state, self.reference_bodies()
        return rewards.tracking_terms(
            s["body_pos"], s["body_quat"], s["body_lin_vel"], s["body_ang_vel"],
            r["body_pos"], r["body_quat"], r["body_lin_vel"], r["body_ang_vel"], self.anchor,
        )  # fmt: skip

    def failed(self) -> np.ndarray:
        """BeyondMimic's terminations: anchor height, anchor tilt (projected gravity), end-effector height."""
        s, r, cfg, k = self.state, self.reference_bodies(), self.config, self.anchor
        height = np.abs(s["body_pos"][:, k, 2] - r["body_pos"][:, k, 2]) > cfg.anchor_height_limit
        tilt = (
            np.abs(
                rewards.projected_gravity_z(s["body_quat"][:, k])
                - rewards.projected_gravity_z(r["body_quat"][:, k])
            )
            > cfg.anchor_gravity_limit
        )
        rel_pos, _ = rewards.relative_reference(
            r["body_pos"], r["body_quat"], r["body_pos"][:, k], r["body_quat"][:, k],
            s["body_pos"][:, k], s["body_quat"][:, k],
        )  # fmt: skip
        ee = (
            np.abs(s["body_pos"][:, self.ee, 2] - rel_pos[:, self.ee, 2]).max(axis=-1)
            > cfg.end_effector_height_limit
        )
        return height | tilt | ee | ~np.isfinite(s["body_pos"]).all(axis=(1, 2))

    def observation(self) -> np.ndarray:
        """``(E, obs_size)`` float32 from :func:`sim2real.tracker_obs.tracker_observation`."""
        s, f, k = self.state, self.frame, self.anchor
        return tracker_observation(
            self.ref.dof[f], self.ref.dof_vel[f], s["body_quat"][:, k], self.ref.body_quat[f, k],
            s["base_ang_vel"], s["dof"], s["dof_vel"], self.default_dof, self.last_action,
        )  # fmt: skip
