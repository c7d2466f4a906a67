"""Clips read as a config says, without torch: a wrong path or an empty folder is reported in a second."""

from __future__ import annotations

from pathlib import Path

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data import Motion, load_motions, sample_motion_path


def load_config_motions(cfg: AgentConfig, source: str | Path, *, min_frames: int) -> list[Motion]:
    """Clips read as the config says: fps, quaternion order, resampling, robot joints, glitch repair."""
    return load_motions(
        source,
        fps=cfg.fps,
        quat_order=cfg.quat_order,
        target_fps=cfg.target_fps,
        robot=cfg.robot,
        min_frames=min_frames,
        keep_transitions=cfg.keep_transitions,
        repair_jumps=cfg.repair_jumps,
    )


def training_motions(cfg: AgentConfig, path: str | Path | None = None) -> list[Motion]:
    """The clips to train on: ``path``, else the config's ``motion_file``, else the bundled sample."""
    source = path if path is not None else (cfg.motion_file or sample_motion_path())
    motions = load_config_motions(cfg, source, min_frames=cfg.window_size)
    if not motions:
        raise ValueError(f"{source}: no clip of at least window_size={cfg.window_size} frames was found")
    return motions
