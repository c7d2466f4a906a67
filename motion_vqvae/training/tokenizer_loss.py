"""The tokenizer's training objective: per-feature weights, the loss of a batch and its logged statistics.

Used by :class:`~motion_vqvae.training.tokenizer_task.TokenizerTask`; kept apart so the objective reads
on one page.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.features import FeatureLayout
from motion_vqvae.models.losses import reconstruction_loss, velocity_loss
from motion_vqvae.training import precision
from motion_vqvae.training.nonfinite import SUSPECT_INPUT
from motion_vqvae.training.physics_loss import PHYSICS_TERMS, BodyLosses, body_losses, physics_ramp
from motion_vqvae.training.trainer import StepOutput


class _TaskView(Protocol):
    """What the loss reads of :class:`~motion_vqvae.training.tokenizer_task.TokenizerTask` (a protocol, so
    the task imports the loss and not the other way round)."""

    cfg: AgentConfig
    layout: FeatureLayout | None
    device: torch.device
    mjcf: str | None
    fps: float | None


def loss_weights(task: _TaskView) -> torch.Tensor:
    """Per-feature weights: root features, joint angles (1, or their std) and joint velocities, by config.

    Features are z-scored, so by default a wrist that barely moves counts as much as a swinging shoulder;
    ``joint_weights_by_std`` weighs each joint angle by its spread, i.e. the loss counts radians: ``std``
    for an L1 loss, ``std**2`` for L2 and smooth-L1 (quadratic for the sub-std errors that dominate).
    """
    layout, cfg = task.layout, task.cfg
    assert layout is not None and layout.normalizer is not None
    weights = torch.ones(layout.dim, device=task.device)
    for name in ("root_height", "root_tilt", "root_lin_vel", "yaw_rate"):
        weights[layout.slices[name]] = cfg.root_loss_weight
    if cfg.joint_weights_by_std:
        std = layout.normalizer.std[layout.slices["dof_pos"]]
        scale = std if cfg.recons_loss == "l1" else std**2
        weights[layout.slices["dof_pos"]] = torch.as_tensor(scale / scale.mean(), dtype=weights.dtype)
    weights[layout.slices["dof_vel"]] = cfg.dof_vel_loss_weight
    return weights


def body_space_loss(task: _TaskView) -> BodyLosses | None:
    """The forward-kinematics losses the config weighs (body space, physics), or None."""
    assert task.layout is not None
    return body_losses(task.cfg, task.layout, task.mjcf, task.fps, task.device)


def step_loss(
    cfg: AgentConfig,
    net: nn.Module,
    x: torch.Tensor,
    weights: torch.Tensor,
    body_loss: nn.Module | None,
    device: torch.device,
    iteration: int,
) -> StepOutput:
    """The loss of windows ``x`` (B, burn_in + W, F) through ``net`` at the step after ``iteration`` (the
    physics terms ramp in over ``physics_loss_warmup``); every term stays on the device."""
    with precision.autocast(cfg.amp, device):
        recon, q = net(x)
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
        weights_of = term_weights(cfg)
        ramp = physics_ramp(iteration, cfg.total_iter, cfg.physics_loss_warmup)
        loss = loss + sum(
            weights_of[name] * (ramp if name in PHYSICS_TERMS else 1.0) * value
            for name, value in body.items()
        )
    stats = {
        "loss": loss.detach(),
        "recons": rec.detach(),
        "vel": vel.detach(),
        "commit": q.loss.detach(),
        "perplexity": q.perplexity.detach().reshape(-1),
        "usage": q.usage.detach().reshape(-1),
        **{k: v.detach() for k, v in body.items()},
    }
    return StepOutput(loss, {**terms, **body}, stats)


def term_weights(cfg: AgentConfig) -> dict[str, float]:
    """Each loss term's weight in the total (the recons term's is 1), for the non-finite stop message."""
    return {
        "vel": cfg.loss_vel,
        "commit": cfg.commit,
        "accel": cfg.loss_accel,
        "body_accel_mm": cfg.loss_body_accel,
        "body_pos_mm": cfg.loss_body_pos,
        **{term: getattr(cfg, key) for term, key in PHYSICS_TERMS.items()},
    }


def describe_batch(sampler: Any, picks: torch.Tensor) -> tuple[bool, str]:
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


def host_stats(stats: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A step's tensors as the numbers metrics.jsonl holds (one device-to-host copy for all of them)."""
    flat = torch.cat([v.float().reshape(-1) for v in stats.values()]).cpu()
    values = dict(zip(stats, flat.split([v.numel() for v in stats.values()]), strict=True))
    scalars = ("loss", "recons", "vel", "commit", "body_accel_mm", "body_pos_mm", *PHYSICS_TERMS)
    record: dict[str, Any] = {k: float(values[k]) for k in scalars if k in values}
    for key in ("perplexity", "usage"):
        record[key] = float(values[key].mean())
        record[f"{key}_per_stream"] = values[key].tolist()
    return record
