"""``motion_vqvae/G1TokenTrack-v0``: token-space RL in physics. Tokens -> decoder -> frozen tracker -> MuJoCo.

The environment takes whole motion frames, like ``G1Kinematic-v0`` (which it extends), so
``TokenActionWrapper`` drives it unchanged: the policy picks tokens, the wrapper decodes them into frames
(interpolated to this env's 50 Hz ``control_fps``), the kinematic parent integrates each frame into a
reference pose, and a frozen tracker (default: the shipped ``motion_vqvae/assets/tracker/tracker.pt``)
executes that reference on the simulated G1 (:class:`~motion_vqvae.tracking.batch.TrackingBatch`, one env).

Reward: the parent's velocity-command kernel measured on the *physics* robot's pelvis (heading frame) plus
``alive_bonus``, every step the robot stays up; the episode terminates when the tracker's terminations fire
(the robot fell or left the reference). Observation: the robot's proprioception and the command, as in
``G1Kinematic-v0``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.envs.g1 import G1Body, heading_frame_state, proprio_observation
from motion_vqvae.envs.kinematic import G1KinematicEnv
from motion_vqvae.errors import MissingPath
from motion_vqvae.tracking.batch import TrackingBatch
from motion_vqvae.tracking.evaluate import policy_of
from motion_vqvae.tracking.reference import TRACKED_BODIES, ReferenceMotion, angular_velocity
from motion_vqvae.tracking.report import load_tracker

SHIPPED_TRACKER = Path(__file__).resolve().parents[1] / "assets" / "tracker" / "tracker.pt"
_WINDOW = 4  # reference frames [previous, current, current, current]: the batch steps from 1 to 2


class G1TokenTrackEnv(G1KinematicEnv):
    """Velocity-command task executed in physics by a frozen tracker; the action is one motion frame."""

    def __init__(self, tracker: str | Path | None = None, alive_bonus: float = 0.5, **kinematic: Any) -> None:
        path = Path(tracker) if tracker is not None else SHIPPED_TRACKER
        if not path.is_file():
            raise MissingPath(f"G1TokenTrack: tracker {path} does not exist; train one with train_tracker.py")
        model, config = load_tracker(path)
        super().__init__(fps=config.control_fps, **kinematic)
        self.alive_bonus = float(alive_bonus)
        self._policy = policy_of(model)
        self._ids = np.array([self.body.model.body(n).id for n in TRACKED_BODIES])
        self._pelvis = TRACKED_BODIES.index("pelvis")
        self._ref: dict[str, np.ndarray] = {}
        config = replace(config, num_envs=1, init_pos_noise=0.0, init_dof_noise=0.0, episode_seconds=1e9)
        stand = self._kinematic_frame(self._stand, np.zeros(self.body.num_dof))
        self.batch = TrackingBatch(
            self._window(stand, stand), config, G1Body(timestep=1.0 / config.physics_hz)
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        _, info = super().reset(seed=seed, options=options)
        self._ref = self._kinematic_frame(self._stand, np.zeros(self.body.num_dof))
        self.batch.set_reference(self._window(self._ref, self._ref))
        self.batch.reset(frames=np.array([1]))
        return self._physics_observation(), info

    def joint_positions(self) -> np.ndarray:
        """The simulated robot's joint angles: where the token decoder starts."""
        return self.batch.state["dof"][0].copy()

    def step(self, action: np.ndarray):
        super().step(action)  # validates, places the reference body at this frame, integrates the root
        s = self.layout.slices
        current = self._kinematic_frame(self._frame[s["dof_pos"]], self._frame[s["dof_vel"]])
        self.batch.set_reference(self._window(self._ref, current))
        self.batch.frame[:] = 1
        self._ref = current
        _, _, terminated, _, _ = self.batch.step(self._policy(self.batch.observation()))
        state = self.batch.last_state
        quat = state["root_quat"][0]
        _, lin_vel = heading_frame_state(quat, state["body_lin_vel"][0, self._pelvis])
        yaw_rate = float(state["body_ang_vel"][0, self._pelvis, 2])
        fell = bool(terminated[0])
        reward = 0.0 if fell else self.tracking_reward(lin_vel[:2], yaw_rate) + self.alive_bonus
        info = {"command": self.command.copy(), "fell": fell}
        return self._physics_observation(), reward, fell, False, info

    def _kinematic_frame(self, dof: np.ndarray, dof_vel: np.ndarray) -> dict[str, np.ndarray]:
        """The reference body's pose now (the parent placed it), as one frame of a ReferenceMotion."""
        data = self.body.data
        a = self.body.root_qpos
        return {
            "root_pos": data.qpos[a : a + 3].copy(),
            "root_quat": data.qpos[[a + 4, a + 5, a + 6, a + 3]].copy(),
            "dof": np.asarray(dof, dtype=np.float64).copy(),
            "dof_vel": np.asarray(dof_vel, dtype=np.float64).copy(),
            "body_pos": data.xpos[self._ids].copy(),
            "body_quat": data.xquat[self._ids][:, [1, 2, 3, 0]].copy(),
        }

    def _window(self, prev: dict[str, np.ndarray], cur: dict[str, np.ndarray]) -> ReferenceMotion:
        """``[prev, cur, cur, cur]`` with finite-difference velocities between prev and cur."""
        frames = [prev, cur, cur, cur]
        arrays = {k: np.stack([f[k] for f in frames]) for k in prev}
        pair = np.stack([prev["body_quat"], cur["body_quat"]])
        lin = (cur["body_pos"] - prev["body_pos"]) * self.fps
        ang = angular_velocity(pair, self.fps)[1]
        root_lin = (cur["root_pos"] - prev["root_pos"]) * self.fps
        root_ang = angular_velocity(np.stack([prev["root_quat"], cur["root_quat"]]), self.fps)[1]
        return ReferenceMotion(
            fps=self.fps, names=["tokens"], clip_start=np.array([0]), clip_stop=np.array([_WINDOW]),
            root_lin_vel=np.tile(root_lin, (_WINDOW, 1)), root_ang_vel=np.tile(root_ang, (_WINDOW, 1)),
            body_lin_vel=np.tile(lin, (_WINDOW, 1, 1)), body_ang_vel=np.tile(ang, (_WINDOW, 1, 1)),
            **arrays,
        )  # fmt: skip

    def _physics_observation(self) -> np.ndarray:
        s = self.batch.state
        quat = s["root_quat"][0]
        tilt, lin_vel = heading_frame_state(quat, s["body_lin_vel"][0, self._pelvis])
        proprio = proprio_observation(
            float(s["root_pos"][0, 2]), tilt, lin_vel, float(s["body_ang_vel"][0, self._pelvis, 2]),
            s["dof"][0], s["dof_vel"][0],
        )  # fmt: skip
        return np.concatenate([proprio, self.command.astype(np.float32)])
