"""Robot-side tracking policy: ``TrackerPolicy`` runs an exported ``tracker.onnx`` with numpy + onnxruntime.

The on-robot loop becomes tokens -> ``TokenDecoder`` (reference joint targets) -> ``TrackerPolicy`` (PD
targets that keep the robot balanced while it follows them) -> ``SafetyFilter`` -> motors. The observation
is built by :func:`sim2real.tracker_obs.tracker_observation`, the function the training environment uses, so
simulation and robot feed the network the same numbers. The graph describes itself (``metadata_props``
``tracker``: joint names, default pose, action scale and offset, control rate, gains); a graph built for
another observation layout is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sim2real.tracker_obs import OBSERVATION_LAYOUT, tracker_observation


class TrackerPolicy:
    """One tracker graph; ``step`` maps the measured state and the reference frame to PD targets."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        from sim2real.runtime import make_session  # onnxruntime loads on first use only

        path = Path(path)
        if path.is_dir():
            path = path / "tracker.onnx"
        if not path.is_file():
            raise FileNotFoundError(
                f"TrackerPolicy: {path} does not exist; export with export_onnx.py --tracker"
            )
        self.session = make_session(path, threads)
        props = self.session.get_modelmeta().custom_metadata_map
        if "tracker" not in props:
            raise ValueError(f"TrackerPolicy: {path} has no 'tracker' metadata; it is not a tracker export")
        meta = json.loads(props["tracker"])
        if meta.get("observation_layout") != OBSERVATION_LAYOUT:
            raise ValueError(
                f"TrackerPolicy: {path} was built for observation layout {meta.get('observation_layout')!r}; "
                f"this runtime builds {OBSERVATION_LAYOUT!r}. Re-export the tracker with this version"
            )
        self.meta = meta
        self.joint_names: list[str] = meta["joint_names"]
        self.default_dof = np.asarray(meta["default_dof"], dtype=np.float64)
        self.action_scale = np.asarray(meta["action_scale"], dtype=np.float64)
        self.control_fps = float(meta["control_fps"])
        self.kp, self.kd = np.asarray(meta["kp"]), np.asarray(meta["kd"])
        self.last_action = np.zeros(len(self.joint_names))

    def reset(self) -> None:
        """Start of a motion: no previous action."""
        self.last_action = np.zeros(len(self.joint_names))

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Raw network actions ``(B, N)`` of observations ``(B, obs_size)``."""
        obs = np.asarray(obs, dtype=np.float32).reshape(-1, int(self.meta["obs_size"]))
        return self.session.run(None, {"obs": obs})[0]

    def step(
        self,
        ref_dof: np.ndarray,
        ref_dof_vel: np.ndarray,
        ref_anchor_quat: np.ndarray,
        anchor_quat: np.ndarray,
        base_ang_vel: np.ndarray,
        dof: np.ndarray,
        dof_vel: np.ndarray,
    ) -> np.ndarray:
        """PD targets (simulator order, rad) for one control period; quaternions xyzw (see tracker_obs)."""
        obs = tracker_observation(
            ref_dof, ref_dof_vel, anchor_quat, ref_anchor_quat, base_ang_vel, dof, dof_vel,
            self.default_dof, self.last_action,
        )  # fmt: skip
        action = self.act(obs)[0].astype(np.float64)
        if not np.isfinite(action).all():
            raise FloatingPointError(
                "TrackerPolicy: the network returned a non-finite action; hold the robot"
            )
        self.last_action = action
        offset = (
            np.asarray(ref_dof, dtype=np.float64)
            if self.meta["action_offset"] == "reference"
            else self.default_dof
        )
        return offset + self.action_scale * action
