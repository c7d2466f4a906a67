"""A fixed-rate joint control loop around :class:`~sim2real.runtime.TokenDecoder`: the part of a robot
deployment between "a token arrived" and "the motors got a PD command".

Decoded targets come at the motion's fps (30 frames/s, ``frames_per_token`` per token); motor drivers want
a command every control tick (500 Hz here). Each tick the loop

1. reads the measured joint positions (only the first one matters: the decoder starts from it),
2. when the next motion frame is needed and no token has arrived in time, holds (``decoder.hold()``: the
   safety filter brakes to a stop and keeps the last safe target) instead of waiting or extrapolating,
3. interpolates linearly between the two motion frames around the tick's time,
4. sends ``q_target`` with the per-joint ``kp``/``kd`` of the manifest (from the robot YAML).

Linear interpolation of a path that respects the filter's position and velocity limits respects them too,
so the 500 Hz commands keep every guarantee of the 30 fps targets. Everything is in the real motor order.

A robot (or a simulator standing in for one) implements :class:`Robot`; a token producer (a policy, a
prior, a network receiver) implements :class:`TokenFeed`. Numpy only, like the rest of :mod:`sim2real`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sim2real.runtime import TokenDecoder


class Robot(Protocol):
    """The hardware interface, real motor order."""

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured joint positions (rad) and velocities (rad/s)."""
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
    """What one run did, tick by tick (``T`` ticks) and token by token."""

    time: np.ndarray  # (T,) s since the start
    commanded: np.ndarray  # (T, dof) q_target sent, rad
    measured: np.ndarray  # (T, dof) q read at the tick, rad
    held: list[bool] = field(default_factory=list)  # per token slot: True when no token arrived in time
    compute_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (T,) loop time per tick, s


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
    """``run(feed, seconds)``: stream tokens from ``feed`` into PD commands at ``rate_hz``."""

    def __init__(self, decoder: TokenDecoder, robot: Robot, rate_hz: float = 500.0) -> None:
        if not rate_hz >= decoder.fps:
            raise ValueError(f"rate_hz ({rate_hz}) must be at least the motion fps ({decoder.fps})")
        self.decoder, self.robot, self.rate_hz = decoder, robot, float(rate_hz)
        self.kp, self.kd = manifest_gains(decoder)

    def run(self, feed: TokenFeed, seconds: float) -> LoopLog:
        """Run for ``seconds`` of control time, starting from where the robot stands."""
        q0, _ = self.robot.read()
        self.decoder.reset(current=q0)
        path = [np.asarray(q0, np.float64)]  # motion frames from frame ``base`` on; frame i is due at i / fps
        base = 0
        held: list[bool] = []
        ticks = int(round(seconds * self.rate_hz))
        period = 1.0 / self.rate_hz
        times = np.arange(ticks) * period
        commanded = np.empty((ticks, len(q0)))
        measured = np.empty((ticks, len(q0)))
        compute = np.empty(ticks)
        for k, t in enumerate(times):
            start = time.perf_counter()
            measured[k], _ = self.robot.read()
            position = t * self.decoder.fps
            i = int(np.floor(position + 1e-9))
            if i - base > 64:  # forget frames already played
                del path[: i - base]
                base = i
            while i + 1 - base >= len(path):  # the next frame is due: decode the next token, or hold
                token = feed.poll()
                held.append(token is None)
                frames = self.decoder.hold() if token is None else self.decoder.step(token)
                path.extend(frames)
            alpha = position - i
            commanded[k] = (1.0 - alpha) * path[i - base] + alpha * path[i + 1 - base]
            self.robot.send(commanded[k], self.kp, self.kd)
            compute[k] = time.perf_counter() - start
            self.robot.wait(period)
        return LoopLog(times, commanded, measured, held, compute)
