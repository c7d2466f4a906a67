"""Train a VQ-VAE motion tokenizer.

    python scripts/train_vqvae.py --motion_file ../shared/data/g1_moves --out runs/g1 --time-budget 15

Writes OUT/checkpoints/{last,best}.pt, OUT/metrics.jsonl and OUT/config.yaml. Without --motion_file it
trains on the bundled sample motion. Ctrl-C saves last.pt; --resume continues from it exactly.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.config_loader import ConfigLoader, save_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--motion_file", "--motion-file", help="motion file, directory or glob (NPY/PKL/CSV)")
    parser.add_argument("--config", help="agent YAML (default: motion_vqvae/configs/agent.yaml)")
    parser.add_argument("--out", default="runs/latest", help="run directory (default: runs/latest)")
    parser.add_argument("--fps", type=float, help="source fps of CSV files without meta.json")
    parser.add_argument("--quat-order", choices=("xyzw", "wxyz"), help="root quaternion order in the files")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    parser.add_argument("--time-budget", type=float, metavar="MINUTES", help="stop cleanly after this long")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    overrides = list(args.set)
    if args.motion_file:
        overrides.append(f"motion_file={args.motion_file}")
    if args.fps:
        overrides.append(f"fps={args.fps}")
    if args.quat_order:
        overrides.append(f"quat_order={args.quat_order}")
    try:
        config = ConfigLoader(args.config, overrides=overrides).config
    except (KeyError, TypeError, ValueError, FileNotFoundError) as exc:
        parser.error(str(exc.args[0] if exc.args else exc))
    out = Path(args.out)
    last = out / "checkpoints" / "last.pt"
    if args.resume and not last.is_file():
        parser.error(f"--resume: {last} does not exist; train without --resume first")
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")

    agent = MVQVAEAgent(config, run_dir=out)
    agent.setup_from_file()
    if args.resume:
        agent.load(last, resume=True)
        logging.info("resumed from %s at iteration %d", last, agent.iteration)
    try:
        summary = agent.fit(time_budget_s=args.time_budget * 60 if args.time_budget else None)
    except KeyboardInterrupt:
        logging.warning("stopped by Ctrl-C; %s holds the state, continue with --resume", last)
        return 130
    if summary:
        logging.info(
            "validation: mpjpe_local %.1f mm, pa_mpjpe %.1f mm, dof_rmse %.3f rad, accel %.2f mm, usage %.2f",
            summary["mpjpe_local_mm"],
            summary["pa_mpjpe_mm"],
            summary["dof_rmse_rad"],
            summary["accel_error_mm"],
            summary["codebook_usage"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
