"""Whole-clip evaluation: encode and decode entire clips (never isolated windows), score them kinematically.

Root motion is integrated from the reference's first frame, so drift of the decoded root velocities shows
up in ``root_pos_error_mm`` and ``mpjpe_global_mm`` exactly as it would on a robot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from motion_vqvae.data.motion import Motion
from motion_vqvae.features import FeatureLayout
from motion_vqvae.metrics import motion_metrics
from motion_vqvae.models.vqvae import VQVAE
from sim2real.token_spec import TokenSpec

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
    tokens: np.ndarray  # (T / frames_per_token,) or (T / frames_per_token, S) int64
    metrics: dict[str, float] = field(default_factory=dict)


def pad_to_multiple(features: np.ndarray, multiple: int) -> np.ndarray:
    """Repeat the last frame so the length divides by ``multiple`` (a causal model never sees it early)."""
    extra = (-len(features)) % multiple
    if extra == 0:
        return features
    return np.concatenate([features, np.repeat(features[-1:], extra, axis=0)])


@torch.no_grad()
def encode_motion(model: VQVAE, layout: FeatureLayout, motion: Motion, device: torch.device) -> np.ndarray:
    """Tokens of a whole clip: ``ceil(T / frames_per_token)`` of them, ``[T']`` or ``[T', S]``."""
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
    levels: int | None = None,
) -> Motion:
    """Decode tokens (``[T']`` or ``[T', S]`` as the model's token spec says) into a global motion placed
    at ``start_pos``/``start_yaw``; ``levels=K`` uses the first K levels of each part only."""
    tokens = model.token_spec.check_tokens(tokens)
    device = device or next(model.parameters()).device
    idx = torch.as_tensor(tokens, dtype=torch.long, device=device)[None]  # (1, T'[, S])
    feats = model.decode(idx, levels)[0].cpu().double().numpy()  # (T' * fpt, F)
    if num_frames is not None:
        feats = feats[:num_frames]
    return layout.to_motion(
        layout.denormalize(feats), fps=fps, start_pos=start_pos, start_yaw=start_yaw, name=name
    )


@torch.no_grad()
def _windowed_features(
    model: VQVAE, layout: FeatureLayout, motion: Motion, window: int, device: torch.device, levels: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Normalized reconstruction of a clip cut into independent ``window``-frame pieces, as in training:
    every piece starts from zero padding instead of the clip's real history. Returns (features, tokens)."""
    feats = pad_to_multiple(layout.normalize(layout.from_motion(motion)), window)
    x = torch.as_tensor(feats, dtype=torch.float32, device=device).view(-1, window, feats.shape[-1])
    tokens = model.encode(x)  # (N, W', [S])
    out = model.decode(tokens, levels).reshape(-1, feats.shape[-1])  # (N * W, F)
    return out.cpu().double().numpy(), tokens.reshape(-1, *tokens.shape[2:]).cpu().numpy()


def reconstruct_motion(
    model: VQVAE,
    layout: FeatureLayout,
    motion: Motion,
    device: torch.device,
    *,
    levels: int | None = None,
    window: int | None = None,
) -> tuple[Motion, np.ndarray]:
    """Encode then decode a whole clip from the reference's first pose; returns (motion, tokens).

    ``levels=K`` decodes the first K levels only; ``window`` reconstructs independent windows of that
    many frames (the training view) instead of the whole clip (the streaming view).
    """
    start_pos, start_yaw = layout.start_pose(motion)
    if window is None:
        tokens = encode_motion(model, layout, motion, device)
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
            levels=levels,
        )
    else:
        feats, tokens = _windowed_features(model, layout, motion, window, device, levels)
        recon = layout.to_motion(
            layout.denormalize(feats[: motion.num_frames]),
            fps=motion.fps,
            start_pos=start_pos,
            start_yaw=start_yaw,
            name=motion.name,
        )
    recon.joint_names = list(motion.joint_names)
    return recon, tokens


def codebook_stats(tokens: Sequence[np.ndarray], spec: TokenSpec) -> dict[str, Any]:
    """Fraction of codes used and perplexity of the token histogram, per stream and averaged.

    ``codebook_usage``/``perplexity`` are the means over streams (for one stream, that stream's);
    ``codebook_usage_per_level``/``perplexity_per_level`` map each stream (``part/L<level>``) to its own.
    """
    flat = np.concatenate([np.asarray(t).reshape(-1, spec.num_streams) for t in tokens])  # (N, S)
    usage, perplexity = {}, {}
    for s, name in enumerate(spec.stream_names):
        counts = np.bincount(flat[:, s], minlength=spec.nb_code)
        probs = counts / max(1, counts.sum())
        nonzero = probs[probs > 0]
        usage[name] = float((counts > 0).mean())
        perplexity[name] = float(np.exp(-(nonzero * np.log(nonzero)).sum()))
    return {
        "codebook_usage": float(np.mean(list(usage.values()))),
        "perplexity": float(np.mean(list(perplexity.values()))),
        "codebook_usage_per_level": usage,
        "perplexity_per_level": perplexity,
    }


def evaluate_motions(
    model: VQVAE,
    layout: FeatureLayout,
    motions: Sequence[Motion],
    *,
    mjcf: str | Path | None = None,
    device: torch.device | None = None,
    progress: bool = False,
    levels: int | None = None,
    window: int | None = None,
) -> tuple[dict, list[ClipResult]]:
    """Metrics averaged over clips, codebook statistics over all their tokens, and per-clip results.

    ``levels`` and ``window`` as in :func:`reconstruct_motion`; the summary records both.
    """
    if not motions:
        raise ValueError("evaluate_motions: no clips to evaluate")
    spec = model.token_spec
    used_levels = spec.num_levels if levels is None else spec.check_levels(levels)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        results = []
        for motion in tqdm(motions, desc="evaluate", unit="clip", disable=not progress):
            recon, tokens = reconstruct_motion(model, layout, motion, device, levels=levels, window=window)
            metrics = motion_metrics(recon, motion, mjcf=mjcf)
            results.append(ClipResult(motion, recon, tokens, metrics))
    finally:
        model.train(was_training)
    summary: dict = {k: float(np.mean([r.metrics[k] for r in results])) for k in METRIC_KEYS}
    summary.update(codebook_stats([r.tokens for r in results], spec))
    summary["levels"] = used_levels
    summary["bits_per_second"] = spec.bits_per_second(used_levels)
    summary["windowed"] = window
    summary["num_clips"] = len(results)
    summary["num_frames"] = int(sum(r.reference.num_frames for r in results))
    summary["per_clip"] = [
        {"name": r.reference.name, "num_frames": r.reference.num_frames, **r.metrics} for r in results
    ]
    return summary, results
