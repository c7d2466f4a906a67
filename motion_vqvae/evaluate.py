"""Checkpoint evaluation on motion files: metrics.json, plots and optional reconstructions as CSV.

Reconstructions get a ``meta.json`` (fps, joint names) beside them, so every tool reads them back as they
are (``visualize.py --motion OUT/reconstructions/clip.csv``, the viewer) without an ``--fps``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from motion_vqvae.agent import MVQVAEAgent, load_config_motions
from motion_vqvae.data import Motion, save_csv
from motion_vqvae.data.meta import write_meta
from motion_vqvae.errors import InvalidValue
from motion_vqvae.training.evaluation import evaluate_motions
from motion_vqvae.training.plots import (
    plot_codebook_usage,
    plot_error_over_time,
    plot_error_per_clip,
    plot_worst_joints,
)

log = logging.getLogger(__name__)


SPLITS = ("auto", "val", "train", "all")


def evaluate_checkpoint(
    checkpoint: str | Path,
    motion_file: str | Path,
    out: Path,
    *,
    fps: float | None = None,
    quat_order: str | None = None,
    save_reconstructions: bool = False,
    levels: int | None = None,
    split: str = "auto",
) -> dict[str, Any]:
    """Encode and decode clips of ``motion_file`` whole; write metrics, plots and reconstructions.

    ``split``: ``val`` (the checkpoint's held-out clips), ``train`` (the others), ``all``, or ``auto``
    (``val`` when the folder holds the held-out clips, else ``all``); ``summary["split"]`` says which was
    scored. ``levels=K`` decodes with the first K levels of every part only.
    """
    agent = MVQVAEAgent.from_checkpoint(checkpoint)
    cfg = agent.cfg.replace(fps=fps or agent.cfg.fps, quat_order=quat_order or agent.cfg.quat_order)
    motions = load_config_motions(cfg, motion_file, min_frames=agent.model.frames_per_token)
    if not motions:
        raise InvalidValue(f"{motion_file}: no clips to evaluate")
    motions, scored = select_split(motions, agent.val_clip_names, split, str(checkpoint))
    prepared = [agent.prepare(m) for m in motions]
    summary, results = evaluate_motions(
        agent.model,
        agent.layout,
        prepared,
        mjcf=agent.mjcf,
        device=agent.device,
        progress=True,
        levels=levels,
    )
    summary["checkpoint"] = str(checkpoint)
    summary["split"] = scored
    summary["split_requested"] = split
    log.info("scored %d clip(s) of split %r (requested %r)", len(prepared), scored, split)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(summary, out / "metrics.json")
    plot_worst_joints(results, out / "worst_joints.png")
    plot_error_over_time(results, out / "error_over_time.png")
    plot_error_per_clip(results, out / "error_per_clip.png")
    plot_codebook_usage(results, agent.model.quantizer.nb_code, out / "codebook_usage.png")
    if save_reconstructions:
        recon_dir = out / "reconstructions"
        first = results[0].reconstruction
        write_meta(recon_dir, first.fps, first.joint_names, quat_order="xyzw", source=str(checkpoint))
        for r in results:
            save_csv(r.reconstruction, recon_dir / f"{_safe_name(r.reference.name)}.csv", quat_order="xyzw")
    log.info("wrote %s", out / "metrics.json")
    return summary


def select_split(
    motions: list[Motion], val_names: list[str], split: str, source: str
) -> tuple[list[Motion], str]:
    """The clips of ``split`` and the split actually scored (``auto`` resolves to ``val`` or ``all``)."""
    if split not in SPLITS:
        raise InvalidValue(f"split must be one of {SPLITS}, got {split!r}")
    held = set(val_names)
    val = [m for m in motions if m.name in held]
    if split == "auto":
        split = "val" if val else "all"
    if split == "all":
        return motions, split
    if not held:
        raise InvalidValue(f"{source} records no validation clips; use --split all")
    chosen = val if split == "val" else [m for m in motions if m.name not in held]
    if not chosen:
        raise InvalidValue(
            f"no {split} clips among the {len(motions)} loaded (the checkpoint's validation clips: "
            f"{sorted(held)[:8]}); point --motion_file at the training folder or use --split all"
        )
    return chosen, split


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _write_json(data: dict[str, Any], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)
