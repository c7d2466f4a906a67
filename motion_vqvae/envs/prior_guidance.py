"""Token-space RL with a motion-token prior: the policy picks the coarse level, the prior completes the step,
and it scores, rewards or constrains the policy's choices.

:func:`token_env` builds the env every policy of ``train_policy.py`` acts in. The policy chooses the coarse
level of every body part (one stream per part, ``TokenActionWrapper(action_levels=1)``) and observes its
previous choice; guided and unguided policies see the same observation. With a prior, the other streams are
the prior's most likely codes given the chosen ones and the episode so far
(:meth:`~motion_vqvae.prior.sampling.StepContext.fill`), and :class:`PriorGuidanceWrapper` keeps the prior's
context (KV cache) of the episode's whole token tuples, so at every step it knows
``log p_prior(tuple | previous tuples)`` (nats, summed over the streams):

* ``bonus``: the reward gains ``beta * log p``, a KL-like pull towards motion the prior finds likely;
* ``constrain``: :meth:`~PriorGuidanceWrapper.action_masks` exposes the top-p set of every chosen stream
  (GPC's prior constraint) for a masking PPO (``sb3_contrib.MaskablePPO``), which still learns which of
  those tokens to pick. A chosen stream's set is taken given the prior's most likely ids of the streams
  before it in the tuple (the policy picks all its streams at once);
* ``none``: nothing changes; the log-probabilities are only recorded (the unguided baseline's score).

``mask_model="bigram"`` takes the sets from the add-one bigram of the prior's training tokens instead (each
chosen stream given its previous id): the control that tells what the transformer adds over a count table.
:meth:`~PriorGuidanceWrapper.prior_mask` gives the sets in every mode (evaluation: a random choice inside
them, the policy with and without them). ``info["task_reward"]`` always holds the env's own reward, and
:attr:`~PriorGuidanceWrapper.episode_log` the per-step log-probs and decoded joint angles, from which
:func:`episode_stats` gives the prior NLL in bits per step and the jerk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from motion_vqvae.envs.wrapper import TokenActionWrapper
from motion_vqvae.errors import InvalidValue
from sim2real.prior import top_p_mask

if TYPE_CHECKING:
    from motion_vqvae.prior.sampling import StepContext

PRIOR_MODES = ("none", "bonus", "constrain")
MASK_MODELS = ("prior", "bigram")


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
    mask_model: str = "prior"
    """Where the allowed sets come from: ``prior``, or ``bigram`` (the control)."""

    def __post_init__(self) -> None:
        if self.mode not in PRIOR_MODES:
            raise InvalidValue(f"prior mode must be one of {PRIOR_MODES}, got {self.mode!r}")
        if self.mask_model not in MASK_MODELS:
            raise InvalidValue(f"prior mask model must be one of {MASK_MODELS}, got {self.mask_model!r}")
        if not 0 < self.top_p <= 1 or self.beta < 0:
            raise InvalidValue(f"need 0 < top_p <= 1 and beta >= 0, got top_p={self.top_p}, beta={self.beta}")


class BigramMask:
    """Top-p sets of the chosen streams under an add-one bigram ``p(next | previous id of that stream)``;
    the unigram at an episode's first step."""

    def __init__(self, unigram: np.ndarray, bigram_probs: np.ndarray, streams: np.ndarray, top_p: float):
        self.streams, self.top_p = np.asarray(streams), top_p
        counts = unigram[self.streams] + 1.0
        self.first = np.log(counts / counts.sum(axis=1, keepdims=True))  # (C, V)
        self.log_next = np.log(bigram_probs[self.streams])  # (C, V, V): [stream, previous, next]

    def __call__(self, history: np.ndarray) -> np.ndarray:
        if not len(history):
            return top_p_mask(self.first, self.top_p)
        previous = history[-1, self.streams]
        return top_p_mask(self.log_next[np.arange(len(self.streams)), previous], self.top_p)


