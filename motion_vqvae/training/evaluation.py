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
from motion_vqvae.kinematics import ForwardKinematics
from motion_vqvae.metrics import motion_metrics
from motion_vqvae.models.vqvae import VQVAE
from sim2real.token_spec import TokenSpec

EVAL_BATCH_FRAMES = 32_768  # padded frames per evaluation batch: bounds activation memory on any device

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


class ReferenceKinematics:
    """Forward kinematics of reference clips, computed once per clip and reused at every validation.

    A clip is recognised by identity (the same ``Motion`` object), so a changed validation set is never
    scored against stale bodies.
    """

    def __init__(self, mjcf: str | Path | None = None) -> None:
        self.fk = ForwardKinematics(mjcf)
        self._bodies: dict[str, tuple[Motion, np.ndarray]] = {}

    def body_positions(self, motion: Motion) -> np.ndarray:
        """World body positions ``(T, B, 3)`` of ``motion``."""
        hit = self._bodies.get(motion.name)
        if hit is None or hit[0] is not motion:
            hit = (motion, self.fk.body_positions(motion))
            self._bodies[motion.name] = hit
        return hit[1]


def pad_to_length(features: np.ndarray, length: int) -> np.ndarray:
    """Right-pad by repeating the last frame up to ``length`` frames."""
    return np.concatenate([features, np.repeat(features[-1:], length - len(features), axis=0)])


def eval_batches(
    motions: Sequence[Motion], causal: bool, max_frames: int = EVAL_BATCH_FRAMES
) -> list[list[int]]:
    """Clip indices grouped for batched reconstruction: by length, at most ``max_frames`` padded frames a
    batch. A non-causal model would see the padding of shorter clips, so it gets one clip per batch."""
    order = sorted(range(len(motions)), key=lambda i: motions[i].num_frames)
    if not causal:
        return [[i] for i in order]
    batches: list[list[int]] = []
    for i in order:  # ascending, so the clip added last sets the batch's padded length
        if batches and (len(batches[-1]) + 1) * motions[i].num_frames <= max_frames:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@torch.no_grad()
def reconstruct_batch(
    model: VQVAE, layout: FeatureLayout, motions: Sequence[Motion], device: torch.device, levels: int | None
) -> list[tuple[Motion, np.ndarray]]:
    """What :func:`reconstruct_motion` returns for each clip, from one padded forward pass.

    Clips are right-padded (last frame repeated) to the longest one; a causal model's output for a frame
    never depends on later frames, so cutting each clip back to its length gives its own reconstruction.
    """
    fpt = model.frames_per_token
    feats = [layout.normalize(layout.from_motion(m)) for m in motions]
    length = -(-max(len(f) for f in feats) // fpt) * fpt
    x = torch.as_tensor(
        np.stack([pad_to_length(f, length) for f in feats]), dtype=torch.float32, device=device
    )
    tokens = model.encode(x)  # (B, T', [S])
    out = model.decode(tokens, levels).cpu().double().numpy()  # (B, T, F)
    tokens = tokens.cpu().numpy()
    results = []
    for b, motion in enumerate(motions):
        start_pos, start_yaw = layout.start_pose(motion)
        recon = layout.to_motion(
            layout.denormalize(out[b, : motion.num_frames]),
            fps=motion.fps,
            start_pos=start_pos,
            start_yaw=start_yaw,
            name=motion.name,
        )
        recon.joint_names = list(motion.joint_names)
        results.append((recon, tokens[b, : -(-motion.num_frames // fpt)]))
    return results


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
    references: ReferenceKinematics | None = None,
) -> tuple[dict, list[ClipResult]]:
    """Metrics averaged over clips, codebook statistics over all their tokens, and per-clip results.

    ``levels`` and ``window`` as in :func:`reconstruct_motion`; the summary records both. Whole clips are
    reconstructed in padded batches (:func:`reconstruct_batch`); ``references`` keeps the reference
    clips' forward kinematics between calls (default: computed for this call, on ``mjcf``).
    """
    if not motions:
        raise ValueError("evaluate_motions: no clips to evaluate")
    spec = model.token_spec
    used_levels = spec.num_levels if levels is None else spec.check_levels(levels)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    references = references if references is not None else ReferenceKinematics(mjcf)
    outputs: list[tuple[Motion, np.ndarray] | None] = [None] * len(motions)
    try:
        batches = [[i] for i in range(len(motions))] if window else eval_batches(motions, model.causal)
        for batch in tqdm(batches, desc="evaluate", unit="batch", disable=not progress):
            clips = [motions[i] for i in batch]
            if window:
                done = [reconstruct_motion(model, layout, clips[0], device, levels=levels, window=window)]
            else:
                done = reconstruct_batch(model, layout, clips, device, levels)
            for i, out in zip(batch, done, strict=True):
                outputs[i] = out
    finally:
        model.train(was_training)
    results = []
    for motion, (recon, tokens) in zip(motions, outputs, strict=True):
        bodies = references.body_positions(motion)
        metrics = motion_metrics(recon, motion, fk=references.fk, ref_body_pos=bodies)
        results.append(ClipResult(motion, recon, tokens, metrics))
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
