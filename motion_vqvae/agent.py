"""MVQVAEAgent: the tokenizer's public face, with the original tool's API.

    agent = MVQVAEAgent(config=ConfigLoader().to_dict())
    agent.setup_from_file("motions.npy")
    agent.fit()
    tokens = agent.encode(motion); motion = agent.decode(tokens, start_pose)

Data flows one way: files -> Motion -> features (normalized) -> windows -> VQ-VAE -> checkpoint.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motion_vqvae.body_parts import part_columns
from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data import Motion
from motion_vqvae.data.fingerprint import dataset_fingerprint
from motion_vqvae.errors import DeviceUnavailable, InvalidValue, user_input
from motion_vqvae.features import FeatureLayout
from motion_vqvae.models.tokens import MULTI_LEVEL
from motion_vqvae.models.vqvae import VQVAE
from motion_vqvae.training.cache import MotionCache, is_cache
from motion_vqvae.training.checkpoint import (
    capture_rng_states,
    check_model_shapes,
    load_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from motion_vqvae.training.clips import (
    augmented,
    capped_validation,
    load_config_motions,
    single_fps,
    split_clips,
    training_motions,
)
from motion_vqvae.training.distributed import local_rank
from motion_vqvae.training.evaluation import (
    ReferenceKinematics,
    decode_tokens,
    encode_motion,
    evaluate_motions,
    reconstruct_motion,
)
from motion_vqvae.training.joint_range import joint_range
from motion_vqvae.training.precision import enable_tf32
from motion_vqvae.training.schedule import build_optimizer
from motion_vqvae.training.windows import WindowDraws, WindowSampler
from sim2real import JointMap, load_robot
from sim2real.token_spec import TokenSpec

log = logging.getLogger(__name__)

__all__ = ["MVQVAEAgent", "augmented", "load_config_motions", "model_hparams", "single_fps", "split_clips"]

StartPose = tuple[np.ndarray, float] | Motion | None


class MVQVAEAgent:
    """Owns the config, the data split, the model and its optimisation state."""

    def __init__(self, config: dict[str, Any] | AgentConfig | None = None, run_dir: str | Path | None = None):
        self.cfg = config if isinstance(config, AgentConfig) else AgentConfig.from_dict(config or {})
        self.run_dir = Path(run_dir) if run_dir is not None else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        self.device = _resolve_device(self.cfg.device)
        enable_tf32(self.device)
        if self.cfg.num_threads:
            torch.set_num_threads(self.cfg.num_threads)
        self.model: VQVAE | None = None
        self.layout: FeatureLayout | None = None
        self.joint_map: JointMap | None = None
        self.fps: float | None = None  # of the training clips; stored in the checkpoint's token_spec
        self.train_motions: list[Motion] = []
        self.val_motions: list[Motion] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.sampler: WindowDraws | None = None
        self._references: ReferenceKinematics | None = None  # FK of val_motions, computed at first use
        self.iteration = 0
        self.best_metric = math.inf
        self.dataset: str | None = None  # fingerprint of the clips given to setup()
        self.val_clip_names: list[str] = []  # held-out clips of a loaded checkpoint

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
        _seed_everything(self.cfg.seed)
        self.dataset = dataset_fingerprint(motions)
        self.fps = single_fps(motions)
        self.train_motions, held_out = split_clips(motions, self.cfg)
        kept = set(capped_validation({m.name: m.num_frames for m in held_out}, self.cfg))
        self.val_motions = [m for m in held_out if m.name in kept]
        self.layout = FeatureLayout.for_motion(self.train_motions[0], prefer_expmap=self.cfg.prefer_expmap)
        training_clips = augmented(self.train_motions, self.cfg)
        train_features = [self.layout.from_motion(m) for m in training_clips]
        self.layout.fit_normalizer(train_features)
        self._finish_setup(
            WindowSampler(
                [self.layout.normalize(f) for f in train_features],
                self.cfg.window_size + self.cfg.burn_in,
                self.cfg.seed,
                self.device,
                names=[m.name for m in training_clips],
            ),
            len(self.train_motions),
        )

    def setup_from_cache(self, cache: MotionCache) -> None:
        """As :meth:`setup`, from a preprocessed cache (see ``scripts/preprocess.py``): split, normaliser
        and features come from the cache, windows are gathered from its memory-mapped shards."""
        from motion_vqvae.training.memmap_windows import MemmapWindowSampler

        _seed_everything(self.cfg.seed)
        cache.check_settings(self.cfg)
        self.dataset = cache.fingerprint
        self.fps = cache.fps
        self.train_motions = []
        self.val_motions = cache.validation_motions(capped_validation(cache.validation_lengths(), self.cfg))
        self.layout = cache.layout()
        sampler = MemmapWindowSampler.from_cache(
            cache, self.cfg.window_size + self.cfg.burn_in, self.cfg.seed, self.device
        )
        self._finish_setup(sampler, sum(c.augmentation == "none" for c in cache.training_clips()))

    def _finish_setup(self, sampler: WindowDraws, num_train_clips: int) -> None:
        with user_input():  # sim2real raises builtins for an unknown robot or a broken robot YAML
            robot = load_robot(self.cfg.robot)
        self.joint_map = JointMap.from_config(
            robot,
            apply_sim_to_real_map=self.cfg.apply_sim_to_real_map,
            real_dof=self.cfg.real_dof,
            sim_to_real_idx=self.cfg.sim_to_real_idx,
        )
        self._build(hparams=None)
        self.sampler = sampler
        self._references = None
        names = [m.name for m in self.val_motions]
        log.info(
            "%d training clips (%d windows), %d validation clips: %s",
            num_train_clips,
            self.sampler.num_windows,
            len(names),
            ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else ""),
        )

    def _build(self, hparams: dict[str, Any] | None) -> None:
        assert self.layout is not None
        cfg = self.cfg
        hparams = hparams or model_hparams(cfg, self.layout, self.fps)
        self.model = VQVAE(**hparams).to(self.device)
        self.optimizer, self.scheduler = build_optimizer(self.model, cfg)

    # ------------------------------------------------------------------------------------------ training
    def fit(self, time_budget_s: float | None = None) -> dict[str, Any]:
        """Train until total_iter (or the time budget); returns the last validation summary."""
        from motion_vqvae.training.loop import train

        self._require_setup()
        return train(self, time_budget_s=time_budget_s)

    def evaluate(self, motions: list[Motion] | None = None) -> dict[str, Any]:
        """Whole-clip metrics on ``motions`` (default: the validation clips)."""
        self._require_model()
        if motions is not None:
            summary, _ = evaluate_motions(
                self.model, self.layout, motions, mjcf=self.mjcf, device=self.device
            )
            return summary
        if self._references is None:  # the held-out clips' forward kinematics, once per run
            self._references = ReferenceKinematics(self.mjcf)
        summary, _ = evaluate_motions(
            self.model, self.layout, self.val_motions, device=self.device, references=self._references
        )
        return summary

    @property
    def mjcf(self) -> str | None:
        if self.cfg.mjcf:
            return self.cfg.mjcf
        robot_mjcf = load_robot(self.cfg.robot).mjcf
        return str(robot_mjcf) if robot_mjcf is not None and Path(robot_mjcf).is_file() else None

    # ------------------------------------------------------------------------------------------ inference
    def encode(self, motion: Motion) -> np.ndarray:
        """Tokens (int64) of a whole clip: ``[T']``, or ``[T', S]`` for a multi-stream :attr:`token_spec`."""
        self._require_model()
        self.model.eval()
        return encode_motion(self.model, self.layout, self.prepare(motion), self.device)

    def decode(
        self,
        tokens: np.ndarray | list[int],
        start_pose: StartPose = None,
        fps: float | None = None,
        levels: int | None = None,
    ) -> Motion:
        """Motion from tokens (``[T]``, or ``[T, S]`` for a multi-stream :attr:`token_spec`), placed at
        ``start_pose``: (position, yaw), a Motion (its first frame) or None (the origin). ``levels=K``
        decodes with the first K levels of every part only."""
        self._require_model()
        self.model.eval()
        if isinstance(start_pose, Motion):
            start_pos, start_yaw = self.layout.start_pose(start_pose)
        elif start_pose is None:
            start_pos, start_yaw = np.zeros(3), 0.0
        else:
            start_pos, start_yaw = np.asarray(start_pose[0], dtype=np.float64), float(start_pose[1])
        return decode_tokens(
            self.model,
            self.layout,
            np.asarray(tokens),
            fps=fps or self.model.token_spec.fps,
            start_pos=start_pos,
            start_yaw=start_yaw,
            device=self.device,
            levels=levels,
        )

    def reconstruct(self, motion: Motion) -> Motion:
        """Encode then decode a clip from its own first pose, same length."""
        self._require_model()
        return reconstruct_motion(self.model, self.layout, self.prepare(motion), self.device)[0]

    def prepare(self, motion: Motion) -> Motion:
        """The clip in the model's joint order and fps (what encode/reconstruct feed the network)."""
        assert self.layout is not None
        names = self.layout.joint_names
        if names and motion.joint_names and list(motion.joint_names) != names:
            from sim2real import remap_columns

            dof = remap_columns(motion.dof, list(motion.joint_names), names)
            motion = Motion(motion.name, motion.fps, motion.root_pos, motion.root_quat, dof, names)
        target = self.cfg.target_fps
        if target and abs(motion.fps - target) > 1e-9:
            from motion_vqvae.data import resample

            motion = resample(motion, target)
        elif self.fps is not None and abs(motion.fps - self.fps) > 1e-9:
            raise InvalidValue(
                f"clip '{motion.name}' is at {motion.fps} fps, the model at {self.fps} fps (target_fps: null "
                "means no resampling); resample it (motion_vqvae.data.resample) first"
            )
        return motion

    # ------------------------------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (tensors and plain types only)."""
        self._require_model()
        return {
            "model": self.model.state_dict(),
            "model_hparams": self.model.hparams(),
            "token_spec": self.model.token_spec.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
            "rng": capture_rng_states(self.device),
            "iteration": self.iteration,
            "best_metric": self.best_metric,
            "config": self.cfg.to_dict(),
            "feature_layout": self.layout.to_dict(),
            "joint_map": self.joint_map.to_dict() if self.joint_map is not None else None,
            "val_clips": [m.name for m in self.val_motions],
            "dataset": self.dataset,
        }

    def save(self, path: str | Path) -> Path:
        save_checkpoint(self.state_dict(), path)
        return Path(path)

    def load(self, path: str | Path, resume: bool = True) -> None:
        """Restore a checkpoint into this agent; with ``resume`` also optimizer, sampler and RNG states.

        Read onto the CPU, then copied into the model's and optimizer's device: RNG states must stay CPU
        tensors, and a checkpoint from any device or world size loads the same way.
        """
        state = load_checkpoint(path)
        if "token_spec" not in state:
            raise InvalidValue(
                f"checkpoint {path} predates token structures (no 'token_spec'): its quantizer state "
                "cannot be mapped onto this version's models; retrain it with scripts/train_vqvae.py"
            )
        self.layout = FeatureLayout.from_dict(state["feature_layout"])
        self.joint_map = JointMap.from_dict(state["joint_map"]) if state.get("joint_map") else None
        check_model_shapes(VQVAE, state["model_hparams"], state["model"], path)
        if "joint_range" not in state["model_hparams"]:
            log.warning(
                "checkpoint %s predates bounded joint ranges: it keeps its unbounded decoder head, so its "
                "decoded joints may leave the robot's ranges (the export still clamps them); retrain it "
                "with scripts/train_vqvae.py for a decoder that stays inside them",
                path,
            )
        self._build(hparams=state["model_hparams"])
        stored = TokenSpec.from_dict(state["token_spec"], source=f"{path}: token_spec")
        if stored != self.model.token_spec:
            raise InvalidValue(
                f"{path}: stored token_spec {stored} disagrees with its model hyper-parameters"
            )
        self.fps = self.model.token_spec.fps
        self.model.load_state_dict(state["model"])
        self.iteration = int(state["iteration"])
        self.best_metric = float(state["best_metric"])
        self.val_clip_names = list(state.get("val_clips") or [])
        if resume:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.sampler is not None and state.get("sampler"):
                self.sampler.load_state_dict(state["sampler"])
            restore_rng_states(state["rng"], self.device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None) -> MVQVAEAgent:
        """An agent ready for encode/decode/evaluate, with the config the checkpoint was trained with."""
        state = load_checkpoint(path)
        config = dict(state["config"])
        if device is not None:
            config["device"] = device
        agent = cls(AgentConfig.from_dict(config, source=str(path)), run_dir=Path(path).parent.parent)
        agent.load(path, resume=False)
        agent.model.eval()
        return agent

    @property
    def token_spec(self) -> TokenSpec:
        """The token structure of this tokenizer (levels, sizes, parts, frames per token, training fps)."""
        self._require_model()
        return self.model.token_spec

    def _require_setup(self) -> None:
        if self.model is None or self.sampler is None:
            raise RuntimeError("call setup_from_file(path) (or setup(motions)) before fit()")

    def _require_model(self) -> None:
        if self.model is None or self.layout is None:
            raise RuntimeError("no model yet: call setup_from_file(...) and fit(), or load(checkpoint)")


