"""The optimisation loop: progress bar, metrics.jsonl, wandb, periodic validation and checkpoints.

Nothing is lost when a run stops early: Ctrl-C, SIGTERM, SIGHUP and a time budget all end at a step
boundary with ``last.pt`` written (atomically); an exception inside a step leaves the last checkpoint as
it was rather than saving a half-done step. ``best.pt`` tracks the best validation ``mpjpe_local_mm``.

Under ``torchrun`` (:mod:`motion_vqvae.training.distributed`) every rank runs this loop on its share of each
global batch; rank 0 alone writes checkpoints, ``metrics.jsonl`` and the progress bar and validates, and
all ranks agree at each step boundary on whether to stop and on ``total_iter`` (rank 0's budget fit).
A step reads nothing back to the host: its statistics stay tensors until a logging step, and the
non-finite guard (:mod:`motion_vqvae.training.nonfinite`) skips a NaN/inf step on the device; its counters
are read every few steps, and ``limit`` consecutive skips stop the run naming the step, term and cause.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from motion_vqvae.models.losses import reconstruction_loss, velocity_loss
from motion_vqvae.training import distributed, precision
from motion_vqvae.training.advice import SpeedCheck
from motion_vqvae.training.nonfinite import SUSPECT_INPUT, NonFiniteGuard, gradient_norm
from motion_vqvae.training.physics_loss import PHYSICS_TERMS, BodyLosses, body_losses, physics_ramp
from motion_vqvae.training.schedule import effective_warmup, fitted_total_iter, set_total_iter
from motion_vqvae.training.signals import StopRequests, TrainingInterrupted

if TYPE_CHECKING:
    from motion_vqvae.agent import MVQVAEAgent

log = logging.getLogger(__name__)

BEST_METRIC = "mpjpe_local_mm"


def loss_weights(agent: MVQVAEAgent) -> torch.Tensor:
    """Per-feature weights: root features, joint angles (1, or their std) and joint velocities, by config.

    Features are z-scored, so by default a wrist that barely moves counts as much as a swinging shoulder;
    ``joint_weights_by_std`` weighs each joint angle by its spread, i.e. the loss counts radians: ``std``
    for an L1 loss, ``std**2`` for L2 and smooth-L1 (quadratic for the sub-std errors that dominate).
    """
    layout = agent.layout
    assert layout is not None and layout.normalizer is not None
    weights = torch.ones(layout.dim, device=agent.device)
    for name in ("root_height", "root_tilt", "root_lin_vel", "yaw_rate"):
        weights[layout.slices[name]] = agent.cfg.root_loss_weight
    if agent.cfg.joint_weights_by_std:
        std = layout.normalizer.std[layout.slices["dof_pos"]]
        scale = std if agent.cfg.recons_loss == "l1" else std**2
        weights[layout.slices["dof_pos"]] = torch.as_tensor(scale / scale.mean(), dtype=weights.dtype)
    weights[layout.slices["dof_vel"]] = agent.cfg.dof_vel_loss_weight
    return weights


def _body_space_loss(agent: MVQVAEAgent) -> BodyLosses | None:
    """The forward-kinematics losses the config weighs (body space, physics), or None."""
    assert agent.layout is not None
    return body_losses(agent.cfg, agent.layout, agent.mjcf, agent.fps, agent.device)


def train(
    agent: MVQVAEAgent, time_budget_s: float | None = None, fit_schedule: bool = True
) -> dict[str, Any]:
    """Run steps from ``agent.iteration`` to ``total_iter``; returns the last validation summary.

    With a time budget and ``fit_schedule``, ``total_iter`` is lowered to what the budget allows (step time
    measured over the first steps, validation time at each validation), so the schedule anneals by the
    deadline; the fitted value is in the checkpoint's config. Ctrl-C, SIGTERM and SIGHUP stop at a step
    boundary: ``last.pt`` is written and :class:`TrainingInterrupted` raised.
    """
    cfg, model = agent.cfg, agent.model
    assert model is not None and agent.sampler is not None and agent.optimizer is not None
    main = distributed.world().is_main
    rows = distributed.local_batch(cfg.batch_size)
    precision.check_amp(cfg.amp, agent.device)
    if cfg.compile:
        precision.compile_convs(model)
    net = distributed.wrap(model, agent.device)
    ckpt_dir = agent.run_dir / "checkpoints"
    metrics_path = agent.run_dir / "metrics.jsonl"
    if main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    wandb_run = _start_wandb(agent) if cfg.use_wandb and main else None
    weights = loss_weights(agent)
    body_loss = _body_space_loss(agent)
    deadline = time.monotonic() + time_budget_s if time_budget_s else math.inf
    fitter = _BudgetFitter(agent, deadline) if time_budget_s and fit_schedule and main else None
    control = distributed.StepControl()
    guard = NonFiniteGuard(model, cfg.to_dict(), lambda picks: _describe_batch(agent.sampler, picks))
    summary: dict[str, Any] = {}
    model.train()
    bar = tqdm(
        total=agent.cfg.total_iter,
        initial=agent.iteration,
        desc="train",
        unit="it",
        dynamic_ncols=True,
        mininterval=0.1 if sys.stderr.isatty() else 30.0,  # a log file gets a line every 30 s, not 10 per s
        disable=not main,
    )
    speed = SpeedCheck(agent.device.type, torch.get_num_threads(), cfg.batch_size) if main else None
    window_start, windows_seen = time.monotonic(), 0
    stopped_by, signum = "total_iter", None
    with StopRequests() as stop:
        while True:
            signum, out_of_time, total = control.sync(
                stop.signum, time.monotonic() >= deadline, agent.cfg.total_iter
            )
            if total != agent.cfg.total_iter:  # rank 0's time budget refitted the schedule
                agent.cfg = set_total_iter(agent.cfg, agent.scheduler, total)
            if agent.iteration >= agent.cfg.total_iter:
                break
            if signum is not None:
                stopped_by = signal.Signals(signum).name
                break
            if out_of_time:
                stopped_by = "time budget"
                break
            step_started = time.monotonic()
            stats = _step(agent, weights, net, rows, body_loss, guard)
            agent.iteration += 1
            windows_seen += cfg.batch_size
            bar.update(1)
            it = agent.iteration
            took = time.monotonic() - step_started
            if speed is not None and speed.after_step(took):
                speed = None  # reported once; the rest of the run pays nothing for it
            if fitter is not None and fitter.after_step(took):
                bar.total = agent.cfg.total_iter
            logging_step = it % cfg.print_iter == 0 or it == agent.cfg.total_iter
            if logging_step or it % guard.limit == 0 or it % cfg.save_every == 0:
                guard.poll(_term_weights(cfg))  # the same counters on every rank: all stop or none does
            if logging_step:
                record = _host_stats(distributed.mean_over_ranks(stats))  # the only host sync of a step
                elapsed = time.monotonic() - window_start
                record["windows_per_s"] = windows_seen / max(elapsed, 1e-9)
                window_start, windows_seen = time.monotonic(), 0
                record["lr"] = agent.optimizer.param_groups[0]["lr"]
                record["nonfinite_skipped"] = guard.skipped
                if main:
                    bar.set_postfix(
                        loss=f"{record['loss']:.4f}",
                        rec=f"{record['recons']:.4f}",
                        ppl=f"{record['perplexity']:.0f}",
                    )
                    _log_metrics(metrics_path, wandb_run, {"iteration": it, "split": "train", **record})
            if main and agent.val_motions and it % cfg.eval_every == 0:
                started = time.monotonic()
                summary = _validate(agent, metrics_path, wandb_run, ckpt_dir)
                if fitter is not None and fitter.after_validation(time.monotonic() - started):
                    bar.total = agent.cfg.total_iter
            if main and it % cfg.save_every == 0:
                agent.save(ckpt_dir / "last.pt")
        bar.close()
        interrupted = signum is not None and stopped_by != "total_iter"
        if main:
            agent.save(ckpt_dir / "last.pt")  # at a step boundary, whatever stopped the loop
            if not interrupted and agent.val_motions and (not summary or agent.iteration % cfg.eval_every):
                summary = _validate(agent, metrics_path, wandb_run, ckpt_dir)
            if not (ckpt_dir / "best.pt").exists():
                agent.save(ckpt_dir / "best.pt")
        distributed.barrier()  # every rank returns once the checkpoints are on disk
    log.info("stopped by %s at iteration %d; checkpoints in %s", stopped_by, agent.iteration, ckpt_dir)
    if wandb_run is not None:
        wandb_run.finish()
    if interrupted:
        raise TrainingInterrupted(signum, agent.iteration)
    return summary


class _BudgetFitter:
    """Sets ``total_iter`` to what a time budget allows, from measured step and validation times.

    The first fit comes after ``TIMED_STEPS`` steps or ``TIMED_SECONDS`` of them, whichever is first (a slow
    machine must not spend its budget measuring). Later fits, every ``REFIT_EVERY`` steps (on the median of
    the latest ones) and after each validation, follow a machine whose load changes, up or down (never above
    the configured ``total_iter``); a change under ``TOLERANCE`` is ignored so the schedule stays smooth.
    """

    UNTIMED_STEPS = 3  # first steps pay one-off costs (allocation, thread start-up)
    TIMED_STEPS, TIMED_SECONDS, REFIT_EVERY, TOLERANCE = 20, 10.0, 25, 0.05

    def __init__(self, agent: MVQVAEAgent, deadline: float) -> None:
        self.agent, self.deadline = agent, deadline
        self.cap = agent.cfg.total_iter
        self.seen = 0
        self.times: list[float] = []
        self.step_s: float | None = None
        self.val_s = 0.0

    def after_step(self, seconds: float) -> bool:
        self.seen += 1
        if self.seen <= self.UNTIMED_STEPS:
            return False
        self.times = [*self.times[-2 * self.REFIT_EVERY + 1 :], seconds]
        first = self.step_s is None and (
            len(self.times) >= self.TIMED_STEPS
            or (len(self.times) >= 3 and sum(self.times) >= self.TIMED_SECONDS)
        )
        if first or (self.step_s is not None and self.seen % self.REFIT_EVERY == 0):
            self.step_s = float(np.median(self.times))
            return self._fit()
        return False

    def after_validation(self, seconds: float) -> bool:
        self.val_s = max(self.val_s, seconds)
        return self.step_s is not None and self._fit()

    def _fit(self) -> bool:
        agent = self.agent
        assert self.step_s is not None
        before = agent.cfg.total_iter
        seconds_left = self.deadline - time.monotonic()
        total = fitted_total_iter(agent.cfg, agent.iteration, seconds_left, self.step_s, self.val_s, self.cap)
        if abs(total - before) <= self.TOLERANCE * (before - agent.iteration):
            return False
        agent.cfg = set_total_iter(agent.cfg, agent.scheduler, total)
        log.info(
            "time budget: %.1f ms/step, %.1f s/validation -> total_iter %d (was %d), warmup %d, "
            "so the schedule anneals by the deadline",
            self.step_s * 1e3,
            self.val_s,
            total,
            before,
            effective_warmup(agent.cfg),
        )
        return True


def _step(
    agent: MVQVAEAgent,
    weights: torch.Tensor,
    net: torch.nn.Module | None = None,
    rows: slice = slice(None),
    body_loss: BodyLosses | None = None,
    guard: NonFiniteGuard | None = None,
) -> dict[str, torch.Tensor]:
    """One optimisation step on this rank's ``rows`` of a global batch; statistics stay on the device.

    ``net`` is the model as trained (DDP-wrapped under torchrun; default ``agent.model``).

    Every rank draws the same global batch (same generator), so the sampler advances identically
    everywhere; the loss is this rank's mean and DDP averages the gradients, which makes it the global
    batch's mean (equal shares). Clipping follows the all-reduce, so it sees the global gradient.
    ``guard`` (default: a fresh one) skips the update, every rank alike, when a loss term or the gradient
    is non-finite.
    """
    cfg = agent.cfg
    guard = guard or NonFiniteGuard(agent.model, cfg.to_dict())
    sampler = agent.sampler
    picked = sampler.draw(cfg.batch_size)[rows]  # (B / world,) CPU
    picks = picked
    if agent.device.type == "cuda":  # pinned + non_blocking: the copy does not wait for the GPU
        picks = picked.pin_memory().to(agent.device, non_blocking=True)
    x = sampler.gather(picks)  # (B / world, burn_in + W, F)
    guard.before_forward(agent.iteration + 1, picked)
    with precision.autocast(cfg.amp, agent.device):
        recon, q = (net or agent.model)(x)
    # The burn-in frames give the causal model real history; only the window after them is scored.
    recon, x = recon[:, cfg.burn_in :].float(), x[:, cfg.burn_in :]
    rec = reconstruction_loss(recon, x, kind=cfg.recons_loss, weights=weights)
    vel = velocity_loss(recon, x, kind=cfg.recons_loss, weights=weights)
    loss = rec + cfg.loss_vel * vel + cfg.commit * q.loss
    terms = {"recons": rec, "vel": vel, "commit": q.loss}
    if cfg.loss_accel > 0:
        # velocity_loss of the first differences = the loss on second differences (accelerations).
        terms["accel"] = velocity_loss(
            recon.diff(dim=-2), x.diff(dim=-2), kind=cfg.recons_loss, weights=weights
        )
        loss = loss + cfg.loss_accel * terms["accel"]
    body: dict[str, torch.Tensor] = {}
    if body_loss is not None:
        body = body_loss(recon, x)
        weights_of = _term_weights(cfg)
        ramp = physics_ramp(agent.iteration, cfg.total_iter, cfg.physics_loss_warmup)
        loss = loss + sum(
            weights_of[name] * (ramp if name in PHYSICS_TERMS else 1.0) * value
            for name, value in body.items()
        )
    agent.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = gradient_norm(agent.model.parameters(), cfg.gradient_clip)
    guard.apply(agent.optimizer, agent.iteration + 1, {**terms, **body, "total": loss}, norm)
    agent.scheduler.step()  # also after a skipped step: the schedule follows the iteration
    return {
        "loss": loss.detach(),
        "recons": rec.detach(),
        "vel": vel.detach(),
        "commit": q.loss.detach(),
        "perplexity": q.perplexity.detach().reshape(-1),
        "usage": q.usage.detach().reshape(-1),
        **{k: v.detach() for k, v in body.items()},
    }


def _term_weights(cfg: Any) -> dict[str, float]:
    """Each loss term's weight in the total (the recons term's is 1), for the non-finite stop message."""
    return {
        "vel": cfg.loss_vel,
        "commit": cfg.commit,
        "accel": cfg.loss_accel,
        "body_accel_mm": cfg.loss_body_accel,
        "body_pos_mm": cfg.loss_body_pos,
        **{term: getattr(cfg, key) for term, key in PHYSICS_TERMS.items()},
    }


def _describe_batch(sampler: Any, picks: torch.Tensor) -> tuple[bool, str]:
    """A batch for a stop message: whether its (normalized) inputs are suspect, and its clips."""
    x = sampler.gather(picks)
    if not bool(torch.isfinite(x).all()):
        suspect, held = True, "its inputs hold NaN/inf"
    else:
        peak = float(x.abs().max())
        suspect, held = peak > SUSPECT_INPUT, f"its largest normalized input is {peak:.3g}"
    clips = sorted(set(sampler.clip_names(picks)))
    shown = ", ".join(clips[:10]) + (f" and {len(clips) - 10} more" if len(clips) > 10 else "")
    return suspect, held + (f"; windows from clips {shown}" if clips else "")


def _host_stats(stats: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A step's tensors as the numbers metrics.jsonl holds (one device-to-host copy for all of them)."""
    flat = torch.cat([v.float().reshape(-1) for v in stats.values()]).cpu()
    values = dict(zip(stats, flat.split([v.numel() for v in stats.values()]), strict=True))
    scalars = ("loss", "recons", "vel", "commit", "body_accel_mm", "body_pos_mm", *PHYSICS_TERMS)
    record: dict[str, Any] = {k: float(values[k]) for k in scalars if k in values}
    for key in ("perplexity", "usage"):
        record[key] = float(values[key].mean())
        record[f"{key}_per_stream"] = values[key].tolist()
    return record


