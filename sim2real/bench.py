"""Latency and throughput of an export's robot-side decoding, beside torch eager in the same run.

    python -m sim2real.bench exports/g1 [--json] [--checkpoint CKPT]

``step`` latency (p50/p99, batch 1) on 1 and 2 onnxruntime intra-op threads, and whole-sequence decode
throughput on one thread. The torch eager figures need torch and motion_vqvae, imported lazily only here
(never by the runtime), and the checkpoint (``--checkpoint`` or the one the manifest records); without
them they are ``null``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.runtime import TokenDecoder

log = logging.getLogger(__name__)


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
    best = min(_timed(call) for _ in range(repeats))
    return num_tokens / best


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def bench_export(
    export_dir: str | Path,
    checkpoint: str | Path | None = None,
    steps: int = 1000,
    sequence_tokens: int = 512,
    repeats: int = 5,
) -> dict[str, Any]:
    """Every figure of the module docstring as one flat dict (torch ones ``None`` when unavailable)."""
    rng = np.random.default_rng(0)
    results: dict[str, Any] = {
        "export_dir": str(export_dir),
        "steps": steps,
        "sequence_tokens": sequence_tokens,
    }
    decoder = TokenDecoder(export_dir, threads=1)
    tokens = rng.integers(0, decoder.nb_code, size=max(steps, sequence_tokens))
    for threads in (1, 2):
        runtime = TokenDecoder(export_dir, threads=threads)
        if runtime.manifest["streaming"]:
            p50, p99 = latency_ms(lambda i, r=runtime: r.step(int(tokens[i % len(tokens)])), steps)
        else:
            p50 = p99 = None
        results[f"step_p50_ms_{threads}t"], results[f"step_p99_ms_{threads}t"] = p50, p99
    sequence = tokens[:sequence_tokens]
    results["sequence_tokens_per_s"] = tokens_per_s(
        lambda: decoder.decode(sequence), sequence_tokens, repeats
    )
    results.update(_torch_figures(decoder, checkpoint, tokens, steps, sequence_tokens, repeats))
    torch_step, onnx_step = results["torch_step_p50_ms_1t"], results["step_p50_ms_1t"]
    results["step_speedup_vs_torch_1t"] = torch_step / onnx_step if torch_step and onnx_step else None
    torch_seq = results["torch_sequence_tokens_per_s"]
    results["sequence_speedup_vs_torch"] = results["sequence_tokens_per_s"] / torch_seq if torch_seq else None
    return results


def _torch_figures(
    decoder: TokenDecoder,
    checkpoint: str | Path | None,
    tokens: np.ndarray,
    steps: int,
    length: int,
    repeats: int,
) -> dict[str, Any]:
    empty: dict[str, Any] = {f"torch_step_{q}_ms_{t}t": None for q in ("p50", "p99") for t in (1, 2)}
    empty["torch_sequence_tokens_per_s"] = None
    path = Path(checkpoint) if checkpoint is not None else Path(decoder.manifest.get("checkpoint", ""))
    if not path.is_file():
        empty["torch_skipped"] = f"checkpoint {path} not found; pass --checkpoint"
        return empty
    try:
        from motion_vqvae.export.benchmark import torch_eager_figures  # torch only on this optional path
    except ImportError as exc:
        empty["torch_skipped"] = f"torch eager side unavailable: {exc}"
        return empty
    return torch_eager_figures(path, tokens, steps, length, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="torch eager side (default: manifest's)"
    )
    parser.add_argument("--steps", type=int, default=1000, help="step calls timed per thread count")
    parser.add_argument("--sequence-tokens", type=int, default=512, help="tokens per whole-sequence decode")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results = bench_export(args.export_dir, args.checkpoint, args.steps, args.sequence_tokens)
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:32s} {value:.4g}" if isinstance(value, float) else f"{key:32s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
