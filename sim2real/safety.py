"""The safety filter between the decoder and the motors: position, velocity and acceleration limits, hold.

Every joint target a :class:`~sim2real.runtime.TokenDecoder` returns has passed :class:`SafetyFilter`. It is
a per-joint, per-frame limiter on the *emitted* trajectory, in discrete time at the motion's fps
(``dt = 1/fps``): with ``d`` the last frame's displacement, the next displacement ``d'`` is the requested one
clipped into

* the velocity bound ``|d'| <= v_max * dt``,
* the acceleration bound ``|d' - d| <= a_max * dt**2``,
* the braking bound: after moving by ``d'`` the joint must still be able to stop inside ``[lower, upper]``
  by decelerating at ``a_max``: with ``a = a_max * dt**2``, braking from ``d'`` covers ``d'-a + d'-2a + ...
  <= d'**2 / (2a)`` more, so ``d' + d'**2 / (2a)`` must fit in the room left before the limit. Without it a
  joint near a limit at full speed could not stop in time.

Braking by ``a_max`` (``d' = d - sign(d) * min(|d|, a)``) satisfies all three bounds whenever the previous
frame did, so the intersection is never empty: from rest at ``q`` inside the limits, *any* sequence of
targets (random, alternating, non-finite, missing) yields a trajectory that never leaves the position limits
and never exceeds the velocity or acceleration limits, the first frame included. A pose outside the limits
at ``reset`` is allowed (a robot may stand in the margin) but the filter only ever moves it back inward.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim2real.robot import RobotDescription, SafetySpec

log = logging.getLogger(__name__)

INTERVENTIONS = ("position", "velocity", "acceleration", "nonfinite", "hold")


@dataclass(frozen=True)
class SafetyLimits:
    """The limits a :class:`SafetyFilter` enforces, per real joint: rad, rad/s, rad/s², and the frame rate."""

    lower: np.ndarray  # (dof,) rad
    upper: np.ndarray  # (dof,) rad
    velocity: np.ndarray  # (dof,) rad/s
    acceleration: np.ndarray  # (dof,) rad/s²
    fps: float  # frames per second of the targets

    def __post_init__(self) -> None:
        arrays = {
            k: np.asarray(getattr(self, k), np.float64)
            for k in ("lower", "upper", "velocity", "acceleration")
        }
        dof = arrays["lower"].shape
        for key, value in arrays.items():
            if value.ndim != 1 or value.shape != dof or not np.all(np.isfinite(value)):
                raise ValueError(f"SafetyLimits.{key}: need {dof[0]} finite values, got {value.tolist()}")
            object.__setattr__(self, key, value)
        bad = np.flatnonzero(arrays["lower"] > arrays["upper"])
        if bad.size:
            raise ValueError(f"SafetyLimits: lower > upper at joints {bad.tolist()}")
        for key in ("velocity", "acceleration"):
            bad = np.flatnonzero(~(arrays[key] > 0))
            if bad.size:
                raise ValueError(f"SafetyLimits.{key} must be positive; joints {bad.tolist()} are not")
        if not (isinstance(self.fps, (int, float)) and np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"SafetyLimits.fps must be a positive number, got {self.fps!r}")

    @property
    def dof(self) -> int:
        return len(self.lower)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest keys ``position_limits``, ``velocity_limits``, ``acceleration_limits``."""
        return {
            "position_limits": {"lower": self.lower.tolist(), "upper": self.upper.tolist()},
            "velocity_limits": self.velocity.tolist(),
            "acceleration_limits": self.acceleration.tolist(),
        }

    @classmethod
    def from_manifest(
        cls, manifest: dict[str, Any], fps: float, source: str = "manifest.json"
    ) -> SafetyLimits:
        """Read the keys of :meth:`to_manifest`, at ``fps`` (the manifest's ``token_spec.fps``); any malformed
        value is a ValueError."""
        try:
            position = manifest["position_limits"]
            return cls(
                lower=np.asarray(position["lower"], np.float64),
                upper=np.asarray(position["upper"], np.float64),
                velocity=np.asarray(manifest["velocity_limits"], np.float64),
                acceleration=np.asarray(manifest["acceleration_limits"], np.float64),
                fps=float(fps),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: invalid safety limits ({exc}); re-export") from exc


class LimitStep:
    """The contract's one frame, written once for every array library: the *definition* of the filter.

    :class:`SafetyFilter` (numpy, float64, on the robot) and ``motion_vqvae.envs.safety.TorchSafetyFilter``
    (torch, batched over simulated robots) both advance their state with this object, so they cannot drift
    apart: same bounds, same braking on a non-finite frame, same counting. ``xp`` is the array module
    (``numpy`` or ``torch``: only ``minimum``, ``maximum``, ``sqrt``, ``abs``, ``where`` and ``.clip`` are
    used, which both spell alike) and ``convert`` turns a float64 numpy array into that library's array
    (dtype, device). The state is stacked ``[p, -p]`` / ``[d, -d]`` on an axis of 2 (``(..., 2, dof)``): the
    up and down directions are limited in one pass.
    """

    def __init__(self, limits: SafetyLimits, xp: Any = np, convert: Any = np.asarray) -> None:
        dt = 1.0 / float(limits.fps)
        change = limits.acceleration * dt * dt
        self.xp = xp
        self.max_step = convert(limits.velocity * dt)  # (dof,) rad per frame
        self.max_change = convert(change)  # (dof,) rad per frame, per frame
        self.two_over_change = convert(2.0 / change)
        self.sign = convert(np.array([[1.0], [-1.0]]))  # (2, 1): up, down
        self.bound = convert(np.stack([limits.upper, -limits.lower]))  # (2, dof): room = bound - signed p

    def __call__(self, signed_p: Any, signed_d: Any, target: Any, bad: Any) -> tuple[Any, Any, Any, Any]:
        """Advance one frame towards ``target`` (``(..., dof)``; ``None``: come to rest).

        ``bad`` (``(...,)`` bool, or ``None``) marks frames with any non-finite value: the whole frame is
        distrusted and the joints brake, as on a hold. Returns ``(signed_p, signed_d, step, wanted)``: the
        new state, the displacement taken and the one asked for (``(..., dof)``, rad).
        """
        xp, a = self.xp, self.max_change
        if target is None:
            wanted = xp.zeros_like(signed_p[..., 0, :])
        else:
            wanted = target - signed_p[..., 0, :]
            if bad is not None:
                wanted = xp.where(bad[..., None], 0.0, wanted)
        room = (self.bound - signed_p).clip(min=0.0)
        # The largest x >= 0 with x + x**2 / (2a) <= room (the braking bound of the module docstring).
        reach = a * (xp.sqrt(1.0 + room * self.two_over_change) - 1.0)
        allowed = xp.minimum(xp.minimum(signed_d + a, self.max_step), reach)
        step = xp.minimum(xp.maximum(wanted, -allowed[..., 1, :]), allowed[..., 0, :])
        signed_step = self.sign * step[..., None, :]
        return signed_p + signed_step, signed_step, step, wanted

    def attribute(self, wanted: Any, step: Any, previous: Any, bad: Any) -> dict[str, Any]:
        """Boolean ``(..., dof)`` masks of the joints each limit changed this frame; a changed joint counts
        under at least one, possibly two. ``previous`` is the last step taken.

        Exact comparisons: a step is either the wanted one or one of the bounds, never a rounded mix.
        A non-finite frame (``bad``) counts as ``nonfinite`` only, not under the limits. No branch on the
        data, so a GPU twin never waits for the device.
        """
        xp, vm, a = self.xp, self.max_step, self.max_change
        changed = step != wanted
        if bad is not None:
            changed = changed & ~bad[..., None]
        clipped = xp.minimum(xp.maximum(wanted, -vm), vm)
        velocity = changed & (xp.abs(wanted) > vm)
        acceleration = changed & (xp.abs(clipped - previous) > a)
        clipped = xp.minimum(xp.maximum(clipped, previous - a), previous + a)
        return {"velocity": velocity, "acceleration": acceleration, "position": changed & (step != clipped)}


class SafetyFilter:
    """Stateful limiter of joint targets ``[..., N, dof]`` (see the module docstring for the guarantees).

    ``reset(current)`` sets where the robot stands, at rest; ``__call__(frames)`` limits frames one after
    another from there and returns a new float64 array; ``hold(n)`` emits ``n`` frames that brake to a stop.
    ``interventions`` counts joint-frames changed by each limit, non-finite frames (a frame with any
    non-finite value is replaced, whole, by braking) and held frames, each per robot (a batch counts every
    row). Each frame is one step of :class:`LimitStep`, the definition the torch twin shares.

    Speed (a step must stay well under a millisecond): frames that already meet every bound (the usual
    case for decoded motion) are accepted by one vectorised check over all frames (the same result as
    :class:`LimitStep`, which would pass them unchanged); otherwise frames are limited one by one.
    """

    def __init__(self, limits: SafetyLimits) -> None:
        self.limits = limits
        self._step = LimitStep(limits)
        self._signed_p: np.ndarray | None = None  # (..., 2, dof) [p, -p], p the last emitted target
        self._signed_d: np.ndarray | None = None  # (..., 2, dof) [d, -d], d the last emitted step
        self._limiting = False  # whether the last call changed anything
        self.interventions: dict[str, int] = dict.fromkeys(INTERVENTIONS, 0)

    @property
    def ready(self) -> bool:
        """Whether a pose is known (``reset(current=...)`` was called)."""
        return self._signed_p is not None

    @property
    def position(self) -> np.ndarray | None:
        """The last emitted target ``(..., dof)`` (a copy), ``None`` before ``reset``."""
        return None if self._signed_p is None else self._signed_p[..., 0, :].copy()

    def reset(self, current: Any) -> None:
        """Start from ``current`` (real order, rad, ``[..., dof]``): the robot standing still there."""
        pose = np.array(current, dtype=np.float64)  # a copy: the caller's array is never aliased
        if pose.shape[-1:] != self.limits.lower.shape or not np.all(np.isfinite(pose)):
            raise ValueError(
                f"current pose must be finite with {self.limits.dof} joints last (real order, rad); "
                f"got shape {pose.shape}"
            )
        outside = (pose < self.limits.lower) | (pose > self.limits.upper)
        if np.any(outside):
            log.warning(
                "reset: joints %s start outside the position limits; they will only move back inward",
                np.flatnonzero(np.any(outside.reshape(-1, self.limits.dof), axis=0)).tolist(),
            )
        self._signed_p = self._step.sign * pose[..., None, :]
        self._signed_d = np.zeros_like(self._signed_p)
        self._limiting = False

    def forget(self) -> None:
        """Drop the pose: the next call needs ``reset(current=...)`` first."""
        self._signed_p = self._signed_d = None

    def __call__(self, frames: Any) -> np.ndarray:  # (..., N, dof) -> (..., N, dof) float64
        if self._signed_p is None:
            raise RuntimeError(
                "the safety filter does not know where the robot stands: call reset(current=q) with the "
                "measured joint positions (real order, rad) before streaming"
            )
        frames = np.array(frames, dtype=np.float64)
        if frames.ndim < 2 or frames.shape[-1] != self.limits.dof:
            raise ValueError(f"frames must be [..., N, {self.limits.dof}], got shape {frames.shape}")
        start_p, start_d = self._signed_p[..., 0, :], self._signed_d[..., 0, :]
        # Right after an intervention the next frames rarely pass unchanged: skip the check then.
        if not self._limiting and frames.shape[:-2] == start_p.shape[:-1]:
            if self._accept(frames, start_p, start_d):
                return frames
        bad = ~np.all(np.isfinite(frames), axis=-1)  # (..., N)
        any_bad = bool(bad.any())
        if any_bad:
            self.interventions["nonfinite"] += int(np.sum(bad))
            log.warning(
                "non-finite joint targets replaced by a stop (%d frame(s) so far)",
                self.interventions["nonfinite"],
            )
        out = np.empty(np.broadcast_shapes(frames.shape, (*start_p.shape[:-1], 1, 1)))
        counts, limiting = self.interventions, False
        for t in range(frames.shape[-2]):
            previous = self._signed_d[..., 0, :]
            frame_bad = bad[..., t] if any_bad else None
            self._signed_p, self._signed_d, step, wanted = self._step(
                self._signed_p, self._signed_d, frames[..., t, :], frame_bad
            )
            for key, mask in self._step.attribute(wanted, step, previous, frame_bad).items():
                changed = int(np.count_nonzero(mask))
                counts[key] += changed
                limiting = limiting or changed > 0
            out[..., t, :] = self._signed_p[..., 0, :]
        self._limiting = limiting
        return out

    def hold(self, count: int) -> np.ndarray:
        """``count`` frames that stop the joints (braking at the acceleration limit) and keep them still."""
        if self._signed_p is None:
            raise RuntimeError("hold: no pose known yet; call reset(current=q) first")
        self.interventions["hold"] += count * int(np.prod(self._signed_p.shape[:-2]))
        out = np.empty((*self._signed_p.shape[:-2], count, self.limits.dof))
        for t in range(count):
            self._signed_p, self._signed_d, _, _ = self._step(self._signed_p, self._signed_d, None, None)
            out[..., t, :] = self._signed_p[..., 0, :]
        return out

    def _accept(self, frames: np.ndarray, p: np.ndarray, d: np.ndarray) -> bool:
        """Take ``frames`` unchanged when every frame already meets every bound (one vectorised check)."""
        max_step, max_change = self._step.max_step, self._step.max_change
        if not np.isfinite(frames).all():
            return False
        path = np.concatenate([p[..., None, :], frames], axis=-2)  # (..., N+1, dof)
        step = np.diff(path, axis=-2)  # (..., N, dof)
        if np.any(np.abs(step) > max_step):
            return False
        if np.any(np.abs(np.diff(step, axis=-2, prepend=d[..., None, :])) > max_change):
            return False
        before = path[..., :-1, :]
        braking = step * np.abs(step) / self._step.two_over_change  # signed x**2 / (2a)
        if np.any(step + np.maximum(braking, 0.0) > np.maximum(self.limits.upper - before, 0.0)):
            return False
        if np.any(np.maximum(-braking, 0.0) - step > np.maximum(before - self.limits.lower, 0.0)):
            return False
        self._signed_p = self._step.sign * frames[..., -1:, :]
        self._signed_d = self._step.sign * step[..., -1:, :]
        return True


def limits_for_robot(
    hard: tuple[np.ndarray, np.ndarray, np.ndarray], spec: SafetySpec, fps: float, scale: float = 1.0
) -> SafetyLimits:
    """The filter's limits from the hardware's ``(lower, upper, velocity)`` (real order) and a SafetySpec.

    Position limits move ``position_margin`` inside (a range narrower than twice the margin is pinned at
    its middle); velocity is ``velocity_scale * scale`` of the hardware's, acceleration ``acceleration *
    scale``. ``scale`` (the export's ``safety_scale``) in (0, 1] only tightens.
    """
    if not 0 < scale <= 1:
        raise ValueError(f"safety_scale must be in (0, 1] (it only tightens the limits), got {scale}")
    lower, upper, velocity = (np.asarray(a, np.float64) for a in hard)
    middle = (lower + upper) / 2
    margin = spec.position_margin
    return SafetyLimits(
        lower=np.minimum(lower + margin, middle),
        upper=np.maximum(upper - margin, middle),
        velocity=velocity * spec.velocity_scale * scale,
        acceleration=np.full_like(lower, spec.acceleration * scale),
        fps=float(fps),
    )


def limits_in_force(
    limits: SafetyLimits, robots: list[RobotDescription], scale: float, source: str
) -> SafetyLimits:
    """Element-wise the tightest of ``limits`` (a manifest's) and each robot YAML's (:func:`limits_for_robot`
    at the export's ``safety_scale``): the highest lower bound, the lowest upper bound, the lowest velocity
    and acceleration limits. Nothing can widen the result; ranges that no longer overlap are refused."""
    lower, upper = limits.lower, limits.upper
    velocity, acceleration = limits.velocity, limits.acceleration
    for robot in robots:
        other = limits_for_robot(robot.real_limits(), robot.safety, limits.fps, scale)
        lower, upper = np.maximum(lower, other.lower), np.minimum(upper, other.upper)
        velocity = np.minimum(velocity, other.velocity)
        acceleration = np.minimum(acceleration, other.acceleration)
    empty = np.flatnonzero(lower > upper)
    if empty.size:
        names = [robots[0].real_joint_names[j] for j in empty] if robots else empty.tolist()
        raise ValueError(
            f"{source}: the position ranges of the manifest and the robot YAML do not overlap at {names}; "
            "re-export with a robot file whose ranges lie inside the packaged robot's, margin included"
        )
    return SafetyLimits(lower, upper, velocity, acceleration, limits.fps)


def check_within_robot(limits: SafetyLimits, names: list[str], robot: RobotDescription, source: str) -> None:
    """Refuse limits wider than the robot's hardware (YAML) or for another joint order, naming the joints."""
    if list(names) != list(robot.real_joint_names):
        raise ValueError(
            f"{source}: real_joint_names {list(names)[:4]}... differ from {robot.source}'s real order "
            f"{list(robot.real_joint_names)[:4]}...; the export was made for another robot or joint order"
        )
    lower, upper, velocity = robot.real_limits()
    tol = 1e-9
    problems = {
        "position_limits.lower below the robot's lower limit": limits.lower < lower - tol,
        "position_limits.upper above the robot's upper limit": limits.upper > upper + tol,
        "velocity_limits above the robot's velocity limit": limits.velocity > velocity * (1 + tol),
        f"acceleration_limits above safety.max_acceleration={robot.safety.max_acceleration}": (
            limits.acceleration > robot.safety.max_acceleration * (1 + tol)
        ),
    }
    for what, bad in problems.items():
        if np.any(bad):
            joints = [names[j] for j in np.flatnonzero(bad)]
            raise ValueError(
                f"{source}: {what} ({robot.source}) at {joints}; loosen limits in the robot YAML, not the "
                "manifest, and re-export"
            )
