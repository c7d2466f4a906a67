"""The optimisation loop: progress bar, metrics.jsonl, wandb, periodic validation and checkpoints.

Nothing is lost when a run stops early: Ctrl-C, a time budget or an exception in a step all end with
``last.pt`` written (atomically), and ``best.pt`` tracks the best validation ``mpjpe_local_mm``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from motion_vqvae.models.losses import reconstruction_loss, velocity_loss

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


def train(agent: MVQVAEAgent, time_budget_s: float | None = None) -> dict[str, Any]:
    """Run steps from ``agent.iteration`` to ``total_iter``; returns the last validation summary."""
    cfg, model = agent.cfg, agent.model
    assert model is not None and agent.sampler is not None and agent.optimizer is not None
    ckpt_dir = agent.run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = agent.run_dir / "metrics.jsonl"
    wandb_run = _start_wandb(agent) if cfg.use_wandb else None
    weights = loss_weights(agent)
    deadline = time.monotonic() + time_budget_s if time_budget_s else math.inf
    summary: dict[str, Any] = {}
    model.train()
    bar = tqdm(total=cfg.total_iter, initial=agent.iteration, desc="train", unit="it", dynamic_ncols=True)
    window_start, windows_seen = time.monotonic(), 0
    stopped_by = "total_iter"
    try:
        while agent.iteration < cfg.total_iter:
            if time.monotonic() >= deadline:
                stopped_by = "time budget"
                break
            stats = _step(agent, weights)
            agent.iteration += 1
            windows_seen += cfg.batch_size
            bar.update(1)
            it = agent.iteration
            if it % cfg.print_iter == 0 or it == cfg.total_iter:
                elapsed = time.monotonic() - window_start
                stats["windows_per_s"] = windows_seen / max(elapsed, 1e-9)
                window_start, windows_seen = time.monotonic(), 0
                stats["lr"] = agent.optimizer.param_groups[0]["lr"]
                bar.set_postfix(
                    loss=f"{stats['loss']:.4f}",
                    rec=f"{stats['recons']:.4f}",
                    ppl=f"{stats['perplexity']:.0f}",
                )
                _log_metrics(metrics_path, wandb_run, {"iteration": it, "split": "train", **stats})
            if agent.val_motions and it % cfg.eval_every == 0:
                summary = _validate(agent, metrics_path, wandb_run, ckpt_dir)
            if it % cfg.save_every == 0:
                agent.save(ckpt_dir / "last.pt")
    except KeyboardInterrupt:
        stopped_by = "Ctrl-C"
        log.warning("interrupted at iteration %d: saving %s", agent.iteration, ckpt_dir / "last.pt")
    finally:
        bar.close()
        agent.save(ckpt_dir / "last.pt")
    if stopped_by != "Ctrl-C" and agent.val_motions and (not summary or agent.iteration % cfg.eval_every):
        summary = _validate(agent, metrics_path, wandb_run, ckpt_dir)
    if not (ckpt_dir / "best.pt").exists():
        agent.save(ckpt_dir / "best.pt")
    log.info("stopped by %s at iteration %d; checkpoints in %s", stopped_by, agent.iteration, ckpt_dir)
    if wandb_run is not None:
        wandb_run.finish()
    if stopped_by == "Ctrl-C":
        raise KeyboardInterrupt
    return summary


def _step(agent: MVQVAEAgent, weights: torch.Tensor) -> dict[str, float]:
    cfg, model = agent.cfg, agent.model
    x = agent.sampler.sample(cfg.batch_size)  # (B, burn_in + W, F)
    recon, q = model(x)
    # The burn-in frames give the causal model real history; only the window after them is scored.
    recon, x = recon[:, cfg.burn_in :], x[:, cfg.burn_in :]
    rec = reconstruction_loss(recon, x, kind=cfg.recons_loss, weights=weights)
    vel = velocity_loss(recon, x, kind=cfg.recons_loss, weights=weights)
    loss = rec + cfg.loss_vel * vel + cfg.commit * q.loss
    if cfg.loss_accel > 0:
        # velocity_loss of the first differences = the loss on second differences (accelerations).
        accel = velocity_loss(recon.diff(dim=-2), x.diff(dim=-2), kind=cfg.recons_loss, weights=weights)
        loss = loss + cfg.loss_accel * accel
    agent.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.gradient_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.gradient_clip)
    agent.optimizer.step()
    agent.scheduler.step()
    return {
        "loss": float(loss.detach()),
        "recons": float(rec.detach()),
        "vel": float(vel.detach()),
        "commit": float(q.loss.detach()),
        "perplexity": float(q.perplexity.mean()),
        "usage": float(q.usage.mean()),
        "perplexity_per_stream": q.perplexity.reshape(-1).tolist(),
        "usage_per_stream": q.usage.reshape(-1).tolist(),
    }


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
        log.warning("use_wandb is true but wandb is not installed; logging to metrics.jsonl only")
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
