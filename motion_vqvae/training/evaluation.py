"""Whole-clip evaluation: encode and decode entire clips (never isolated windows), score them kinematically.

Root motion is integrated from the reference's first frame, so drift of the decoded root velocities shows
up in ``root_pos_error_mm`` and ``mpjpe_global_mm`` exactly as it would on a robot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from motion_vqvae.data.motion import Motion
from motion_vqvae.features import FeatureLayout
from motion_vqvae.metrics import motion_metrics
from motion_vqvae.models.vqvae import VQVAE

METRIC_KEYS = (
    "dof_rmse_rad",
    "mpjpe_local_mm",
    "mpjpe_global_mm",
    "pa_mpjpe_mm",
    "accel_error_mm",
    "root_pos_error_mm",
)


@dataclass
class ClipResult:
    """One evaluated clip: its reconstruction, its tokens and its metrics."""

    reference: Motion
    reconstruction: Motion
    tokens: np.ndarray  # (T / frames_per_token,) int64
    metrics: dict[str, float] = field(default_factory=dict)


def pad_to_multiple(features: np.ndarray, multiple: int) -> np.ndarray:
    """Repeat the last frame so the length divides by ``multiple`` (a causal model never sees it early)."""
    extra = (-len(features)) % multiple
    if extra == 0:
        return features
    return np.concatenate([features, np.repeat(features[-1:], extra, axis=0)])


@torch.no_grad()
def encode_motion(model: VQVAE, layout: FeatureLayout, motion: Motion, device: torch.device) -> np.ndarray:
    """Token ids of a whole clip, ``ceil(T / frames_per_token)`` of them."""
    feats = pad_to_multiple(layout.normalize(layout.from_motion(motion)), model.frames_per_token)
    x = torch.as_tensor(feats, dtype=torch.float32, device=device)[None]  # (1, T, F)
    return model.encode(x)[0].cpu().numpy()


@torch.no_grad()
def decode_tokens(
    model: VQVAE,
    layout: FeatureLayout,
    tokens: np.ndarray,
    *,
    fps: float,
    start_pos: np.ndarray,
    start_yaw: float,
    num_frames: int | None = None,
    name: str = "decoded",
    device: torch.device | None = None,
) -> Motion:
    """Decode token ids into a global motion placed at ``start_pos``/``start_yaw``."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be a 1-D integer array, got shape {tokens.shape} dtype {tokens.dtype}")
    nb_code = model.quantizer.nb_code
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= nb_code):
        raise ValueError(
            f"token ids must be in [0, {nb_code - 1}], got min {tokens.min()} max {tokens.max()}"
        )
    device = device or next(model.parameters()).device
    idx = torch.as_tensor(tokens, dtype=torch.long, device=device)[None]  # (1, T')
    feats = model.decode(idx)[0].cpu().double().numpy()  # (T' * fpt, F)
    if num_frames is not None:
        feats = feats[:num_frames]
    return layout.to_motion(
        layout.denormalize(feats), fps=fps, start_pos=start_pos, start_yaw=start_yaw, name=name
    )


def reconstruct_motion(
    model: VQVAE, layout: FeatureLayout, motion: Motion, device: torch.device
) -> tuple[Motion, np.ndarray]:
    """Encode then decode a whole clip from the reference's first pose; returns (motion, tokens)."""
    tokens = encode_motion(model, layout, motion, device)
    start_pos, start_yaw = layout.start_pose(motion)
    recon = decode_tokens(
        model,
        layout,
        tokens,
        fps=motion.fps,
        start_pos=start_pos,
        start_yaw=start_yaw,
        num_frames=motion.num_frames,
        name=motion.name,
        device=device,
    )
    recon.joint_names = list(motion.joint_names)
    return recon, tokens


def codebook_stats(tokens: Sequence[np.ndarray], nb_code: int) -> dict[str, float]:
    """Fraction of codes used and perplexity of the token histogram."""
    counts = np.bincount(np.concatenate([np.asarray(t).ravel() for t in tokens]), minlength=nb_code)
    probs = counts / max(1, counts.sum())
    nonzero = probs[probs > 0]
    return {
        "codebook_usage": float((counts > 0).mean()),
        "perplexity": float(np.exp(-(nonzero * np.log(nonzero)).sum())),
    }


def evaluate_motions(
    model: VQVAE,
    layout: FeatureLayout,
    motions: Sequence[Motion],
    *,
    mjcf: str | Path | None = None,
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[dict, list[ClipResult]]:
    """Metrics averaged over clips, codebook statistics over all their tokens, and per-clip results."""
    if not motions:
        raise ValueError("evaluate_motions: no clips to evaluate")
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        results = []
        for motion in tqdm(motions, desc="evaluate", unit="clip", disable=not progress):
            recon, tokens = reconstruct_motion(model, layout, motion, device)
            metrics = motion_metrics(recon, motion, mjcf=mjcf)
            results.append(ClipResult(motion, recon, tokens, metrics))
    finally:
        model.train(was_training)
    summary: dict = {k: float(np.mean([r.metrics[k] for r in results])) for k in METRIC_KEYS}
    summary.update(codebook_stats([r.tokens for r in results], model.quantizer.nb_code))
    summary["num_clips"] = len(results)
    summary["num_frames"] = int(sum(r.reference.num_frames for r in results))
    summary["per_clip"] = [
        {"name": r.reference.name, "num_frames": r.reference.num_frames, **r.metrics} for r in results
    ]
    return summary, results
