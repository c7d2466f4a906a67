"""Benchmark section ``prior``: held-out bits per token and completion against baselines, sampling speed
(torch and onnxruntime, with and without the KV cache), and PPO on G1Kinematic-v0 without a prior, with
the bonus and with the constraint for the same wall-clock budget."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.commands import train_prior
from motion_vqvae.prior.evaluate import evaluate_prior
from motion_vqvae.prior.export import prior_extra
from motion_vqvae.prior.sampling import LoadedPrior, TorchPriorBackend
from motion_vqvae.tokenizer import Tokenizer
from sim2real.prior import OnnxPriorBackend, SamplingOptions, sample_stream

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 20.0


def train_default_prior(tokenizer: Path, motion_dir: Path, out: Path, minutes: float) -> Path:
    """The default config trained for ``minutes`` on the tokenizer's training clips, as a user runs
    ``train_prior.py``; returns best.pt."""
    args = ["--tokenizer", str(tokenizer), "--motion_file", str(motion_dir), "--out", str(out)]
    code = train_prior.main([*args, "--set", "num_threads=1", "--time-budget", str(minutes), "--overwrite"])
    if code != 0:
        raise RuntimeError(f"train_prior.py exited with {code}; its error is printed above")
    return out / "checkpoints" / "best.pt"


def sampling_speed(prior: LoadedPrior, export_dir: Path) -> dict[str, float]:
    """Tokens per second sampling ``SAMPLE_SECONDS`` of motion, per backend, with and without KV cache."""
    from sim2real.manifest import load_manifest

    steps = int(SAMPLE_SECONDS * prior.spec.fps / prior.spec.frames_per_token)
    backends = {
        "torch": TorchPriorBackend(prior.model),
        "onnxruntime": OnnxPriorBackend(export_dir, load_manifest(export_dir)["prior"]),
    }
    out: dict[str, float] = {"tokens": steps}
    for name, backend in backends.items():
        for cached in (True, False):
            options = SamplingOptions(prior.cfg.temperature, prior.cfg.top_p, 1.0, use_cache=cached)
            best = np.inf
            for repeat in range(2):  # the faster of two: other load on the machine hits all alike
                start = time.perf_counter()
                sample_stream(
                    backend,
                    steps,
                    streams=prior.spec.num_streams,
                    rng=np.random.default_rng(repeat),
                    options=options,
                )
                best = min(best, time.perf_counter() - start)
            out[f"{name}_{'kv_cache' if cached else 'no_cache'}_tokens_per_s"] = steps / best
    return out


def guided_ppo(tokenizer: Path, prior: Path, out: Path, minutes: float) -> dict[str, Any]:
    """PPO without a prior (scored only), with the bonus and with the constraint, ``minutes`` each."""
    from motion_vqvae.envs.policy_training import PolicyConfig, train_policy
    from motion_vqvae.envs.prior_guidance import PriorGuidance

    rows: dict[str, Any] = {}
    for mode in ("none", "bonus", "constrain"):
        cfg = PolicyConfig(timesteps=10_000_000, time_budget_s=60 * minutes, prior=PriorGuidance(prior, mode))
        result = train_policy(tokenizer, out / mode, cfg)
        rows[mode] = {
            k: result[k]
            for k in (
                "mean_return",
                "random_token_mean_return",
                "prior_nll_bits_per_token",
                "jerk_rad_s3",
                "trained_timesteps",
            )
        }
    base = rows["none"]
    for mode in ("bonus", "constrain"):
        rows[mode]["return_vs_unguided"] = rows[mode]["mean_return"] / max(base["mean_return"], 1e-9)
        rows[mode]["nll_vs_unguided"] = (
            rows[mode]["prior_nll_bits_per_token"] / base["prior_nll_bits_per_token"]
        )
        rows[mode]["bar_met"] = (
            rows[mode]["return_vs_unguided"] >= 0.8 and rows[mode]["nll_vs_unguided"] <= 0.7
        )
    return rows


def bench_prior_section(
    tokenizer: Path,
    motion_dir: Path,
    run_root: Path,
    prior: Path | None,
    minutes: float,
    policy_minutes: float,
) -> dict[str, Any]:
    """Every figure of the section; trains the default prior for ``minutes`` when ``prior`` is None."""
    root = run_root / "prior"
    start = time.perf_counter()
    prior_path = prior or train_default_prior(tokenizer, motion_dir, root / "train", minutes)
    train_s = time.perf_counter() - start
    loaded = LoadedPrior.load(prior_path)
    metrics = evaluate_prior(loaded, motion_dir, None, root / "eval")
    export_dir = root / "export"
    Tokenizer.load(tokenizer).export(export_dir, extras=[prior_extra(prior_path)], overwrite=True)
    result = {
        "prior": str(prior_path),
        "trained_here_s": None if prior else train_s,
        "iterations": int(loaded.state["iteration"]),
        **{k: v for k, v in metrics.items() if k not in ("per_clip", "settings")},
        "bars": {
            "nll_below_bigram": metrics["nll_bits_per_token"] < metrics["bigram_bits_per_token"],
            "completion_below_repeat": metrics["completion_minade_mm"]
            < metrics["completion_minade_repeat_mm"],
        },
        "sampling": sampling_speed(loaded, export_dir),
        "ppo": guided_ppo(tokenizer, prior_path, root / "ppo", policy_minutes),
    }
    (root / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
