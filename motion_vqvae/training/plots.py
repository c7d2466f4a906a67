"""Evaluation figures a person reads at a glance (matplotlib, no GL needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from motion_vqvae.training.evaluation import ClipResult  # noqa: E402


def plot_worst_joints(results: Sequence[ClipResult], path: Path, count: int = 6) -> Path:
    """Reference vs reconstruction of the joints with the largest RMSE, on the worst clip."""
    worst = max(results, key=lambda r: r.metrics["dof_rmse_rad"])
    ref, rec = worst.reference.dof, worst.reconstruction.dof
    rmse = np.sqrt(np.mean((ref - rec) ** 2, axis=0))
    joints = np.argsort(rmse)[::-1][:count]
    names = worst.reference.joint_names or [f"joint {j}" for j in range(ref.shape[1])]
    time = np.arange(len(ref)) / worst.reference.fps
    fig, axes = plt.subplots(len(joints), 1, figsize=(10, 1.8 * len(joints)), sharex=True, squeeze=False)
    for ax, j in zip(axes[:, 0], joints, strict=True):
        ax.plot(time, ref[:, j], label="reference", color="black", lw=1.2)
        ax.plot(time, rec[:, j], label="reconstruction", color="tab:red", lw=1.0)
        ax.set_ylabel("rad")
        ax.set_title(f"{names[j]}  (RMSE {rmse[j]:.3f} rad)", fontsize=9, loc="left")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time [s]")
    fig.suptitle(f"Worst joints of the worst clip: {worst.reference.name}")
    return _save(fig, path)


def plot_error_over_time(results: Sequence[ClipResult], path: Path) -> Path:
    """Per-frame joint error of every clip, so drift or bad passages stand out."""
    fig, ax = plt.subplots(figsize=(10, 4))
    for r in results:
        err = np.sqrt(np.mean((r.reference.dof - r.reconstruction.dof) ** 2, axis=1))
        ax.plot(np.arange(len(err)) / r.reference.fps, err, lw=0.8, label=r.reference.name)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("joint RMSE per frame [rad]")
    ax.set_title("Reconstruction error over time")
    if len(results) <= 12:
        ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_codebook_usage(results: Sequence[ClipResult], nb_code: int, path: Path) -> Path:
    """How often each code is used, sorted: a long flat tail of zeros means a collapsed codebook."""
    counts = np.bincount(np.concatenate([r.tokens.reshape(-1) for r in results]), minlength=nb_code)
    used = int((counts > 0).sum())
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.bar(np.arange(nb_code), np.sort(counts)[::-1], width=1.0, color="tab:blue")
    ax.set_xlabel("code (sorted by use)")
    ax.set_ylabel("tokens")
    ax.set_title(f"Codebook usage: {used}/{nb_code} codes used ({used / nb_code:.0%})")
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
