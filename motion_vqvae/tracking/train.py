"""Train a tracker with PPO on the batched G1 tracking environment; the body of ``train_tracker.py``.

Run-directory behaviour is the tokenizer trainer's (:mod:`motion_vqvae.training.rundir`): a used ``--out``
needs ``--resume`` or ``--overwrite``, ``.lock`` refuses a second run, and ``--resume`` continues
``checkpoints/last.pt`` bit for bit (weights, optimizer, normaliser, every simulator state, episode
counters, adaptive-sampling weights and all random generators are saved at an iteration boundary). The
first SIGINT/SIGTERM/SIGHUP stops at the next iteration boundary after saving (``signals.StopRequests``);
``--time-budget`` ends training the same way. A gradient step whose norm is not finite is skipped.

``tokenizers``: each clip is also tracked as each tokenizer decodes it (named ``<clip>_decoded``, or
``<clip>_decoded<k>`` for the k-th of several), so a tracker meant to execute decoded tokens trains on
decoders' own motion (their foot skate, float and joint-range habits), not only on the clean clips; several
tokenizers keep it from fitting one decoder's quirks. ``--resume`` refuses other clips than the run's.

``init_from``: a new run starts from another tracker's weights (actor, critic, normaliser, std) and, from a
training checkpoint, its optimizer, with a fresh environment, to fine-tune it on more clips; the checkpoint
records where it started (``init_from``: path, iterations and env steps of the start).

``results.json`` holds the evaluation figures (:mod:`.evaluate`) and ``learning_curve``: pairs
``[env_steps, mean_return]``, the mean undiscounted return of the episodes that ended in each iteration.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from motion_vqvae.data import Motion
from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.errors import UserError
from motion_vqvae.tracking.batch import TrackingBatch
from motion_vqvae.tracking.config import TrackerConfig
from motion_vqvae.tracking.evaluate import policy_of, run_clips, score
from motion_vqvae.tracking.ppo import ActorCritic, Rollout, ppo_update
from motion_vqvae.tracking.reference import ReferenceMotion, read_clips
from motion_vqvae.tracking.release import DECODED_SUFFIX
from motion_vqvae.tracking.report import decode_through_tokenizer
from motion_vqvae.training.checkpoint import load_checkpoint, save_checkpoint
from motion_vqvae.training.rundir import RunDirectory
from motion_vqvae.training.signals import StopRequests, TrainingInterrupted
from motion_vqvae.typed_fields import typed_from_dict

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoints", "results.json")
"""What a tracker run writes into its directory; ``--overwrite`` removes these and nothing else."""
RESUMABLE_KEYS = frozenset({"total_iter", "save_every", "lr"})
"""Keys that ``--resume`` may change; any other would change the MDP or the network."""


def build_model(config: TrackerConfig, obs_size: int, action_size: int) -> ActorCritic:
    return ActorCritic(obs_size, action_size, list(config.hidden), config.init_std)


def train_tracker(
    motion_file: str | Path,
    out: str | Path,
    fps: float | None = None,
    overrides: dict[str, Any] | None = None,
    time_budget_min: float | None = None,
    resume: bool = False,
    overwrite: bool = False,
    tokenizers: Sequence[str | Path] = (),
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train (or continue) a tracker on ``motion_file`` (and its clips decoded through ``tokenizers``);
    returns ``results.json``'s content."""
    if resume and init_from is not None:
        raise UserError("--init-from starts a new run from a tracker; --resume continues this one: pick one")
    run = RunDirectory(out, files=RUN_FILES)
    run.check(resume, overwrite)
    with run.locked():
        if overwrite:
            run.clear()
        saved = load_checkpoint(run.last) if resume else None
        config = _config(saved, overrides or {}, run.last)
        (run.path / "config.yaml").write_text(json.dumps(dataclasses.asdict(config), indent=1))
        torch.manual_seed(config.seed)
        body = G1Body(timestep=1.0 / config.physics_hz)
        reference = ReferenceMotion.from_motions(
            training_motions(motion_file, fps, tokenizers), body, config.control_fps
        )
        if saved is not None and "clips" not in saved:
            log.warning("%s names no training clips (it predates that field); not checking them", run.last)
        elif saved is not None and list(saved["clips"]) != list(reference.names):
            raise UserError(
                f"--resume continues {run.last}, trained on clips {list(saved['clips'])}; these inputs give "
                f"{list(reference.names)}. Pass the run's --motion_file (and --tokenizer) again"
            )
        batch = TrackingBatch(reference, config, body, seed=config.seed)
        model = build_model(config, batch.obs_size, batch.num_dof)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        generator = torch.Generator().manual_seed(config.seed)
        progress: dict[str, Any] = {"iteration": 0, "env_steps": 0, "learning_curve": [], "returns": None}
        origin = None if saved is None else saved.get("init_from")
        if init_from is not None and saved is None:
            origin = _start_from(model, optimizer, init_from, batch)
        obs = batch.reset()
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
            batch.set_state({k: v.numpy() if torch.is_tensor(v) else v for k, v in saved["env"].items()})
            obs = batch.observation()
            progress = {**saved["progress"], "returns": saved["progress"]["returns"].numpy()}
            run.truncate_metrics(progress["iteration"])
            log.info("resumed %s at iteration %d", run.last, progress["iteration"])
        if progress["returns"] is None:
            progress["returns"] = np.zeros(config.num_envs)
        _train(run, config, batch, model, optimizer, generator, obs, progress, time_budget_min, origin)
        runs = run_clips(policy_of(model), reference, config)
        results = {
            **score(runs, config.control_fps, body.joint_names),
            "learning_curve": progress["learning_curve"],
            "env_steps": progress["env_steps"],
            "iterations": progress["iteration"],
            "control_fps": config.control_fps,
            "physics_hz": config.physics_hz,
        }
        (run.path / "results.json").write_text(json.dumps(results, indent=1))
        return results