def _validate(agent: MVQVAEAgent, metrics_path: Path, wandb_run: Any, ckpt_dir: Path) -> dict[str, Any]:
    summary = agent.evaluate()
    record = {k: v for k, v in summary.items() if k != "per_clip"}
    _log_metrics(metrics_path, wandb_run, {"iteration": agent.iteration, "split": "val", **record})
    score = summary[BEST_METRIC]
    if score < agent.best_metric:
        agent.best_metric = score
        agent.save(ckpt_dir / "best.pt")
    log.info(
        "iteration %d: val %s %.1f mm (best %.1f), dof_rmse %.3f rad, usage %.2f",
        agent.iteration,
        BEST_METRIC,
        score,
        agent.best_metric,
        summary["dof_rmse_rad"],
        summary["codebook_usage"],
    )
    return summary


def _log_metrics(path: Path, wandb_run: Any, record: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    if wandb_run is not None:
        split = record["split"]
        wandb_run.log(
            {f"{split}/{k}": v for k, v in record.items() if isinstance(v, (int, float))},
            step=record["iteration"],
        )


def _start_wandb(agent: MVQVAEAgent) -> Any:
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
            project=agent.cfg.wandb_project,
            dir=str(agent.run_dir),
            config=agent.cfg.to_dict(),
            settings=settings,
        )
    except Exception as exc:  # wandb raises its own error types for network and auth problems
        log.warning("wandb could not start (%s); logging to metrics.jsonl only", exc)
        return None
