"""MVQVAEAgent: the original tool's API, a thin facade over a :class:`TokenizerTask` and its :class:`Trainer`.

    agent = MVQVAEAgent(config=ConfigLoader().to_dict())
    agent.setup_from_file("motions.npy")
    agent.fit()
    tokens = agent.encode(motion); motion = agent.decode(tokens, start_pose)

The training state (optimizer, schedule, iteration, checkpoints) belongs to the
:class:`~motion_vqvae.training.trainer.Trainer`, the tokenizer's data, split and model to the
:class:`~motion_vqvae.training.tokenizer_task.TokenizerTask`; this class forwards to them and adds the
inference calls. Nothing here changes process-wide settings (thread counts are the command line's).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data import Motion
from motion_vqvae.tokenizer import StartPose, Tokenizer
from motion_vqvae.training.cache import MotionCache, is_cache
from motion_vqvae.training.checkpoint import load_checkpoint
from motion_vqvae.training.clips import augmented, load_config_motions, single_fps, training_motions
from motion_vqvae.training.evaluation import (
    evaluate_motions,
)
from motion_vqvae.training.tokenizer_task import TokenizerTask, model_hparams
from motion_vqvae.training.trainer import Trainer
from sim2real.token_spec import TokenSpec

__all__ = [
    "MVQVAEAgent",
    "augmented",
    "load_config_motions",
    "model_hparams",
    "single_fps",
]


class MVQVAEAgent:
    """The tokenizer's data, model and (once set up or resumed) its trainer, behind the original API."""

    def __init__(self, config: dict[str, Any] | AgentConfig | None = None, run_dir: str | Path | None = None):
        cfg = config if isinstance(config, AgentConfig) else AgentConfig.from_dict(config or {})
        self.task = TokenizerTask(cfg)
        self.run_dir = Path(run_dir) if run_dir is not None else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        self.trainer: Trainer | None = None  # built with the model by setup(); none for inference
        self._loaded = (0, float("inf"))  # (iteration, best_metric) of a checkpoint loaded for inference

    # ------------------------------------------------------------------------------------------ setup
    def setup_from_file(self, path: str | Path | None = None) -> None:
        """Load motions (file, directory or glob; default: config's motion_file, else the bundled sample);
        a preprocess.py cache folder is read as one (:meth:`setup_from_cache`)."""
        source = path if path is not None else self.cfg.motion_file
        if is_cache(source):
            self.setup_from_cache(MotionCache.open(source, self.cfg))
        else:
            self.setup(training_motions(self.cfg, path))

    def setup(self, motions: list[Motion]) -> None:
        """Split clips, fit the normalization on the training clips, build model and optimizer."""
        self.task.setup(motions)
        self.trainer = Trainer(self.task, self.run_dir)

    def setup_from_cache(self, cache: MotionCache) -> None:
        """As :meth:`setup`, from a preprocessed cache (see ``scripts/preprocess.py``)."""
        self.task.setup_from_cache(cache)
        self.trainer = Trainer(self.task, self.run_dir)

    # ------------------------------------------------------------------------------------------ training
    def fit(self, time_budget_s: float | None = None, **options: Any) -> dict[str, Any]:
        """Train until total_iter (or the time budget); returns the last validation summary. ``options``
        go to :meth:`Trainer.fit` (``fit_schedule``, ``recheck_threads``)."""
        if self.trainer is None or self.task.sampler is None:
            raise RuntimeError("call setup_from_file(path) (or setup(motions)) before fit()")
        return self.trainer.fit(time_budget_s=time_budget_s, **options)

    def evaluate(self, motions: list[Motion] | None = None) -> dict[str, Any]:
        """Whole-clip metrics on ``motions`` (default: the validation clips)."""
        self._require_model()
        if motions is None:
            return self.task.validate()
        summary, _ = evaluate_motions(self.model, self.layout, motions, mjcf=self.mjcf, device=self.device)
        return summary

    # ------------------------------------------------------------------------------------------ state
    cfg = property(lambda self: self.task.cfg, lambda self, value: setattr(self.task, "cfg", value))
    device = property(lambda self: self.task.device)
    model = property(lambda self: self.task.model)
    layout = property(lambda self: self.task.layout)
    joint_map = property(lambda self: self.task.joint_map)
    fps = property(lambda self: self.task.fps)
    train_motions = property(lambda self: self.task.train_motions)
    val_motions = property(lambda self: self.task.val_motions)
    val_clip_names = property(lambda self: self.task.val_clip_names)
    split = property(lambda self: self.task.split)
    sampler = property(lambda self: self.task.sampler)
    dataset = property(lambda self: self.task.dataset)
    mjcf = property(lambda self: self.task.mjcf)
    _references = property(lambda self: self.task.references)
    optimizer = property(lambda self: self._require_trainer().optimizer)
    scheduler = property(lambda self: self._require_trainer().scheduler)

    @property
    def iteration(self) -> int:
        return self.trainer.iteration if self.trainer is not None else self._loaded[0]

    @property
    def best_metric(self) -> float:
        return self.trainer.best_metric if self.trainer is not None else self._loaded[1]

    # ------------------------------------------------------------------------------------------ inference
    def tokenizer(self) -> Tokenizer:
        """This agent's model as a frozen-API :class:`~motion_vqvae.tokenizer.Tokenizer` (same module, no
        reload: evaluation after fit sees the weights as they are now)."""
        self._require_model()
        return Tokenizer(
            self.model,
            self.cfg,
            self.layout,
            self.joint_map,
            iteration=self.iteration,
            best_metric=self.best_metric,
            val_clips=[m.name for m in self.val_motions] or self.val_clip_names,
            dataset=self.dataset,
        )

    def encode(self, motion: Motion) -> np.ndarray:
        """Tokens (int64) of a whole clip: ``[T']``, or ``[T', S]`` for a multi-stream :attr:`token_spec`."""
        return self.tokenizer().encode(motion)

    def decode(
        self,
        tokens: np.ndarray | list[int],
        start_pose: StartPose = None,
        fps: float | None = None,
        levels: int | None = None,
    ) -> Motion:
        """See :meth:`Tokenizer.decode <motion_vqvae.tokenizer.Tokenizer.decode>`."""
        return self.tokenizer().decode(tokens, start_pose, fps, levels)

    def reconstruct(self, motion: Motion) -> Motion:
        """Encode then decode a clip from its own first pose, same length."""
        return self.tokenizer().reconstruct(motion)

    def prepare(self, motion: Motion) -> Motion:
        """The clip in the model's joint order and fps (what encode/reconstruct feed the network)."""
        return self.tokenizer().prepare(motion)

    # ------------------------------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (tensors and plain types only)."""
        return self._require_trainer().state_dict()

    def save(self, path: str | Path) -> Path:
        return self._require_trainer().save(path)

    def load(self, path: str | Path, resume: bool = True) -> None:
        """Restore a checkpoint into this agent; with ``resume`` also optimizer, sampler and RNG states
        (a trainer is built for them), else the model alone (no optimizer: inference).

        Read onto the CPU, then copied into the model's and optimizer's device: RNG states must stay CPU
        tensors, and a checkpoint from any device or world size loads the same way.
        """
        state = load_checkpoint(path)
        if resume or self.trainer is not None:
            if self.trainer is None:
                self.task.load_state_dict(state, resume=False, source=path)  # the model the trainer needs
                self.trainer = Trainer(self.task, self.run_dir)
            self.trainer.load_state_dict(state, resume=resume, source=path)
        else:
            self.task.load_state_dict(state, resume=False, source=path)
            self._loaded = (int(state["iteration"]), float(state["best_metric"]))

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None) -> MVQVAEAgent:
        """An agent ready for encode/decode/evaluate, with the config the checkpoint was trained with."""
        state = load_checkpoint(path)
        config = dict(state["config"])
        if device is not None:
            config["device"] = device
        agent = cls(AgentConfig.from_dict(config, source=str(path)), run_dir=Path(path).parent.parent)
        agent.task.load_state_dict(state, resume=False, source=path)
        agent._loaded = (int(state["iteration"]), float(state["best_metric"]))
        agent.model.eval()
        return agent

    @property
    def token_spec(self) -> TokenSpec:
        """The token structure of this tokenizer (levels, sizes, parts, frames per token, training fps)."""
        self._require_model()
        return self.model.token_spec

    def _require_trainer(self) -> Trainer:
        if self.trainer is None:
            raise RuntimeError("no training state: call setup_from_file(path) (or setup(motions)) first")
        return self.trainer

    def _require_model(self) -> None:
        if self.model is None or self.layout is None:
            raise RuntimeError("no model yet: call setup_from_file(...) and fit(), or load(checkpoint)")
