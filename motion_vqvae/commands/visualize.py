"""Turn a motion file, its reconstruction by a tokenizer, or a recorded episode into a GIF (no GL needed).

python scripts/visualize.py --motion ../shared/data/kimodo_g1/output_walk.csv --out walk.gif
python scripts/visualize.py --motion ../shared/data/kimodo_g1 --clip output_wave --out gifs/
python scripts/visualize.py --motion clip.csv --checkpoint runs/g1/checkpoints/best.pt --out recon.gif
python scripts/visualize.py --episode runs/policy/episode.npz --out episode.gif

A file's own fps and quaternion order (a meta.json beside a CSV, a PKL's fps key, an NPY time column) are
used as they are; --fps and --quat-order are for files that do not state them. --out is a .gif file, or a
folder that receives CLIP.gif.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from motion_vqvae.cli import UserError, add_source_arguments, cli_main, setup_logging

DEFAULT_TARGET_FPS = 30.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visualize", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--motion", type=Path, help="motion file (NPY/PKL/CSV) or folder")
    source.add_argument(
        "--episode", type=Path, help="episode.npz with qpos rows (train_policy.py writes one)"
    )
    parser.add_argument("--checkpoint", type=Path, help="tokenizer: show its reconstruction beside --motion")
    parser.add_argument("--clip", default="0", help="clip name (e.g. output_wave) or index in --motion")
    add_source_arguments(
        parser,
        target_fps=f"resample the motion to this rate (default {DEFAULT_TARGET_FPS:g}; with --checkpoint "
        "the tokenizer's rate)",
    )
    parser.add_argument("--max-frames", type=int, default=150)
    parser.add_argument("--stride", type=int, default=1, help="draw every n-th frame")
    parser.add_argument("--out", type=Path, required=True, help="a .gif file, or a folder for CLIP.gif")
    return parser


def gif_path(out: Path, name: str) -> Path:
    """``out`` when it names a .gif; ``out/NAME.gif`` when it is (or will be) a folder."""
    from motion_vqvae.data.writers import file_stems

    if out.suffix.lower() == ".gif" and not out.is_dir():
        return out
    return out / f"{file_stems([name])[0]}.gif"


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out.suffix.lower() not in ("", ".gif") and not args.out.is_dir():
        parser.error(f"--out {args.out}: expected a .gif file or a folder, got a '{args.out.suffix}' file")
    setup_logging()
    import numpy as np

    from motion_vqvae.data import load_motions
    from motion_vqvae.data.loading import select_clip

    tok = None
    if args.checkpoint is not None:
        if not args.checkpoint.is_file():
            raise UserError(f"--checkpoint {args.checkpoint} does not exist; train one (train_vqvae.py)")
        from motion_vqvae.tokenizer import Tokenizer

        tok = Tokenizer.load(args.checkpoint)
    if args.episode is not None:
        if not args.episode.is_file():
            raise UserError(f"--episode {args.episode} does not exist (train_policy.py writes episode.npz)")
        episode = np.load(args.episode)
        clip = None
    else:
        target = args.target_fps or DEFAULT_TARGET_FPS
        if tok is not None:
            rate = tok.fps
            if args.target_fps is not None and args.target_fps != rate:
                parser.error(f"--target-fps {args.target_fps:g}: the tokenizer runs at {rate:g} fps; omit it")
            target = rate
        clips = load_motions(args.motion, fps=args.fps, quat_order=args.quat_order, target_fps=target)
        clip = select_clip(clips, args.clip, args.motion)
    from motion_vqvae.envs.render import bodies_gif
    from motion_vqvae.kinematics import ForwardKinematics

    fk = ForwardKinematics()
    if clip is None:
        panels, titles, fps = [fk.positions_from_qpos(episode["qpos"])], ["episode"], float(episode["fps"])
    else:
        panels, titles, fps = [fk.body_positions(clip)], [clip.name], clip.fps
        if tok is not None:
            panels.append(fk.body_positions(tok.reconstruct(clip)))
            titles.append("reconstruction")
    panels = [p[: args.max_frames * args.stride : args.stride] for p in panels]
    out = gif_path(args.out, titles[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    bodies_gif(out, fk.model, panels, fps / args.stride, titles)
    logging.getLogger("visualize").info("wrote %s", out)
    return 0
