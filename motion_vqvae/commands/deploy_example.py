"""Deployment example: an export drives the MuJoCo G1 (standing in for the robot) with 500 Hz PD commands.

python scripts/deploy_example.py --export exports/g1 --out runs/deploy [--motion_file CLIP] [--seconds 6]

The control loop is ``sim2real.deploy.ControlLoop`` (numpy + onnxruntime: what runs on the robot); replace
``MujocoRobot`` with your hardware interface (read / send / wait) and the token feed with your policy.
Writes ``deploy_tracking.png`` (commanded vs measured joints, held token periods in grey) and
``deploy_summary.json`` (tracking error, holds, per-tick compute time, safety-filter interventions).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from motion_vqvae.cli import cli_main
from motion_vqvae.envs.standin import SAMPLE_MOTION, run_deploy_example


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--export", type=Path, required=True, help="directory written by scripts/export_onnx.py"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory (plot and summary)")
    parser.add_argument("--seconds", type=float, default=6.0, help="control time to run")
    parser.add_argument("--rate", type=float, default=500.0, help="control loop rate, Hz")
    parser.add_argument(
        "--late-every", type=int, default=7, help="every n-th token misses its deadline (0: none)"
    )
    parser.add_argument(
        "--motion_file",
        type=Path,
        default=SAMPLE_MOTION,
        help="clip whose tokens to play (default: bundled sample)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    summary = run_deploy_example(
        args.export,
        args.out,
        seconds=args.seconds,
        rate_hz=args.rate,
        late_every=args.late_every,
        motion_file=args.motion_file,
    )
    print(json.dumps(summary, indent=2))
    return 0
