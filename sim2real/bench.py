"""Robot-side figures of an export, torch-free: step latency with the full safety filter, sequence throughput,
and a safety stress test that streams random and alternating tokens and checks every limit.

    python -m sim2real.bench exports/g1 [--json] [--stress-tokens 1000000]

``step`` latency (p50/p99, batch 1) on 1 and 2 onnxruntime intra-op threads includes the safety filter.
``sequence_tokens_per_s`` is ``TokenDecoder.decode`` of one whole sequence, safety filter included (a
numpy loop over frames); ``sequence_graph_tokens_per_s`` the ``decoder.onnx`` graph alone, what a torch
decoder's figure compares with.
An export with a physics tracker (``export_onnx.py --tracker``) adds ``tracker_step_p50_ms``/``_p99_ms``:
one ``TrackerPolicy.step`` (observation, graph, PD targets) on one thread.
The stress test streams ``--stress-tokens`` tokens with ``step()`` after ``reset(current=q)`` at random
poses (a new pose every ``SEGMENT`` tokens), half uniformly random tokens, half alternating between two
random ids, and checks positions, velocities and accelerations of everything emitted against the
manifest's limits, from the robot standing still at ``q``. The torch eager comparison lives on the training
side (``benchmarks.export``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.runtime import TokenDecoder
from sim2real.safety import SafetyLimits
from sim2real.token_spec import TokenSpec

SEGMENT = 1000  # tokens streamed from one random pose
TOL = 1e-9  # relative slack for float rounding in the limit checks


def latency_ms(call: Callable[[int], Any], count: int, warmup: int = 20) -> tuple[float, float]:
    """(p50, p99) milliseconds of ``call(i)`` over ``count`` calls after ``warmup`` unmeasured ones."""
    for i in range(warmup):
        call(i)
    times = np.empty(count)
    for i in range(count):
        start = time.perf_counter()
        call(i)
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def tokens_per_s(call: Callable[[], Any], num_tokens: int, repeats: int) -> float:
    """Tokens per second of ``call()`` (decoding ``num_tokens``), best of ``repeats`` after one warm-up."""
    call()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return num_tokens / best


def random_tokens(spec: TokenSpec, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` valid tokens of a token structure: ``[count]`` or ``[count, S]``."""
    shape = (count,) if spec.is_single else (count, spec.num_streams)
    return rng.integers(0, spec.nb_code, size=shape)


def limit_excess(limits: SafetyLimits, start: np.ndarray, frames: np.ndarray) -> dict[str, float]:
    """Worst excess over each limit (<= 0 means within) of ``frames`` emitted from rest at ``start``."""
    path = np.concatenate([start[None], start[None], frames])
    velocity = np.abs(np.diff(path, axis=0)) * limits.fps
    accel = np.abs(np.diff(path, 2, axis=0)) * limits.fps**2
    low, high = np.minimum(limits.lower, start), np.maximum(limits.upper, start)
    return {
        "position_rad": float(max((low - frames).max(), (frames - high).max())),
        "velocity_rel": float((velocity / limits.velocity).max() - 1),
        "acceleration_rel": float((accel / limits.acceleration).max() - 1),
    }


def stress(decoder: TokenDecoder, count: int, seed: int = 0) -> dict[str, Any]:
    """Stream ``count`` tokens (random and alternating) from random poses; worst excess over each limit."""
    rng = np.random.default_rng(seed)
    limits = decoder.limits
    worst = {"position_rad": -np.inf, "velocity_rel": -np.inf, "acceleration_rel": -np.inf}
    before = dict(decoder.interventions)
    streamed = 0
    while streamed < count:
        n = min(SEGMENT, count - streamed)
        tokens = random_tokens(decoder.token_spec, rng, n)
        if (streamed // SEGMENT) % 2:  # alternating between two ids: the hardest square wave
            tokens[1::2] = tokens[1]
            tokens[0::2] = tokens[0]
        start = rng.uniform(limits.lower, limits.upper)
        decoder.reset(current=start)
        frames = np.concatenate([decoder.step(t if t.ndim else int(t)) for t in tokens])
        for key, value in limit_excess(limits, start, frames).items():
            worst[key] = max(worst[key], value)
        streamed += n
    return {
        "stress_tokens": streamed,
        "stress_worst_excess": worst,
        "stress_within_limits": bool(
            worst["position_rad"] <= 1e-12
            and worst["velocity_rel"] <= TOL
            and worst["acceleration_rel"] <= TOL
        ),
        "stress_interventions": {k: v - before[k] for k, v in decoder.interventions.items()},
    }


def bench_export(
    export_dir: str | Path,
    steps: int = 1000,
    sequence_tokens: int = 512,
    repeats: int = 5,
    stress_tokens: int = 0,
) -> dict[str, Any]:
    """Every figure of the module docstring as one flat dict."""
    rng = np.random.default_rng(0)
    results: dict[str, Any] = {"steps": steps, "sequence_tokens": sequence_tokens}
    decoder = TokenDecoder(export_dir, threads=1)
    tokens = random_tokens(decoder.token_spec, rng, max(steps + 20, sequence_tokens))
    pose = (decoder.limits.lower + decoder.limits.upper) / 2
    for threads in (1, 2):
        runtime = TokenDecoder(export_dir, threads=threads)
        runtime.reset(current=pose)
        if runtime.manifest["streaming"]:
            items = [t if t.ndim else int(t) for t in tokens]
            p50, p99 = latency_ms(lambda i, r=runtime, items=items: r.step(items[i]), steps)
        else:
            p50 = p99 = None
        results[f"step_p50_ms_{threads}t"], results[f"step_p99_ms_{threads}t"] = p50, p99
    sequence = tokens[:sequence_tokens]
    results["sequence_tokens_per_s"] = tokens_per_s(
        lambda: decoder.decode(sequence, current=pose), sequence_tokens, repeats
    )
    batch = np.asarray(sequence, np.int64)[None]
    results["sequence_graph_tokens_per_s"] = tokens_per_s(
        lambda: decoder._sequence.run(None, {"tokens": batch}), sequence_tokens, repeats
    )
    if stress_tokens and decoder.manifest["streaming"]:
        results.update(stress(decoder, stress_tokens))
    if "tracker" in decoder.manifest:
        results["tracker_step_p50_ms"], results["tracker_step_p99_ms"] = tracker_latency_ms(export_dir, steps)
    return results


def tracker_latency_ms(export_dir: str | Path, steps: int) -> tuple[float, float]:
    """p50/p99 of one ``TrackerPolicy.step`` (observation built, graph run, PD targets), one thread."""
    from sim2real.tracker import TrackerPolicy

    policy = TrackerPolicy(export_dir, threads=1)
    n = len(policy.joint_names)
    upright, still = np.array([0.0, 0.0, 0.0, 1.0]), np.zeros(n)
    pose = policy.default_dof
    return latency_ms(lambda i: policy.step(pose, still, upright, upright, np.zeros(3), pose, still), steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--steps", type=int, default=1000, help="step calls timed per thread count")
    parser.add_argument("--sequence-tokens", type=int, default=512, help="tokens per whole-sequence decode")
    parser.add_argument("--stress-tokens", type=int, default=0, help="tokens of the safety stress test")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results = bench_export(
        args.export_dir, args.steps, args.sequence_tokens, stress_tokens=args.stress_tokens
    )
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:32s} {value:.4g}" if isinstance(value, float) else f"{key:32s} {value}")
    # Latency depends on the machine; a limit violation never does: only that fails the command.
    return 0 if results.get("stress_within_limits", True) else 1


if __name__ == "__main__":
    sys.exit(main())
