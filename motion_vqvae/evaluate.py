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

from motion_vqvae.data import Motion, save_csv
from motion_vqvae.data.loading import select_clip
from motion_vqvae.data.meta import write_meta
from motion_vqvae.data.writers import file_stems
from motion_vqvae.errors import InvalidValue, MissingPath
from motion_vqvae.outputs import check_apart, claim, environment_errors, motion_inputs, run_of
from motion_vqvae.physics_report import physics_report, plot_physics
from motion_vqvae.tokenizer import Tokenizer
from motion_vqvae.training.clips import load_config_motions, source_config
from motion_vqvae.training.evaluation import evaluate_motions
from motion_vqvae.training.plots import (
    plot_codebook_usage,
    plot_error_over_time,
    plot_error_per_clip,
    plot_worst_joints,
)
from motion_vqvae.training.split import SPLIT_FILE, Split

log = logging.getLogger(__name__)


SPLITS = ("auto", "val", "train", "test", "all")


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
    clip: str | None = None,
    physics: bool = True,
) -> dict[str, Any]:
    """Encode and decode clips of ``motion_file`` whole; write metrics, plots and reconstructions.

    ``clip`` (a name, or an unambiguous index) scores that clip alone; ``auto`` then says whether it is
    one of the checkpoint's held-out clips.

    ``split``: ``train``, ``val`` or ``test`` (exactly the clips the run's ``split.json`` lists, each of
    which ``motion_file`` must hold; a run without ``split.json`` scores ``val`` as its checkpoint's held-out
    clips and ``train`` as the others, and has no ``test``), ``all``, or ``auto`` (``val`` when the folder
    holds the held-out clips, else ``all``); ``summary["split"]`` says which was scored. ``levels=K``
    decodes with the first K levels of every part only.

    ``physics`` (default on) adds ``summary["physics"] = {"reconstruction": means, "reference": means}``
    (:mod:`motion_vqvae.physics`, the same clips), ``summary["physics_per_clip"]`` and ``physics.png``.

    ``out`` may lie inside the checkpoint's run (``RUN/eval``) but not be it, hold it, or touch the clips;
    one evaluation writes into it at a time. Reconstructions are named after their clips by
    :func:`~motion_vqvae.data.writers.file_stems` (distinct, capped); ``per_clip[i]["reconstruction"]``
    says which file is whose.
    """
    check_apart(
        out,
        {"the checkpoint's run": run_of(checkpoint), **motion_inputs(motion_file)},
        allow_inside=frozenset({"the checkpoint's run"}),
    )
    with environment_errors(out), claim(out):
        return _evaluate(
            checkpoint, motion_file, out, fps, quat_order, save_reconstructions, levels, split, clip, physics
        )


def _evaluate(
    checkpoint: str | Path,
    motion_file: str | Path,
    out: Path,
    fps: float | None,
    quat_order: str | None,
    save_reconstructions: bool,
    levels: int | None,
    split: str,
    clip: str | None,
    physics: bool,
) -> dict[str, Any]:
    tok = Tokenizer.load(checkpoint, device="auto")
    cfg = source_config(tok.config, fps, quat_order)
    motions = load_config_motions(cfg, motion_file, min_frames=tok.model.frames_per_token)
    if not motions:
        raise InvalidValue(f"{motion_file}: no clips to evaluate")
    if clip is not None:
        motions = [select_clip(motions, clip, motion_file)]
    listed = run_split(checkpoint, split)
    if listed is not None:
        motions, scored = select_listed(motions, listed, split, checkpoint, whole=clip is None), split
    else:
        motions, scored = select_split(motions, tok.val_clips, split, str(checkpoint))
    prepared = [tok.prepare(m) for m in motions]
    summary, results = evaluate_motions(
        tok.model,
        tok.layout,
        prepared,
        mjcf=tok.mjcf,
        device=tok.device,
        progress=True,
        levels=levels,
    )
    summary["checkpoint"] = str(checkpoint)
    summary["split"] = scored
    summary["split_requested"] = split
    log.info("scored %d clip(s) of split %r (requested %r)", len(prepared), scored, split)
    stems = file_stems([r.reference.name for r in results])
    if save_reconstructions:
        for row, stem in zip(summary["per_clip"], stems, strict=True):
            row["reconstruction"] = f"reconstructions/{stem}.csv"
    out.mkdir(parents=True, exist_ok=True)
    if physics:
        groups = {
            "reconstruction": [r.reconstruction for r in results],
            "reference": [r.reference for r in results],
        }
        summary["physics"], summary["physics_per_clip"] = physics_report(groups, mjcf=tok.mjcf)
        plot_physics(summary["physics_per_clip"], list(groups), out / "physics.png")
    _write_json(summary, out / "metrics.json")
    plot_worst_joints(results, out / "worst_joints.png")
    plot_error_over_time(results, out / "error_over_time.png")
    plot_error_per_clip(results, out / "error_per_clip.png")
    plot_codebook_usage(results, tok.spec, out / "codebook_usage.png")
    if save_reconstructions:
        recon_dir = out / "reconstructions"
        first = results[0].reconstruction
        write_meta(recon_dir, first.fps, first.joint_names, quat_order="xyzw", source=str(checkpoint))
        for r, stem in zip(results, stems, strict=True):
            save_csv(r.reconstruction, recon_dir / f"{stem}.csv", quat_order="xyzw")
    log.info("wrote %s", out / "metrics.json")
    return summary


def run_split(checkpoint: str | Path, split: str) -> list[str] | None:
    """The clip names of ``split`` (train, val, test) in the checkpoint's run's ``split.json``; None for
    ``auto`` and ``all``, and for train/val of a run that predates split.json. ``test`` without one is
    refused: only a run's own split says which clips no selection step saw."""
    if split not in ("train", "val", "test"):
        return None
    path = run_of(checkpoint) / SPLIT_FILE
    if not path.is_file():
        if split == "test":
            raise MissingPath(
                f"--split test: no {SPLIT_FILE} in {run_of(checkpoint)} (the run folder of {checkpoint}): "
                "the run predates the test split or the checkpoint was moved out of its run; evaluate a "
                "checkpoint inside its run folder, retrain (train_vqvae.py writes split.json), or use "
                "--split all"
            )
        log.info(
            "%s has no %s: --split %s uses the checkpoint's validation clips", checkpoint, SPLIT_FILE, split
        )
        return None
    return Split.read(path).names(split)


def select_listed(
    motions: list[Motion], names: list[str], split: str, checkpoint: str | Path, whole: bool = True
) -> list[Motion]:
    """The clips of ``motions`` that ``names`` (a split of split.json) lists; with ``whole`` every listed
    clip must be there (the figure is of the whole split, never of a part of it)."""
    loaded = {m.name for m in motions}
    missing = [n for n in names if n not in loaded]
    if not names:
        raise InvalidValue(
            f"the {split} split of {run_of(checkpoint) / SPLIT_FILE} is empty: nothing to score"
        )
    if whole and missing:
        raise InvalidValue(
            f"--split {split}: {len(missing)} of the {len(names)} {split} clips of "
            f"{run_of(checkpoint) / SPLIT_FILE} are not in --motion_file ({', '.join(missing[:8])}); point "
            "--motion_file at the data the run was trained on"
        )
    chosen = [m for m in motions if m.name in set(names)]
    if not chosen:
        raise InvalidValue(f"--split {split}: the selected clip is not one of the run's {split} clips")
    return chosen


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


def _write_json(data: dict[str, Any], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)
