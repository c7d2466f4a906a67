"""The joint-target safety filter in torch, batched over environments: what a simulator feeds its PD loops.

Same contract and limits as the robot runtime's filter (:mod:`sim2real.safety`): every emitted frame lies
inside the position limits, and neither its velocity nor its acceleration (first and second differences at
the motion fps) exceed the per-joint limits, the first frame included: a sequence starts from the measured
pose with the robot standing still (``reset(rows, current=q)``); stepping a row with no pose is an error.

Braking keeps it inside the position limits: a joint may only move at a speed from which it can still stop
before a limit at its acceleration limit (``v + v^2 / (2a) <= room``, a bound the discrete stop never
exceeds), so position, velocity and acceleration hold together whatever the network outputs.
"""

from __future__ import annotations

import numpy as np
import torch

from sim2real import SafetyLimits, load_robot
from sim2real.safety import limits_for_robot


def sim_joint_limits(robot: str, fps: float) -> SafetyLimits:
    """The limits the robot runtime enforces (the robot YAML's ``safety`` defaults), in simulator order."""
    description = load_robot(robot)
    return limits_for_robot(description.sim_limits(), description.safety, fps)


class TorchSafetyFilter:
    """``filter(frames[N, T, dof]) -> frames`` within the limits, continuing each row's last frame.

    ``interventions[N]`` counts, per row, the frames the filter changed (by more than 1e-6 rad).
    """

    def __init__(self, limits: SafetyLimits, num_rows: int, device: torch.device | str) -> None:
        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, np.float64), dtype=torch.float32, device=device)

        self.lower, self.upper = tensor(limits.lower), tensor(limits.upper)
        self.max_vel = tensor(limits.velocity / limits.fps)  # rad per frame
        self.max_acc = tensor(limits.acceleration / limits.fps**2)  # rad per frame^2
        num_dof = len(self.lower)
        self.last = torch.zeros(num_rows, num_dof, device=device)  # (N, dof) last emitted frame
        self.vel = torch.zeros(num_rows, num_dof, device=device)  # (N, dof) its velocity, rad per frame
        self.known = torch.zeros(num_rows, dtype=torch.bool, device=device)  # (N,) pose known
        self.interventions = torch.zeros(num_rows, dtype=torch.long, device=device)

    def reset(self, rows: torch.Tensor, current: torch.Tensor | None) -> None:
        """Rows start over standing still at ``current[len(rows), dof]``; ``None``: pose unknown.

        A pose outside the position limits is allowed (a robot may stand in the margin); the filter then
        only ever moves those joints back inward, as the runtime's does.
        """
        if current is None:
            self.known[rows] = False
            return
        current = current.to(self.last)
        count = int(self.known[rows].numel())
        if current.shape != (count, self.last.shape[1]) or not torch.isfinite(current).all():
            raise ValueError(
                f"reset: current must be finite joint positions of shape ({count}, {self.last.shape[1]}), "
                f"got {tuple(current.shape)}"
            )
        self.last[rows] = current  # a pose outside the limits is kept: the filter only moves it back inward
        self.vel[rows] = 0.0
        self.known[rows] = True

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:  # (N, T, dof) -> (N, T, dof)
        if not bool(self.known.all()):
            rows = torch.nonzero(~self.known).flatten().tolist()
            raise RuntimeError(
                f"safety filter: rows {rows[:8]} have no measured pose; call reset(env_ids, current=q) "
                "with the simulator's joint positions before the first step"
            )
        out = torch.empty_like(frames)
        for t in range(frames.shape[1]):
            desired = torch.where(torch.isfinite(frames[:, t]), frames[:, t], self.last)  # NaN: stay
            room_up = (self.upper - self.last).clamp_min(0.0)
            room_down = (self.last - self.lower).clamp_min(0.0)
            a = self.max_acc
            brake_hi = torch.sqrt(a * a + 2 * a * room_up) - a  # fastest speed that still stops in time
            brake_lo = a - torch.sqrt(a * a + 2 * a * room_down)
            hi = torch.minimum(torch.minimum(self.vel + a, self.max_vel), brake_hi)
            lo = torch.maximum(torch.maximum(self.vel - a, -self.max_vel), brake_lo)
            vel = torch.minimum(torch.maximum(desired - self.last, lo), hi)
            brake = torch.sign(self.vel) * (self.vel.abs() - a).clamp_min(0.0)  # lo > hi only by rounding
            vel = torch.where(lo > hi, brake, vel)
            inside_lo = torch.minimum(self.lower, self.last)  # never outward, never a jump inward
            inside_hi = torch.maximum(self.upper, self.last)
            frame = torch.minimum(torch.maximum(self.last + vel, inside_lo), inside_hi)
            self.interventions += ((frame - frames[:, t]).abs() > 1e-6).any(dim=1).long()
            self.vel, self.last = frame - self.last, frame
            out[:, t] = frame
        return out
