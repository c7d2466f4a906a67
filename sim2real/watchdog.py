"""The control loop's watchdog: what makes :class:`~sim2real.deploy.ControlLoop` stop, and how.

Two ways to stop, after the Unitree SDK's practice:

* **hold** (``HOLD_FAULTS``): the commands are still meaningful, the token stream is not. The loop stops
  asking for tokens, the safety filter brakes every joint to a stop at its acceleration limit and keeps the
  last safe target under the normal PD gains, and the loop ends once the target is at rest. Causes: a bad
  token (out of range, wrong stream count, non-finite), the token feed or the decoder raising, ``N``
  consecutive overruns of the control period, or :meth:`~sim2real.deploy.ControlLoop.stop`.
* **damping** (``DAMPING_FAULTS``): the robot no longer follows its commands, or its state is unknown, so a
  position target could push it anywhere. The loop sends the damping command (``kp = 0``, ``kd > 0``: the
  motors resist motion, nothing pulls) and ends at once. Causes: the tracking error (measured pose against
  the command in force) above ``max_tracking_error`` for ``tracking_ticks`` ticks in a row (a blocked
  joint, a fall), a measured velocity above ``overspeed`` times the velocity limit (a fall, a runaway
  joint), a read that does not change for ``stale_ticks`` ticks (same timestamp, or the same ``q`` and
  ``dq`` to the bit: a dead bus), a non-finite or wrongly sized read, and the robot interface raising.

Numpy only, like the rest of :mod:`sim2real`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

HOLD_FAULTS = ("stop", "bad_token", "feed_error", "decoder_error", "overrun")
DAMPING_FAULTS = ("tracking_error", "overspeed", "stale_read", "bad_read", "robot_error")


@dataclass(frozen=True)
class WatchdogConfig:
    """Trip thresholds of :class:`Watchdog` (defaults for the G1 at 500 Hz on the manifest's gains)."""

    max_tracking_error: float = 0.4
    """rad: a joint further than this from the command in force, ``tracking_ticks`` ticks in a row, trips
    (the G1 on the manifest gains lags a decoded clip by at most 0.25 rad; a fall reaches 0.4 within 1 s)."""
    tracking_ticks: int = 25
    """consecutive ticks over ``max_tracking_error`` before the trip (50 ms at 500 Hz: PD lag is shorter)."""
    overspeed: float = 2.0
    """a measured joint speed above ``overspeed`` x the filter's velocity limit trips at once."""
    stale_ticks: int = 10
    """consecutive reads with an unchanged timestamp (or bit-identical ``q`` and ``dq``) before the trip."""
    max_overruns: int = 10
    """consecutive ticks whose compute exceeds the control period before the loop holds."""
    damping_kd: float | None = None
    """N m s/rad of the damping command on every joint; ``None``: the manifest's ``kd`` (must be > 0)."""

    def __post_init__(self) -> None:
        positive = {
            "max_tracking_error": self.max_tracking_error,
            "overspeed": self.overspeed,
            "tracking_ticks": self.tracking_ticks,
            "stale_ticks": self.stale_ticks,
            "max_overruns": self.max_overruns,
        }
        if self.damping_kd is not None:
            positive["damping_kd"] = self.damping_kd
        for name, value in positive.items():
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"WatchdogConfig.{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class Trip:
    """One watchdog event: at control tick ``tick`` (``time`` s), ``kind`` (a fault name), ``detail``."""

    tick: int
    time: float
    kind: str
    detail: str


class Watchdog:
    """Per-tick checks of the measured state and of the loop's timing; each returns a :class:`Trip` or None.

    ``velocity_limit`` (rad/s per joint, the filter's) scales the overspeed check; ``names`` (real order)
    name the joint in a trip's detail.
    """

    def __init__(
        self, config: WatchdogConfig, velocity_limit: np.ndarray, period: float, names: list[str]
    ) -> None:
        self.config = config
        self.names = list(names)
        self.velocity_limit = np.asarray(velocity_limit, np.float64)
        self.period = float(period)
        self._tracking = 0  # consecutive ticks over the tracking error
        self._stale = 0  # consecutive unchanged reads
        self._last_read: tuple[bytes, ...] | None = None
        self.overruns = 0  # ticks over the period, all together
        self._consecutive_overruns = 0
        self.max_consecutive_overruns = 0

    def check_read(self, tick: int, now: float, reading: Any, command: np.ndarray | None) -> Trip | None:
        """Check one ``robot.read()`` result: ``(q, dq)`` or ``(q, dq, stamp)``; ``command``: the target
        in force while the robot moved to ``q`` (``None`` before the first command)."""
        dof = len(self.velocity_limit)
        try:
            q, dq = (np.asarray(v, np.float64) for v in reading[:2])
            stamp = reading[2] if len(reading) > 2 else None
        except (TypeError, ValueError, IndexError) as exc:
            return Trip(tick, now, "bad_read", f"read() must return (q, dq[, stamp]): {exc}")
        if q.shape != (dof,) or dq.shape != (dof,):
            return Trip(tick, now, "bad_read", f"read() gave q {q.shape}, dq {dq.shape}; expected ({dof},)")
        bad = np.flatnonzero(~np.isfinite(q) | ~np.isfinite(dq))
        if bad.size:
            joints = [self.names[j] for j in bad]
            return Trip(tick, now, "bad_read", f"non-finite q or dq at {joints}")
        key = (np.asarray(stamp, np.float64).tobytes(),) if stamp is not None else (q.tobytes(), dq.tobytes())
        self._stale = self._stale + 1 if key == self._last_read else 0
        self._last_read = key
        if self._stale >= self.config.stale_ticks:
            what = "timestamp" if stamp is not None else "q and dq"
            return Trip(tick, now, "stale_read", f"the same {what} for {self._stale + 1} reads")
        speed = np.abs(dq) / self.velocity_limit
        if speed.max() > self.config.overspeed:
            j = int(np.argmax(speed))
            return Trip(
                tick,
                now,
                "overspeed",
                f"{self.names[j]} moves at {dq[j]:.2f} rad/s, over {self.config.overspeed} x its limit "
                f"{self.velocity_limit[j]:.2f}",
            )
        if command is None:
            return None
        error = np.abs(q - command)
        self._tracking = self._tracking + 1 if error.max() > self.config.max_tracking_error else 0
        if self._tracking >= self.config.tracking_ticks:
            j = int(np.argmax(error))
            return Trip(
                tick,
                now,
                "tracking_error",
                f"{self.names[j]} is {error[j]:.3f} rad from its command (limit "
                f"{self.config.max_tracking_error}) for {self._tracking} ticks",
            )
        return None

    def check_timing(self, tick: int, now: float, compute_s: float) -> Trip | None:
        """Count an overrun when ``compute_s`` exceeds the period; trip after ``max_overruns`` in a row."""
        if compute_s <= self.period:
            self._consecutive_overruns = 0
            return None
        self.overruns += 1
        self._consecutive_overruns += 1
        self.max_consecutive_overruns = max(self.max_consecutive_overruns, self._consecutive_overruns)
        if self._consecutive_overruns >= self.config.max_overruns:
            return Trip(
                tick,
                now,
                "overrun",
                f"{self._consecutive_overruns} ticks in a row over the {self.period * 1e3:.2f} ms period "
                f"(last {compute_s * 1e3:.2f} ms)",
            )
        return None