class PriorGuidanceWrapper(gym.Wrapper):
    """Adds the prior's view of each step: a reward bonus, an action mask, or only a record."""

    def __init__(
        self,
        env: gym.Env,
        context: StepContext,
        guidance: PriorGuidance,
        bigram: BigramMask | None = None,
    ) -> None:
        super().__init__(env)
        self.context, self.guidance, self.bigram = context, guidance, bigram
        self.action_streams = env.get_wrapper_attr("action_streams")
        space = env.action_space
        self._action_ids = int(space.n if isinstance(space, gym.spaces.Discrete) else space.nvec.sum())
        self.episode_log: list[dict[str, list[Any]]] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.context.reset()
        self.episode_log.append({"logp": [], "dof": []})
        return obs, info

    def allowed_sets(self) -> np.ndarray:
        """``[C, V]``: the allowed ids of each chosen stream for the next step (prior or bigram)."""
        if self.bigram is not None:
            return self.bigram(self.context.history)
        return self.context.allowed(self.action_streams, self.guidance.top_p)

    def prior_mask(self) -> np.ndarray:
        """The allowed sets, flat as ``MaskablePPO`` takes them (``Discrete``: ``[V]``, else ``[C * V]``)."""
        return self.allowed_sets().reshape(-1)

    def action_masks(self) -> np.ndarray:
        """What the policy may choose: the allowed sets under ``constrain``, every token otherwise."""
        if self.guidance.mode == "constrain":
            return self.prior_mask()
        return np.ones(self._action_ids, bool)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        token = np.asarray(info["token"], np.int64).reshape(self.context.streams)  # the whole tuple
        logp = self.context.log_prob(token)
        info = {**info, "task_reward": float(reward), "prior_logp": logp}
        if self.guidance.mode == "bonus":
            reward = float(reward) + self.guidance.beta * logp
        log = self.episode_log[-1]
        log["logp"].append(logp)
        log["dof"].append(np.asarray(info["targets"]))
        self.context.advance(token)
        return obs, reward, terminated, truncated, info


def episode_stats(log: list[dict[str, list[Any]]], fps: float, num_dof: int) -> dict[str, float]:
    """``prior_nll_bits_per_token`` (per whole tuple, the policy's streams and the prior's fill together, as
    ``evaluate_prior.py`` counts a step) and the decoded joint angles' mean absolute ``jerk_rad_s3``.

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


def token_env(
    inner: gym.Env,
    tokenizer: Any,
    guidance: PriorGuidance | None,
    *,
    levels: int | None = None,
    training: bool = True,
) -> gym.Env:
    """``inner`` in token space for a policy choosing the coarse level of every part, with episode statistics
    of the task reward; under ``guidance``, the prior completes, scores (and constrains) each step.

    ``levels``: the levels decoded (default: every level with a prior, which fills the finer ones; the coarse
    level alone without one). Evaluation envs (``training=False``) score and constrain but add no bonus.
    """
    if guidance is None:
        return gym.wrappers.RecordEpisodeStatistics(
            TokenActionWrapper(inner, tokenizer, levels=levels or 1, action_levels=1, observe_token=True)
        )
    # Torch is imported only when a prior is actually used: `import motion_vqvae.envs` stays torch-free.
    from motion_vqvae.prior.sampling import LoadedPrior, StepContext, TorchPriorBackend
    from motion_vqvae.prior.scoring import bigram_probs

    prior = LoadedPrior.load(guidance.prior)
    context = StepContext(TorchPriorBackend(prior.model), prior.spec.num_streams)
    env = TokenActionWrapper(
        inner, tokenizer, levels=levels, action_levels=1, observe_token=True, fill=context.fill
    )
    if prior.spec != env.token_spec:
        raise InvalidValue(
            f"prior {guidance.prior} models tokens {prior.spec.to_dict()}, the env's tokenizer has "
            f"{env.token_spec.to_dict()}; train the prior on this tokenizer's tokens"
        )
    bigram = None
    if guidance.mask_model == "bigram":
        unigram, counts = prior.state["unigram"].numpy(), prior.state["bigram"].numpy()
        bigram = BigramMask(unigram, bigram_probs(counts), env.action_streams, guidance.top_p)
    mode = guidance.mode if training or guidance.mode == "constrain" else "none"
    scored = PriorGuidance(guidance.prior, mode, guidance.beta, guidance.top_p, guidance.mask_model)
    return PriorGuidanceWrapper(gym.wrappers.RecordEpisodeStatistics(env), context, scored, bigram)


def ppo_class(guidance: PriorGuidance | None) -> type:
    """``MaskablePPO`` (sb3-contrib) for the constraint, plain ``PPO`` otherwise."""
    if guidance is not None and guidance.mode == "constrain":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    from stable_baselines3 import PPO

    return PPO


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
