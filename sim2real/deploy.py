"""A fixed-rate joint control loop around :class:`~sim2real.runtime.TokenDecoder`, with a watchdog: the part
of a robot deployment between "a token arrived" and "the motors got a PD command".

Decoded targets come at the motion's fps (30 frames/s, ``frames_per_token`` per token); motor drivers want
a command every control tick (500 Hz here). Each tick the loop

1. reads the measured joint positions and velocities and lets the :class:`~sim2real.watchdog.Watchdog`
   check them (tracking error against the command in force, overspeed, stale or non-finite reads),
2. when the next motion frame is needed and no token has arrived in time, holds (``decoder.hold()``: the
   safety filter brakes to a stop and keeps the last safe target) instead of waiting or extrapolating,
3. interpolates linearly between the two motion frames around the tick's time,
4. sends ``q_target`` with the per-joint ``kp``/``kd`` of the manifest (from the robot YAML),
5. counts an overrun when the tick's work took longer than the period.

Nothing raises once the robot has been commanded: a fault ends the run through the watchdog's hold (brake
to a stop, keep the target) or damping (``kp = 0``, ``kd > 0``) path, see :mod:`sim2real.watchdog`, and
:meth:`ControlLoop.run` returns a :class:`LoopLog` saying why it stopped. Only what happens before the first
command (an export without gains, a measured start pose the decoder refuses) raises.

Linear interpolation of a path that respects the filter's position and velocity limits respects them too,
so the 500 Hz commands keep every guarantee of the 30 fps targets. Everything is in the real motor order.

A robot (or a simulator standing in for one) implements :class:`Robot`; a token producer (a policy, a
prior, a network receiver) implements :class:`TokenFeed`. Numpy only, like the rest of :mod:`sim2real`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sim2real.runtime import TokenDecoder
from sim2real.watchdog import Trip, Watchdog, WatchdogConfig

log = logging.getLogger(__name__)


class Robot(Protocol):
    """The hardware interface, real motor order."""

    def read(self) -> tuple[np.ndarray, ...]:
        """Measured joint positions (rad) and velocities (rad/s), optionally a third element: the
        driver's timestamp of the sample (s), which the stale-read check then watches."""
        ...

    def send(self, q_target: np.ndarray, kp: np.ndarray, kd: np.ndarray) -> None:
        """One PD command: the drivers apply ``kp (q_target - q) - kd dq`` until the next one."""
        ...

    def wait(self, period: float) -> None:
        """Block until the next control tick, ``period`` seconds after the previous one."""
        ...


class TokenFeed(Protocol):
    """Where tokens come from; ``poll()`` returns the next token if it has arrived, else ``None``."""

    def poll(self) -> Any | None: ...


@dataclass
class LoopLog:
    """What one run did, tick by tick (``T`` ticks actually run) and token by token, and why it stopped."""

    time: np.ndarray  # (T,) s since the start
    commanded: np.ndarray  # (T, dof) q_target sent, rad
    measured: np.ndarray  # (T, dof) q read at the tick, rad
    held: list[bool] = field(default_factory=list)  # per token slot: True when no token was played
    compute_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (T,) loop time per tick, s
    stop_reason: str = "completed"  # "completed", or the first fault, the run's cause (sim2real.watchdog)
    trips: list[Trip] = field(default_factory=list)  # every watchdog event, in order
    overruns: int = 0  # ticks whose work took longer than the period
    max_consecutive_overruns: int = 0
    damping: bool = False  # whether the run ended by sending the damping command (kp = 0, kd > 0)
    interventions: dict[str, int] = field(default_factory=dict)  # the decoder's safety filter, at the end

    def report(self) -> str:
        """One line for a log: how long it ran, why it stopped, trips, overruns, holds."""
        seconds = float(self.time[-1] + (self.time[1] - self.time[0])) if len(self.time) > 1 else 0.0
        trips = "; ".join(f"{t.kind} at {t.time:.3f} s: {t.detail}" for t in self.trips) or "none"
        return (
            f"ran {len(self.time)} ticks ({seconds:.2f} s), stopped: {self.stop_reason}"
            f"{' (damping)' if self.damping else ''}; trips: {trips}; overruns: {self.overruns} "
            f"(max {self.max_consecutive_overruns} in a row); held token slots: {sum(self.held)}"
        )


