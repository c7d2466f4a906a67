"""The non-finite guard shared by every trainer: a step whose loss or gradient is NaN/inf changes nothing.

Without it a single NaN (a corrupted cache row, a loss weight of ``inf``, a learning rate that blows the
weights up) trains on silently with ``loss=nan``, poisons the EMA codebooks, and is only noticed later,
blamed on whatever clip validation happens to read first. With it:

* a step whose total loss, any loss term or the gradient norm is non-finite is **skipped**: no optimizer
  step, and the buffers the forward pass updated (EMA codebooks) are put back as they were;
* skips are counted (``nonfinite_skipped`` in ``metrics.jsonl``) and ``limit`` consecutive ones stop the
  run with :class:`NonFiniteError`, naming the step, the loss term and the likely cause;
* :func:`check_finite_state` refuses to write a checkpoint holding a non-finite tensor.

Under ``torchrun`` every rank takes the same decision (the flag is reduced over ranks), or one rank would
step its optimizer while another skipped and the replicas would drift apart.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from motion_vqvae.cli import UserError
from motion_vqvae.training import distributed

CONSECUTIVE_LIMIT = 5
"""Consecutive skipped steps that stop a run: one bad batch is skipped, a broken run is not trained on."""
SUSPECT_INPUT = 1e6
"""Normalized inputs are O(1): a batch with a larger (finite) value is the likely source of an overflow."""

BatchCheck = Callable[[], tuple[bool, str]]
"""Describes a step's data for a stop message: (suspect: the inputs hold NaN/inf or huge values, text)."""


class NonFiniteError(UserError):
    """A run stopped because its loss or gradients stayed non-finite; the message says where and why.

    A user error (one line, exit 2 from the commands): the cause is data or a setting, named in the text.
    """


