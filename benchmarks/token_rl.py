"""Token-space RL figures: what the wrapper costs per env step, and batched decoding throughput."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from motion_vqvae.envs.batched import BatchedTokenDecoder
from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.envs.wrapper import TokenActionWrapper
from motion_vqvae.tokenizer import Tokenizer

log = logging.getLogger(__name__)


def _run(env: gym.Env, actions: list, seed: int = 0) -> float:
    """Seconds to step ``env`` through ``actions`` (resetting on episode end)."""
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        if any(env.step(action)[2:4]):
            env.reset()
    return time.perf_counter() - start


def bench_token_rl(
    checkpoint: Path,
    export_dir: Path | None = None,
    tokens: int = 300,
    env_counts: tuple[int, ...] = (1, 64, 4096),
    repeats: int = 3,
) -> dict:
    """Wrapper overhead on G1PD-v0 (env steps/s, wrapped vs the same targets fed directly), decoding from
    the checkpoint (torch) and, when given, from its export directory (onnxruntime, as on a robot), and
    BatchedTokenDecoder tokens/s per env count (CPU)."""
    import motion_vqvae.envs  # noqa: F401  (registers the environments)

    torch.set_num_threads(1)
    tok = Tokenizer.load(checkpoint)
    wrapped = TokenActionWrapper(gym.make("motion_vqvae/G1PD-v0", root_support=3000.0), tok)
    wrapped.action_space.seed(0)
    ids = [wrapped.action_space.sample() for _ in range(tokens)]  # ints or [S] ids
    wrapped.reset(seed=0)
    targets = []
    for token in ids:
        _, _, terminated, truncated, info = wrapped.step(token)
        targets += list(info["targets"])
        if terminated or truncated:
            wrapped.reset()
    direct = gym.make("motion_vqvae/G1PD-v0", root_support=3000.0)
    variants = {"": wrapped}
    if export_dir is not None:
        variants["_onnx"] = TokenActionWrapper(
            gym.make("motion_vqvae/G1PD-v0", root_support=3000.0), export_dir
        )
    # Alternate the runs and keep the fastest of each: other load on the machine hits all alike.
    direct_s = np.inf
    wrapped_s = dict.fromkeys(variants, np.inf)
    for _ in range(repeats):
        direct_s = min(direct_s, _run(direct, targets))
        for key, env in variants.items():
            wrapped_s[key] = min(wrapped_s[key], _run(env, ids))
    result: dict = {"env_steps": len(targets), "direct_env_steps_per_s": len(targets) / direct_s}
    for key, seconds in wrapped_s.items():
        result[f"wrapped{key}_env_steps_per_s"] = len(targets) / seconds
        result[f"wrapper_ratio{key}"] = direct_s / seconds
    result["batched_tokens_per_s"] = {}  # safety filter included, from the stand pose
    stand = G1Body().stand_pose()
    for n in env_counts:
        decoder = BatchedTokenDecoder.from_tokenizer(tok, n)
        decoder.reset(current=np.broadcast_to(stand, (n, len(stand))))
        steps = max(3, min(200, 20_000 // n))
        spec = decoder.spec
        batch = torch.randint(0, spec.nb_code, (steps, n) if spec.is_single else (steps, n, spec.num_streams))
        decoder.step(batch[0])  # warm-up
        start = time.perf_counter()
        for row in batch:
            decoder.step(row)
        result["batched_tokens_per_s"][str(n)] = steps * n / (time.perf_counter() - start)
    log.info(
        "token_rl: direct %.0f env steps/s; wrapper ratio %.2f (torch), %s (onnxruntime); batched %s tok/s",
        result["direct_env_steps_per_s"],
        result["wrapper_ratio"],
        f"{result['wrapper_ratio_onnx']:.2f}" if "wrapper_ratio_onnx" in result else "not measured",
        {k: round(v) for k, v in result["batched_tokens_per_s"].items()},
    )
    return result
