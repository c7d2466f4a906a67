"""Benchmark section ``prior``: held-out bits per token (per level too) and completion against baselines,
sampling speed (torch and onnxruntime, with and without the KV cache), and token-space PPO on
G1Kinematic-v0 in five arms, each for the same wall-clock budget and over several seeds.

The PPO arms (the policy always picks the coarse level of each body part): ``no_prior`` (only the coarse
level decoded), and with the prior filling the finer levels: ``none`` (scored only), ``bonus``,
``constrain`` (the prior's top-p sets) and ``constrain_bigram`` (the same constraint from a bigram: the
control for what the transformer adds over a count table). Every run reports the random-token return and,
with a prior, a uniform choice inside the allowed sets (``random_in_mask_mean_return``): a constrained
policy must beat that, not only random tokens, to have learned something beyond the mask.
"""

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


PPO_SEEDS = (0, 1, 2)
PPO_ARMS: dict[str, dict[str, str] | None] = {
    "no_prior": None,
    "none": {"mode": "none"},
    "bonus": {"mode": "bonus"},
    "constrain": {"mode": "constrain"},
    "constrain_bigram": {"mode": "constrain", "mask_model": "bigram"},
}
PPO_KEYS = (
    "mean_return",
    "masked_mean_return",
    "unmasked_mean_return",
    "random_token_mean_return",
    "random_in_mask_mean_return",
    "allowed_set_size_mean",
    "prior_nll_bits_per_token",
    "jerk_rad_s3",
    "trained_timesteps",
)
RANDOM_BAR, IN_MASK_BAR = 3.0, 1.3
"""The issue's bars: the policy >= 3x the random-token return; a constrained one also >= 1.3x a uniform
choice inside its mask."""


def seed_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every figure a run reports (None where none does), the
    per-seed ratios to the random baselines, and the runs themselves."""
    out: dict[str, Any] = {"per_seed": runs}
    for key in (*PPO_KEYS, "ratio_vs_random", "ratio_vs_random_in_mask"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
        out[f"{key}_std"] = float(np.std(values)) if values else None
    return out


def guided_ppo(
    tokenizer: Path,
    prior: Path,
    out: Path,
    minutes: float,
    seeds: tuple[int, ...] = PPO_SEEDS,
    eval_episodes: int = 16,
) -> dict[str, Any]:
    """Every arm of :data:`PPO_ARMS` for ``minutes`` per run and each of ``seeds``, with the bars."""
    from motion_vqvae.envs.policy_training import PolicyConfig, train_policy
    from motion_vqvae.envs.prior_guidance import PriorGuidance

    rows: dict[str, Any] = {"seeds": list(seeds), "minutes_per_run": minutes}
    for arm, guidance in PPO_ARMS.items():
        runs = []
        for seed in seeds:
            cfg = PolicyConfig(
                timesteps=10**9,
                time_budget_s=60 * minutes,
                eval_episodes=eval_episodes,
                seed=seed,
                prior=None if guidance is None else PriorGuidance(prior, **guidance),
            )
            result = train_policy(tokenizer, out / arm / f"seed_{seed}", cfg)
            run = {key: result.get(key) for key in PPO_KEYS}
            run["ratio_vs_random"] = result["mean_return"] / max(result["random_token_mean_return"], 1e-9)
            if result.get("random_in_mask_mean_return") is not None:
                run["ratio_vs_random_in_mask"] = result["mean_return"] / max(
                    result["random_in_mask_mean_return"], 1e-9
                )
            runs.append({"seed": seed, **run})
        rows[arm] = seed_summary(runs)
    rows["bars"] = {
        arm: {
            "vs_random": rows[arm]["ratio_vs_random"] >= RANDOM_BAR,
            "vs_random_in_mask": None
            if rows[arm]["ratio_vs_random_in_mask"] is None
            else rows[arm]["ratio_vs_random_in_mask"] >= IN_MASK_BAR,
        }
        for arm in PPO_ARMS
    }
    return rows


def evaluation_bars(metrics: dict[str, Any]) -> dict[str, bool | None]:
    """The issue's prior bars on held-out clips (None where a figure is missing: no completion clip)."""

    def below(a: float | None, b: float | None) -> bool | None:
        return None if a is None or b is None else a < b

    return {
        "nll_below_bigram": below(metrics["nll_bits_per_token"], metrics["bigram_bits_per_token"]),
        "coarse_nll_below_bigram": below(
            metrics["nll_bits_per_level"][0], metrics["bigram_bits_per_level"][0]
        ),
        "completion_ade_below_repeat": below(
            metrics["completion_ade_mm"], metrics["completion_ade_repeat_mm"]
        ),
        "completion_minade_below_bigram": below(
            metrics["completion_minade_mm"], metrics["completion_minade_bigram_mm"]
        ),
    }


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
        "bars": evaluation_bars(metrics),
        "sampling": sampling_speed(loaded, export_dir),
        "ppo": guided_ppo(tokenizer, prior_path, root / "ppo", policy_minutes),
    }
    (root / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
