"""Turn a motion file, its reconstruction by a tokenizer, or a recorded episode into a GIF (no GL needed).

python scripts/visualize.py --motion ../shared/data/kimodo_g1/walk.csv --quat-order wxyz --out walk.gif
python scripts/visualize.py --motion clip.csv --checkpoint runs/g1/checkpoints/best.pt --out recon.gif
python scripts/visualize.py --episode runs/policy/episode.npz --out episode.gif
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from motion_vqvae.data import load_motions
from motion_vqvae.envs.render import bodies_gif
from motion_vqvae.kinematics import ForwardKinematics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--motion", type=Path, help="motion file (NPY/PKL/CSV) or folder")
    source.add_argument(
        "--episode", type=Path, help="episode.npz with qpos rows (train_policy.py writes one)"
    )
    parser.add_argument("--checkpoint", type=Path, help="tokenizer: show its reconstruction beside --motion")
    parser.add_argument("--clip", type=int, default=0, help="index of the clip in --motion")
    parser.add_argument("--quat-order", default=None, help="xyzw or wxyz (readers' default when omitted)")
    parser.add_argument("--fps", type=float, default=30.0, help="resample the motion to this rate")
    parser.add_argument("--max-frames", type=int, default=150)
    parser.add_argument("--stride", type=int, default=1, help="draw every n-th frame")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    fk = ForwardKinematics()
    if args.episode is not None:
        episode = np.load(args.episode)
        panels, titles, fps = [fk.positions_from_qpos(episode["qpos"])], ["episode"], float(episode["fps"])
    else:
        if args.checkpoint is not None and args.fps != 30.0:
            parser.error("--fps is set by the tokenizer when --checkpoint is given")
        kwargs = {"quat_order": args.quat_order} if args.quat_order else {}
        clips = load_motions(args.motion, target_fps=args.fps, **kwargs)
        if not 0 <= args.clip < len(clips):
            parser.error(f"--clip {args.clip}: {args.motion} has {len(clips)} clips")
        clip = clips[args.clip]
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


if __name__ == "__main__":
    sys.exit(main())