def training_motions(
    motion_file: str | Path | list[str | Path], fps: float | None, tokenizers: Sequence[str | Path]
) -> list[Motion]:
    """The clips (:func:`read_clips`), then each decoded through each
    tokenizer (``<clip>_decoded``, numbered from 1 when there are several)."""
    motions = read_clips(motion_file, fps)
    out = list(motions)
    for k, tokenizer in enumerate(tokenizers, start=1):
        suffix = DECODED_SUFFIX + (str(k) if len(tokenizers) > 1 else "")
        pairs = zip(motions, decode_through_tokenizer(motions, tokenizer), strict=True)
        out += [dataclasses.replace(d, name=m.name + suffix) for m, d in pairs]
    return out


def _start_from(
    model: ActorCritic, optimizer: torch.optim.Optimizer, path: str | Path, batch: TrackingBatch
) -> dict[str, Any]:
    """Load another tracker's weights into ``model`` and, from a training checkpoint, its optimizer (Adam's
    moments and the adapted learning rate); refuses one with another observation or joint set.

    Why the optimizer: a fresh Adam at the config's ``lr`` (1e-3) moved a trained tracker by a KL of 6 in
    its first iteration (measured), undoing much of its training before the KL rule lowered the rate.
    """
    state = load_checkpoint(path)
    if "obs_size" not in state or "joint_names" not in state:
        raise UserError(f"--init-from {path} is not a tracker checkpoint; pass a train_tracker.py last.pt")
    if int(state["obs_size"]) != batch.obs_size or list(state["joint_names"]) != batch.body.joint_names:
        raise UserError(
            f"--init-from {path}: its observation ({state['obs_size']}) or joints differ from this run's "
            f"({batch.obs_size}); start from a tracker of the same robot and layout"
        )
    differs = f"--init-from {path}: its network differs from this config's (hidden sizes?)"
    try:
        result = model.load_state_dict(state["model"], strict=False)
    except RuntimeError as exc:  # tensor shapes differ
        raise UserError(differs) from exc
    if result.unexpected_keys or [k for k in result.missing_keys if not k.startswith("critic.")]:
        raise UserError(differs)
    if result.missing_keys:
        log.warning("--init-from %s has no critic (a release); the critic starts untrained", path)
    if "optimizer" in state and not result.missing_keys:
        optimizer.load_state_dict(state["optimizer"])
    else:
        log.warning(
            "--init-from %s has no optimizer state; Adam starts fresh at lr %g",
            path,
            optimizer.defaults["lr"],
        )
    progress = state.get("progress", {})
    return {
        "path": str(path),
        "iterations": int(progress.get("iteration", 0)),
        "env_steps": int(progress.get("env_steps", 0)),
    }


def _config(saved: dict[str, Any] | None, overrides: dict[str, Any], checkpoint: Path) -> TrackerConfig:
    if saved is None:
        return typed_from_dict(TrackerConfig, overrides, "--set")
    base = saved["config"]
    changed = sorted(k for k, v in overrides.items() if base.get(k) != v)
    refused = [k for k in changed if k not in RESUMABLE_KEYS]
    if refused:
        raise UserError(
            f"--resume continues {checkpoint} with its own config; {refused} would change the MDP or the "
            f"network. Keys that may change on resume: {sorted(RESUMABLE_KEYS)}"
        )
    return typed_from_dict(TrackerConfig, {**base, **overrides}, str(checkpoint))


