"""PPO in token space on ``G1Kinematic-v0``, compared with random-token baselines on the same episodes.

The policy chooses the coarse level of every body part (one stream per part; see
:func:`~motion_vqvae.envs.prior_guidance.token_env`): with a prior, the finer levels are the prior's
completion of each step; without one, only the coarse level is decoded. Evaluation
(:mod:`motion_vqvae.envs.policy_eval`) runs every row on the same reset seeds (hence the same command
sequences), so ``mean_return / random_token_mean_return`` is a fair ratio. Writes ``results.json``, a
learning-curve PNG, a GIF of the final policy and the episode's ``qpos`` rows (``episode.npz``, for
``scripts/visualize.py``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from motion_vqvae.envs.policy_eval import evaluation_results, greedy_action
from motion_vqvae.envs.prior_guidance import PriorGuidance, json_ready, ppo_class, token_env
from motion_vqvae.envs.render import G1Renderer, write_gif
from motion_vqvae.envs.token_policy import TokenEffects, effect_policy_class, standardized, token_effects

log = logging.getLogger(__name__)

ACTION_HEADS = ("effect", "categorical")

ENV_ID = "motion_vqvae/G1Kinematic-v0"


@dataclass
class PolicyConfig:
    """PPO settings; the defaults are tuned for a 10-minute CPU run."""

    timesteps: int = 200_000
    """Total wrapper steps (tokens) of training."""
    num_envs: int = 8
    """Environments stepped in lockstep (one process)."""
    n_steps: int = 128
    """Rollout length per environment before each update."""
    batch_size: int = 256
    n_epochs: int = 10
    learning_rate: float = 1e-3
    gamma: float = 0.9
    """Short horizon: the tracking reward is immediate, so far-future credit only adds variance."""
    ent_coef: float = 0.005
    net_arch: tuple[int, ...] = (128, 128)
    eval_episodes: int = 32
    """Evaluation episodes per row (same seeds for each): with 8, the policy-to-random ratio of one policy
    ranged 2.8-4.3 between blocks of seeds; 32 average that out at a few seconds per row."""
    seed: int = 0
    time_budget_s: float | None = None
    """Stop training (at a rollout boundary) after this many seconds."""
    levels: int | None = None
    """Decode the first ``levels`` quantizer levels of a multi-level tokenizer (None: all with a prior, which
    fills the levels the policy does not choose; the coarse level alone without one)."""
    prior: PriorGuidance | None = None
    """A motion-token prior that scores, rewards (bonus) or constrains the policy's tokens."""
    env_id: str = ENV_ID
    """The inner environment: ``G1Kinematic-v0`` or ``G1TokenTrack-v0`` (the same task in physics)."""
    action_head: str = "effect"
    """``effect``: logits from each token's decoded effect (:mod:`~motion_vqvae.envs.token_policy`);
    ``categorical``: SB3's one free logit per token id."""

    def __post_init__(self) -> None:
        # Refused here, before a tokenizer is decoded or an environment built.
        if self.action_head not in ACTION_HEADS:
            raise ValueError(f"action_head {self.action_head!r}: expected one of {list(ACTION_HEADS)}")


def reachable_commands(effects: TokenEffects) -> np.ndarray:
    """``(nb_code, 3)`` steady (vx, vy, yaw_rate) of each code held in every part from a stand, read from its
    :func:`~motion_vqvae.envs.token_policy.token_effects` row.

    Commands drawn from these rows are all within the vocabulary's reach (holding one token tracks
    each), whatever motions the tokenizer was trained on; random tokens rarely match them.
    """
    held, columns = effects.held, effects.columns
    vel_start = columns["root_lin_vel"].start
    return np.concatenate([held[:, vel_start : vel_start + 2], held[:, columns["yaw_rate"]]], axis=1)


def task_kwargs(commands: np.ndarray) -> dict[str, Any]:
    """G1Kinematic-v0 arguments: commands from the reachable set, kernels half their spread wide."""
    spread = commands.std(axis=0)
    return {
        "commands": commands,
        "lin_sigma": max(0.5 * float(spread[:2].mean()), 0.02),
        "yaw_sigma": max(0.5 * float(spread[2]), 0.05),
    }


def make_env(
    tokenizer: Any,
    task: dict[str, Any],
    render_mode: str | None = None,
    levels: int | None = None,
    env_id: str = ENV_ID,
    guidance: PriorGuidance | None = None,
    training: bool = True,
) -> gym.Env:
    """``env_id`` (``G1Kinematic-v0`` by default) in token space for a coarse-level policy
    (:func:`~motion_vqvae.envs.prior_guidance.token_env`), decoding the first ``levels`` levels."""
    import motion_vqvae.envs  # noqa: F401  (registers the environments)

    inner = gym.make(env_id, render_mode=render_mode, **task)
    return token_env(inner, tokenizer, guidance, levels=levels, training=training)


