"""The tokenizer's :class:`~motion_vqvae.training.trainer.TrainTask`: its data, split, model and validation.

Data flows one way: files -> Motion -> features (normalized) -> windows -> VQ-VAE. The clips are split
three ways by clip (:mod:`motion_vqvae.training.split`): ``train`` (the windows), ``val`` (what selects
``best.pt``) and ``test`` (reported by ``evaluate.py --split test``, never scored here). The loss lives in
:mod:`motion_vqvae.training.tokenizer_loss`; the loop in :class:`~motion_vqvae.training.trainer.Trainer`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from motion_vqvae.body_parts import part_columns
from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data import Motion
from motion_vqvae.data.fingerprint import dataset_fingerprint
from motion_vqvae.devices import resolve_device
from motion_vqvae.errors import InvalidValue, user_input
from motion_vqvae.features import FeatureLayout
from motion_vqvae.models.tokens import MULTI_LEVEL
from motion_vqvae.models.vqvae import VQVAE
from motion_vqvae.training import tokenizer_loss
from motion_vqvae.training.cache import MotionCache
from motion_vqvae.training.checkpoint import check_model_shapes
from motion_vqvae.training.clips import augmented, capped_validation, single_fps
from motion_vqvae.training.evaluation import ReferenceKinematics, evaluate_motions
from motion_vqvae.training.joint_range import joint_range
from motion_vqvae.training.precision import enable_tf32
from motion_vqvae.training.split import Split, split_motions
from motion_vqvae.training.trainer import StepOutput
from motion_vqvae.training.windows import WindowDraws, WindowSampler
from sim2real import JointMap, load_robot
from sim2real.token_spec import TokenSpec

log = logging.getLogger(__name__)

BEST_METRIC = "mpjpe_local_mm"


class TokenizerTask:
    """The VQ-VAE tokenizer as a :class:`~motion_vqvae.training.trainer.TrainTask`.

    Built empty from a config; :meth:`setup` (clips in memory) or :meth:`setup_from_cache` (a preprocessed
    cache) reads the data, splits it and builds the model, :meth:`load_state_dict` rebuilds the model from
    a checkpoint.
    """

    selection_metric = BEST_METRIC

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.model: VQVAE | None = None
        self.layout: FeatureLayout | None = None
        self.joint_map: JointMap | None = None
        self.fps: float | None = None  # of the training clips; stored in the checkpoint's token_spec
        self.train_motions: list[Motion] = []
        self.val_motions: list[Motion] = []
        self.split: Split | None = None  # clip names of train / val / test
        self.sampler: WindowDraws | None = None
        self.references: ReferenceKinematics | None = None  # FK of val_motions, computed at first use
        self.dataset: str | None = None  # fingerprint of the clips given to setup()
        self.val_clip_names: list[str] = []  # held-out clips of a loaded checkpoint
        self._weights: torch.Tensor | None = None
        self._body_loss: nn.Module | None = None

    # ------------------------------------------------------------------------------------------ setup
    def setup(self, motions: list[Motion]) -> None:
        """Split clips, fit the normalization on the training clips, build the model."""
        seed_everything(self.cfg.seed)
        enable_tf32(self.device)
        self.dataset = dataset_fingerprint(motions)
        self.fps = single_fps(motions)
        self.split, parts = split_motions(motions, self.cfg)
        self.train_motions = parts["train"]
        kept = set(capped_validation({m.name: m.num_frames for m in parts["val"]}, self.cfg))
        self.val_motions = [m for m in parts["val"] if m.name in kept]
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

        seed_everything(self.cfg.seed)
        enable_tf32(self.device)
        cache.check_settings(self.cfg)
        self.dataset = cache.fingerprint
        self.fps = cache.fps
        self.train_motions = []
        held = list(cache.validation_lengths())
        train = sorted({c.name for c in cache.training_clips() if c.augmentation == "none"})
        self.split = Split(train=train, val=held, test=cache.test_names())
        self.val_motions = cache.validation_motions(capped_validation(cache.validation_lengths(), self.cfg))
        self.layout = cache.layout()
        sampler = MemmapWindowSampler.from_cache(
            cache, self.cfg.window_size + self.cfg.burn_in, self.cfg.seed, self.device
        )
        self._finish_setup(sampler, len(train))

    def _finish_setup(self, sampler: WindowDraws, num_train_clips: int) -> None:
        with user_input():  # sim2real raises builtins for an unknown robot or a broken robot YAML
            robot = load_robot(self.cfg.robot)
        self.joint_map = JointMap.from_config(
            robot,
            apply_sim_to_real_map=self.cfg.apply_sim_to_real_map,
            real_dof=self.cfg.real_dof,
            sim_to_real_idx=self.cfg.sim_to_real_idx,
        )
        self.build(hparams=None)
        self.sampler = sampler
        self.references = None
        names = [m.name for m in self.val_motions]
        log.info(
            "%d training clips (%d windows), %d validation clips: %s",
            num_train_clips,
            self.sampler.num_windows,
            len(names),
            ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else ""),
        )

    def build(self, hparams: dict[str, Any] | None) -> VQVAE:
        """The model from ``hparams`` (a checkpoint's), else from the config and the fitted layout."""
        assert self.layout is not None
        hparams = hparams or model_hparams(self.cfg, self.layout, self.fps)
        self.model = VQVAE(**hparams).to(self.device)
        self._weights = self._body_loss = None
        return self.model

    @property
    def mjcf(self) -> str | None:
        """The robot's MJCF for forward kinematics (config ``mjcf``, else the robot's own), if present."""
        if self.cfg.mjcf:
            return self.cfg.mjcf
        robot_mjcf = load_robot(self.cfg.robot).mjcf
        return str(robot_mjcf) if robot_mjcf is not None and Path(robot_mjcf).is_file() else None

    # ------------------------------------------------------------------------------------------ TrainTask
    def draw(self, batch_size: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's windows of a global batch: every rank draws the same global batch (same generator),
        so the sampler advances identically everywhere; returns (windows, their picks on the CPU)."""
        assert self.sampler is not None
        picked = self.sampler.draw(batch_size)[rows]  # (B / world,) CPU
        picks = picked
        if self.device.type == "cuda":  # pinned + non_blocking: the copy does not wait for the GPU
            picks = picked.pin_memory().to(self.device, non_blocking=True)
        return self.sampler.gather(picks), picked  # (B / world, burn_in + W, F)

    def loss(self, net: nn.Module, batch: torch.Tensor, iteration: int) -> StepOutput:
        if self._weights is None:
            self._weights = tokenizer_loss.loss_weights(self)
            self._body_loss = tokenizer_loss.body_space_loss(self)
        return tokenizer_loss.step_loss(
            self.cfg, net, batch, self._weights, self._body_loss, self.device, iteration
        )

    def term_weights(self) -> dict[str, float]:
        return tokenizer_loss.term_weights(self.cfg)

    def describe_batch(self, picks: torch.Tensor) -> tuple[bool, str]:
        return tokenizer_loss.describe_batch(self.sampler, picks)

    def host_record(self, stats: dict[str, torch.Tensor]) -> dict[str, Any]:
        return tokenizer_loss.host_stats(stats)

    @property
    def has_validation(self) -> bool:
        return bool(self.val_motions)

    def validate(self) -> dict[str, Any]:
        """Whole-clip metrics on the validation clips (their forward kinematics computed once per run)."""
        if self.references is None:
            self.references = ReferenceKinematics(self.mjcf)
        summary, _ = evaluate_motions(
            self.model, self.layout, self.val_motions, device=self.device, references=self.references
        )
        log.info(
            "val dof_rmse %.3f rad, codebook usage %.2f", summary["dof_rmse_rad"], summary["codebook_usage"]
        )
        return summary

    def identity(self) -> dict[str, Any]:
        return {"dataset": self.dataset} if self.dataset else {}

    def state_dict(self) -> dict[str, Any]:
        """The tokenizer's part of a checkpoint: model, its structure, config, layout, joint map, split."""
        assert self.model is not None and self.layout is not None
        return {
            "model": self.model.state_dict(),
            "model_hparams": self.model.hparams(),
            "token_spec": self.model.token_spec.to_dict(),
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
            "config": self.cfg.to_dict(),
            "feature_layout": self.layout.to_dict(),
            "joint_map": self.joint_map.to_dict() if self.joint_map is not None else None,
            "val_clips": [m.name for m in self.val_motions],
            "split": self.split.to_dict() if self.split is not None else None,
            "dataset": self.dataset,
        }

    def load_state_dict(self, state: dict[str, Any], resume: bool, source: str | Path = "checkpoint") -> None:
        """Rebuild the model from ``state`` (read on the CPU) and load it; with ``resume`` the sampler too."""
        check_tokenizer_checkpoint(state, source)
        self.layout = FeatureLayout.from_dict(state["feature_layout"])
        self.joint_map = JointMap.from_dict(state["joint_map"]) if state.get("joint_map") else None
        check_model_shapes(VQVAE, state["model_hparams"], state["model"], source)
        self.build(hparams=state["model_hparams"])
        stored = TokenSpec.from_dict(state["token_spec"], source=f"{source}: token_spec")
        if stored != self.model.token_spec:
            raise InvalidValue(
                f"{source}: stored token_spec {stored} disagrees with its model hyper-parameters"
            )
        self.fps = self.model.token_spec.fps
        self.model.load_state_dict(state["model"])
        self.val_clip_names = list(state.get("val_clips") or [])
        if resume and self.sampler is not None and state.get("sampler"):
            self.sampler.load_state_dict(state["sampler"])


def check_tokenizer_checkpoint(state: Mapping[str, Any], source: str | Path) -> None:
    """Refuse a checkpoint older than token structures; warn about one older than bounded joint ranges.

    The one check of a tokenizer checkpoint's vintage, shared by training resumes and ``Tokenizer.load``.
    """
    if "token_spec" not in state:
        raise InvalidValue(
            f"checkpoint {source} predates token structures (no 'token_spec'): its quantizer state "
            "cannot be mapped onto this version's models; retrain it with scripts/train_vqvae.py"
        )
    if "joint_range" not in state["model_hparams"]:
        log.warning(
            "checkpoint %s predates bounded joint ranges: it keeps its unbounded decoder head, so its "
            "decoded joints may leave the robot's ranges (the export still clamps them); retrain it "
            "with scripts/train_vqvae.py for a decoder that stays inside them",
            source,
        )


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
        "fps": float(fps),
        "joint_range": joint_range(cfg, layout),
    }


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators from one seed (same on every rank)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
