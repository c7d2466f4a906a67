"""A compact PPO (rsl-rl's algorithm) for the tracker: actor-critic, rollout storage, clipped update.

Why not ``rsl-rl-lib`` itself: it would not replace torch here (checked with ``pip install --dry-run``), but
it brings ten more packages (tensorboard, tensordict, onnxscript, GitPython, ...) and its
``OnPolicyRunner`` owns the training loop, log directory and checkpoint format, which would bypass the
project's run directory (lock, ``--overwrite``, ``--resume`` bit for bit) and signal handling. The algorithm
is the same as rsl-rl's and BeyondMimic's settings: Gaussian policy with a state-independent learned std,
ELU MLPs (512, 256, 128), empirical observation normalisation, GAE, clipped surrogate and clipped value
loss, entropy bonus, gradient clipping, and a learning rate adapted to a KL target.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from motion_vqvae.tracking.config import TrackerConfig


class RunningNorm(nn.Module):
    """Empirical mean and variance of the observations (updated from rollouts, frozen at export)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    def update(self, x: torch.Tensor) -> None:
        batch_mean, batch_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total).float()
        m2 = self.var * self.count.float() + batch_var * n + delta**2 * (self.count * n / total).float()
        self.var.copy_(m2 / total.float())
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / torch.sqrt(self.var + 1e-8)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Normalised observation -> action mean (actor) and value (critic); ``log_std`` learned per joint."""

    def __init__(self, obs_size: int, action_size: int, hidden: list[int], init_std: float) -> None:
        super().__init__()
        self.norm = RunningNorm(obs_size)
        self.actor = mlp([obs_size, *hidden, action_size])
        self.critic = mlp([obs_size, *hidden, 1])
        self.log_std = nn.Parameter(torch.full((action_size,), math.log(init_std)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action (what is exported and run on the robot)."""
        return self.actor(self.norm(obs))

    def distribution(self, obs: torch.Tensor) -> tuple[torch.distributions.Normal, torch.Tensor]:
        return self.heads(self.norm(obs))

    def heads(self, normalised: torch.Tensor) -> tuple[torch.distributions.Normal, torch.Tensor]:
        """Policy and value of observations already normalised.

        Why a separate entry: a rollout stores its observations as the policy saw them (normalised with
        the statistics of that moment), so the PPO update's ratio and KL measure the policy's change only.
        Re-normalising stored raw observations with statistics updated since would add the normaliser's
        drift to both, most of all in the first iterations, while the statistics still move fast.
        """
        dist = torch.distributions.Normal(self.actor(normalised), self.log_std.exp())
        return dist, self.critic(normalised).squeeze(-1)


class Rollout:
    """``T x E`` transitions of one PPO iteration; ``obs`` are normalised, as the policy saw them."""

    def __init__(self, steps: int, envs: int, obs_size: int, action_size: int) -> None:
        self.obs = torch.zeros(steps, envs, obs_size)
        self.actions = torch.zeros(steps, envs, action_size)
        self.log_probs = torch.zeros(steps, envs)
        self.mean = torch.zeros(steps, envs, action_size)
        self.values = torch.zeros(steps, envs)
        self.rewards = torch.zeros(steps, envs)
        self.dones = torch.zeros(steps, envs)
        self.returns = torch.zeros(steps, envs)
        self.advantages = torch.zeros(steps, envs)

    def compute_returns(self, last_value: torch.Tensor, gamma: float, lam: float) -> None:
        """GAE; ``rewards`` already carry the bootstrap of time-outs (see the training loop)."""
        gae = torch.zeros_like(last_value)
        for t in reversed(range(len(self.rewards))):
            next_value = last_value if t == len(self.rewards) - 1 else self.values[t + 1]
            not_done = 1.0 - self.dones[t]
            delta = self.rewards[t] + gamma * next_value * not_done - self.values[t]
            gae = delta + gamma * lam * not_done * gae
            self.returns[t] = gae + self.values[t]
        adv = self.returns - self.values
        self.advantages = (adv - adv.mean()) / (adv.std() + 1e-8)


def ppo_update(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    config: TrackerConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Clipped PPO epochs over shuffled minibatches; adapts the learning rate to ``desired_kl``."""
    n = rollout.obs.shape[0] * rollout.obs.shape[1]
    flat = {
        k: getattr(rollout, k).reshape(n, -1).squeeze(-1)
        for k in ("obs", "actions", "log_probs", "mean", "values", "returns", "advantages")
    }
    old_std = model.log_std.detach().exp()
    size = n // config.minibatches
    stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "kl": 0.0}
    updates = 0
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        for i in range(config.minibatches):
            idx = order[i * size : (i + 1) * size]
            dist, value = model.heads(flat["obs"][idx])
            log_prob = dist.log_prob(flat["actions"][idx]).sum(-1)
            with torch.no_grad():
                std = dist.stddev
                kl = torch.sum(
                    torch.log(std / old_std)
                    + (old_std**2 + (flat["mean"][idx] - dist.mean) ** 2) / (2.0 * std**2)
                    - 0.5,
                    dim=-1,
                ).mean()
                lr = optimizer.param_groups[0]["lr"]
                if kl > 2.0 * config.desired_kl:
                    lr = max(1e-5, lr / 1.5)
                elif 0.0 < kl < 0.5 * config.desired_kl:
                    lr = min(1e-2, lr * 1.5)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            ratio = torch.exp(log_prob - flat["log_probs"][idx])
            adv = flat["advantages"][idx]
            surrogate = torch.max(-adv * ratio, -adv * ratio.clamp(1 - config.clip, 1 + config.clip)).mean()
            old_v, ret = flat["values"][idx], flat["returns"][idx]
            clipped_v = old_v + (value - old_v).clamp(-config.clip, config.clip)
            value_loss = torch.max((value - ret) ** 2, (clipped_v - ret) ** 2).mean()
            entropy = dist.entropy().sum(-1).mean()
            loss = surrogate + config.value_coef * value_loss - config.entropy_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            if torch.isfinite(norm):  # the non-finite guard's rule: a NaN step changes nothing
                optimizer.step()
            stats["policy_loss"] += float(surrogate.detach())
            stats["value_loss"] += float(value_loss.detach())
            stats["entropy"] += float(entropy.detach())
            stats["kl"] += float(kl)
            updates += 1
    return {k: v / updates for k, v in stats.items()} | {"lr": optimizer.param_groups[0]["lr"]}
