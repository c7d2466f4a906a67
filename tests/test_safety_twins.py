"""One safety contract: the torch filter (batched, simulators) emits and counts what the numpy filter (the
robot) does, row by row, over the same hypothesis strategies: position, velocity and acceleration limits,
non-finite frames, holds, and the intervention counters."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_safety import assert_within, g1_limits

from motion_vqvae.envs.safety import TorchSafetyFilter
from sim2real import SafetyFilter, SafetyLimits
from sim2real.safety import INTERVENTIONS

PATTERNS = ("smooth", "uniform", "alternating", "extremes", "nan", "all_nan")
ROWS = 3


def _chunk(limits: SafetyLimits, pattern: str, rng: np.random.Generator, frames: int) -> np.ndarray:
    """``(ROWS, frames, dof)`` targets of one kind; ``smooth`` stays inside every bound (the fast path)."""
    lo, hi, shape = limits.lower - 1.0, limits.upper + 1.0, (ROWS, frames, limits.dof)
    if pattern == "smooth":
        return np.zeros(shape)  # placeholder: filled relative to the filter's pose by the caller
    if pattern == "alternating":
        return np.broadcast_to(np.where(np.arange(frames)[:, None] % 2 == 0, lo, hi), shape).copy()
    if pattern == "extremes":
        return np.where(rng.random(shape) < 0.5, lo, hi)
    targets = rng.uniform(lo, hi, shape)
    if pattern == "nan":
        targets[rng.random(shape) < 0.02] = np.nan  # single joints: the whole frame brakes
        targets[rng.random(shape[:2]) < 0.1, rng.integers(limits.dof)] = np.inf
    elif pattern == "all_nan":
        targets[:] = np.nan
    return targets


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[np.ndarray, list[tuple[str, np.ndarray | int]]]:
    """A start pose per row and a list of operations: ``("frames", targets)`` or ``("hold", count)``."""
    limits = g1_limits()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    start = rng.uniform(limits.lower, limits.upper, (ROWS, limits.dof))
    ops: list[tuple[str, np.ndarray | int]] = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()) and draw(st.booleans()):
            ops.append(("hold", draw(st.integers(1, 6))))
        else:
            pattern = draw(st.sampled_from(PATTERNS))
            ops.append((pattern, _chunk(limits, pattern, rng, draw(st.integers(1, 9)))))
    return start, ops


def _run_both(
    start: np.ndarray, ops: list, dtype: torch.dtype
) -> tuple[np.ndarray, np.ndarray, list[dict[str, int]], dict[str, torch.Tensor]]:
    """Feed ``ops`` to one numpy filter per row and to one torch filter over all rows."""
    limits = g1_limits()
    singles = [SafetyFilter(limits) for _ in range(ROWS)]
    for row, filt in enumerate(singles):
        filt.reset(start[row])
    twin = TorchSafetyFilter(limits, ROWS, "cpu", dtype=dtype)
    twin.reset(torch.arange(ROWS), torch.as_tensor(start))
    ours, theirs = [], []
    for kind, arg in ops:
        if kind == "hold":
            ours.append(np.stack([f.hold(arg) for f in singles]))
            theirs.append(twin.hold(arg).double().numpy())
            continue
        if kind == "smooth":  # small steps from where each row stands: every bound already met
            pose = np.stack([f.position for f in singles])
            steps = np.arange(1, arg.shape[1] + 1)[None, :, None] * 1e-4
            arg = np.clip(pose[:, None, :] + steps, limits.lower, limits.upper)
        ours.append(np.stack([f(arg[row]) for row, f in enumerate(singles)]))
        theirs.append(twin(torch.as_tensor(arg, dtype=dtype)).double().numpy())
    counts = [f.interventions for f in singles]
    return np.concatenate(ours, axis=1), np.concatenate(theirs, axis=1), counts, twin.interventions


@settings(max_examples=30, deadline=None)
@given(scenario=scenarios())
def test_torch_twin_emits_and_counts_what_the_numpy_filter_does(scenario) -> None:
    start, ops = scenario
    ours, theirs, counts, twin_counts = _run_both(start, ops, torch.float64)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-12)
    for row in range(ROWS):
        assert {k: int(twin_counts[k][row]) for k in INTERVENTIONS} == counts[row], row
        assert_within(g1_limits(), start[row], ours[row])


@settings(max_examples=10, deadline=None)
@given(scenario=scenarios())
def test_float32_twin_keeps_the_limits_up_to_rounding(scenario) -> None:
    start, ops = scenario
    ours, theirs, _, _ = _run_both(start, ops, torch.float32)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-4)
    limits = g1_limits()
    for row in range(ROWS):
        assert np.all(theirs[row] >= np.minimum(limits.lower, start[row]) - 1e-5)
        assert np.all(theirs[row] <= np.maximum(limits.upper, start[row]) + 1e-5)


def test_a_nonfinite_frame_brakes_whole_and_counts_once_in_both() -> None:
    limits = g1_limits()
    start = (limits.lower + limits.upper) / 2
    numpy_filter, held = SafetyFilter(limits), SafetyFilter(limits)
    numpy_filter.reset(start)
    held.reset(start)
    torch_filter = TorchSafetyFilter(limits, 1, "cpu", dtype=torch.float64)
    torch_filter.reset(torch.tensor([0]), torch.as_tensor(start[None]))
    moving = np.broadcast_to(limits.upper, (6, limits.dof)).copy()
    one_nan = moving[:1].copy()
    one_nan[0, 3] = np.nan  # one joint corrupt: the others must not follow their targets either
    all_nan = np.full((4, limits.dof), np.nan)
    outputs = []
    for frames in (moving, one_nan, all_nan):
        ours = numpy_filter(frames)
        theirs = torch_filter(torch.as_tensor(frames[None]))[0].numpy()
        np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-12)
        outputs.append(ours)
    held(moving)
    np.testing.assert_array_equal(np.concatenate(outputs[1:]), held.hold(5))  # = a hold, frame for frame
    assert numpy_filter.interventions["nonfinite"] == int(torch_filter.interventions["nonfinite"][0]) == 5
