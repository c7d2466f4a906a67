"""The MuJoCo G1 standing in for the real robot under :class:`sim2real.deploy.ControlLoop`.

:class:`MujocoRobot` implements :class:`sim2real.deploy.Robot` in the real motor order: ``send`` stores a PD
command as a motor driver would, ``wait`` runs the physics for one control period with the drivers' law
``tau = kp (q* - q) - kd dq`` (clipped to the model's torque limits) at every physics step. The robot hangs
from a gantry (a spring-damper on pelvis height and uprightness), as a real G1 does during a first
deployment. :func:`run_deploy_example` encodes a motion clip with the export's ``encoder.onnx``, streams its
tokens through the decoder into the robot, holds on the token deadlines a feed misses, and writes a plot of
commanded against measured joints and a summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.data import Motion, load_motions
from motion_vqvae.envs.pd import G1PDEnv
from motion_vqvae.errors import InvalidValue, user_input
from motion_vqvae.features import FeatureLayout
from sim2real import JointMap, TokenDecoder, remap_columns
from sim2real.deploy import ControlLoop, LoopLog
from sim2real.runtime import make_session

SAMPLE_MOTION = Path(__file__).resolve().parents[1] / "assets" / "sample_motion.npy"

PLOT_JOINTS = (
    "left_hip_pitch_joint",
    "left_knee_joint",
    "waist_yaw_joint",
    "left_shoulder_pitch_joint",
    "left_elbow_joint",
    "right_shoulder_roll_joint",
)


class MujocoRobot:
    """``sim2real.deploy.Robot`` on the MuJoCo G1 (``motion_vqvae/assets/g1_29dof.xml``) on a gantry."""

    def __init__(
        self, joint_map: JointMap, rate_hz: float = 500.0, physics_hz: float = 2000.0, gantry: float = 3000.0
    ) -> None:
        self.joint_map = joint_map
        self.rate_hz = float(rate_hz)
        self.env = G1PDEnv(control_fps=rate_hz, physics_hz=physics_hz, root_support=gantry)
        self.env.reset(seed=0)
        self._target = self.env.joint_positions()  # sim order; holds the start pose until the first send

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        body = self.env.body
        q, dq = body.data.qpos[body.dof_qpos], body.data.qvel[body.dof_qvel]
        return self.joint_map.sim_to_real(q), self.joint_map.sim_to_real(dq, velocity=True)

    def send(self, q_target: np.ndarray, kp: np.ndarray, kd: np.ndarray) -> None:
        idx = self.joint_map.sim_to_real_idx
        self._target = self.joint_map.real_to_sim(np.asarray(q_target, np.float64))
        self.env.kp, self.env.kd = np.asarray(kp)[idx], np.asarray(kd)[idx]  # gains: reordered only

    def wait(self, period: float) -> None:
        if abs(period * self.rate_hz - 1.0) > 1e-9:
            raise ValueError(f"MujocoRobot runs at {self.rate_hz} Hz; the loop asked for a {period} s period")
        self.env.step(self._target)


class ScheduledFeed:
    """Tokens in order; every ``late_every``-th token slot (0: never) the token misses its deadline."""

    def __init__(self, tokens: list[Any], late_every: int = 0) -> None:
        self.tokens, self.late_every = list(tokens), int(late_every)
        self._next, self._slot = 0, 0

    def poll(self) -> Any | None:
        self._slot += 1
        if (self.late_every and self._slot % self.late_every == 0) or self._next >= len(self.tokens):
            return None
        self._next += 1
        return self.tokens[self._next - 1]


def clip_tokens(decoder: TokenDecoder, motion_file: str | Path, clip: int = 0) -> list[Any]:
    """Tokens of one clip of ``motion_file``, encoded by the export's ``encoder.onnx`` (ints or tuples)."""
    layout = FeatureLayout.from_manifest(decoder.manifest, str(Path(decoder.export_dir) / "manifest.json"))
    motions = load_motions(motion_file, target_fps=decoder.fps)
    if not 0 <= clip < len(motions):
        raise InvalidValue(f"{motion_file} has {len(motions)} clips; clip must be in [0, {len(motions) - 1}]")
    motion = motions[clip]
    names = list(layout.joint_names or [])
    if names and motion.joint_names and list(motion.joint_names) != names:
        dof = remap_columns(motion.dof, list(motion.joint_names), names)
        motion = Motion(motion.name, motion.fps, motion.root_pos, motion.root_quat, dof, names)
    features = layout.normalize(layout.from_motion(motion)).astype(np.float32)  # (T, F)
    usable = len(features) // decoder.frames_per_token * decoder.frames_per_token
    encoder = make_session(Path(decoder.export_dir) / "encoder.onnx")
    tokens = encoder.run(None, {"features": features[None, :usable]})[0][0]  # (T',) or (T', S)
    return [int(t) for t in tokens] if tokens.ndim == 1 else [tuple(int(v) for v in t) for t in tokens]


