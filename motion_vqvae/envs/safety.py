"""The joint-target safety filter in torch, batched over environments: what a simulator feeds its PD loops.

The batched twin of the robot runtime's :class:`sim2real.safety.SafetyFilter`: both advance frame by frame
with the one definition :class:`sim2real.safety.LimitStep`, so the limits, the braking on a non-finite frame
(a frame with any non-finite value is distrusted whole) and the counting are the same; row ``i`` of this
filter emits and counts what a numpy filter fed row ``i`` alone does (tests/test_safety_twins.py checks it
over the same hypothesis strategies). Every emitted frame lies inside the position limits, and neither its
velocity nor its acceleration exceed the per-joint limits, the first frame included, from the measured pose
with the robot standing still (``reset(rows, current=q)``); stepping a row with no pose is an error. In
float32 (the default, for simulators) "inside" holds up to float32 rounding; pass ``dtype=torch.float64``
for the runtime's exact numbers.
"""

from __future__ import annotations

import torch

from sim2real import SafetyLimits, load_robot
from sim2real.safety import INTERVENTIONS, LimitStep, limits_for_robot


def sim_joint_limits(robot: str, fps: float) -> SafetyLimits:
    """The limits the robot runtime enforces (the robot YAML's ``safety`` defaults), in simulator order."""
    description = load_robot(robot)
    return limits_for_robot(description.sim_limits(), description.safety, fps)


class TorchSafetyFilter:
    """``filter(frames[N, T, dof]) -> frames`` within the limits, continuing each row's last frame.

    ``interventions[kind]`` (``kind`` in :data:`sim2real.safety.INTERVENTIONS`) is an ``[N]`` int64 count per
    row, as :attr:`SafetyFilter.interventions` counts for one robot: joint-frames changed by each limit,
    non-finite frames, held frames.
    """

    def __init__(
        self,
        limits: SafetyLimits,
        num_rows: int,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.limits = limits
        self._step = LimitStep(limits, torch, lambda a: torch.as_tensor(a, dtype=dtype, device=device))
        num_dof = limits.dof
        self._signed_p = torch.zeros(num_rows, 2, num_dof, dtype=dtype, device=device)  # [p, -p]
        self._signed_d = torch.zeros(num_rows, 2, num_dof, dtype=dtype, device=device)  # [d, -d]
        self.known = torch.zeros(num_rows, dtype=torch.bool, device=device)  # (N,) pose known
        self.interventions = {
            key: torch.zeros(num_rows, dtype=torch.long, device=device) for key in INTERVENTIONS
        }

    def reset(self, rows: torch.Tensor, current: torch.Tensor | None) -> None:
        """Rows start over standing still at ``current[len(rows), dof]``; ``None``: pose unknown.

        A pose outside the position limits is allowed (a robot may stand in the margin); the filter then
        only ever moves those joints back inward, as the runtime's does.
        """
        if current is None:
            self.known[rows] = False
            return
        current = current.to(self._signed_p)
        count, dof = int(self.known[rows].numel()), self.limits.dof
        if current.shape != (count, dof) or not torch.isfinite(current).all():
            raise ValueError(
                f"reset: current must be finite joint positions of shape ({count}, {dof}), "
                f"got {tuple(current.shape)}"
            )
        self._signed_p[rows] = self._step.sign * current[:, None, :]
        self._signed_d[rows] = 0.0
        self.known[rows] = True

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:  # (N, T, dof) -> (N, T, dof)
        self._check_known()
        frames = frames.to(self._signed_p)
        bad = ~torch.isfinite(frames).all(dim=-1)  # (N, T): the whole frame is distrusted
        self.interventions["nonfinite"] += bad.sum(dim=1)
        out = torch.empty_like(frames)
        for t in range(frames.shape[1]):
            previous = self._signed_d[:, 0]
            self._signed_p, self._signed_d, step, wanted = self._step(
                self._signed_p, self._signed_d, frames[:, t], bad[:, t]
            )
            for key, mask in self._step.attribute(wanted, step, previous, bad[:, t]).items():
                self.interventions[key] += mask.sum(dim=-1)
            out[:, t] = self._signed_p[:, 0]
        return out

    def hold(self, count: int) -> torch.Tensor:
        """``count`` frames per row ``(N, count, dof)`` that brake every joint to a stop and keep it there."""
        self._check_known()
        self.interventions["hold"] += count
        out = torch.empty(self._signed_p.shape[0], count, self.limits.dof).to(self._signed_p)
        for t in range(count):
            self._signed_p, self._signed_d, _, _ = self._step(self._signed_p, self._signed_d, None, None)
            out[:, t] = self._signed_p[:, 0]
        return out

    def _check_known(self) -> None:
        if not bool(self.known.all()):
            rows = torch.nonzero(~self.known).flatten().tolist()
            raise RuntimeError(
                f"safety filter: rows {rows[:8]} have no measured pose; call reset(env_ids, current=q) "
                "with the simulator's joint positions before the first step"
            )
