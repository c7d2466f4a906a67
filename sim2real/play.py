"""Decode token ids from an export into joint targets (real robot order) and print or save them.

python -m sim2real.play EXPORT --tokens "IDS" (--current q1,...,qN | --offline) [--csv F] [--step]

--tokens: one token step after another, steps separated by ';', and within a step one id per stream
separated by ','. The default tokenizer has 12 streams (body parts x levels), so a step is 12 ids:
    --tokens "3,5,0,7,1,1,2,9,4,4,0,6;17,5,0,7,1,1,2,9,4,4,0,6"
A one-stream tokenizer takes plain ids: --tokens 3,17,17,40. A wrong shape is answered with an example of
the right one for the export (its manifest says how many streams).

Targets ramp from ``--current``, the robot's measured joint positions (real order, rad; a pose outside a
joint's range is refused), through the safety filter. ``--offline`` says there is no robot: the targets
start at the first decoded frame (a preview, the robot imagined standing at the motion's start). One of the
two is required, so a robot's ramp from its measured pose is never skipped by leaving a flag out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.runtime import TokenDecoder
from sim2real.token_spec import TokenSpec


def _tokens(text: str, spec: TokenSpec) -> np.ndarray:
    """``--tokens`` text as ``[T]`` (one stream) or ``[T, S]`` ids, checked against the export's structure."""
    try:
        if ";" in text:
            tokens: Any = [[int(v) for v in item.split(",")] for item in text.split(";") if item.strip()]
        else:
            tokens = [int(t) for t in text.split(",") if t.strip()]
        if not spec.is_single and len({len(step) for step in tokens if isinstance(step, list)}) > 1:
            raise ValueError("steps of different lengths")
    except ValueError as exc:
        example = spec.example(cli=True)
        raise ValueError(
            f'--tokens {text!r}: {exc}; expected {_shape_words(spec)}, e.g. --tokens "{example}"'
        ) from None
    try:
        return spec.check_tokens(np.asarray(tokens))
    except ValueError as exc:
        raise ValueError(f"--tokens {text!r}: {exc}") from None


def _shape_words(spec: TokenSpec) -> str:
    if spec.is_single:
        return "comma-separated ids, one per token step"
    return f"';' between token steps and {spec.num_streams} comma-separated ids (one per stream) in each"


def _pose(text: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in text.split(",")])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--current must be comma-separated numbers, got {text!r}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim2real.play",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("export_dir", type=Path, help="directory written by scripts/export_onnx.py")
    parser.add_argument(
        "--tokens",
        required=True,
        help="token steps separated by ';', each step's stream ids by ',' (12 ids a step for the default "
        'tokenizer: "3,5,0,7,1,1,2,9,4,4,0,6;17,5,0,7,1,1,2,9,4,4,0,6"); one stream: 3,17,17,40',
    )
    parser.add_argument("--csv", type=Path, default=None, help="write frame,time,<joints> rows here")
    parser.add_argument("--step", action="store_true", help="decode token by token (decoder_step.onnx)")
    parser.add_argument(
        "--current", type=_pose, default=None, help="the robot's measured joint positions (real order, rad)"
    )
    parser.add_argument(
        "--offline", action="store_true", help="no robot: start from the first decoded frame (a preview)"
    )
    args = parser.parse_args(argv)
    if args.offline == (args.current is not None):
        print(
            "error: pass --current q1,...,qN (the robot's measured joint positions, real order, rad) or "
            "--offline (no robot: a preview from the first decoded frame), exactly one of them",
            file=sys.stderr,
        )
        return 2
    try:
        decoder = TokenDecoder(args.export_dir)
        tokens = _tokens(args.tokens, decoder.token_spec)
        current = args.current
        if args.offline:
            current = decoder.decode(tokens[:1], offline=True)[0]  # the motion's first pose
        if args.step:
            decoder.reset(current=current)
            targets = np.concatenate([decoder.step(t) for t in tokens])
        else:
            targets = decoder.decode(tokens, current=current)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    header = ["frame", "time", *decoder.real_joint_names]
    times = np.arange(len(targets)) / decoder.fps
    rows = np.column_stack([np.arange(len(targets)), times, targets])
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(args.csv, rows, delimiter=",", header=",".join(header), comments="", fmt="%.6f")
        print(f"wrote {len(targets)} frames x {targets.shape[1]} joints to {args.csv}")
    else:
        print(" ".join(header))
        for row in rows:
            print(f"{int(row[0])} {row[1]:.4f} " + " ".join(f"{v:+.4f}" for v in row[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
