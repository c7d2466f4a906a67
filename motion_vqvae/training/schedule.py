"""Learning-rate schedule as a pure function of the step, so resuming needs nothing but the step count."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.errors import InvalidValue


def lr_factor_fn(cfg: AgentConfig) -> Callable[[int], float]:
    """Multiplier of the peak rate at step ``s``: linear warmup, then the configured decay."""
    warmup, total = effective_warmup(cfg), cfg.total_iter

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cfg.lr_scheduler == "constant":
            return 1.0
        if cfg.lr_scheduler == "multistep":
            return cfg.gamma ** sum(step >= m for m in cfg.lr_milestones)
        if cfg.lr_scheduler == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return cfg.gamma + (1.0 - cfg.gamma) * 0.5 * (1.0 + math.cos(math.pi * progress))
        raise InvalidValue(f"lr_scheduler {cfg.lr_scheduler!r} unknown; use cosine, multistep or constant")

    return factor


def effective_warmup(cfg: AgentConfig) -> int:
    """``warmup_iter``, capped at a quarter of ``total_iter``.

    A short run (``--set total_iter=200``, or a schedule fitted to a small time budget) then still warms up
    and anneals, instead of failing or spending every step in warmup.
    """
    return min(cfg.warmup_iter, cfg.total_iter // 4)


def build_optimizer(
    model: torch.nn.Module, cfg: AgentConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (decay on weights only, never on biases and norms) and its step-wise schedule."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused: one kernel per step, and it can skip a non-finite step on the device (training.nonfinite)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99), fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(cfg))
    return optimizer, scheduler


BUDGET_MARGIN = 0.95
"""Fraction of the remaining budget planned for steps: on a busy machine step times drift upwards."""


def fitted_total_iter(
    cfg: AgentConfig,
    iteration: int,
    seconds_left: float,
    step_s: float,
    val_s: float,
    cap: int | None = None,
) -> int:
    """The ``total_iter`` that ends by the deadline, so the cosine schedule anneals within a time budget.

    ``step_s`` is the measured time of one step, ``val_s`` of one validation (0 before the first); the last
    validation and checkpoint are reserved, and a margin for step times that vary on a shared machine.
    Never above ``cap`` (default: the config's ``total_iter``): a budget caps a run, it never lengthens it.
    """
    per_step = step_s + val_s / cfg.eval_every
    usable = BUDGET_MARGIN * seconds_left - 2 * val_s
    steps_left = max(1, int(usable / per_step))
    return max(iteration + 1, min(cap or cfg.total_iter, iteration + steps_left))


def set_total_iter(cfg: AgentConfig, scheduler: torch.optim.lr_scheduler.LambdaLR, total: int) -> AgentConfig:
    """A config with ``total_iter=total`` and the scheduler following it from the current step on."""
    cfg = cfg.replace(total_iter=total)
    scheduler.lr_lambdas = [lr_factor_fn(cfg) for _ in scheduler.lr_lambdas]
    return cfg