def model_hparams(cfg: AgentConfig, layout: FeatureLayout, fps: float) -> dict[str, Any]:
    """Model constructor arguments from the config and the training fps (checkpoints store them)."""
    if cfg.body_parts and cfg.quantizer not in MULTI_LEVEL:
        log.warning(
            "quantizer=%s is one level per body part: body_parts=%s makes one token stream per part "
            "(MultiDiscrete actions); add --set body_parts=null for a single Discrete stream",
            cfg.quantizer,
            cfg.body_parts,
        )
    return {
        "in_dim": layout.dim,
        "width": cfg.width,
        "depth": cfg.depth,
        "down_t": cfg.down_t,
        "stride_t": cfg.stride_t,
        "dilation_growth_rate": cfg.dilation_growth_rate,
        "code_dim": cfg.code_dim,
        "activation": cfg.vq_act,
        "norm": cfg.vq_norm,
        "causal": cfg.causal,
        "quantizer": cfg.quantizer,
        "nb_code": cfg.nb_code,
        "mu": cfg.mu,
        "reset_threshold": cfg.reset_threshold,
        "l2_normalize": cfg.l2_normalize_codes,
        # num_quantizers and quantize_dropout are rvq keys (as fsq_levels is fsq's): another quantizer
        # ignores them, so a one-level tokenizer needs only the quantizer (and body_parts) changed.
        "num_quantizers": cfg.num_quantizers if cfg.quantizer == "rvq" else 1,
        "quantize_dropout": cfg.quantize_dropout if cfg.quantizer == "rvq" else 0.0,
        "fsq_levels": list(cfg.fsq_levels) if cfg.quantizer == "fsq" else None,
        "parts": part_columns(cfg, layout),
        "joint_range": joint_range(cfg, layout),
        "fps": float(fps),
    }


def _resolve_device(name: str) -> torch.device:
    """``auto`` and a bare ``cuda`` mean this process's GPU (torchrun's ``LOCAL_RANK``, else 0); a device
    this machine lacks is refused by name here, before anything is built on it."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidValue(f"device {name!r} is not a torch device (use auto, cpu, cuda, cuda:0)") from exc
    if device.type == "cuda":
        device = torch.device("cuda", local_rank() if device.index is None else device.index)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.index >= count:
            listed = f" (cuda:0 to cuda:{count - 1})" if count else ""
            raise DeviceUnavailable(
                f"device {name!r}: {device} does not exist, this machine has {count} CUDA device(s)"
                f"{listed}; set device=auto or cpu (--set device=cpu)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable(f"device {name!r}: no MPS device on this machine; set device=auto or cpu")
    return device


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
