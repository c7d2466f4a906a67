"""Non-neural codecs on the tokenizer's features and chunks: reference rows of the rate-distortion table.

Each codec sees the same thing a token sees: ``frames_per_token`` consecutive normalized feature frames,
flattened into one vector (a *chunk*). PCA keeps ``n`` numbers per chunk; k-means replaces a chunk by the
nearest of ``k`` centres (one token of ``log2 k`` bits); residual k-means codes the remainder again with
further codebooks (the non-neural analogue of residual VQ). Fitted on the training clips, applied to
held-out clips, scored with the same whole-clip kinematic metrics and feasibility as the networks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.features import FeatureLayout
from motion_vqvae.metrics import motion_metrics
from motion_vqvae.physics import feasibility
from motion_vqvae.training.evaluation import METRIC_KEYS, pad_to_multiple

Codec = Callable[[np.ndarray], np.ndarray]  # (N, chunk_dim) -> (N, chunk_dim) reconstruction


def chunks(features: np.ndarray, frames: int) -> np.ndarray:
    """(T, F) normalized features -> (ceil(T / frames), frames * F) chunk vectors (last frame repeated)."""
    padded = pad_to_multiple(features, frames)
    return padded.reshape(-1, frames * features.shape[1])


def fit_pca(train: np.ndarray, numbers: int) -> Codec:
    """Project onto the top ``numbers`` principal components of the training chunks and back."""
    mean = train.mean(0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:numbers]  # (n, chunk_dim)
    return lambda x: (x - mean) @ basis.T @ basis + mean


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:  # (N, D), (K, D) -> (N,)
    return np.argmin((centres**2).sum(1)[None] - 2.0 * x @ centres.T, axis=1)


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    """Lloyd's k-means from k random training chunks; an emptied centre is re-seeded from a random chunk."""
    rng = np.random.default_rng(seed)
    x = x.astype(np.float32)
    centres = x[rng.choice(len(x), size=k, replace=len(x) < k)].copy()
    for _ in range(iters):
        assign = _nearest(x, centres)
        counts = np.bincount(assign, minlength=k)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, x)
        empty = counts == 0
        centres[~empty] = sums[~empty] / counts[~empty, None]
        centres[empty] = x[rng.integers(len(x), size=int(empty.sum()))]
    return centres


def fit_residual_kmeans(train: np.ndarray, k: int, levels: int, seed: int) -> Codec:
    """``levels`` k-means codebooks, each fitted to what the previous ones left over."""
    books, residual = [], train.astype(np.float32)
    for level in range(levels):
        centres = kmeans(residual, k, seed + level)
        residual = residual - centres[_nearest(residual, centres)]
        books.append(centres)

    def codec(x: np.ndarray) -> np.ndarray:
        out, residual = np.zeros_like(x, dtype=np.float32), x.astype(np.float32)
        for centres in books:
            code = centres[_nearest(residual, centres)]
            out, residual = out + code, residual - code
        return out

    return codec


def score_codec(
    codec: Codec,
    layout: FeatureLayout,
    clips: Sequence[Motion],
    frames: int,
    mjcf: str | None,
    reference_physics: dict[str, float],
) -> dict[str, Any]:
    """Whole-clip metrics (means over clips) of ``codec`` applied chunk by chunk to each held-out clip, and
    the reconstructions' feasibility beside ``reference_physics`` (the clips' own, scored once)."""
    rows, motions = [], []
    for clip in clips:
        feats = layout.normalize(layout.from_motion(clip))
        recon = codec(chunks(feats, frames)).reshape(-1, feats.shape[1])[: len(feats)]
        start_pos, start_yaw = layout.start_pose(clip)
        motion = layout.to_motion(
            layout.denormalize(recon.astype(np.float64)),
            fps=clip.fps,
            start_pos=start_pos,
            start_yaw=start_yaw,
            name=clip.name,
        )
        motion.joint_names = list(clip.joint_names)
        rows.append(motion_metrics(motion, clip, mjcf=mjcf))
        motions.append(motion)
    physics = {"reconstruction": feasibility(motions, mjcf), "reference": reference_physics}
    return {**{k: float(np.mean([r[k] for r in rows])) for k in METRIC_KEYS}, "physics": physics}


def reference_rows(
    layout: FeatureLayout,
    train_clips: Sequence[Motion],
    held_out: Sequence[Motion],
    *,
    frames: int,
    fps: float,
    mjcf: str | None,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """PCA 16/32/64 numbers per chunk, k-means 384 and residual k-means 4x384, fitted and scored alike.

    PCA's rate counts its numbers as float32 (32 bits each), an upper bound: it has no token to count.
    """
    train = np.concatenate([chunks(layout.normalize(layout.from_motion(m)), frames) for m in train_clips])
    chunks_per_s = fps / frames
    codecs: dict[str, tuple[Codec, float, str]] = {}
    for n in (16, 32, 64):
        codecs[f"pca_{n}"] = (fit_pca(train, n), n * 32 * chunks_per_s, f"PCA, {n} float32 numbers per chunk")
    codecs["kmeans_384"] = (
        fit_residual_kmeans(train, 384, 1, seed),
        math.log2(384) * chunks_per_s,
        "k-means, 384 centres",
    )
    codecs["residual_kmeans_4x384"] = (
        fit_residual_kmeans(train, 384, 4, seed),
        4 * math.log2(384) * chunks_per_s,
        "residual k-means, 4 x 384 centres",
    )
    reference_physics = feasibility(held_out, mjcf)
    rows: dict[str, dict[str, Any]] = {}
    for name, (codec, bits, what) in codecs.items():
        rows[name] = {
            "kind": "reference",
            "description": what,
            "bits_per_second": bits,
            **score_codec(codec, layout, held_out, frames, mjcf, reference_physics),
        }
    return rows
