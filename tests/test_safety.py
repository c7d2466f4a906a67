"""SafetyFilter: from rest at any pose, no sequence of targets leaves the position limits or exceeds the
velocity or acceleration limits (first frame included); hold, non-finite targets, counters, state copies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim2real import SafetyFilter, SafetyLimits, load_robot
from sim2real.safety import limits_for_robot

FPS = 30.0
TOL = 1e-9


def g1_limits() -> SafetyLimits:
    robot = load_robot("g1_29dof")
    return limits_for_robot(robot.real_limits(), robot.safety, FPS)


def assert_within(limits: SafetyLimits, start: np.ndarray, frames: np.ndarray) -> None:
    """Positions inside the limits, |velocity| and |acceleration| (finite differences) within theirs.

    The robot stands still at ``start``: two copies of it precede the frames, so the first frame's
    velocity and acceleration are measured from rest.
    """
    path = np.concatenate([np.broadcast_to(start, (2, limits.dof)), frames.reshape(-1, limits.dof)])
    velocity = np.diff(path, axis=0) * limits.fps
    accel = np.diff(path, 2, axis=0) * limits.fps**2
    assert np.all(frames >= np.minimum(limits.lower, start) - 1e-12)
    assert np.all(frames <= np.maximum(limits.upper, start) + 1e-12)
    assert np.all(np.abs(velocity) <= limits.velocity * (1 + TOL) + 1e-12)
    assert np.all(np.abs(accel) <= limits.acceleration * (1 + TOL) + 1e-9)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    pattern=st.sampled_from(["uniform", "alternating", "extremes", "nan"]),
    frames=st.integers(1, 120),
)
def test_no_target_sequence_breaks_a_limit(seed: int, pattern: str, frames: int) -> None:
    limits = g1_limits()
    rng = np.random.default_rng(seed)
    start = rng.uniform(limits.lower, limits.upper)
    wide_lo, wide_hi = limits.lower - 1.0, limits.upper + 1.0
    if pattern == "uniform":
        targets = rng.uniform(wide_lo, wide_hi, (frames, limits.dof))
    elif pattern == "alternating":
        targets = np.where(np.arange(frames)[:, None] % 2 == 0, wide_lo, wide_hi)
    elif pattern == "extremes":
        targets = np.where(rng.random((frames, limits.dof)) < 0.5, wide_lo, wide_hi)
    else:
        targets = rng.uniform(wide_lo, wide_hi, (frames, limits.dof))
        targets[rng.random(frames) < 0.3, rng.integers(limits.dof)] = np.nan
    filt = SafetyFilter(limits)
    filt.reset(start)
    out = np.concatenate([filt(targets[i : i + 4]) for i in range(0, frames, 4)])
    out = np.concatenate([out, filt.hold(30)])
    assert_within(limits, start, out)


def test_bang_bang_at_the_limits_stops_in_time_and_reaches_them() -> None:
    limits = g1_limits()
    filt = SafetyFilter(limits)
    start = (limits.lower + limits.upper) / 2
    filt.reset(start)
    up = filt(np.broadcast_to(limits.upper + 5, (400, limits.dof)))
    assert_within(limits, start, up)
    np.testing.assert_allclose(up[-1], limits.upper, atol=1e-3)  # it gets there, and stops
    assert filt.interventions["velocity"] > 0 and filt.interventions["acceleration"] > 0
    assert filt.interventions["position"] > 0


def test_first_frame_ramps_from_rest() -> None:
    limits = g1_limits()
    filt = SafetyFilter(limits)
    middle = (limits.lower + limits.upper) / 2
    filt.reset(middle)
    first = filt(limits.upper[None])[0]
    wide = limits.upper - limits.lower > 2.0  # far from both limits: only velocity and acceleration bind
    expected = np.minimum(limits.acceleration / FPS**2, limits.velocity / FPS)
    np.testing.assert_allclose((first - middle)[wide], expected[wide])


def test_hold_brakes_within_the_acceleration_limit_then_stays() -> None:
    limits = g1_limits()
    filt = SafetyFilter(limits)
    start = (limits.lower + limits.upper) / 2
    filt.reset(start)
    moving = filt(np.broadcast_to(limits.upper, (10, limits.dof)))
    held = filt.hold(40)
    assert_within(limits, start, np.concatenate([moving, held]))
    np.testing.assert_array_equal(held[-1], held[-2])  # stopped: the last safe target is kept
    assert filt.interventions["hold"] == 40


def test_state_is_a_copy_and_step_needs_a_pose() -> None:
    limits = g1_limits()
    filt = SafetyFilter(limits)
    with pytest.raises(RuntimeError, match=r"reset\(current=q\)"):
        filt(limits.lower[None])
    pose = (limits.lower + limits.upper) / 2
    filt.reset(pose)
    out = filt(pose[None])
    pose[:] = 99.0
    out[:] = 99.0
    assert np.all(filt.position < 10)


def test_nonfinite_targets_stop_and_are_counted() -> None:
    limits = g1_limits()
    filt = SafetyFilter(limits)
    start = (limits.lower + limits.upper) / 2
    filt.reset(start)
    out = filt(np.full((3, limits.dof), np.nan))
    np.testing.assert_array_equal(out, np.broadcast_to(start, out.shape))
    assert filt.interventions["nonfinite"] == 3


def test_start_outside_the_limits_only_moves_inward() -> None:
    limits = g1_limits()
    filt = SafetyFilter(limits)
    start = limits.upper + 0.02  # standing in the soft margin
    filt.reset(start)
    out = filt(np.broadcast_to(limits.upper + 1, (30, limits.dof)))
    assert np.all(out <= start) and np.all(np.diff(out, axis=0) <= 0)


def test_limits_refuse_nan_and_reversed() -> None:
    limits = g1_limits()
    with pytest.raises(ValueError, match="finite"):
        SafetyLimits(limits.lower * np.nan, limits.upper, limits.velocity, limits.acceleration, FPS)
    with pytest.raises(ValueError, match="lower > upper"):
        SafetyLimits(limits.upper, limits.lower, limits.velocity, limits.acceleration, FPS)
    with pytest.raises(ValueError, match="safety_scale"):
        limits_for_robot(load_robot("g1_29dof").real_limits(), load_robot("g1_29dof").safety, FPS, 2.0)
