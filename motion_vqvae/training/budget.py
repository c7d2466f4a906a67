"""Fitting a schedule to a time budget, from measured step and validation times.

A run given ``--time-budget`` must anneal by its deadline: ``total_iter`` is lowered to what the measured
step time allows, and re-fitted as the machine's load changes, so the cosine schedule ends when the budget
does instead of stopping at a fraction of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from motion_vqvae.training.schedule import effective_warmup, fitted_total_iter, set_total_iter

log = logging.getLogger(__name__)


class BudgetFitter:
    """Sets ``total_iter`` to what a time budget allows, from measured step and validation times.

    ``owner`` is what holds the schedule: anything with ``cfg`` (a config with ``total_iter``), ``scheduler``
    and ``iteration`` (a :class:`~motion_vqvae.training.trainer.Trainer`). The first fit comes after
    ``TIMED_STEPS`` steps or ``TIMED_SECONDS`` of them, whichever is first (a slow machine must not spend
    its budget measuring). Later fits, every ``REFIT_EVERY`` steps (on the median of the latest ones) and
    after each validation, follow a machine whose load changes, up or down (never above the configured
    ``total_iter``); a change under ``TOLERANCE`` is ignored so the schedule stays smooth. ``before_refit``
    (e.g. the command line's thread re-check) runs before every fit after the first: a machine whose load
    changed may want another thread count, which changes the step time the fit is based on.
    """

    UNTIMED_STEPS = 3  # first steps pay one-off costs (allocation, thread start-up)
    TIMED_STEPS, TIMED_SECONDS, REFIT_EVERY, TOLERANCE = 20, 10.0, 25, 0.05

    def __init__(self, owner: Any, deadline: float, before_refit: Callable[[], bool] | None = None) -> None:
        self.owner, self.deadline = owner, deadline
        self.before_refit = before_refit
        self.cap = owner.cfg.total_iter
        self.seen = 0
        self.times: list[float] = []
        self.step_s: float | None = None
        self.val_s = 0.0

    def after_step(self, seconds: float) -> bool:
        """Count a step of ``seconds``; True when ``total_iter`` changed."""
        self.seen += 1
        if self.seen <= self.UNTIMED_STEPS:
            return False
        self.times = [*self.times[-2 * self.REFIT_EVERY + 1 :], seconds]
        first = self.step_s is None and (
            len(self.times) >= self.TIMED_STEPS
            or (len(self.times) >= 3 and sum(self.times) >= self.TIMED_SECONDS)
        )
        if first or (self.step_s is not None and self.seen % self.REFIT_EVERY == 0):
            if not first and self.before_refit is not None and self.before_refit():
                self.times = []  # another thread count: the old step times no longer hold
                return False
            self.step_s = float(np.median(self.times))
            return self._fit()
        return False

    def after_validation(self, seconds: float) -> bool:
        """Count a validation of ``seconds``; True when ``total_iter`` changed."""
        self.val_s = max(self.val_s, seconds)
        return self.step_s is not None and self._fit()

    def _fit(self) -> bool:
        owner = self.owner
        assert self.step_s is not None
        before = owner.cfg.total_iter
        seconds_left = self.deadline - time.monotonic()
        total = fitted_total_iter(owner.cfg, owner.iteration, seconds_left, self.step_s, self.val_s, self.cap)
        if abs(total - before) <= self.TOLERANCE * (before - owner.iteration):
            return False
        owner.cfg = set_total_iter(owner.cfg, owner.scheduler, total)
        log.info(
            "time budget: %.1f ms/step, %.1f s/validation -> total_iter %d (was %d), warmup %d, "
            "so the schedule anneals by the deadline",
            self.step_s * 1e3,
            self.val_s,
            total,
            before,
            effective_warmup(owner.cfg),
        )
        return True
