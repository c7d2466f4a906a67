"""Train a motion-token prior (causal transformer) on a tokenizer's token streams.

    python scripts/train_prior.py --tokenizer runs/g1/checkpoints/best.pt \
        --motion_file ../shared/data/g1_moves --out runs/prior --time-budget 5

Writes OUT/checkpoints/{last,best}.pt, OUT/metrics.jsonl, OUT/config.yaml and OUT/tokens.pt (the dataset's
tokens, computed once). Held-out clips are the tokenizer's validation clips. --resume continues exactly;
an OUT that already holds a prior run needs --resume or --overwrite (which removes those files only), and
OUT may not be, hold or lie inside the tokenizer's run or the motion data.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from motion_vqvae.cli import add_source_arguments, cli_main
from motion_vqvae.config_loader import save_config
from motion_vqvae.errors import UserError
from motion_vqvae.outputs import check_apart, environment_errors, motion_inputs, run_of
from motion_vqvae.prior.config import SECTION, load_prior_config
from motion_vqvae.prior.train import PRIOR_RUN_FILES, PriorRun, train
from motion_vqvae.threads import ThreadChoice
from motion_vqvae.training.checkpoint import load_checkpoint
from motion_vqvae.training.rundir import RunDirectory


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokenizer", required=True, type=Path, help="tokenizer checkpoint (train_vqvae.py)")
    parser.add_argument(
        "--motion_file", "--motion-file", required=True, help="motion file, directory or glob"
    )
    add_source_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--config", help="prior YAML (default: configs/prior.yaml)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    parser.add_argument("--time-budget", type=float, metavar="MINUTES", help="stop cleanly after this long")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    parser.add_argument("--overwrite", action="store_true", help="replace the prior run in OUT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_prior_config(args.config, args.set)
    except UserError as exc:  # the config's own errors; a bug keeps its traceback
        parser.error(str(exc.args[0] if exc.args else exc))
    last = args.out / "checkpoints" / "last.pt"
    if args.resume and not last.is_file():
        parser.error(f"--resume: {last} does not exist; train without --resume first")
    if not args.tokenizer.is_file():
        parser.error(f"--tokenizer: {args.tokenizer} does not exist; train one with scripts/train_vqvae.py")
    check_apart(args.out, {"the tokenizer's run": run_of(args.tokenizer), **motion_inputs(args.motion_file)})
    run_dir = RunDirectory(args.out, PRIOR_RUN_FILES)
    run_dir.check(args.resume, args.overwrite)
    with environment_errors(args.out), run_dir.locked():
        if args.overwrite:
            run_dir.clear()
        save_config(cfg, args.out / "config.yaml", section=SECTION)
        ThreadChoice(cfg.num_threads)  # the entry point sets the process's threads, never the library
        run = PriorRun(cfg, args.tokenizer, args.motion_file, args.fps, args.out, quat_order=args.quat_order)
        if args.resume:
            run.load(load_checkpoint(last))
            logging.info("resumed from %s at iteration %d", last, run.iteration)
        try:
            row = train(run, time_budget_s=args.time_budget * 60 if args.time_budget else None)
        except KeyboardInterrupt:
            logging.warning("stopped by Ctrl-C; %s holds the state, continue with --resume", last)
            return 130
    if row:
        logging.info("held-out: %.3f bits/token", row["nll_bits_per_token"])
    return 0
