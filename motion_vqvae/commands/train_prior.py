"""Train a motion-token prior (causal transformer) on a tokenizer's token streams.

    python scripts/train_prior.py --tokenizer runs/g1/checkpoints/best.pt \
        --motion_file ../shared/data/g1_moves --out runs/prior --time-budget 5

Writes OUT/checkpoints/{last,best}.pt (best by held-out bits per token), OUT/metrics.jsonl, OUT/config.yaml
and OUT/tokens.pt (the clips' tokens, reused while the tokenizer, the clips' content and the augmentations
stay the same). The clips are split as the tokenizer's run split them (its split.json): the prior selects on
the tokenizer's validation clips and never sees its test clips.

It trains through the same Trainer as the tokenizer: --time-budget fits the schedule so it anneals by the
deadline; Ctrl-C, SIGTERM and SIGHUP stop at a step boundary and save last.pt; --resume continues it exactly
with the checkpoint's config (--set may change only schedule, logging and sampling keys) and refuses another
tokenizer or other clips. An OUT that already holds a prior run needs --resume or --overwrite (which removes
the run's files only, not the token cache), and OUT may not be, hold or lie inside the tokenizer's run or
the motion data.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from motion_vqvae.cli import add_run_arguments, add_source_arguments, cli_main, setup_logging
from motion_vqvae.config_loader import parse_overrides, save_config
from motion_vqvae.errors import UserError
from motion_vqvae.outputs import check_apart, environment_errors, motion_inputs, run_of
from motion_vqvae.prior.config import PRIOR_RESUMABLE_KEYS, SECTION, PriorConfig, load_prior_config
from motion_vqvae.prior.task import PRIOR_RUN_FILES, TOKEN_CACHE, PriorInputs, PriorTask
from motion_vqvae.threads import ThreadChoice
from motion_vqvae.training.checkpoint import load_checkpoint
from motion_vqvae.training.rundir import RunDirectory, resume_config
from motion_vqvae.training.signals import TrainingInterrupted
from motion_vqvae.training.trainer import Trainer

log = logging.getLogger("train_prior")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_prior", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    add_run_arguments(parser, "the prior run")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    if args.time_budget is not None and not args.time_budget > 0:
        parser.error(f"--time-budget must be a positive number of minutes, got {args.time_budget}")
    if args.resume and args.config is not None:
        parser.error(
            "--config cannot be combined with --resume: the checkpoint's config is used; "
            "change schedule keys with --set"
        )
    cfg = None
    if not args.resume:
        try:
            cfg = load_prior_config(args.config, args.set)
        except UserError as exc:  # the config's own errors; a bug keeps its traceback
            parser.error(str(exc.args[0] if exc.args else exc))
    if not args.tokenizer.is_file():
        parser.error(f"--tokenizer: {args.tokenizer} does not exist; train one with scripts/train_vqvae.py")
    check_apart(args.out, {"the tokenizer's run": run_of(args.tokenizer), **motion_inputs(args.motion_file)})
    run = RunDirectory(args.out, PRIOR_RUN_FILES)
    run.check(args.resume, args.overwrite)
    with environment_errors(args.out), run.locked():
        state = None
        if args.resume:
            state = load_checkpoint(run.last)
            cfg = resume_config(
                state["config"],
                parse_overrides(args.set, PriorConfig),
                run.last,
                schema=PriorConfig,
                resumable=PRIOR_RESUMABLE_KEYS,
            )
        assert cfg is not None
        return _train(run, args, cfg, state)


def _train(
    run: RunDirectory, args: argparse.Namespace, cfg: PriorConfig, state: dict[str, Any] | None
) -> int:
    """Build the task, refuse a resume of other inputs before anything is written, then fit."""
    threads = ThreadChoice(cfg.num_threads)  # the entry point sets the process's threads, never the library
    inputs = PriorInputs(args.tokenizer, str(args.motion_file), args.fps, args.quat_order)
    task = PriorTask(cfg, inputs)
    trainer = Trainer(task, run.path)
    if state is not None:
        trainer.check_identity(state, run.last)
    elif run.existing_files():
        run.clear()  # --overwrite (check() refused everything else)
    save_config(cfg, run.path / "config.yaml", section=SECTION)
    task.load_corpus(run.path / TOKEN_CACHE)
    if state is not None:
        trainer.load_state_dict(state, resume=True, source=run.last)
        run.truncate_metrics(trainer.iteration)
        log.info("resumed from %s at iteration %d", run.last, trainer.iteration)
    started = time.monotonic()
    try:
        summary = trainer.fit(
            time_budget_s=args.time_budget * 60 if args.time_budget else None, recheck_threads=threads.recheck
        )
    except TrainingInterrupted as stop:
        print(f"{stop}: {run.last} holds it; continue with the same command plus --resume", file=sys.stderr)
        return stop.exit_code
    save_config(trainer.cfg, run.path / "config.yaml", section=SECTION)  # a time budget may have fitted it
    _print_summary(trainer, task, summary, run, time.monotonic() - started)
    return 0


def _print_summary(
    trainer: Trainer, task: PriorTask, summary: dict[str, Any], run: RunDirectory, seconds: float
) -> None:
    """What ran, how good it is, where it is, what next."""
    best = run.path / "checkpoints" / "best.pt"
    lines = [f"done: {trainer.iteration}/{trainer.cfg.total_iter} iterations in {seconds / 60:.1f} min"]
    if summary:
        clips = ", ".join(c.name for c in task.val_clips)
        uniform = task.tok.spec.num_streams * math.log2(task.tok.spec.nb_code)
        lines.append(
            f"held-out clips ({clips}): {summary['nll_bits_per_token']:.3f} bits per token "
            f"(best {trainer.best_metric:.3f}; uniform {uniform:.1f})"
        )
    else:
        lines.append("held-out clips: none (the tokenizer's validation clips are not in --motion_file)")
    lines += [
        f"run: {run.path} (config.yaml, metrics.jsonl, tokens.pt, checkpoints/best.pt, checkpoints/last.pt)",
        f"next: python scripts/evaluate_prior.py --prior {best} --motion_file {task.inputs.motion_file} "
        f"--out {run.path / 'eval'}",
    ]
    print("\n".join(lines))
