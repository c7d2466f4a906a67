"""Prior-guided token-space RL: a motion-token prior shapes or constrains a policy's token choices.

:class:`PriorGuidanceWrapper` sits on a :class:`~motion_vqvae.envs.wrapper.TokenActionWrapper` and keeps
the prior's context (KV cache) of the episode's tokens, so at every step it knows
``log p_prior(token | previous tokens)``:

* ``bonus``: the reward gains ``beta * log p`` (nats), a KL-like pull towards motion the prior finds likely;
* ``constrain``: :meth:`action_masks` exposes the prior's top-p set at each step (GPC's prior constraint)
  for a masking PPO (``sb3_contrib.MaskablePPO``), which still learns which of those tokens to pick;
* ``none``: nothing changes; the log-probabilities are only recorded (the unguided baseline's score).

``info["task_reward"]`` always holds the env's own reward, and :attr:`episode_log` the per-step log-probs and
decoded joint angles, from which :func:`episode_stats` gives the prior NLL in bits per token and the jerk.
With several token streams, the bonus scores the whole tuple and the constraint masks the first stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from motion_vqvae.errors import InvalidValue
from sim2real.prior import PriorBackend, top_p_mask

PRIOR_MODES = ("none", "bonus", "constrain")


@dataclass
class PriorGuidance:
    """How a prior takes part in PPO."""

    prior: str | Path
    """Prior checkpoint (scripts/train_prior.py), trained on the tokenizer the policy acts with."""
    mode: str = "none"
    """``none`` (score only), ``bonus`` or ``constrain``."""
    beta: float = 0.05
    """bonus: reward per nat of log-probability (per token; a tracking step earns at most 1 per frame)."""
    top_p: float = 0.7
    """constrain: the probability mass of the allowed token set; 0.6-0.7 kept the unguided return in paired
    3-minute runs (benchmarks/prior_ppo.json), 0.9 allows dozens of unlikely tokens and learns slower."""

    def __post_init__(self) -> None:
        if self.mode not in PRIOR_MODES:
            raise InvalidValue(f"prior mode must be one of {PRIOR_MODES}, got {self.mode!r}")
        if not 0 < self.top_p <= 1 or self.beta < 0:
            raise InvalidValue(f"need 0 < top_p <= 1 and beta >= 0, got top_p={self.top_p}, beta={self.beta}")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class PriorGuidanceWrapper(gym.Wrapper):
    """Adds the prior's view of each chosen token: a reward bonus, an action mask, or only a record."""

    def __init__(self, env: gym.Env, backend: PriorBackend, streams: int, guidance: PriorGuidance) -> None:
        super().__init__(env)
        self.backend, self.streams, self.guidance = backend, streams, guidance
        self.episode_log: list[dict[str, list[Any]]] = []
        self._history = np.zeros((0, streams), np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._prime(np.zeros((0, self.streams), np.int64))
        self.episode_log.append({"logp": [], "dof": []})
        return obs, info

    def _prime(self, context: np.ndarray) -> None:
        text = np.zeros((1, max(self.backend.text_dim, 1)), np.float32)
        self._hidden, self._cache = self.backend.start(text, np.zeros(1, np.float32))
        self._history, self._position = context, 1
        if len(context):
            h, self._cache = self.backend.step(context[None], np.arange(1, len(context) + 1), self._cache)
            self._hidden, self._position = h[:, -1], len(context) + 1

    def first_stream_logp(self) -> np.ndarray:
        """``(V,)`` log p of the next token's first stream given the episode so far."""
        return _log_softmax(self.backend.head(self._hidden, np.zeros((1, self.streams), np.int64))[0, 0])

    def action_masks(self) -> np.ndarray:
        """The allowed actions: the prior's top-p set (all tokens outside ``constrain`` mode)."""
        logp = self.first_stream_logp()
        mask = (
            top_p_mask(logp, self.guidance.top_p)
            if self.guidance.mode == "constrain"
            else np.ones_like(logp, bool)
        )
        if self.streams == 1:
            return mask
        return np.concatenate([mask, np.ones(len(logp) * (self.streams - 1), bool)])

    def step(self, action: Any):
        token = np.asarray(self.env.get_wrapper_attr("token_of")(action), np.int64).reshape(self.streams)
        logits = self.backend.head(self._hidden, token[None])[0]  # (S, V): stream s given streams < s
        logp = float(sum(_log_softmax(logits[s])[token[s]] for s in range(self.streams)))
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "task_reward": float(reward), "prior_logp": logp}
        if self.guidance.mode == "bonus":
            reward = float(reward) + self.guidance.beta * logp
        log = self.episode_log[-1]
        log["logp"].append(logp)
        log["dof"].append(np.asarray(info["targets"]))
        history = np.concatenate([self._history, token[None]])
        if self._position >= self.backend.block_size:
            self._prime(history[-max(1, self.backend.block_size // 2) :])
        else:
            h, self._cache = self.backend.step(token[None, None], np.array([self._position]), self._cache)
            self._hidden, self._history, self._position = h[:, -1], history, self._position + 1
        return obs, reward, terminated, truncated, info


def episode_stats(log: list[dict[str, list[Any]]], fps: float, num_dof: int) -> dict[str, float]:
    """``prior_nll_bits_per_token`` and the decoded joint angles' mean absolute ``jerk_rad_s3`` over episodes.

    The fed frames are whole motion frames (root features, joint angles, joint velocities): the angles are
    the ``num_dof`` columns before the last ``num_dof``.
    """
    logp = np.concatenate([np.asarray(e["logp"]) for e in log if e["logp"]])
    jerks = []
    for episode in log:
        if len(episode["dof"]) < 2:
            continue
        frames = np.concatenate(episode["dof"])  # (frames, columns)
        dof = frames[:, -2 * num_dof : -num_dof]
        if len(dof) >= 4:
            jerks.append(np.abs(np.diff(dof, n=3, axis=0)).mean() * fps**3)
    return {
        "prior_nll_bits_per_token": float(-logp.mean() / np.log(2.0)),
        "jerk_rad_s3": float(np.mean(jerks)) if jerks else float("nan"),
    }


def guide(env: gym.Env, guidance: PriorGuidance | None, training: bool = True) -> gym.Env:
    """``env`` (a token env) under ``guidance``; evaluation envs score (and constrain) but add no bonus."""
    if guidance is None:
        return env
    # Torch is imported only when a prior is actually used: `import motion_vqvae.envs` stays torch-free.
    from motion_vqvae.prior.sampling import LoadedPrior, TorchPriorBackend

    prior = LoadedPrior.load(guidance.prior)
    spec = env.get_wrapper_attr("source").spec
    if prior.spec != spec:
        raise InvalidValue(
            f"prior {guidance.prior} models tokens {prior.spec.to_dict()}, the env's tokenizer has "
            f"{spec.to_dict()}; train the prior on this tokenizer's tokens"
        )
    mode = guidance.mode if training or guidance.mode == "constrain" else "none"
    scored = PriorGuidance(guidance.prior, mode, guidance.beta, guidance.top_p)
    return PriorGuidanceWrapper(env, TorchPriorBackend(prior.model), prior.spec.num_streams, scored)


def ppo_class(guidance: PriorGuidance | None) -> type:
    """``MaskablePPO`` (sb3-contrib) for the constraint, plain ``PPO`` otherwise."""
    if guidance is not None and guidance.mode == "constrain":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    from stable_baselines3 import PPO

    return PPO


def predict_kwargs(env: gym.Env, guidance: PriorGuidance | None) -> dict[str, Any]:
    """Extra ``model.predict`` arguments: the env's current action mask under the constraint."""
    if guidance is None or guidance.mode != "constrain":
        return {}
    return {"action_masks": env.get_wrapper_attr("action_masks")()}


def guidance_results(env: gym.Env, guidance: PriorGuidance | None, prefix: str = "") -> dict[str, Any]:
    """Prior NLL and jerk of the episodes ``env`` ran since the last call (then forgets them)."""
    if guidance is None:
        return {}
    log = env.get_wrapper_attr("episode_log")
    stats = episode_stats(log, env.unwrapped.fps, env.get_wrapper_attr("source").joint_map.num_sim)
    log.clear()
    return {f"{prefix}{k}": v for k, v in stats.items()}


def json_ready(config: dict[str, Any]) -> dict[str, Any]:
    """A dataclass dict as JSON values (tuples as lists, paths as strings), nested dicts too."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            value = json_ready(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Path):
            value = str(value)
        out[key] = value
    return out
