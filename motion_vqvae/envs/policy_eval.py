"""Evaluation of a token-space policy beside its baselines, all on the same episodes.

Every row runs the same reset seeds (hence the same command sequences), so ratios of returns are fair:

* the policy as trained (``mean_return``; through the prior's mask when it was trained under it);
* with a prior, the policy with and without the mask (``masked_mean_return``, ``unmasked_mean_return``): a
  constrained policy that only does well masked learned little beyond the mask, and an unguided policy
  under the mask shows what the mask alone does to it;
* uniformly random tokens (``random_token_mean_return``), and, with a prior, a uniform choice inside the
  allowed sets (``random_in_mask_mean_return``): the return of "a smaller action set" with nothing learned,
  the bar a constrained policy must clear. ``allowed_set_size_mean`` is the mean number of ids allowed per
  chosen stream and step during the masked policy's episodes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from motion_vqvae.envs.prior_guidance import PriorGuidance, guidance_results


def evaluate(env: gym.Env, act: Callable[[np.ndarray], Any], episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` episodes with reset seeds ``seed, seed + 1, ...``; ``act(obs) -> token``."""
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def greedy_action(model: Any, obs: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The policy's most likely action for one normalized observation ``[1, obs]``, inside ``mask`` (flat,
    as ``MaskablePPO`` takes it) when given; a plain ``PPO`` policy is masked through its logits."""
    if mask is None or "action_masks" in inspect.signature(model.predict).parameters:  # MaskablePPO
        kwargs = {} if mask is None else {"action_masks": mask}
        return model.predict(obs, deterministic=True, **kwargs)[0][0]
    import torch

    obs_tensor, _ = model.policy.obs_to_tensor(obs)
    with torch.no_grad():
        dist = model.policy.get_distribution(obs_tensor).distribution
    logits = (torch.cat([d.logits for d in dist], dim=1) if isinstance(dist, list) else dist.logits)[0]
    logits = logits.numpy().copy()
    logits[~mask] = -np.inf
    space = model.action_space
    if isinstance(space, gym.spaces.Discrete):
        return np.asarray(int(np.argmax(logits)))
    bounds = np.cumsum(space.nvec)[:-1]
    return np.array([int(np.argmax(part)) for part in np.split(logits, bounds)])


def evaluation_results(
    model: Any,
    normalize: Callable[[np.ndarray], np.ndarray],
    env: gym.Env,
    guidance: PriorGuidance | None,
    episodes: int,
    seed: int,
) -> dict[str, Any]:
    """Every row of the module docstring for ``model`` (``normalize``: the training observation scaling)."""
    trained_masked = guidance is not None and guidance.mode == "constrain"
    sizes: list[float] = []

    def policy(masked: bool) -> Callable[[np.ndarray], Any]:
        def act(obs: np.ndarray) -> Any:
            mask = None
            if masked:
                allowed = env.get_wrapper_attr("allowed_sets")()
                sizes.append(float(allowed.sum(axis=1).mean()))
                mask = allowed.reshape(-1)
            return greedy_action(model, normalize(obs[None]), mask)

        return act

    returns = evaluate(env, policy(trained_masked), episodes, seed)
    results: dict[str, Any] = {"mean_return": float(np.mean(returns)), "returns": returns}
    results.update(guidance_results(env, guidance))
    random_returns = evaluate(env, lambda _: env.action_space.sample(), episodes, seed)
    results["random_token_mean_return"] = float(np.mean(random_returns))
    results["random_token_returns"] = random_returns
    results.update(guidance_results(env, guidance, prefix="random_token_"))
    if guidance is None:
        return results
    other = float(np.mean(evaluate(env, policy(not trained_masked), episodes, seed)))
    guidance_results(env, guidance)  # that row's NLL and jerk are not reported
    results["masked_mean_return"] = results["mean_return"] if trained_masked else other
    results["unmasked_mean_return"] = other if trained_masked else results["mean_return"]
    results["allowed_set_size_mean"] = float(np.mean(sizes))
    rng = np.random.default_rng(seed)
    single = isinstance(env.action_space, gym.spaces.Discrete)

    def random_in_mask(_: np.ndarray) -> Any:
        allowed = env.get_wrapper_attr("allowed_sets")()
        ids = np.array([rng.choice(np.flatnonzero(row)) for row in allowed])
        return int(ids[0]) if single else ids

    in_mask = evaluate(env, random_in_mask, episodes, seed)
    results["random_in_mask_mean_return"] = float(np.mean(in_mask))
    results["random_in_mask_returns"] = in_mask
    results.update(guidance_results(env, guidance, prefix="random_in_mask_"))
    return results