def train_policy(tokenizer: str | Path, out: str | Path, cfg: PolicyConfig | None = None) -> dict[str, Any]:
    """Train PPO, evaluate it against random tokens, write the artefacts; returns the results dict."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    cfg = cfg or PolicyConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from motion_vqvae.tokenizer import Tokenizer

    # A checkpoint is loaded once and shared by every environment (an export directory opens per env).
    source = Tokenizer.load(tokenizer) if Path(tokenizer).is_file() else tokenizer
    levels = cfg.levels or (None if cfg.prior else 1)  # as token_env decodes
    effects = token_effects(source, levels=levels)
    task = task_kwargs(reachable_commands(effects))

    def env(training: bool = True) -> gym.Env:
        return make_env(source, task, None, cfg.levels, cfg.env_id, cfg.prior, training)

    venv = VecNormalize(DummyVecEnv([env] * cfg.num_envs), norm_reward=False)
    venv.seed(cfg.seed)
    policy, policy_kwargs = _policy_class(cfg, venv.action_space, effects)
    model = ppo_class(cfg.prior)(
        policy,
        venv,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        learning_rate=cfg.learning_rate,
        gamma=cfg.gamma,
        ent_coef=cfg.ent_coef,
        policy_kwargs=policy_kwargs,
        seed=cfg.seed,
        device="cpu",
    )
    curve: list[tuple[int, float]] = []
    start = time.perf_counter()

    class Progress(BaseCallback):
        def _on_step(self) -> bool:
            # False ends learn() inside this rollout: num_timesteps stays the steps really taken and the
            # half rollout adds no learning-curve point.
            return cfg.time_budget_s is None or time.perf_counter() - start <= cfg.time_budget_s

        def _on_rollout_end(self) -> None:
            if self.model.ep_info_buffer:
                mean = float(np.mean([e["r"] for e in self.model.ep_info_buffer]))
                curve.append((self.num_timesteps, mean))
                log.info("%d tokens: mean episode return %.2f", self.num_timesteps, mean)

    model.learn(total_timesteps=cfg.timesteps, callback=Progress())
    train_seconds = time.perf_counter() - start
    venv.training = False

    eval_env = env(training=False)
    eval_env.action_space.seed(cfg.seed + 1)
    eval_seeds = [10_000 + cfg.seed + k for k in range(cfg.eval_episodes)]
    evaluation = evaluation_results(
        model, venv.normalize_obs, eval_env, cfg.prior, cfg.eval_episodes, eval_seeds[0]
    )
    results = {
        **evaluation,
        "ratio": evaluation["mean_return"] / max(evaluation["random_token_mean_return"], 1e-9),
        "seeds": {"train": cfg.seed, "evaluation": eval_seeds},
        "trained_timesteps": int(model.num_timesteps),
        "train_seconds": train_seconds,
        "tokenizer": str(tokenizer),
        "lin_sigma": task["lin_sigma"],
        "yaw_sigma": task["yaw_sigma"],
        "config": json_ready(asdict(cfg)),
        "learning_curve": curve,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _plot_curve(curve, results, out / "learning_curve.png")
    record_env = env(training=False)
    masked = cfg.prior is not None and cfg.prior.mode == "constrain"

    def policy(obs: np.ndarray) -> Any:
        mask = record_env.get_wrapper_attr("prior_mask")() if masked else None
        return greedy_action(model, venv.normalize_obs(obs[None]), mask)

    _record_episode(record_env, policy, eval_seeds[0], out)
    model.save(out / "ppo_policy.zip")
    venv.save(str(out / "vecnormalize.pkl"))
    log.info(
        "mean return %.2f vs random tokens %.2f (x%.1f)",
        results["mean_return"],
        results["random_token_mean_return"],
        results["ratio"],
    )
    return results


def _policy_class(cfg: PolicyConfig, action_space: gym.Space, effects: TokenEffects) -> tuple[Any, dict]:
    """The PPO policy (class or SB3 name) and its kwargs for ``cfg.action_head``."""
    kwargs: dict[str, Any] = {"net_arch": list(cfg.net_arch)}
    if cfg.action_head == "categorical":
        return "MlpPolicy", kwargs
    streams = len(action_space.nvec) if isinstance(action_space, gym.spaces.MultiDiscrete) else 1
    if streams != len(effects.per_part):
        raise ValueError(
            f"action_head 'effect' scores one coarse token per part ({len(effects.per_part)} parts), but the "
            f"policy chooses {streams} streams; use action_head 'categorical'"
        )
    kwargs["token_effects"] = standardized(effects.per_part)
    # The algorithm's own MLP policy (masked with the constraint), so the choice is made once, in ppo_class.
    return effect_policy_class(ppo_class(cfg.prior).policy_aliases["MlpPolicy"]), kwargs


def _plot_curve(curve: list[tuple[int, float]], results: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if curve:
        steps, values = zip(*curve, strict=True)
        ax.plot(steps, values, label="PPO (training episodes)")
    ax.axhline(results["mean_return"], color="tab:green", ls="--", label="PPO (evaluation)")
    ax.axhline(results["random_token_mean_return"], color="tab:red", ls=":", label="random tokens")
    if "random_in_mask_mean_return" in results:
        ax.axhline(results["random_in_mask_mean_return"], color="tab:orange", ls=":", label="random in mask")
    ax.set_xlabel("tokens")
    ax.set_ylabel("episode return")
    ax.set_title("Token-space PPO on G1Kinematic-v0")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _record_episode(env: gym.Env, policy, seed: int, out: Path, max_frames: int = 120) -> None:
    """GIF (one frame per token, up to ``max_frames``) and all qpos rows of one evaluation episode."""
    obs, _ = env.reset(seed=seed)
    body = env.unwrapped.body
    renderer = G1Renderer(body.model)
    frames, qpos, done = [], [body.data.qpos.copy()], False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        qpos.append(body.data.qpos.copy())
        if len(frames) < max_frames:
            frames.append(renderer.render(body.data))
        done = terminated or truncated
    fps = env.unwrapped.fps / env.get_wrapper_attr("frames_per_token")
    write_gif(out / "policy.gif", frames, fps)
    np.savez(out / "episode.npz", qpos=np.asarray(qpos), fps=fps)
    renderer.close()