def manifest_gains(decoder: TokenDecoder) -> tuple[np.ndarray, np.ndarray]:
    """``(kp, kd)`` per real joint from the export manifest, or KeyError saying how to get them there."""
    manifest = decoder.manifest
    if "kp" not in manifest or "kd" not in manifest:
        raise KeyError(
            f"{decoder.export_dir}/manifest.json has no kp/kd; add kp and kd per joint to the robot YAML "
            "and re-export"
        )
    kp, kd = np.asarray(manifest["kp"], np.float64), np.asarray(manifest["kd"], np.float64)
    dof = len(decoder.real_joint_names)
    if kp.shape != (dof,) or kd.shape != (dof,) or np.any(~(kp > 0)) or np.any(~(kd >= 0)):
        raise ValueError(f"{decoder.export_dir}/manifest.json: kp, kd must be {dof} gains, kp > 0, kd >= 0")
    return kp, kd


class ControlLoop:
    """``run(feed, seconds)``: stream tokens from ``feed`` into PD commands at ``rate_hz``, under a watchdog.

    ``watchdog`` sets the trip thresholds. :meth:`stop` may be called from the feed, a signal handler or
    another thread.
    """

    def __init__(
        self,
        decoder: TokenDecoder,
        robot: Robot,
        rate_hz: float = 500.0,
        watchdog: WatchdogConfig | None = None,
    ) -> None:
        if not rate_hz >= decoder.fps:
            raise ValueError(f"rate_hz ({rate_hz}) must be at least the motion fps ({decoder.fps})")
        self.decoder, self.robot, self.rate_hz = decoder, robot, float(rate_hz)
        self.kp, self.kd = manifest_gains(decoder)
        self.watchdog = watchdog or WatchdogConfig()
        kd = self.kd if self.watchdog.damping_kd is None else np.full_like(self.kd, self.watchdog.damping_kd)
        if np.any(~(kd > 0)):
            zero = [decoder.real_joint_names[j] for j in np.flatnonzero(~(kd > 0))]
            raise ValueError(
                f"{decoder.export_dir}/manifest.json: kd is 0 at joints {zero}; the damping fallback needs "
                "kd > 0: pass ControlLoop(..., watchdog=WatchdogConfig(damping_kd=...))"
            )
        self.damping_kd = kd
        self._stop_requested = False

    def stop(self) -> None:
        """End the run cleanly: brake every joint to a stop within the limits, keep the target, return."""
        self._stop_requested = True

    def run(self, feed: TokenFeed, seconds: float) -> LoopLog:
        """Run for ``seconds`` of control time, starting from where the robot stands; never raises once the
        first command is sent (see the module docstring): read ``stop_reason`` and ``trips`` of the log."""
        self._stop_requested = False
        period = 1.0 / self.rate_hz
        dog = Watchdog(self.watchdog, self.decoder.limits.velocity, period, self.decoder.real_joint_names)
        ticks = int(round(seconds * self.rate_hz))
        times = np.arange(ticks) * period
        dof = len(self.decoder.real_joint_names)
        commanded, measured, compute = np.empty((ticks, dof)), np.empty((ticks, dof)), np.empty(ticks)
        held: list[bool] = []
        trips: list[Trip] = []
        halting: str | None = None  # the hold fault being served: no more tokens, brake, end at rest
        rest_frame: int | None = None  # the frame from which the held target stands still
        damping = False
        first = self._read(0, 0.0)
        trip = first if isinstance(first, Trip) else dog.check_read(0, 0.0, first, None)
        if trip is not None:  # nothing commanded yet: damp and say why
            trips.append(trip)
            damping = self._damp(trip, None, trips)
            return self._log(times[:0], commanded[:0], measured[:0], held, compute[:0], trips, dog, damping)
        q0 = np.asarray(first[0], np.float64)
        self.decoder.reset(current=q0)
        path = [q0]  # motion frames from frame ``base`` on; frame i is due at i / fps
        base = 0
        last = q0
        k = 0
        while k < ticks:
            t = times[k]
            start = time.perf_counter()
            reading = self._read(k, t) if k else first
            trip = (
                reading if isinstance(reading, Trip) else (dog.check_read(k, t, reading, last) if k else None)
            )
            if trip is not None:
                trips.append(trip)
                damping = self._damp(trip, last, trips)
                break
            measured[k] = reading[0]
            if self._stop_requested and halting is None:
                halting = self._halt(Trip(k, t, "stop", "stop() was called"), trips)
            position = t * self.decoder.fps
            i = int(np.floor(position + 1e-9))
            if i - base > 64:  # forget frames already played
                del path[: i - base]
                base = i
            while i + 1 - base >= len(path):  # the next frame is due: decode the next token, or hold
                frames, fault = self._next_frames(feed, halting is not None, k, t)
                if fault is not None:
                    halting = self._halt(fault, trips)
                held.append(frames is None)
                if frames is None:
                    frames = self.decoder.hold()
                if halting is not None and rest_frame is None:
                    before = np.concatenate([path[-1][None], frames])
                    if np.array_equal(before[-1], before[-2]):
                        rest_frame = base + len(path) + len(frames) - 2
                path.extend(frames)
            alpha = position - i
            # p_i + alpha (p_i+1 - p_i): exactly p_i where the target stands still (the held end).
            commanded[k] = last = path[i - base] + alpha * (path[i + 1 - base] - path[i - base])
            if not self._send(k, t, last, trips):
                damping = self._damp(trips[-1], last, trips)
                break
            compute[k] = time.perf_counter() - start
            trip = dog.check_timing(k, t, compute[k])
            if trip is not None and halting is None:
                halting = self._halt(trip, trips)
            k += 1
            if halting is not None and rest_frame is not None and i > rest_frame:
                break  # the held target has stood still for a whole frame: done
            try:
                self.robot.wait(period)
            except Exception as exc:  # noqa: BLE001 - mid-motion: damp, never raise
                trips.append(Trip(k - 1, t, "robot_error", f"wait() raised {exc!r}"))
                damping = self._damp(trips[-1], last, trips)
                break
        return self._log(times[:k], commanded[:k], measured[:k], held, compute[:k], trips, dog, damping)

    def _read(self, k: int, t: float) -> tuple[np.ndarray, ...] | Trip:
        try:
            return tuple(self.robot.read())
        except Exception as exc:  # noqa: BLE001 - the robot interface failing is a fault, not a crash
            return Trip(k, t, "robot_error", f"read() raised {exc!r}")

    def _next_frames(
        self, feed: TokenFeed, halting: bool, k: int, t: float
    ) -> tuple[np.ndarray | None, Trip | None]:
        """The next token's frames; ``None`` frames mean hold (no token, or a fault returned beside)."""
        if halting:
            return None, None
        try:
            token = feed.poll()
        except Exception as exc:  # noqa: BLE001 - a failing producer must not stop the motors mid-motion
            return None, Trip(k, t, "feed_error", f"feed.poll() raised {exc!r}")
        if token is None:
            return None, None
        try:
            return self.decoder.step(token), None
        except (ValueError, TypeError) as exc:
            return None, Trip(k, t, "bad_token", f"token {token!r} refused: {exc}")
        except Exception as exc:  # noqa: BLE001
            return None, Trip(k, t, "decoder_error", f"decoder.step({token!r}) raised {exc!r}")

    def _halt(self, trip: Trip, trips: list[Trip]) -> str:
        trips.append(trip)
        log.warning("control loop: %s at %.3f s (%s); braking to a stop", trip.kind, trip.time, trip.detail)
        return trip.kind

    def _send(self, k: int, t: float, q_target: np.ndarray, trips: list[Trip]) -> bool:
        try:
            self.robot.send(q_target, self.kp, self.kd)
        except Exception as exc:  # noqa: BLE001 - mid-motion: damp, never raise
            trips.append(Trip(k, t, "robot_error", f"send() raised {exc!r}"))
            return False
        return True

    def _damp(self, trip: Trip, last: np.ndarray | None, trips: list[Trip]) -> bool:
        """The Unitree SDK's damping mode: ``kp = 0``, ``kd > 0`` on every joint; whether it was sent."""
        log.error("control loop: %s (%s); damping mode (kp=0, kd>0)", trip.kind, trip.detail)
        target = np.zeros_like(self.kd) if last is None else last  # ignored at kp = 0, but finite
        try:
            self.robot.send(target, np.zeros_like(self.kp), self.damping_kd)
        except Exception as exc:  # noqa: BLE001 - nothing more to do but report
            trips.append(Trip(trip.tick, trip.time, "robot_error", f"damping send() raised {exc!r}"))
            return False
        return True

    def _log(
        self,
        times: np.ndarray,
        commanded: np.ndarray,
        measured: np.ndarray,
        held: list[bool],
        compute: np.ndarray,
        trips: list[Trip],
        dog: Watchdog,
        damping: bool,
    ) -> LoopLog:
        reason = trips[0].kind if trips else "completed"  # the first fault is the cause; later ones follow
        result = LoopLog(
            times,
            commanded,
            measured,
            held,
            compute,
            stop_reason=reason,
            trips=trips,
            overruns=dog.overruns,
            max_consecutive_overruns=dog.max_consecutive_overruns,
            damping=damping,
            interventions=self.decoder.interventions,
        )
        (log.info if reason == "completed" else log.warning)("control loop: %s", result.report())
        return result
