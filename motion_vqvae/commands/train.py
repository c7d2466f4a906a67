"""Train a VQ-VAE motion tokenizer.

    python scripts/train_vqvae.py --motion_file motion_vqvae/assets/sample_motion.npy --out runs/sample \
        --time-budget 4
    python scripts/train_vqvae.py --motion_file ../shared/data/g1_moves --out runs/g1 --time-budget 15

Writes OUT/checkpoints/{last,best}.pt, OUT/metrics.jsonl, OUT/config.yaml and OUT/split.json (the clip
names of the train, val and test splits; ``evaluate.py --split test`` scores the test clips). Without
--motion_file it trains on the bundled sample motion. Ctrl-C, SIGTERM and SIGHUP stop at a step boundary and
save last.pt; --resume continues from it exactly, with the checkpoint's config.

On several processes (``torchrun --nproc_per_node=N scripts/train_vqvae.py ...``, see the README) rank 0
alone checks, locks and writes the run directory; the other ranks wait for its verdict, then train.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from motion_vqvae.cli import UserError, add_run_arguments, add_source_arguments, cli_main, setup_logging
from motion_vqvae.config_loader import AgentConfig, ConfigLoader, parse_overrides, save_config
from motion_vqvae.data.warning_digest import WarningDigest
from motion_vqvae.training.advice import memorising, no_validation, training_sample
from motion_vqvae.training.cache import MotionCache, adopted_settings, is_cache, load_index
from motion_vqvae.training.clips import training_motions
from motion_vqvae.training.rundir import RunDirectory, resume_config

log = logging.getLogger("train_vqvae")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_vqvae", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--motion_file",
        "--motion-file",
        help="motion file, directory or glob (NPY/PKL/CSV), taken as a path; or a preprocess.py cache",
    )
    parser.add_argument("--out", default="runs/latest", help="run directory (default: runs/latest)")
    add_config_arguments(parser)
    add_run_arguments(parser, "the run (config, metrics, checkpoints)")
    return parser


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --fps, --quat-order, --target-fps and --set: how a command reads motion files (train and
    preprocess)."""
    parser.add_argument("--config", help="agent YAML (default: configs/agent.yaml)")
    add_source_arguments(
        parser, target_fps="resample every clip to this rate before training (config target_fps; default 30)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )


def path_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config values given as flags (--motion_file, --fps, --quat-order, --target-fps), where given."""
    paths = {
        "motion_file": args.motion_file,
        "fps": args.fps,
        "quat_order": args.quat_order,
        "target_fps": args.target_fps,
    }
    return {k: v for k, v in paths.items() if v is not None}


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    if args.time_budget is not None and not args.time_budget > 0:
        parser.error(f"--time-budget must be a positive number of minutes, got {args.time_budget}")
    paths = path_values(args)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun: one of several ranks
        from motion_vqvae.training import distributed

        with distributed.process_group() as here:
            if not here.is_main:
                logging.getLogger().setLevel(logging.WARNING)  # rank 0 tells the story once
            return _main_rank(args, paths, here.is_main, distributed.agree)
    return _main_rank(args, paths, True, lambda error: error)


def _main_rank(
    args: argparse.Namespace, paths: dict[str, Any], main: bool, agree: Callable[[str | None], str | None]
) -> int:
    """Check and lock the run directory (rank 0), share the verdict (``agree``), then train on every rank."""
    run = RunDirectory(args.out)
    with ExitStack() as held:
        failure: UserError | None = None
        if main:
            try:
                run.check(args.resume, args.overwrite)
                held.enter_context(run.locked())
            except UserError as exc:
                failure = exc
        if agree(None if failure is None else str(failure)) is not None:
            if failure is not None:
                raise failure
            return 2  # another rank: rank 0 reports the error
        state = _resume_state(run, args.config) if args.resume else None
        if state is not None:
            config = resume_config(state["config"], {**parse_overrides(args.set), **paths}, run.last)
        else:
            config = _adopt_cache_settings(args, paths)
        return _train(run, config, state, args.time_budget, main)


def _adopt_cache_settings(args: argparse.Namespace, paths: dict[str, Any]) -> AgentConfig:
    """The run's config; from a cache, with the cache's settings where the command line leaves them unset.

    Set means given as --set, --fps or --quat-order, or in a --config file with another value than the
    shipped configs/agent.yaml. So ``preprocess.py --fps 60`` followed by ``train_vqvae.py --motion_file
    CACHE`` trains at the cache's fps, while ``--fps 30`` against it is a real conflict, refused when the
    cache is opened.
    """
    config = ConfigLoader(args.config, overrides=args.set, values=paths).config
    if not is_cache(config.motion_file):
        return config
    explicit = set(parse_overrides(args.set)) | set(paths)
    if args.config is not None:
        shipped = ConfigLoader().raw
        explicit |= {
            k for k, v in ConfigLoader(args.config).raw.items() if k not in shipped or shipped[k] != v
        }
    adopted = adopted_settings(load_index(config.motion_file)["settings"], config, explicit)
    if not adopted:
        return config
    log.info(
        "adopting the settings %s was preprocessed with, which the command line leaves unset: %s",
        config.motion_file,
        ", ".join(f"{k}={v!r}" for k, v in adopted.items()),
    )
    return ConfigLoader(args.config, overrides=args.set, values={**adopted, **paths}).config


def _resume_state(run: RunDirectory, config_path: str | None) -> dict[str, Any]:
    from motion_vqvae.training.checkpoint import load_checkpoint

    if config_path is not None:
        raise UserError(
            "--config cannot be combined with --resume: the checkpoint's config is used; "
            "change schedule keys with --set"
        )
    return load_checkpoint(run.last)


def _train(
    run: RunDirectory, config: AgentConfig, state: dict[str, Any] | None, budget: float | None, main: bool
) -> int:
    if config.motion_file is None:
        log.info(
            "training on the bundled sample motion; point --motion_file at your data "
            "(a file, folder or glob of NPY/PKL/CSV, e.g. ../shared/data/g1_moves)"
        )
    cache = MotionCache.open(config.motion_file, config) if is_cache(config.motion_file) else None
    with WarningDigest() as digest:
        # before torch is imported: data errors show at once
        motions = training_motions(config) if cache is None else []
    from motion_vqvae.agent import MVQVAEAgent
    from motion_vqvae.threads import ThreadChoice
    from motion_vqvae.training.distributed import barrier, local_batch, world
    from motion_vqvae.training.signals import TrainingInterrupted

    try:
        local_batch(config.batch_size)
    except ValueError as exc:
        if not main:
            return 2  # every rank finds it; rank 0 reports it
        raise UserError(str(exc)) from None
    threads = ThreadChoice(config.num_threads, processes=world().size)
    agent = MVQVAEAgent(config, run_dir=run.path)
    if cache is not None:
        log.info("training from the cache %s (made from %s)", cache.path, cache.index["source"])
        agent.setup_from_cache(cache)
    else:
        agent.setup(motions)
    if state is not None:
        agent.trainer.check_identity(state, run.last)
    if main and state is None and run.existing_files():
        run.clear()  # --overwrite (check() refused everything else)
    if main and not agent.val_motions:
        originals = [c for c in cache.training_clips() if c.augmentation == "none"] if cache else []
        log.warning("%s", no_validation(len(agent.train_motions) or len(originals)))
    if main:
        digest.report(run.path / "data_warnings.log", log)
        save_config(config, run.path / "config.yaml")
        log.info("split: written to %s", agent.split.write(run.path))
    if state is not None:
        agent.load(run.last, resume=True)
        if main:
            run.truncate_metrics(agent.iteration)
        log.info("resumed from %s at iteration %d", run.last, agent.iteration)
    started = time.monotonic()
    try:
        summary = agent.fit(time_budget_s=budget * 60 if budget else None, recheck_threads=threads.recheck)
    except TrainingInterrupted as stop:
        if main:
            print(
                f"{stop}: {run.last} holds it; continue with the same command plus --resume",
                file=sys.stderr,
            )
        code = stop.exit_code
    else:
        if main:
            save_config(agent.cfg, run.path / "config.yaml")  # a time budget may have fitted total_iter
            source = cache.index["source"] if cache is not None else config.motion_file
            _print_summary(agent, summary, run, time.monotonic() - started, source)
        code = 0
    barrier()  # ranks leave the process group together, none while another still talks to it
    return code


def _print_summary(
    agent: Any, summary: dict[str, Any], run: RunDirectory, seconds: float, source: str | None
) -> None:
    """The few lines a person reads at the end: what ran, how good it is, where it is, what next."""
    best = run.path / "checkpoints" / "best.pt"
    lines = [
        f"done: {agent.iteration}/{agent.cfg.total_iter} iterations in {seconds / 60:.1f} min",
    ]
    if summary:
        clips = ", ".join(m.name for m in agent.val_motions)
        lines.append(
            f"held-out clips ({clips}): mpjpe_local {summary['mpjpe_local_mm']:.1f} mm, "
            f"pa_mpjpe {summary['pa_mpjpe_mm']:.1f} mm, dof_rmse {summary['dof_rmse_rad']:.3f} rad, "
            f"accel {summary['accel_error_mm']:.2f} mm, codebook usage {summary['codebook_usage']:.0%}"
        )
        lines += _generalisation(agent, summary)
    else:
        lines.append(f"held-out clips: none; {no_validation(len(agent.train_motions))}")
    data = source or "motion_vqvae/assets/sample_motion.npy"
    cfg = agent.cfg
    # The files' own metadata wins, but files without it need the flags the run was given.
    read = "".join(
        f" --{flag} {value:g}" if isinstance(value, float) else f" --{flag} {value}"
        for flag, value in (("fps", cfg.fps), ("quat-order", cfg.quat_order))
        if value is not None
    )
    lines += [
        f"run: {run.path} (config.yaml, metrics.jsonl, checkpoints/best.pt, checkpoints/last.pt)",
        f"next: python scripts/evaluate.py --checkpoint {best} --motion_file {data}{read} "
        f"--out {run.path / 'eval'}",
        f"      python -m motion_vqvae.viewer --checkpoint {best} --motion {data}{read}",
    ]
    print("\n".join(lines))


def _generalisation(agent: Any, summary: dict[str, Any]) -> list[str]:
    """The training clips' error beside the held-out one, and advice when the gap between them is wide."""
    val_frames = sum(m.num_frames for m in agent.val_motions)
    sample = training_sample(agent.train_motions, val_frames)
    if not sample:  # trained from a cache: the training clips are not in memory
        return []
    train_mm = agent.evaluate(sample)["mpjpe_local_mm"]
    lines = [f"training clips ({len(sample)} scored): mpjpe_local {train_mm:.1f} mm"]
    advice = memorising(train_mm, summary["mpjpe_local_mm"])
    if advice is not None:
        lines.append(f"warning: {advice}")
    return lines
