"""Clips read, split and augmented as a config says, without torch: a wrong path or an empty folder is
reported in a second, and the preprocessing workers (``motion_vqvae.training.preprocess``) run the same
code as training from files without paying for a torch import in every process."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data import Motion, load_motions, sample_motion_path
from motion_vqvae.data.mirror import mirror_motion
from motion_vqvae.data.resample import change_speed
from motion_vqvae.errors import InvalidValue

log = logging.getLogger(__name__)


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


def source_config(cfg: AgentConfig, fps: float | None, quat_order: str | None) -> AgentConfig:
    """A checkpoint's config made to read other files: their fps and quaternion order come from the files
    (meta.json, PKL ``fps``, NPY time column) and then the command line, never from the checkpoint.

    A checkpoint's ``fps`` is the source rate of the clips it was trained on (``target_fps`` its training
    rate); applied to other files it halved every 30-fps kimodo clip read with a 60-fps tokenizer. Every
    tool that reads new motion with a checkpoint's config (evaluate, the prior scripts) goes through here.
    """
    return cfg.replace(fps=fps, quat_order=quat_order)


def training_motions(cfg: AgentConfig, path: str | Path | None = None) -> list[Motion]:
    """The clips to train on: ``path``, else the config's ``motion_file``, else the bundled sample."""
    source = path if path is not None else (cfg.motion_file or sample_motion_path())
    motions = load_config_motions(cfg, source, min_frames=cfg.window_size)
    if not motions:
        raise InvalidValue(f"{source}: no clip of at least window_size={cfg.window_size} frames was found")
    return motions


def single_fps(motions: list[Motion]) -> float:
    """The one frame rate of ``motions``; clips at mixed rates are refused, never silently mixed."""
    rates = sorted({float(m.fps) for m in motions})
    if len(rates) != 1:
        names = {r: next(m.name for m in motions if float(m.fps) == r) for r in rates}
        raise InvalidValue(
            f"clips at mixed frame rates {names} (fps: an example clip each); pass "
            "--target-fps 30 (config key target_fps) to resample every clip to one rate"
        )
    return rates[0]


def augmentation_names(cfg: AgentConfig) -> list[str]:
    """The versions of each training clip, in the order :func:`augmented` lists them.

    ``none``, then ``speed<s>`` per ``speed_augment`` factor, then (with ``mirror_augment``) each of those
    mirrored (``mirror``, ``mirror+speed<s>``). The cache orders its clips the same way, so its sampler
    sees the clips in the order the in-memory sampler does.
    """
    timings = ["none", *(f"speed{s:g}" for s in cfg.speed_augment)]
    return timings + ([f"mirror+{t}".removesuffix("+none") for t in timings] if cfg.mirror_augment else [])


def clip_versions(motion: Motion, cfg: AgentConfig) -> list[Motion]:
    """One clip's versions named by :func:`augmentation_names` (the clip itself first)."""
    timings = [motion, *(change_speed(motion, s) for s in cfg.speed_augment)]
    return timings + ([mirror_motion(m) for m in timings] if cfg.mirror_augment else [])


def augmented(motions: list[Motion], cfg: AgentConfig) -> list[Motion]:
    """The training clips plus their speed-changed (``speed_augment``) and mirrored copies.

    Speed copies re-time each clip (a faster or slower performance of the same poses); mirroring then
    applies to every timing, so ``[0.8, 1.25]`` with mirroring trains on six versions of each clip.
    Version-major order: every clip's first version, then every clip's second, ...
    """
    versions = [clip_versions(m, cfg) for m in motions]
    return [per_clip[k] for k in range(len(augmentation_names(cfg))) for per_clip in versions]


def capped_validation(lengths: dict[str, int], cfg: AgentConfig) -> list[str]:
    """The validation clips a run scores, at most ``max_val_frames`` frames of them (null: all).

    Clips are taken in a seeded order (the same for every run with this seed), each one that still fits
    under the cap; if none fits, the shortest one. Validation cost then stays bounded however many clips
    a large dataset holds out. Returns names in the order of ``lengths``; logs when the cap cut clips.
    """
    cap = cfg.max_val_frames
    if cap is None or sum(lengths.values()) <= cap:
        return list(lengths)
    order = sorted(lengths)
    np.random.default_rng(cfg.seed).shuffle(order)
    chosen: set[str] = set()
    total = 0
    for name in order:
        if total + lengths[name] <= cap:
            chosen.add(name)
            total += lengths[name]
    if not chosen:
        shortest = min(lengths, key=lambda n: (lengths[n], n))
        chosen, total = {shortest}, lengths[shortest]
    log.info(
        "max_val_frames=%d: validating on %d of %d held-out clips (%d of %d frames)",
        cap,
        len(chosen),
        len(lengths),
        total,
        sum(lengths.values()),
    )
    return [n for n in lengths if n in chosen]
