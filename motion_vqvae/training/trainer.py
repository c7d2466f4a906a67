"""One training loop for every model of the project: the :class:`Trainer` and the :class:`TrainTask` it runs.

The Trainer owns what every training run has: the optimizer and its schedule, the iteration, the best
validation score, the run directory's ``checkpoints/{last,best}.pt`` and ``metrics.jsonl``, the progress
bar, stop signals, the time-budget fit, the non-finite guard, the RNG states and data parallelism. A
:class:`TrainTask` supplies what is specific to one model (the tokenizer's is
:class:`motion_vqvae.training.tokenizer_task.TokenizerTask`; the prior and the tracker plug in the same way),
so a new trainer is a task of a few methods, never a second loop.

Nothing is lost when a run stops early: Ctrl-C, SIGTERM, SIGHUP and a time budget all end at a step
boundary with ``last.pt`` written (atomically); an exception inside a step leaves the last checkpoint as it
was rather than saving a half-done step. ``best.pt`` tracks the task's ``selection_metric`` on its
validation split (lower is better).

Under ``torchrun`` (:mod:`motion_vqvae.training.distributed`) every rank runs this loop on its share of each
global batch; rank 0 alone writes checkpoints, ``metrics.jsonl`` and the progress bar and validates, and
all ranks agree at each step boundary on whether to stop and on ``total_iter`` (rank 0's budget fit).
A step reads nothing back to the host: its statistics stay tensors until a logging step, and the
non-finite guard (:mod:`motion_vqvae.training.nonfinite`) skips a NaN/inf step on the device; its counters
are read every few steps, and ``limit`` consecutive skips stop the run naming the step, term and cause.

Library code never changes the process's thread count: the command-line entry points choose it
(:mod:`motion_vqvae.threads`) and may pass ``recheck_threads`` to :meth:`Trainer.fit`, which the budget
fitter calls when it re-fits.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import nn
from tqdm import tqdm

from motion_vqvae.errors import InvalidValue
from motion_vqvae.training import distributed, precision
from motion_vqvae.training.advice import SpeedCheck
from motion_vqvae.training.budget import BudgetFitter
from motion_vqvae.training.checkpoint import capture_rng_states, restore_rng_states, save_checkpoint
from motion_vqvae.training.nonfinite import NonFiniteGuard, gradient_norm
from motion_vqvae.training.schedule import build_optimizer, set_total_iter
from motion_vqvae.training.signals import StopRequests, TrainingInterrupted

log = logging.getLogger(__name__)


class StepOutput(NamedTuple):
    """What a task's :meth:`TrainTask.loss` returns for one batch (all tensors stay on the device)."""

    total: torch.Tensor  # () the loss to minimise
    terms: dict[str, torch.Tensor]  # () each weighted term, named in a non-finite stop message
    stats: dict[str, torch.Tensor]  # what metrics.jsonl logs (reduced over ranks at logging steps)


