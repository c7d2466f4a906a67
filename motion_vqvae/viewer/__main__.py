"""python -m motion_vqvae.viewer: a motion, a reference beside its reconstruction, or a token stream in 3D.

    python -m motion_vqvae.viewer --motion ../shared/data/g1_moves/B_CrazyChopsKarate.csv
    python -m motion_vqvae.viewer --motion clip.csv --checkpoint runs/g1/checkpoints/best.pt
    python -m motion_vqvae.viewer --tokens 3,17,17,40 --checkpoint runs/g1/checkpoints/best.pt

Open the printed address in a browser (over SSH: ssh -L 8080:localhost:8080 HOST).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from motion_vqvae.cli import UserError, add_source_arguments, cli_main, setup_logging
from sim2real.token_spec import TokenSpec

PREVIEW_REPEATS = 4  # a clicked token is decoded this many times over, long enough to watch

log = logging.getLogger("viewer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="viewer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--motion", help="motion file, folder or glob (NPY/PKL/CSV), taken as a path")
    parser.add_argument("--clip", default="0", help="clip index or name within --motion (default 0)")
    add_source_arguments(parser)
    parser.add_argument("--checkpoint", type=Path, help="tokenizer: reconstruction, tokens, token preview")
    parser.add_argument("--tokens", help="ids '3,17,40' or a .txt/.npy file of them (needs --checkpoint)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--seconds", type=float, help="serve this long, then exit (default: until Ctrl-C)")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    if args.motion is None and args.tokens is None:
        parser.error("give --motion FILE, or --tokens with --checkpoint")
    if args.tokens is not None and args.checkpoint is None:
        parser.error("--tokens needs --checkpoint (the tokenizer that decodes them)")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise UserError(f"--checkpoint {args.checkpoint} does not exist; train one (train_vqvae.py)")
    clip = _load_clip(args) if args.motion is not None else None
    tokens = _parse_tokens(args.tokens) if args.tokens is not None else None
    from motion_vqvae.viewer.app import COLORS, Track, Viewer

    viewer_args: dict = {}
    if args.checkpoint is None:
        assert clip is not None
        tracks, fps = [Track(clip.name, clip, COLORS["reference"])], clip.fps
    else:
        from motion_vqvae.tokenizer import Tokenizer

        tok = Tokenizer.load(args.checkpoint)
        if clip is not None:
            clip = tok.prepare(clip)
            tokens = tok.encode(clip)
            recon = tok.reconstruct(clip)
            tracks = [
                Track("reference", clip, COLORS["reference"]),
                Track("reconstruction", recon, COLORS["reconstruction"], 1.2),
            ]
        else:
            tokens = _shape_tokens(tokens, tok.spec)
            tracks = [Track("tokens", tok.decode(tokens), COLORS["reconstruction"])]
        fps = tracks[0].motion.fps
        fpt = tok.spec.frames_per_token
        viewer_args = {
            "tokens": tokens,
            "frames_per_token": fpt,
            "decode_token": lambda t: tok.decode(np.stack([t] * PREVIEW_REPEATS)),
        }
    import viser

    logging.getLogger("websockets").setLevel(logging.WARNING)
    server = viser.ViserServer(host=args.host, port=args.port, verbose=False)
    viewer = Viewer(server, tracks, fps, **viewer_args)
    host = "localhost" if args.host in ("0.0.0.0", "127.0.0.1") else args.host
    print(f"viewer: http://{host}:{server.get_port()}  (Ctrl-C to quit)", flush=True)
    try:
        viewer.run(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _load_clip(args: argparse.Namespace):
    from motion_vqvae.data import load_motions
    from motion_vqvae.data.loading import select_clip

    clips = load_motions(args.motion, fps=args.fps, quat_order=args.quat_order)
    return select_clip(clips, args.clip, args.motion)


def _parse_tokens(text: str) -> np.ndarray:
    """Ids ``3,17,40`` (one stream), ``3,1,7;17,0,2`` (one group of stream entries per token), or a file."""
    path = Path(text)
    if path.suffix in (".txt", ".npy", ".csv"):
        if not path.is_file():
            raise UserError(f"--tokens {path} does not exist")
        values = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=",", ndmin=1)
    else:
        try:
            groups = [g for g in text.replace(" ", "").split(";") if g]
            rows = [[int(v) for v in g.split(",") if v] for g in groups]
            values = np.array(rows[0] if ";" not in text else rows)
        except ValueError:
            raise UserError(
                f"--tokens {text!r}: expected comma-separated integers such as 3,17,40 (one stream) or "
                "';'-separated groups such as 3,1,7;17,0,2 (one entry per stream)"
            ) from None
    values = np.asarray(values)
    if not values.size:
        raise UserError("--tokens is empty")
    return values.astype(np.int64)


def _shape_tokens(tokens: np.ndarray, spec: TokenSpec) -> np.ndarray:
    """``tokens`` checked against the tokenizer's structure (a flat list is cut into tokens of S entries)."""
    if not spec.is_single and tokens.ndim == 1:
        if tokens.size % spec.num_streams:
            raise UserError(
                f"--tokens: {tokens.size} ids do not make whole tokens of {spec.num_streams} streams "
                f"{list(spec.stream_names)}; separate tokens with ';'"
            )
        tokens = tokens.reshape(-1, spec.num_streams)
    try:
        return spec.check_tokens(tokens)
    except ValueError as err:
        raise UserError(f"--tokens: {err}") from None


if __name__ == "__main__":
    import sys

    sys.exit(main())
