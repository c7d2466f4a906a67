"""``Tokenizer``: a trained tokenizer, frozen, as every consumer takes it (export, envs, prior, viewer).

    tok = Tokenizer.load("runs/g1/checkpoints/best.pt")
    tokens = tok.encode(motion); motion = tok.decode(tokens, start_pose=motion)

The checkpoint is read once; the model is rebuilt in eval mode with gradients off, next to the facts that
travel with it (feature layout, :class:`~sim2real.token_spec.TokenSpec`, joint map, robot, fps), and those
facts are checked against each other here, once, so no consumer has to re-check (or forget to). Loading
builds no optimizer and touches no process-wide setting (thread count, TF32, RNG): a gym env or a viewer
that loads a tokenizer leaves its process as it found it. Training owns those (:mod:`motion_vqvae.agent`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data import Motion
from motion_vqvae.devices import resolve_device
from motion_vqvae.errors import InvalidValue, user_input
from motion_vqvae.features import FeatureLayout
from motion_vqvae.models.vqvae import VQVAE
from motion_vqvae.training.checkpoint import check_model_shapes, read_checkpoint
from motion_vqvae.training.evaluation import decode_tokens, encode_motion, reconstruct_motion
from motion_vqvae.training.tokenizer_task import check_tokenizer_checkpoint
from sim2real import JointMap, RobotDescription, load_robot, remap_columns
from sim2real.token_spec import TokenSpec

if TYPE_CHECKING:
    from motion_vqvae.export.streaming import StreamingDecoder

StartPose = tuple[np.ndarray, float] | Motion | None


class Tokenizer:
    """Frozen: ``encode``, ``decode``, ``reconstruct``, ``stream``, ``export`` and a model ``card``."""

    def __init__(
        self,
        model: VQVAE,
        config: AgentConfig,
        layout: FeatureLayout,
        joint_map: JointMap | None,
        *,
        path: Path | None = None,
        sha256: str | None = None,
        iteration: int = 0,
        best_metric: float = math.inf,
        val_clips: list[str] | None = None,
        dataset: str | None = None,
    ) -> None:
        """Wrap an in-memory model (a checkpoint's, or a training run's without a reload) and check that
        its facts agree; ``path`` names the source in every error (a training run has none)."""
        self.model = model
        self.config = config
        self.layout = layout
        self.joint_map = joint_map or JointMap.identity(layout.num_dof, layout.joint_names)
        self.spec: TokenSpec = model.token_spec
        self.fps = self.spec.fps
        self.path = path
        self.sha256 = sha256
        self.iteration = iteration
        self.best_metric = best_metric
        self.val_clips = list(val_clips or [])
        self.dataset = dataset
        source = str(path) if path is not None else "the training run"
        with user_input():  # sim2real raises builtins for an unknown robot or a broken robot YAML
            self.robot: RobotDescription = load_robot(config.robot)
        _check_facts(self, source)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Tokenizer:
        """Read the checkpoint at ``path`` once and rebuild its model, frozen, on ``device``."""
        path = Path(path)
        state, sha256 = read_checkpoint(path)
        check_tokenizer_checkpoint(state, path)
        config = AgentConfig.from_dict(dict(state["config"]), source=f"{path}: config")
        check_model_shapes(VQVAE, state["model_hparams"], state["model"], path)
        model = VQVAE(**state["model_hparams"])
        model.load_state_dict(state["model"])
        model.to(resolve_device(device)).eval().requires_grad_(False)
        stored = TokenSpec.from_dict(state["token_spec"], source=f"{path}: token_spec")
        if stored != model.token_spec:
            raise InvalidValue(
                f"{path}: token_spec {stored} disagrees with the one its model_hparams build "
                f"({model.token_spec}); the file was edited or is corrupted: use another checkpoint"
            )
        return cls(
            model,
            config,
            FeatureLayout.from_dict(state["feature_layout"]),
            JointMap.from_dict(state["joint_map"]) if state.get("joint_map") else None,
            path=path,
            sha256=sha256,
            iteration=int(state["iteration"]),
            best_metric=float(state["best_metric"]),
            val_clips=list(state.get("val_clips") or []),
            dataset=state.get("dataset"),
        )

    # ------------------------------------------------------------------------------------------ inference
    def prepare(self, motion: Motion) -> Motion:
        """The clip in the model's joint order and fps (what encode/reconstruct feed the network)."""
        names = self.layout.joint_names
        if names and motion.joint_names and list(motion.joint_names) != names:
            dof = remap_columns(motion.dof, list(motion.joint_names), names)
            motion = Motion(motion.name, motion.fps, motion.root_pos, motion.root_quat, dof, names)
        target = self.config.target_fps
        if target and abs(motion.fps - target) > 1e-9:
            from motion_vqvae.data import resample

            motion = resample(motion, target)
        elif abs(motion.fps - self.fps) > 1e-9:
            raise InvalidValue(
                f"clip '{motion.name}' is at {motion.fps} fps, the model at {self.fps} fps (target_fps: null "
                "means no resampling); resample it (motion_vqvae.data.resample) first"
            )
        return motion

    def encode(self, motion: Motion) -> np.ndarray:
        """Tokens (int64) of a whole clip: ``[T']``, or ``[T', S]`` for a multi-stream :attr:`spec`."""
        return encode_motion(self.model, self.layout, self.prepare(motion), self.device)

    def decode(
        self,
        tokens: np.ndarray | list[int],
        start_pose: StartPose = None,
        fps: float | None = None,
        levels: int | None = None,
    ) -> Motion:
        """Motion from tokens (``[T]``, or ``[T, S]`` for a multi-stream :attr:`spec`), placed at
        ``start_pose``: (position, yaw), a Motion (its first frame) or None (the origin). ``levels=K``
        decodes with the first K levels of every part only."""
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
            fps=fps or self.fps,
            start_pos=start_pos,
            start_yaw=start_yaw,
            device=self.device,
            levels=levels,
        )

    def reconstruct(self, motion: Motion) -> Motion:
        """Encode then decode a clip from its own first pose, same length."""
        return reconstruct_motion(self.model, self.layout, self.prepare(motion), self.device)[0]

    def stream(self, levels: int | None = None) -> StreamingDecoder:
        """The torch streaming decoder (one token in, ``frames_per_token`` normalized frames out, with
        state), the one ``decoder_step.onnx`` is exported from; ``levels=K`` decodes K levels per part."""
        from motion_vqvae.export.streaming import StreamingDecoder

        return StreamingDecoder(self.model, levels).eval()

    def export(self, out_dir: str | Path, **options: Any) -> dict[str, Any]:
        """Export to ``out_dir`` (see :func:`motion_vqvae.export.export_checkpoint` for ``options``);
        returns the manifest."""
        from motion_vqvae.export.onnx_export import export_checkpoint

        return export_checkpoint(self, out_dir, **options)

    @property
    def device(self) -> torch.device:
        """Where the model is now (an export moves it to the CPU)."""
        return next(self.model.parameters()).device

    @property
    def mjcf(self) -> str | None:
        """MJCF for kinematic metrics (see :func:`config_mjcf`)."""
        return config_mjcf(self.config, self.robot)

    def card(self) -> dict[str, Any]:
        """What this tokenizer is, from what its checkpoint stores (nothing estimated): token structure,
        rate, robot and joints, the training data's fingerprint and the selection metric it reached."""
        spec = self.spec
        return {
            "checkpoint": None if self.path is None else str(self.path),
            "checkpoint_sha256": self.sha256,
            "robot": self.robot.name,
            "fps": self.fps,
            "token_spec": spec.to_dict(),
            "streams": list(spec.stream_names),
            "bits_per_second": spec.bits_per_second(spec.num_levels),
            "causal": self.model.causal,
            "joints": list(self.joint_map.sim_joint_names or self.layout.joint_names or []),
            "joint_map": self.joint_map.to_dict(),
            "feature_dim": self.layout.dim,
            "prefer_expmap": self.layout.prefer_expmap,
            "training": {
                "iteration": self.iteration,
                "dataset_fingerprint": self.dataset,
                "val_clips": list(self.val_clips),
            },
            "metrics": {"best_val_metric": self.best_metric} if math.isfinite(self.best_metric) else {},
        }


