"""Evaluation figures a person reads at a glance (matplotlib, no GL needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from motion_vqvae.training.evaluation import ClipResult, codebook_stats  # noqa: E402
from sim2real.token_spec import TokenSpec  # noqa: E402

USAGE_PANEL_COLUMNS = 4


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


def _frame_errors(result: ClipResult) -> np.ndarray:
    """Joint RMSE per frame (rad) of one clip."""
    return np.sqrt(np.mean((result.reference.dof - result.reconstruction.dof) ** 2, axis=1))


def plot_error_over_time(results: Sequence[ClipResult], path: Path, shown: int = 5) -> Path:
    """Per-frame joint error of the ``shown`` worst clips (by mean), so bad passages stand out."""
    worst = sorted(results, key=lambda r: float(_frame_errors(r).mean()), reverse=True)[:shown]
    fig, ax = plt.subplots(figsize=(10, 4))
    for r in worst:
        err = _frame_errors(r)
        ax.plot(np.arange(len(err)) / r.reference.fps, err, lw=0.9, label=r.reference.name)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("joint RMSE per frame [rad]")
    scope = f"the {len(worst)} worst of {len(results)} clips" if len(results) > len(worst) else "every clip"
    ax.set_title(f"Reconstruction error over time: {scope}")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_error_per_clip(results: Sequence[ClipResult], path: Path) -> Path:
    """Distribution of the per-frame error of every clip, one box per clip, worst at the top.

    Readable with 50 clips where 50 overlaid lines are not: median, spread and outliers at a glance.
    """
    ordered = sorted(results, key=lambda r: float(np.median(_frame_errors(r))))
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.22 * len(ordered) + 1.2)))
    ax.boxplot(
        [_frame_errors(r) for r in ordered],
        orientation="horizontal",
        widths=0.6,
        showfliers=True,
        flierprops={"markersize": 2},
    )
    ax.set_yticks(np.arange(1, len(ordered) + 1), [r.reference.name for r in ordered], fontsize=7)
    ax.set_xlabel("joint RMSE per frame [rad]")
    ax.set_title(f"Reconstruction error per clip ({len(ordered)} clips, worst at the top)")
    return _save(fig, path)


def plot_codebook_usage(results: Sequence[ClipResult], spec: TokenSpec, path: Path) -> Path:
    """How often each code is used, sorted, one panel per stream (body part and level): a long flat tail
    of zeros means a collapsed codebook.

    Each stream has its own codebook, so pooling 12 streams into one histogram counted a code as used when
    any stream used it (19 % where metrics.json said 2.3 %). The panels and the title show exactly the
    ``codebook_usage_per_level`` and ``codebook_usage`` that metrics.json holds (:func:`codebook_stats`).
    """
    stats = codebook_stats([r.tokens for r in results], spec)
    flat = np.concatenate([r.tokens.reshape(-1, spec.num_streams) for r in results])  # (N, S)
    cols = min(spec.num_streams, USAGE_PANEL_COLUMNS)
    rows = -(-spec.num_streams // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols + 1.0, 2.4 * rows + 0.8), sharey=True, squeeze=False
    )
    for s, (ax, name) in enumerate(zip(axes.flat, spec.stream_names, strict=False)):
        counts = np.bincount(flat[:, s], minlength=spec.nb_code)
        usage = stats["codebook_usage_per_level"][name]
        ax.bar(np.arange(spec.nb_code), np.sort(counts)[::-1], width=1.0, color="tab:blue")
        label = f"{name}: " if not spec.is_single else ""
        ax.set_title(
            f"{label}{int((counts > 0).sum())}/{spec.nb_code} codes ({usage:.1%})", fontsize=9, loc="left"
        )
    for ax in axes.flat[spec.num_streams :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("code (sorted by use)")
    for ax in axes[:, 0]:
        ax.set_ylabel("tokens")
    streams = f"mean over {spec.num_streams} streams, " if not spec.is_single else ""
    fig.suptitle(f"Codebook usage: {stats['codebook_usage']:.1%} ({streams}as metrics.json codebook_usage)")
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