def run_deploy_example(
    export_dir: str | Path,
    out: str | Path,
    *,
    motion_file: str | Path = SAMPLE_MOTION,
    seconds: float = 6.0,
    rate_hz: float = 500.0,
    late_every: int = 7,
) -> dict[str, Any]:
    """A clip's tokens through ``export_dir`` into the MuJoCo G1 at ``rate_hz``; PNG and JSON into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with user_input():  # sim2real refuses a missing or broken export with builtins
        decoder = TokenDecoder(export_dir)
    robot = MujocoRobot(JointMap.from_dict(decoder.manifest["joint_map"]), rate_hz=rate_hz)
    feed = ScheduledFeed(clip_tokens(decoder, motion_file), late_every)
    log = ControlLoop(decoder, robot, rate_hz).run(feed, seconds)
    summary = _summary(log, decoder, rate_hz)
    _plot(log, decoder, out / "deploy_tracking.png")
    (out / "deploy_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _summary(log: LoopLog, decoder: TokenDecoder, rate_hz: float) -> dict[str, Any]:
    error = log.measured - log.commanded
    cmd_vel = np.abs(np.diff(log.commanded, axis=0)) * rate_hz
    return {
        "seconds": float(log.time[-1] + 1.0 / rate_hz),
        "rate_hz": rate_hz,
        "tokens": int(len(log.held) - sum(log.held)),
        "held_token_slots": int(sum(log.held)),
        "tracking_rms_rad": float(np.sqrt(np.mean(error**2))),
        "tracking_max_abs_rad": float(np.abs(error).max()),
        "commanded_velocity_over_limit": float((cmd_vel / decoder.limits.velocity).max()),
        "tick_compute_p50_us": float(np.percentile(log.compute_s, 50) * 1e6),
        "tick_compute_p99_us": float(np.percentile(log.compute_s, 99) * 1e6),
        "interventions": dict(decoder.interventions),
        "stop_reason": log.stop_reason,
        "trips": [f"{t.kind} at {t.time:.3f} s: {t.detail}" for t in log.trips],
        "overruns": log.overruns,
    }


def _plot(log: LoopLog, decoder: TokenDecoder, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [n for n in PLOT_JOINTS if n in decoder.real_joint_names] or decoder.real_joint_names[:6]
    fig = Figure(figsize=(10, 2.0 * len(names)))
    FigureCanvasAgg(fig)
    token_s = decoder.frames_per_token / decoder.fps
    for row, name in enumerate(names):
        j = decoder.real_joint_names.index(name)
        ax = fig.add_subplot(len(names), 1, row + 1)
        for slot, held in enumerate(log.held):
            if held:  # the token period whose frames the hold filled
                ax.axvspan(slot * token_s, (slot + 1) * token_s, color="0.9", lw=0)
        ax.plot(log.time, log.commanded[:, j], label="commanded", lw=1.2)
        ax.plot(log.time, log.measured[:, j], label="measured", lw=1.0, ls="--")
        ax.set_ylabel(f"{name.removesuffix('_joint')}\n[rad]", fontsize=8)
        if row == 0:
            ax.set_title(
                f"PD at {1 / (log.time[1] - log.time[0]):.0f} Hz on the MuJoCo G1 (grey: held, no token)"
            )
            ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("time [s]")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