class TrainTask(Protocol):
    """What one kind of model supplies to the :class:`Trainer`.

    ``cfg`` is the task's typed config; the Trainer reads its schedule and logging keys (``total_iter``,
    ``batch_size``, ``lr``, ``lr_scheduler``, ``warmup_iter``, ``gamma``, ``lr_milestones``, ``weight_decay``,
    ``gradient_clip``, ``print_iter``, ``eval_every``, ``save_every``, ``amp``, ``compile``, ``use_wandb``,
    ``wandb_project``) and replaces ``total_iter`` when a time budget fits the schedule. ``model`` is the
    module trained (built by the task, on ``device``). ``selection_metric`` names the key of
    :meth:`validate` that picks ``best.pt``.

    Random draws: every rank calls :meth:`draw` and :meth:`loss` with the same generator states, so a draw
    made for the *global* batch and sliced to ``rows`` is the one a single process makes.
    """

    cfg: Any
    model: nn.Module
    device: torch.device
    selection_metric: str

    def draw(self, batch_size: int, rows: slice) -> tuple[Any, torch.Tensor | None]:
        """This rank's ``rows`` of the next global batch of ``batch_size``, and its picks (CPU indices that
        :meth:`describe_batch` can name; None if the task has none)."""
        ...

    def loss(self, net: nn.Module, batch: Any, iteration: int) -> StepOutput:
        """The loss of ``batch`` through ``net`` (the model, DDP-wrapped under torchrun) at the step after
        ``iteration`` (terms whose weight follows the schedule read it)."""
        ...

    def term_weights(self) -> Mapping[str, float]:
        """Each loss term's weight in the total (missing: 1), for the non-finite stop message."""
        ...

    def describe_batch(self, picks: torch.Tensor) -> tuple[bool, str]:
        """(whether the batch's inputs are suspect, a description) for a non-finite stop message."""
        ...

    def host_record(self, stats: dict[str, torch.Tensor]) -> dict[str, Any]:
        """A logging step's (rank-averaged) statistics as the plain numbers metrics.jsonl holds."""
        ...

    @property
    def has_validation(self) -> bool:
        """Whether :meth:`validate` has held-out data to score (else ``best.pt`` is the last state)."""
        ...

    def validate(self) -> dict[str, Any]:
        """Metrics on the validation split, ``selection_metric`` among them (rank 0 only)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The task's part of a checkpoint (model, config, data state), tensors and plain types only."""
        ...

    def load_state_dict(self, state: dict[str, Any], resume: bool, source: str | Path) -> None:
        """Restore :meth:`state_dict`'s part of ``state`` (read from ``source``, named in errors); with
        ``resume`` also the data state (sampler)."""
        ...

    def identity(self) -> dict[str, Any]:
        """Facts a resumed run must share with its checkpoint (data fingerprint, ...): key -> value, each
        compared with the checkpoint's entry of the same key."""
        ...


