"""Turn a motion file, its reconstruction by a tokenizer, or a recorded episode into a GIF (no GL needed).

python scripts/visualize.py --motion ../shared/data/kimodo_g1/output_walk.csv --quat-order wxyz --out walk.gif
python scripts/visualize.py --motion clip.csv --checkpoint runs/g1/checkpoints/best.pt --out recon.gif
python scripts/visualize.py --episode runs/policy/episode.npz --out episode.gif
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from motion_vqvae.cli import UserError, cli_main, setup_logging


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visualize", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--motion", type=Path, help="motion file (NPY/PKL/CSV) or folder")
    source.add_argument(
        "--episode", type=Path, help="episode.npz with qpos rows (train_policy.py writes one)"
    )
    parser.add_argument("--checkpoint", type=Path, help="tokenizer: show its reconstruction beside --motion")
    parser.add_argument("--clip", type=int, default=0, help="index of the clip in --motion")
    parser.add_argument("--quat-order", default=None, help="xyzw or wxyz (readers' default when omitted)")
    parser.add_argument("--fps", type=float, help="source fps of CSV files without meta.json")
    parser.add_argument(
        "--target-fps", type=float, default=30.0, help="resample the motion to this rate (default 30)"
    )
    parser.add_argument("--max-frames", type=int, default=150)
    parser.add_argument("--stride", type=int, default=1, help="draw every n-th frame")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    import numpy as np

    from motion_vqvae.data import load_motions

    if args.episode is not None:
        if not args.episode.is_file():
            raise UserError(f"--episode {args.episode} does not exist (train_policy.py writes episode.npz)")
        episode = np.load(args.episode)
        clip = None
    else:
        if args.checkpoint is not None and args.target_fps != 30.0:
            parser.error("--target-fps is set by the tokenizer when --checkpoint is given")
        kwargs = {"quat_order": args.quat_order} if args.quat_order else {}
        clips = load_motions(args.motion, fps=args.fps, target_fps=args.target_fps, **kwargs)
        if not 0 <= args.clip < len(clips):
            parser.error(f"--clip {args.clip}: {args.motion} has {len(clips)} clips")
        clip = clips[args.clip]
    from motion_vqvae.envs.render import bodies_gif
    from motion_vqvae.kinematics import ForwardKinematics

    fk = ForwardKinematics()
    if clip is None:
        panels, titles, fps = [fk.positions_from_qpos(episode["qpos"])], ["episode"], float(episode["fps"])
    else:
        panels, titles, fps = [fk.body_positions(clip)], [clip.name], clip.fps
        if args.checkpoint is not None:
            from motion_vqvae.agent import MVQVAEAgent

            recon = MVQVAEAgent.from_checkpoint(args.checkpoint, device="cpu").reconstruct(clip)
            panels.append(fk.body_positions(recon))
            titles.append("reconstruction")
    panels = [p[: args.max_frames * args.stride : args.stride] for p in panels]
    bodies_gif(args.out, fk.model, panels, fps / args.stride, titles)
    logging.getLogger("visualize").info("wrote %s", args.out)
    return 0
