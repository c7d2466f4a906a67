"""Feasibility of groups of motions side by side (reconstruction vs reference, prior samples vs data), and
their plot: what ``evaluate.py`` and ``evaluate_prior.py`` write under ``metrics.json["physics"]``.

Every figure stands beside its reference's: some datasets are not a clean floor (ASAP hovers ~5 cm,
kimodo penetrates ~8 mm), so a reconstruction's ``float_mm`` means something only next to its data's.
The metrics themselves live in :mod:`motion_vqvae.physics`; this module only groups and draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue
from motion_vqvae.physics import PHYSICS_METRICS, feasibility_per_clip, set_means


def physics_report(
    groups: Mapping[str, Sequence[Motion]], mjcf: str | Path | None = None
) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """Set means per group and one row per clip ``{"name", group: metrics, ...}``.

    The groups hold the same clips in the same order (a clip's reconstruction beside its reference), so
    their means are over the same clips; the first group's clip names label the rows.
    """
    lengths = {name: len(motions) for name, motions in groups.items()}
    if not groups or len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
        raise InvalidValue(f"physics_report needs groups of one non-zero number of clips, got {lengths}")
    scored = {name: feasibility_per_clip(motions, mjcf) for name, motions in groups.items()}
    means = {name: set_means(rows) for name, rows in scored.items()}
    first = next(iter(groups.values()))
    per_clip = [
        {"name": first[i].name, **{name: rows[i] for name, rows in scored.items()}} for i in range(len(first))
    ]
    return means, per_clip


def plot_physics(per_clip: Sequence[dict[str, Any]], groups: Sequence[str], path: Path) -> Path:
    """One panel per metric: the mean of each group as a bar, its clips as dots."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 9))
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 3).ravel()
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    for ax, metric in zip(axes, PHYSICS_METRICS, strict=True):
        for i, group in enumerate(groups):
            values = np.array([row[group][metric] for row in per_clip], dtype=float)
            values = values[~np.isnan(values)]
            if len(values):
                ax.bar(i, values.mean(), color=f"C{i}", alpha=0.5)
                ax.plot(i + rng.uniform(-0.2, 0.2, len(values)), values, "k.", ms=3)
        ax.set_xticks(range(len(groups)), list(groups))
        ax.set_title(metric, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
