"""Probes that chose the physics-aware loss weights: short equal-budget trainings scored on probe clips.

Each arm trains the default tokenizer on g1_moves for the same time budget, on one thread, with some
physics loss weights (``loss_foot_skate``, ``loss_foot_ground``, ``loss_com``) set, and is scored on
:data:`PROBE_CLIPS`: clips that choose nothing else (they are each run's validation clips, so they also
pick its ``best.pt``, but neither the benchmark's test clips ``HELD_OUT`` nor any other choice sees them).
The benchmark's ``HELD_OUT`` clips are left out of the probes' training data altogether, so the
``tokenizers`` benchmark still scores clips no probe ever saw.

    python -m benchmarks.physics_probes prepare /tmp/probe_data          # the clip folder (links)
    python scripts/train_vqvae.py --motion_file /tmp/probe_data --out runs/probe/NAME --time-budget 5 \\
        --set num_threads=1 --set "val_clips=[...PROBE_CLIPS]" --set loss_foot_skate=...
    python -m benchmarks.physics_probes score /tmp/probe_data runs/probe/*   # one JSON line per arm

The table of what they measured is in docs/physics_losses.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from benchmarks.tokenizer import HELD_OUT
from motion_vqvae.physics import feasibility
from motion_vqvae.tokenizer import Tokenizer
from motion_vqvae.training.clips import load_config_motions
from motion_vqvae.training.evaluation import evaluate_motions

PROBE_CLIPS = ["J_Dance18_TikTok", "M_Move11", "J_ShortDance13_SingleLadies", "B_HandsUp", "M_Move18"]
PHYSICS_COLUMNS = ("skate_mm", "float_mm", "penetration_mm", "com_outside_support", "joint_range_violation")
KINEMATIC_COLUMNS = ("mpjpe_local_mm", "accel_error_mm")


def prepare(g1_moves: Path, out: Path) -> Path:
    """A folder of links to g1_moves' clips (and its meta.json) without the benchmark's test clips."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(g1_moves.iterdir()):
        if path.stem not in HELD_OUT and path.suffix in (".csv", ".json") and not (out / path.name).exists():
            (out / path.name).symlink_to(path.resolve())
    return out


def score(run: Path, clips: Path) -> dict[str, Any]:
    """Physics of the reconstructions and references, and kinematics (all levels, first level), of
    ``run``'s last checkpoint on :data:`PROBE_CLIPS`."""
    tok = Tokenizer.load(run / "checkpoints" / "last.pt")
    motions = [
        tok.prepare(m)
        for m in load_config_motions(tok.config, clips, min_frames=tok.config.window_size)
        if m.name in PROBE_CLIPS
    ]
    if sorted(m.name for m in motions) != sorted(PROBE_CLIPS):
        raise ValueError(
            f"{clips}: found {[m.name for m in motions]}, expected the probe clips {PROBE_CLIPS}"
        )
    summary, results = evaluate_motions(tok.model, tok.layout, motions, mjcf=tok.mjcf)
    first, _ = evaluate_motions(tok.model, tok.layout, motions, mjcf=tok.mjcf, levels=1)
    recon = feasibility([r.reconstruction for r in results])
    reference = feasibility(motions)
    cfg = tok.config
    return {
        "arm": run.name,
        "iterations": tok.iteration,
        "weights": {k: getattr(cfg, k) for k in ("loss_foot_skate", "loss_foot_ground", "loss_com")},
        **{k: summary[k] for k in KINEMATIC_COLUMNS},
        "mpjpe_local_mm_first_level": first["mpjpe_local_mm"],
        **{k: recon[k] for k in PHYSICS_COLUMNS},
        "reference": {k: reference[k] for k in PHYSICS_COLUMNS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    made = sub.add_parser("prepare", help="link g1_moves without the benchmark's test clips")
    made.add_argument("out", type=Path)
    made.add_argument("--g1-moves", type=Path, default=Path("../shared/data/g1_moves"))
    scored = sub.add_parser("score", help="one JSON line per probe run")
    scored.add_argument("clips", type=Path)
    scored.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        print(prepare(args.g1_moves, args.out))
        return 0
    for run in args.runs:
        row = score(run, args.clips)
        print(
            json.dumps(
                {k: round(v, 4) if isinstance(v, float) and math.isfinite(v) else v for k, v in row.items()}
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
