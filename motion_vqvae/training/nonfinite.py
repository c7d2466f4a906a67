"""The non-finite guard shared by every trainer: a step whose loss or gradient is NaN/inf changes nothing.

Without it a single NaN (a corrupted cache row, a loss weight of ``inf``, a learning rate that blows the
weights up) trains on silently with ``loss=nan``, poisons the EMA codebooks, and is only noticed later,
blamed on whatever clip validation happens to read first. With it:

* a step whose total loss, any loss term or the gradient norm is non-finite is **skipped**: no optimizer
  update, and the buffers the forward pass updated (EMA codebooks) are put back as they were;
* skips are counted (``nonfinite_skipped`` in ``metrics.jsonl``) and ``limit`` consecutive ones stop the
  run with :class:`NonFiniteError`, naming the step, the loss term and the likely cause;
* :func:`check_finite_state` refuses to write a checkpoint holding a non-finite tensor.

The decision is taken on the device, without reading anything back to the host (a read would stall the GPU
every step): the flag goes to the fused AdamW as its ``found_inf`` (the protocol ``torch.amp.GradScaler``
uses, which skips the update and its step count inside the kernel), and the buffers are restored with a
``torch.where``. The counters are read by :meth:`NonFiniteGuard.poll`, every ``limit`` steps and at logging
steps. Under ``torchrun`` the flag is summed over ranks first, so every rank skips the same steps (one rank
stepping while another skipped would leave the replicas different for the rest of the run).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from motion_vqvae import collectives
from motion_vqvae.errors import UserError

CONSECUTIVE_LIMIT = 5
"""Consecutive skipped steps that stop a run: one bad batch is skipped, a broken run is not trained on."""
SUSPECT_INPUT = 1e6
"""Normalized inputs are O(1): a batch with a larger (finite) value is the likely source of an overflow."""

BatchCheck = Callable[[torch.Tensor], tuple[bool, str]]
"""Checks the batch of the given window picks for a stop message: (suspect: NaN/inf or huge values, text)."""


class NonFiniteError(UserError):
    """A run stopped because its loss or gradients stayed non-finite; the message says where and why.

    A user error (one line, exit 2 from the commands): the cause is data or a setting, named in the text.
    """


class NonFiniteGuard:
    """Skips non-finite steps on the device; counts them and stops a run that stays non-finite.

    ``model`` is the module whose buffers a forward pass may change (restored on a skip). ``config`` holds
    the run's numeric settings (named in the stop message when one is the likely cause); ``describe``
    checks the batch of some window picks (only called when the run stops); ``limit`` consecutive skips
    stop the run.
    """

    def __init__(
        self,
        model: nn.Module,
        config: Mapping[str, Any],
        describe: BatchCheck | None = None,
        limit: int = CONSECUTIVE_LIMIT,
    ) -> None:
        self.model, self.config, self.describe, self.limit = model, config, describe, limit
        self.skipped = 0  # as of the last poll(): the count metrics.jsonl shows
        device = next(model.parameters()).device
        # skipped, streak (consecutive skips), step of the last skip; the last skip's term values
        self._counts = torch.zeros(3, dtype=torch.int64, device=device)
        self._last_terms = torch.zeros(0, device=device)
        self._term_names: list[str] = []
        self._buffers: dict[str, torch.Tensor] = {}
        self._picks: dict[int, torch.Tensor] = {}  # host copies of recent steps' window picks

    def before_forward(self, iteration: int, picks: torch.Tensor | None = None) -> None:
        """Copy the model's buffers on the device (restored if step ``iteration`` is skipped).

        ``picks`` (the step's window indices, CPU) are kept for the last few steps to name a bad batch.
        """
        self._buffers = {name: b.detach().clone() for name, b in self.model.named_buffers()}
        if picks is not None:
            self._picks[iteration] = picks
            self._picks.pop(iteration - 2 * self.limit, None)

    def apply(
        self,
        optimizer: torch.optim.Optimizer,
        iteration: int,
        terms: Mapping[str, torch.Tensor],
        grad_norm: torch.Tensor,
    ) -> None:
        """Step ``optimizer`` unless a loss term (``"total"``: the summed loss) or the gradient is non-finite.

        ``optimizer`` must support ``found_inf`` (a fused AdamW, as ``schedule.build_optimizer`` makes).
        Nothing here reads a tensor back to the host.
        """
        if not getattr(optimizer, "_step_supports_amp_scaling", False):
            raise TypeError(f"{type(optimizer).__name__} cannot skip a step on the device; use fused=True")
        values = torch.stack([t.detach().float().reshape(()) for t in terms.values()] + [grad_norm.float()])
        bad = collectives.all_reduce_sum((~torch.isfinite(values)).any().float()).clamp(max=1.0)  # 0-d
        optimizer.found_inf, optimizer.grad_scale = bad, None
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf, optimizer.grad_scale
        skip = bad.bool()
        with torch.no_grad():
            for name, buffer in self.model.named_buffers():
                buffer.copy_(torch.where(skip, self._buffers[name], buffer))
        self._term_names = [*terms, "gradient norm"]
        if self._last_terms.shape != values.shape:
            self._last_terms = torch.zeros_like(values)
        self._last_terms = torch.where(skip, values, self._last_terms)
        flag = skip.long()
        skipped, streak, last = self._counts.unbind()
        self._counts = torch.stack(
            [skipped + flag, (streak + flag) * flag, torch.where(skip, iteration, last)]
        )

    def poll(self, weights: Mapping[str, float] | None = None) -> None:
        """Read the counters (one host read); raise :class:`NonFiniteError` after ``limit`` skips in a row.

        ``weights`` are the loss terms' config weights (missing: 1), to say whether a term or its weight
        made the total non-finite.
        """
        counts = self._counts.tolist()
        self.skipped, streak, last = counts
        if streak < self.limit:
            return
        values = dict(zip(self._term_names, self._last_terms.tolist(), strict=True))
        where = _non_finite_term(values, weights or {})
        cause = self._likely_cause(self._picks.get(last))
        raise NonFiniteError(
            f"step {last}: non-finite loss ({where}) for {streak} consecutive steps ({self.skipped} skipped "
            "in this run); stopped without applying them, and no checkpoint holds a non-finite weight. "
            f"Likely cause: {cause}"
        )

    def _likely_cause(self, picks: torch.Tensor | None) -> str:
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
        suspect, data = (False, "")
        if self.describe is not None and picks is not None:
            suspect, data = self.describe(picks)
        if suspect:
            return f"the data batch: {data}; clean or re-preprocess those clips (scripts/preprocess.py)"
        peak = max((float(p.detach().abs().max()) for p in self.model.parameters() if p.numel()), default=0.0)
        return (
            f"a diverged update or a loss weight: the data batch looks sane ({data or 'no clip names'}) and "
            f"the largest weight is {peak:.3g}; lower lr (lr={lr}) or the loss weights, and resume from the "
            "last checkpoint"
        )


def _non_finite_term(values: Mapping[str, float], weights: Mapping[str, float]) -> str:
    """Which part of the total went non-finite first: a weighted term, the sum, or only the gradient."""
    for name, raw in values.items():
        if name in ("total", "gradient norm"):
            continue
        weight = float(weights.get(name, 1.0))
        if not math.isfinite(raw):
            return f"loss term '{name}' = {raw:.4g}"
        if not math.isfinite(raw * weight):
            return f"loss term '{name}' = {raw:.4g} x weight {weight}"
    total = values.get("total", math.nan)
    if not math.isfinite(total):
        return f"total loss = {total}"
    return f"gradient norm = {values.get('gradient norm')} with a finite loss {total:.4g}"


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
