"""``evaluate_tracker.py``'s body: load a tracker, optionally pass the clips through a tokenizer, score the
tracker in physics and write ``results.json``, a plot and a GIF of the simulated G1 beside the reference.

The GIF is a matplotlib stick figure (the project's ``bodies_gif``), so it needs no OpenGL.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from motion_vqvae.data import Motion
from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.envs.render import bodies_gif
from motion_vqvae.kinematics import ForwardKinematics
from motion_vqvae.tokenizer import Tokenizer
from motion_vqvae.tracking.config import TrackerConfig
from motion_vqvae.tracking.evaluate import policy_of, run_clips, score
from motion_vqvae.tracking.ppo import ActorCritic
from motion_vqvae.tracking.reference import ReferenceMotion, read_clips
from motion_vqvae.training.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

GIF_SECONDS = 8.0
"""Length of the GIF (first clip, from its start)."""


def load_tracker(path: str | Path) -> tuple[ActorCritic, TrackerConfig]:
    """The tracker's network (deterministic policy, eval mode) and the config its MDP was trained with."""
    state = load_checkpoint(path)
    if "obs_size" not in state or "config" not in state:
        raise ValueError(
            f"{path} is not a tracker checkpoint (no 'obs_size'/'config'); train one with train_tracker.py"
        )
    config = TrackerConfig(**state["config"])
    model = ActorCritic(
        int(state["obs_size"]), len(state["joint_names"]), list(config.hidden), config.init_std
    )
    result = model.load_state_dict(state["model"], strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("critic.")]  # a release drops the critic
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path}: tracker weights do not fit its config (missing {missing[:3]}, unexpected "
            f"{result.unexpected_keys[:3]}); the file is damaged or from another version"
        )
    return model.eval(), config


def decode_through_tokenizer(motions: list[Motion], tokenizer: str | Path) -> list[Motion]:
    """Each clip encoded and decoded by the tokenizer checkpoint, from the clip's own first pose."""
    tok = Tokenizer.load(tokenizer)
    return [tok.reconstruct(m) for m in motions]


def evaluate_tracker(
    tracker: str | Path,
    motion_file: str | Path | list[str | Path],
    out: str | Path,
    fps: float | None = None,
    tokenizer: str | Path | None = None,
) -> dict[str, Any]:
    """Score ``tracker`` on the clips (decoded through ``tokenizer`` first when given); write ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, config = load_tracker(tracker)
    motions = read_clips(motion_file, fps)
    if tokenizer is not None:
        motions = decode_through_tokenizer(motions, tokenizer)
    body = G1Body(timestep=1.0 / config.physics_hz)
    reference = ReferenceMotion.from_motions(motions, body, config.control_fps)
    runs = run_clips(policy_of(model), reference, config)
    results = {
        **score(runs, config.control_fps, body.joint_names),
        "tracker": str(tracker),
        "tokenizer": None if tokenizer is None else str(tokenizer),
        "control_fps": config.control_fps,
        "physics_hz": config.physics_hz,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot_tracking(results, out / "tracking.png")
    tracking_gif(runs[0], body, config.control_fps, out / "tracking.gif")
    return results


def plot_tracking(results: dict[str, Any], path: Path) -> None:
    """Bars per clip: survival share and physics mpjpe_local (mm)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = results["per_clip"]
    names = [r["clip"] for r in rows]
    fig = Figure(figsize=(max(6, 0.8 * len(rows) + 3), 4))
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    left.bar(names, [r["survival_share"] for r in rows])
    left.set_ylim(0, 1.05)
    left.set_title("survival share (tracked / clip time)")
    right.bar(names, [r["mpjpe_local_mm"] for r in rows], color="tab:orange")
    right.set_title("mpjpe_local in physics, mm")
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def tracking_gif(run: dict[str, Any], body: G1Body, fps: float, path: Path) -> None:
    """Stick figures of the simulated G1 (left) beside the reference (right), first :data:`GIF_SECONDS`."""
    frames = min(len(run["sim_root_pos"]), int(GIF_SECONDS * fps))
    fk = ForwardKinematics(body.mjcf_path)
    panels = []
    for prefix in ("sim", "ref"):
        motion = Motion(
            run["name"],
            fps,
            run[f"{prefix}_root_pos"][:frames],
            run[f"{prefix}_root_quat"][:frames],
            run[f"{prefix}_dof"][:frames],
            body.joint_names,
        )
        panels.append(fk.body_positions(motion))
    bodies_gif(path, fk.model, panels, fps, titles=[f"physics: {run['name']}", "reference"])