class NonFiniteGuard:
    """Decides, once per step, whether the step's update is applied; counts and explains the skips.

    ``model`` is the module whose buffers a forward pass may change (restored on a skip). ``config`` holds
    the run's numeric settings (named in the stop message when one of them is non-finite or the likely
    cause), and ``limit`` is the number of consecutive skips that stops the run.
    """

    def __init__(self, model: nn.Module, config: Mapping[str, Any], limit: int = CONSECUTIVE_LIMIT) -> None:
        self.model, self.config, self.limit = model, config, limit
        self.skipped = 0  # over the whole run (this process's lifetime)
        self.consecutive = 0
        self._buffers: dict[str, torch.Tensor] = {}

    def before_forward(self) -> None:
        """Keep a device-side copy of the model's buffers (no host sync), restored if the step is skipped."""
        names = {name for name, _ in self.model.named_buffers()}
        self._buffers = {k: v.detach().clone() for k, v in self.model.state_dict().items() if k in names}

    def step_ok(
        self,
        iteration: int,
        terms: Mapping[str, torch.Tensor],
        weights: Mapping[str, float],
        grad_norm: torch.Tensor,
        batch: BatchCheck | None = None,
    ) -> bool:
        """True when the update may be applied; else restore the buffers, count the skip, maybe stop.

        ``terms`` are the unweighted loss terms and ``weights`` their config weights (a term missing from
        ``weights`` has weight 1; ``"total"`` is the summed loss). ``batch`` checks and describes the
        step's data (e.g. its clips); it is only called when the run stops. This is a step's one host read.
        """
        values = torch.stack([t.detach().float().reshape(()) for t in terms.values()] + [grad_norm.float()])
        finite = torch.isfinite(values).all().to(torch.int32)
        if not distributed.all_ranks_true(finite):
            self._skip(iteration, terms, weights, grad_norm, batch)
            return False
        self.consecutive = 0
        return True

    def _skip(
        self,
        iteration: int,
        terms: Mapping[str, torch.Tensor],
        weights: Mapping[str, float],
        grad_norm: torch.Tensor,
        batch: BatchCheck | None,
    ) -> None:
        self.model.load_state_dict(self._buffers, strict=False)
        self.skipped += 1
        self.consecutive += 1
        if self.consecutive < self.limit:
            return
        where = _non_finite_term(terms, weights, grad_norm)
        cause = self._likely_cause(batch)
        raise NonFiniteError(
            f"step {iteration}: non-finite loss ({where}) for {self.consecutive} consecutive steps "
            f"({self.skipped} skipped in this run); stopped without applying them, and no checkpoint "
            f"holds a non-finite weight. Likely cause: {cause}"
        )

    def schedule(self, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        """Advance the schedule, also after a skipped step: the learning rate follows the iteration.

        torch warns when a scheduler steps before its optimizer ever has; after a skipped first step that
        is exactly what is meant, so that one warning is silenced.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step\\(\\)` before `optimizer.step")
            scheduler.step()

    def _likely_cause(self, batch: BatchCheck | None) -> str:
        bad = [f"{k}={v}" for k, v in self.config.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            return f"config value {', '.join(bad)}; set a finite value with --set"
        lr = self.config.get("lr")
        broken = non_finite_tensors(self.model.state_dict())
        if broken:
            return (
                f"an update diverged and left non-finite weights ({', '.join(broken[:3])}): lower lr "
                f"(lr={lr}) or enable gradient_clip, and resume from the last checkpoint"
            )
        suspect, data = batch() if batch is not None else (False, "")
        if suspect:
            return f"the data batch: {data}; clean or re-preprocess those clips (scripts/preprocess.py)"
        peak = max((float(p.detach().abs().max()) for p in self.model.parameters() if p.numel()), default=0.0)
        return (
            f"a diverged update or a loss weight: the data batch looks sane ({data or 'no clip names'}) and "
            f"the largest weight is {peak:.3g}; lower lr (lr={lr}) or the loss weights, and resume from the "
            "last checkpoint"
        )


def _non_finite_term(
    terms: Mapping[str, torch.Tensor], weights: Mapping[str, float], grad_norm: torch.Tensor
) -> str:
    """Which part of the total went non-finite first: a weighted term, the sum, or only the gradient."""
    for name, value in terms.items():
        if name == "total":
            continue
        raw, weight = float(value.detach().float()), float(weights.get(name, 1.0))
        if not math.isfinite(raw):
            return f"loss term '{name}' = {raw:.4g}"
        if not math.isfinite(raw * weight):
            return f"loss term '{name}' = {raw:.4g} x weight {weight}"
    total = float(terms["total"].detach().float()) if "total" in terms else math.nan
    if not math.isfinite(total):
        return f"total loss = {total}"
    return f"gradient norm = {float(grad_norm)} with a finite loss {total}"


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Names (dotted paths) of the floating tensors in a nested state that hold a NaN or an infinity."""
    found: list[str] = []
    items: Iterable[tuple[Any, Any]]
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and not bool(torch.isfinite(state).all()):
            found.append(prefix or "tensor")
        return found
    if isinstance(state, Mapping):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return found
    for key, value in items:
        found += non_finite_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    return found


def check_finite_state(state: Mapping[str, Any], path: Any) -> None:
    """Refuse to write a checkpoint whose model or optimizer state holds a NaN or an infinity."""
    broken = non_finite_tensors(state)
    if broken:
        shown = ", ".join(broken[:5]) + (f" and {len(broken) - 5} more" if len(broken) > 5 else "")
        raise NonFiniteError(
            f"refusing to write checkpoint {path}: non-finite values in {shown}; the previous checkpoint is "
            "kept. The run diverged: lower lr or the loss weights, or check the data for NaN/inf"
        )


def gradient_norm(parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """The total gradient norm (a device tensor), clipped to ``max_norm`` when it is > 0."""
    params = [p for p in parameters if p.grad is not None]
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    return torch.nn.utils.get_total_norm([p.grad for p in params])
