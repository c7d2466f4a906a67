"""Decode token ids from an export into joint targets (real robot order) and print or save them.

python -m sim2real.play exports/g1 --tokens 3,17,17,40 [--csv out.csv] [--step [--current q0,q1,...]]

``--step`` streams the tokens as a robot does, starting from a measured pose (``--current``, real order,
rad); without one it starts from the first frame of the offline decode, as if the robot stood there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sim2real.runtime import TokenDecoder


def _floats(text: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in text.split(",") if v.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--current must be comma-separated numbers, got {text!r}") from exc


def _tokens(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--tokens must be comma-separated integers, got {text!r}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path, help="directory written by scripts/export_onnx.py")
    parser.add_argument("--tokens", type=_tokens, required=True, help="comma-separated token ids")
    parser.add_argument("--csv", type=Path, default=None, help="write frame,time,<joints> rows here")
    parser.add_argument("--step", action="store_true", help="decode token by token (decoder_step.onnx)")
    parser.add_argument(
        "--current",
        type=_floats,
        default=None,
        help="--step: the robot's joint positions now (real order, rad); default: the first decoded frame",
    )
    args = parser.parse_args(argv)
    try:
        decoder = TokenDecoder(args.export_dir)
        if args.step:
            current = decoder.decode(args.tokens)[0] if args.current is None else args.current
            if current.shape != (len(decoder.real_joint_names),):
                raise ValueError(
                    f"--current needs {len(decoder.real_joint_names)} joint positions (real order), "
                    f"got {current.shape[0]}"
                )
            decoder.reset(current=current)
            targets = np.concatenate([decoder.step(t) for t in args.tokens])
        else:
            targets = decoder.decode(args.tokens)
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