class Trainer:
    """The training state of one run (optimizer, schedule, iteration, run directory) around a task."""

    def __init__(self, task: TrainTask, run_dir: str | Path) -> None:
        self.task = task
        self.run_dir = Path(run_dir)
        self.optimizer, self.scheduler = build_optimizer(task.model, task.cfg)
        self.iteration = 0
        self.best_metric = math.inf

    @property
    def cfg(self) -> Any:
        """The task's config (a time budget replaces its ``total_iter``)."""
        return self.task.cfg

    @cfg.setter
    def cfg(self, value: Any) -> None:
        self.task.cfg = value

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds: the task's part plus optimizer, schedule, RNG and progress."""
        return {
            **self.task.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng_states(self.task.device),
            "iteration": self.iteration,
            "best_metric": self.best_metric,
        }

    def save(self, path: str | Path) -> Path:
        save_checkpoint(self.state_dict(), path)
        return Path(path)

    def load_state_dict(
        self, state: dict[str, Any], resume: bool = True, source: str | Path = "checkpoint"
    ) -> None:
        """Restore a checkpoint's state; with ``resume`` also optimizer, schedule, data state and RNG.

        The task rebuilds its model from the checkpoint (its hyper-parameters), so the optimizer is
        rebuilt on that model before its state is loaded.
        """
        self.task.load_state_dict(state, resume, source)
        self.optimizer, self.scheduler = build_optimizer(self.task.model, self.task.cfg)
        self.iteration = int(state["iteration"])
        self.best_metric = float(state["best_metric"])
        if resume:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            restore_rng_states(state["rng"], self.task.device)

    def check_identity(self, state: dict[str, Any], source: str | Path) -> None:
        """Refuse to resume ``source`` when this run's data or settings are not the checkpoint's."""
        for key, value in self.task.identity().items():
            stored = state.get(key)
            if stored is not None and stored != value:
                raise InvalidValue(
                    f"--resume: the inputs of this run ({key} {value}) differ from the ones {source} was "
                    f"trained on ({key} {stored}); resume with the original data and settings, or start a "
                    "new run with another --out"
                )

    # ------------------------------------------------------------------------------------------ loop
    def step(
        self, net: nn.Module | None = None, rows: slice = slice(None), guard: NonFiniteGuard | None = None
    ):
        """One optimisation step on this rank's ``rows`` of a global batch; statistics stay on the device.

        The loss is this rank's mean and DDP averages the gradients, which makes it the global batch's mean
        (equal shares). Clipping follows the all-reduce, so it sees the global gradient. ``guard`` (default:
        a fresh one) skips the update, every rank alike, when a loss term or the gradient is non-finite.
        """
        task, cfg = self.task, self.task.cfg
        guard = guard or NonFiniteGuard(task.model, cfg.to_dict())
        batch, picks = task.draw(cfg.batch_size, rows)
        guard.before_forward(self.iteration + 1, picks)
        out = task.loss(net or task.model, batch, self.iteration)
        self.optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        norm = gradient_norm(task.model.parameters(), cfg.gradient_clip)
        guard.apply(self.optimizer, self.iteration + 1, {**out.terms, "total": out.total}, norm)
        self.scheduler.step()  # also after a skipped step: the schedule follows the iteration
        return out.stats

    def fit(
        self,
        time_budget_s: float | None = None,
        fit_schedule: bool = True,
        recheck_threads: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """Run steps from ``iteration`` to ``total_iter``; returns the last validation summary.

        With a time budget and ``fit_schedule``, ``total_iter`` is lowered to what the budget allows (step
        time measured over the first steps, validation time at each validation), so the schedule anneals by
        the deadline; the fitted value is in the checkpoint's config. ``recheck_threads`` (from the command
        line, :class:`motion_vqvae.threads.ThreadChoice`) runs before each re-fit and returns True when it
        changed the thread count. Ctrl-C, SIGTERM and SIGHUP stop at a step boundary: ``last.pt`` is written
        and :class:`TrainingInterrupted` raised.
        """
        task, cfg = self.task, self.task.cfg
        main = distributed.world().is_main
        rows = distributed.local_batch(cfg.batch_size)
        precision.check_amp(cfg.amp, task.device)
        if cfg.compile:
            precision.compile_convs(task.model)
        net = distributed.wrap(task.model, task.device)
        ckpt_dir, metrics = self.checkpoint_dir, self.run_dir / "metrics.jsonl"
        if main:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
        wandb_run = start_wandb(cfg, self.run_dir) if cfg.use_wandb and main else None
        deadline = time.monotonic() + time_budget_s if time_budget_s else math.inf
        fitter = (
            BudgetFitter(self, deadline, recheck_threads) if time_budget_s and fit_schedule and main else None
        )
        control = distributed.StepControl()
        guard = NonFiniteGuard(task.model, cfg.to_dict(), task.describe_batch)
        summary: dict[str, Any] = {}
        task.model.train()
        bar = tqdm(
            total=cfg.total_iter,
            initial=self.iteration,
            desc="train",
            unit="it",
            dynamic_ncols=True,
            mininterval=0.1
            if sys.stderr.isatty()
            else 30.0,  # a log file gets a line every 30 s, not 10 per s
            disable=not main,
        )
        speed = SpeedCheck(task.device.type, torch.get_num_threads(), cfg.batch_size) if main else None
        window_start, windows_seen = time.monotonic(), 0
        stopped_by, signum = "total_iter", None
        with StopRequests() as stop:
            while True:
                signum, out_of_time, total = control.sync(
                    stop.signum, time.monotonic() >= deadline, self.cfg.total_iter
                )
                if total != self.cfg.total_iter:  # rank 0's time budget refitted the schedule
                    self.cfg = set_total_iter(self.cfg, self.scheduler, total)
                if self.iteration >= self.cfg.total_iter:
                    break
                if signum is not None:
                    stopped_by = signal.Signals(signum).name
                    break
                if out_of_time:
                    stopped_by = "time budget"
                    break
                step_started = time.monotonic()
                stats = self.step(net, rows, guard)
                self.iteration += 1
                windows_seen += cfg.batch_size
                bar.update(1)
                it = self.iteration
                took = time.monotonic() - step_started
                if speed is not None and speed.after_step(took):
                    speed = None  # reported once; the rest of the run pays nothing for it
                if fitter is not None and fitter.after_step(took):
                    bar.total = self.cfg.total_iter
                logging_step = it % cfg.print_iter == 0 or it == self.cfg.total_iter
                if logging_step or it % guard.limit == 0 or it % cfg.save_every == 0:
                    guard.poll(task.term_weights())  # the same counters on every rank: all stop or none does
                if logging_step:
                    record = task.host_record(distributed.mean_over_ranks(stats))  # the only host sync
                    elapsed = time.monotonic() - window_start
                    record["windows_per_s"] = windows_seen / max(elapsed, 1e-9)
                    window_start, windows_seen = time.monotonic(), 0
                    record["lr"] = self.optimizer.param_groups[0]["lr"]
                    record["nonfinite_skipped"] = guard.skipped
                    if main:
                        bar.set_postfix(loss=f"{record['loss']:.4f}")
                        log_metrics(metrics, wandb_run, {"iteration": it, "split": "train", **record})
                if main and task.has_validation and it % cfg.eval_every == 0:
                    started = time.monotonic()
                    summary = self._validate(metrics, wandb_run)
                    if fitter is not None and fitter.after_validation(time.monotonic() - started):
                        bar.total = self.cfg.total_iter
                if main and it % cfg.save_every == 0:
                    self.save(ckpt_dir / "last.pt")
            bar.close()
            interrupted = signum is not None and stopped_by != "total_iter"
            if main:
                self.save(ckpt_dir / "last.pt")  # at a step boundary, whatever stopped the loop
                if (
                    not interrupted
                    and task.has_validation
                    and (not summary or self.iteration % cfg.eval_every)
                ):
                    summary = self._validate(metrics, wandb_run)
                if not (ckpt_dir / "best.pt").exists():
                    self.save(ckpt_dir / "best.pt")
            distributed.barrier()  # every rank returns once the checkpoints are on disk
        log.info("stopped by %s at iteration %d; checkpoints in %s", stopped_by, self.iteration, ckpt_dir)
        if wandb_run is not None:
            wandb_run.finish()
        if interrupted:
            raise TrainingInterrupted(signum, self.iteration)
        return summary

    def _validate(self, metrics: Path, wandb_run: Any) -> dict[str, Any]:
        """Score the validation split; a new best score writes ``best.pt``."""
        summary = self.task.validate()
        record = {k: v for k, v in summary.items() if k != "per_clip"}
        log_metrics(metrics, wandb_run, {"iteration": self.iteration, "split": "val", **record})
        name = self.task.selection_metric
        score = summary[name]
        if score < self.best_metric:
            self.best_metric = score
            self.save(self.checkpoint_dir / "best.pt")
        log.info("iteration %d: val %s %.4g (best %.4g)", self.iteration, name, score, self.best_metric)
        return summary


def log_metrics(path: Path, wandb_run: Any, record: dict[str, Any]) -> None:
    """Append ``record`` to metrics.jsonl (and wandb, when it runs)."""
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    if wandb_run is not None:
        split = record["split"]
        wandb_run.log(
            {f"{split}/{k}": v for k, v in record.items() if isinstance(v, (int, float))},
            step=record["iteration"],
        )


def start_wandb(cfg: Any, run_dir: Path) -> Any:
    """wandb if installed and configured; offline/disabled modes never touch the network."""
    try:
        import wandb
    except ImportError:
        log.warning(
            'use_wandb is true but wandb is not installed (an optional extra: pip install -e ".[wandb]"); '
            "logging to metrics.jsonl only"
        )
        return None
    settings = wandb.Settings(init_timeout=30, silent=True)
    try:
        return wandb.init(
            project=cfg.wandb_project, dir=str(run_dir), config=cfg.to_dict(), settings=settings
        )
    except Exception as exc:  # wandb raises its own error types for network and auth problems
        log.warning("wandb could not start (%s); logging to metrics.jsonl only", exc)
        return None
