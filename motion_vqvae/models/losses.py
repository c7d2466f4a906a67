"""Reconstruction losses on (B, T, F) features, optionally weighted per feature (e.g. root vs joints)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_KINDS = ("smooth_l1", "l1", "l2")

_last_checked: tuple[torch.Tensor | None, int] = (None, -1)  # weights found non-negative, and their version


def _check_non_negative(weights: torch.Tensor) -> None:
    """ValueError for negative weights, read on the host once per weights tensor (again after an in-place
    change), not at every training step: on a GPU each read would stall the pipeline."""
    global _last_checked
    if _last_checked[0] is weights and _last_checked[1] == weights._version:
        return
    if bool((weights < 0).any()):
        raise ValueError("weights must be non-negative")
    _last_checked = (weights, weights._version)


def _elementwise(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target, reduction="none")
    if kind == "l1":
        return F.l1_loss(pred, target, reduction="none")
    if kind == "l2":
        return F.mse_loss(pred, target, reduction="none")
    raise ValueError(f"Unknown loss kind {kind!r}. Allowed: {list(LOSS_KINDS)}")


def reconstruction_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    kind: str = "smooth_l1",
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean elementwise loss; ``weights`` (F,) multiplies each feature's term before the mean.

    With all-ones weights this equals the unweighted loss, so weights only shift emphasis between groups.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    loss = _elementwise(pred, target, kind)  # (..., F)
    if weights is None:
        return loss.mean()
    weights = torch.as_tensor(weights, dtype=loss.dtype, device=loss.device)
    if weights.shape != pred.shape[-1:]:
        raise ValueError(
            f"weights must be a per-feature vector of shape ({pred.shape[-1]},), got {tuple(weights.shape)}"
        )
    _check_non_negative(weights)
    return (loss * weights).mean()


def velocity_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    kind: str = "smooth_l1",
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`reconstruction_loss` on frame-to-frame differences along time (axis -2 of (B, T, F))."""
    if pred.dim() < 2 or pred.shape[-2] < 2:
        raise ValueError(f"velocity_loss needs (..., T >= 2, F) tensors, got {tuple(pred.shape)}")
    return reconstruction_loss(pred.diff(dim=-2), target.diff(dim=-2), kind, weights)