def config_mjcf(config: AgentConfig, robot: RobotDescription) -> str | None:
    """MJCF for kinematic metrics: the config's ``mjcf``, else the robot's when that file exists, else
    None (the bundled G1)."""
    if config.mjcf:
        return config.mjcf
    return str(robot.mjcf) if robot.mjcf is not None and Path(robot.mjcf).is_file() else None


def _check_facts(tok: Tokenizer, source: str) -> None:
    """Refuse a tokenizer whose stored facts disagree: joint order (layout, joint map, robot), fps
    (token spec, config), feature width (layout, model)."""
    layout, jmap, spec = tok.layout, tok.joint_map, tok.spec
    if layout.dim != tok.model.in_dim:
        raise InvalidValue(
            f"{source}: feature_layout is {layout.dim} features wide, the model takes {tok.model.in_dim}; "
            "the file was edited or is corrupted: use another checkpoint"
        )
    if jmap.num_sim != layout.num_dof:
        raise InvalidValue(
            f"{source}: joint_map maps {jmap.num_sim} simulator joints, the feature_layout has "
            f"{layout.num_dof}; retrain (scripts/train_vqvae.py) with a joint map for this robot"
        )
    names = layout.joint_names
    if names and jmap.sim_joint_names and list(jmap.sim_joint_names) != list(names):
        raise InvalidValue(
            f"{source}: joint_map.sim_joint_names {jmap.sim_joint_names[:3]}... differ from the "
            f"feature_layout's joint_names {names[:3]}...; the file was edited, use another checkpoint"
        )
    robot_names = list(tok.robot.sim_joint_names)
    if names and names != robot_names:
        raise InvalidValue(
            f"{source}: the model's joint order {names[:3]}... (feature_layout.joint_names) differs from "
            f"robot '{tok.config.robot}' simulator order {robot_names[:3]}...; retrain in simulator order "
            "(clips are read in the robot's order unless their files name other joints)"
        )
    target = tok.config.target_fps
    if target and abs(target - spec.fps) > 1e-9:
        raise InvalidValue(
            f"{source}: config.target_fps is {target}, the token_spec's fps {spec.fps}; the file was edited "
            "or is corrupted: use another checkpoint"
        )