def _train(
    run: RunDirectory,
    config: TrackerConfig,
    batch: TrackingBatch,
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    obs: np.ndarray,
    progress: dict[str, Any],
    time_budget_min: float | None,
    origin: dict[str, Any] | None,
) -> None:
    """PPO iterations until ``total_iter``, the time budget or a stop signal; saves ``last.pt`` at the end."""
    start = time.monotonic()
    rollout = Rollout(config.steps_per_env, config.num_envs, batch.obs_size, batch.num_dof)
    first = progress["iteration"]
    bar = tqdm(total=config.total_iter, initial=first, desc="tracker", unit="it", mininterval=5)
    with StopRequests() as stop:
        for iteration in range(first, config.total_iter):
            obs = _collect(config, batch, model, generator, obs, rollout, progress)
            stats = ppo_update(model, optimizer, rollout, config, generator)
            progress["iteration"] = iteration + 1
            row = {"iteration": iteration + 1, "env_steps": progress["env_steps"], **stats}
            if progress["learning_curve"] and progress["learning_curve"][-1][0] == progress["env_steps"]:
                row["mean_return"] = progress["learning_curve"][-1][1]
            with (run.path / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            bar.update(1)
            bar.set_postfix(ret=row.get("mean_return", float("nan")), kl=stats["kl"])
            out_of_time = time_budget_min is not None and time.monotonic() - start >= 60 * time_budget_min
            last = iteration + 1 == config.total_iter
            if stop.signum is not None or out_of_time or last or (iteration + 1) % config.save_every == 0:
                _save(run, config, batch, model, optimizer, generator, progress, origin)
            if stop.signum is not None:
                bar.close()
                raise TrainingInterrupted(stop.signum, iteration + 1)
            if out_of_time:
                log.info("time budget of %.1f min reached at iteration %d", time_budget_min, iteration + 1)
                break
    bar.close()


def _collect(
    config: TrackerConfig,
    batch: TrackingBatch,
    model: ActorCritic,
    generator: torch.Generator,
    obs: np.ndarray,
    rollout: Rollout,
    progress: dict[str, Any],
) -> np.ndarray:
    """One rollout of ``steps_per_env`` steps; time-outs bootstrap their value into the reward."""
    returns, finished = progress["returns"], []
    for t in range(config.steps_per_env):
        obs_t = torch.from_numpy(obs)
        model.norm.update(obs_t)
        with torch.no_grad():
            seen = model.norm(obs_t)
            dist, value = model.heads(seen)
            action = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=generator)
        obs, reward, terminated, truncated, info = batch.step(action.double().numpy())
        returns += reward
        reward_t = torch.from_numpy(reward).float()
        if truncated.any():
            with torch.no_grad():
                _, final_value = model.distribution(torch.from_numpy(info["final_obs"]))
            reward_t += config.gamma * final_value * torch.from_numpy(truncated).float()
        done = terminated | truncated
        finished.extend(returns[done].tolist())
        returns[done] = 0.0
        rollout.obs[t], rollout.actions[t], rollout.values[t] = seen, action, value
        rollout.log_probs[t] = dist.log_prob(action).sum(-1)
        rollout.mean[t] = dist.mean
        rollout.rewards[t], rollout.dones[t] = reward_t, torch.from_numpy(done).float()
    with torch.no_grad():
        _, last_value = model.distribution(torch.from_numpy(obs))
    rollout.compute_returns(last_value, config.gamma, config.lam)
    progress["env_steps"] += config.steps_per_env * config.num_envs
    if finished:
        progress["learning_curve"].append([progress["env_steps"], float(np.mean(finished))])
    return obs


def _save(
    run: RunDirectory,
    config: TrackerConfig,
    batch: TrackingBatch,
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    progress: dict[str, Any],
    origin: dict[str, Any] | None,
) -> None:
    env = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.get_state().items()}
    save_checkpoint(
        {
            "model": model.state_dict(),
            "config": dataclasses.asdict(config),
            "obs_size": batch.obs_size,
            "joint_names": batch.body.joint_names,
            "clips": list(batch.ref.names),
            "init_from": origin,
            "action_scale": torch.from_numpy(batch.action_scale),
            "default_dof": torch.from_numpy(batch.default_dof),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "env": env,
            "progress": {**progress, "returns": torch.from_numpy(progress["returns"].copy())},
        },
        run.last,
    )
