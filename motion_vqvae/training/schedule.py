"""Learning-rate schedule as a pure function of the step, so resuming needs nothing but the step count."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from motion_vqvae.config_loader import AgentConfig


def lr_factor_fn(cfg: AgentConfig) -> Callable[[int], float]:
    """Multiplier of the peak rate at step ``s``: linear warmup, then the configured decay."""
    warmup, total = cfg.warmup_iter, cfg.total_iter

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
        raise ValueError(f"lr_scheduler {cfg.lr_scheduler!r} unknown; use cosine, multistep or constant")

    return factor


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
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(cfg))
    return optimizer, scheduler
