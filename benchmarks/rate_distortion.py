"""The rate-distortion table of tokenizers: error against bits per second on held-out g1_moves clips.

Neural rows (one-level VQ, the default residual VQ decoded at 1..L levels, FSQ, body parts) each train for
the same wall-clock budget, at most two at a time in separate processes with one torch thread each, and
are scored with the model as it stands at the end (``best.pt`` is chosen on the same clips). Reference rows
(PCA, k-means, residual k-means on the same 4-frame chunks) come from
:mod:`benchmarks.reference_codecs`. Every row reports bits per second, the whole-clip metrics,
usage and perplexity per level; neural rows also windows/s, parameters and the error when each 32-frame
training window is reconstructed on its own (the view training has without burn-in).

Every row also carries the feasibility of its reconstructions beside that of the clips they reconstruct
(``physics``: :mod:`motion_vqvae.physics`; the table shows skate, float, CoM outside the support and joint
range as ``reconstruction (reference)``). The default row is also scored on other datasets, each read at
its own fps (``cross_dataset``: trained on g1_moves, scored on ASAP and kimodo).
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.reference_codecs import reference_rows
from benchmarks.tokenizer import HELD_OUT
from motion_vqvae.agent import MVQVAEAgent, augmented, load_config_motions
from motion_vqvae.config_loader import ConfigLoader
from motion_vqvae.data.motion import Motion
from motion_vqvae.physics import feasibility
from motion_vqvae.training.clips import source_config
from motion_vqvae.training.evaluation import evaluate_motions
from motion_vqvae.training.split import split_motions

log = logging.getLogger(__name__)

# Config overrides of each neural row on top of configs/agent.yaml (the default: RVQ per body part).
NEURAL_ROWS: dict[str, dict[str, Any]] = {
    "default": {},
    "rvq": {"body_parts": None},  # one stream set for the whole body
    "vq": {"quantizer": "ema_reset", "nb_code": 384, "body_parts": None},  # the old one-level default
    "fsq": {"quantizer": "fsq", "body_parts": None},
}
SUMMARY_KEYS = (
    "bits_per_second",
    "mpjpe_local_mm",
    "pa_mpjpe_mm",
    "dof_rmse_rad",
    "accel_error_mm",
    "codebook_usage_per_level",
    "perplexity_per_level",
)


# Physics columns of the table: (metric, header, format).
PHYSICS_COLUMNS = (
    ("skate_mm", "skate mm", "{:.1f}"),
    ("float_mm", "float mm", "{:.1f}"),
    ("com_outside_support", "CoM outside support", "{:.2f}"),
    ("joint_range_violation", "beyond joint range", "{:.3f}"),
)


def _row(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in SUMMARY_KEYS}


def score_levels(
    agent: MVQVAEAgent, clips: list[Motion], levels: list[int], mjcf: str | None
) -> dict[str, dict[str, Any]]:
    """Whole-clip metrics and feasibility (reconstruction beside reference) of ``clips`` decoded with the
    first K levels, for each K in ``levels`` (str keys: the JSON keys); the reference is scored once."""
    reference = feasibility(clips, mjcf)
    out = {}
    for k in levels:
        summary, results = evaluate_motions(agent.model, agent.layout, clips, mjcf=mjcf, levels=k)
        physics = {
            "reconstruction": feasibility([r.reconstruction for r in results], mjcf),
            "reference": reference,
        }
        out[str(k)] = {**_row(summary), "physics": physics}
    return out


def cross_dataset(agent: MVQVAEAgent, sources: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The model scored on other datasets (name -> path), all levels: each file at its own fps (meta.json,
    PKL ``fps``), never the checkpoint's, then resampled and joint-mapped as the model was trained."""
    cfg = source_config(agent.cfg, None, None)
    rows = {}
    for name, path in sources.items():
        loaded = load_config_motions(cfg, path, min_frames=agent.model.frames_per_token)
        clips = [agent.prepare(m) for m in loaded]
        levels = agent.token_spec.num_levels
        rows[name] = {
            **score_levels(agent, clips, [levels], agent.mjcf)[str(levels)],
            "source": str(path),
            "source_fps": sorted({m.fps for m in loaded}),
            "clips": len(clips),
        }
    return rows


def train_row(
    name: str,
    overrides: dict[str, Any],
    g1_moves: str,
    minutes: float,
    run_dir: str,
    cross: dict[str, str] | None = None,
) -> dict:
    """Train one neural row for ``minutes`` and score it at every level count, and on the ``cross``
    datasets (name -> path) at all levels (runs in a worker process)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = ConfigLoader().config.replace(
        motion_file=g1_moves, test_clips=HELD_OUT, num_threads=1, **overrides
    )
    motions = load_config_motions(config, g1_moves, min_frames=config.window_size)
    agent = MVQVAEAgent(config, run_dir=Path(run_dir))
    agent.setup(motions)
    start = time.perf_counter()
    agent.fit(time_budget_s=minutes * 60)
    seconds = time.perf_counter() - start
    spec, model = agent.token_spec, agent.model
    test = [m for m in motions if m.name in set(HELD_OUT)]  # the test split: nothing selects on it
    levels = score_levels(agent, test, list(range(1, spec.num_levels + 1)), agent.mjcf)
    windowed, _ = evaluate_motions(model, agent.layout, test, mjcf=agent.mjcf, window=config.window_size)
    result = {
        "kind": "neural",
        "overrides": overrides,
        "token_spec": spec.to_dict(),
        **levels[str(spec.num_levels)],
        "levels": levels,
        "windowed_mpjpe_local_mm": windowed["mpjpe_local_mm"],
        "window_frames": config.window_size,
        "iterations": agent.iteration,
        "train_seconds": seconds,
        "windows_per_s": agent.iteration * config.batch_size / seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
        "held_out": [m.name for m in test],
        "cross_dataset": cross_dataset(agent, cross or {}),
    }
    log.info("%s: %s", name, {k: result[k] for k in ("mpjpe_local_mm", "bits_per_second", "iterations")})
    return result


def bench_tokenizers(
    g1_moves: Path,
    minutes: float,
    run_root: Path,
    report_dir: Path,
    parallel: int = 2,
    cross: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Every row of the table; writes ``tokenizers.png`` and ``tokenizers.md`` into ``report_dir``.

    ``cross`` (name -> path, e.g. ASAP and kimodo): datasets the default row is also scored on.
    """
    cross_paths = {name: str(path) for name, path in (cross or {}).items()}
    config = ConfigLoader().config.replace(motion_file=str(g1_moves), test_clips=HELD_OUT)
    results: dict[str, Any] = {
        "minutes_per_row": minutes,
        "parallel_trainings": parallel,
        "held_out": HELD_OUT,
        "rows": {},
    }
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=parallel, mp_context=context) as pool:
        futures = {
            name: pool.submit(
                train_row,
                name,
                overrides,
                str(g1_moves),
                minutes,
                str(run_root / name),
                cross_paths if name == "default" else None,
            )
            for name, overrides in NEURAL_ROWS.items()
        }
        # The reference codecs are fitted here while the workers train.
        motions = load_config_motions(config, g1_moves, min_frames=config.window_size)
        _, parts = split_motions(motions, config)
        train, held = parts["train"], parts["test"]
        agent = MVQVAEAgent(config, run_dir=run_root / "reference")
        agent.setup(motions)  # only for the feature layout and its normalization, fitted as training does
        refs = reference_rows(
            agent.layout,
            augmented(train, config),
            held,
            frames=config.frames_per_token,
            fps=float(config.target_fps or 30.0),
            mjcf=agent.mjcf,
        )
        for name, future in futures.items():
            results["rows"][name] = future.result()
    results["rows"].update(refs)
    default = results["rows"]["default"]
    results["bars"] = bars(default)
    report_dir.mkdir(parents=True, exist_ok=True)
    plot_rate_distortion(results, report_dir / "tokenizers.png")
    (report_dir / "tokenizers.md").write_text(markdown_table(results))
    return results


BARS = {"mpjpe_local_mm": 30.0, "pa_mpjpe_mm": 25.0, "dof_rmse_rad": 0.10, "accel_error_mm": 5.0}


def bars(default: dict[str, Any]) -> dict[str, Any]:
    """The issue's bars for the default row: all levels, and the first level alone (<= 50 mm)."""
    met = {k: default[k] <= v for k, v in BARS.items()}
    met["first_level_mpjpe_local_mm"] = default["levels"]["1"]["mpjpe_local_mm"] <= 50.0
    return met


def _table_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, metrics, row) per table line: a neural multi-level row gives one line per level count, and
    one per dataset it was also scored on."""
    lines = []
    for name, row in results["rows"].items():
        if row["kind"] == "neural" and len(row["levels"]) > 1:
            for k, metrics in row["levels"].items():
                lines.append((f"{name} ({row['token_spec']['kind']}), first {k} level(s)", metrics, row))
        else:
            lines.append((row.get("description", name) if row["kind"] == "reference" else name, row, row))
        for dataset, metrics in row.get("cross_dataset", {}).items():
            lines.append((f"{name}, trained on g1_moves, scored on {dataset}", metrics, row))
    return lines


def _physics_cells(metrics: dict[str, Any]) -> list[str]:
    """``reconstruction (reference)`` per physics column; ``-`` for rows measured before they existed."""
    physics = metrics.get("physics")
    if physics is None:
        return ["-"] * len(PHYSICS_COLUMNS)
    recon, ref = physics["reconstruction"], physics["reference"]
    return [f"{fmt.format(recon[key])} ({fmt.format(ref[key])})" for key, _, fmt in PHYSICS_COLUMNS]


def markdown_table(results: dict[str, Any]) -> str:
    """The README table: one line per row (and per level count), sorted by nothing but definition."""
    physics_head = "".join(f" {header}, recon (data) |" for _, header, _ in PHYSICS_COLUMNS)
    head = (
        "| row | bits/s | mpjpe_local mm | pa_mpjpe mm | dof_rmse rad | accel mm |"
        f"{physics_head} usage per level | perplexity per level | windows/s | params |\n"
        + "|---" * (10 + len(PHYSICS_COLUMNS))
        + "|\n"
    )
    body = []
    for label, m, row in _table_rows(results):
        usage = " / ".join(f"{v:.2f}" for v in m.get("codebook_usage_per_level", {}).values()) or "-"
        ppl = " / ".join(f"{v:.0f}" for v in m.get("perplexity_per_level", {}).values()) or "-"
        speed = f"{row['windows_per_s']:.0f}" if "windows_per_s" in row else "-"
        params = f"{row['parameters'] / 1e6:.2f} M" if "parameters" in row else "-"
        body.append(
            f"| {label} | {m['bits_per_second']:.0f} | {m['mpjpe_local_mm']:.1f} | {m['pa_mpjpe_mm']:.1f} | "
            f"{m['dof_rmse_rad']:.3f} | {m['accel_error_mm']:.1f} | {' | '.join(_physics_cells(m))} | "
            f"{usage} | {ppl} | {speed} | {params} |"
        )
    return head + "\n".join(body) + "\n"


def plot_rate_distortion(results: dict[str, Any], path: Path) -> Path:
    """mpjpe_local against bits per second (log axis): one line per multi-level model, points otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    pca = sorted(
        (r["bits_per_second"], r["mpjpe_local_mm"]) for n, r in results["rows"].items() if "pca" in n
    )
    if pca:
        ax.plot(*zip(*pca, strict=True), "s--", color="grey", label="PCA (float32 numbers)")
    for name, row in results["rows"].items():
        if row["kind"] == "neural":
            points = [(m["bits_per_second"], m["mpjpe_local_mm"]) for m in row["levels"].values()]
            ax.plot(*zip(*points, strict=True), "o-", label=f"{name} ({row['token_spec']['kind']})")
        elif "kmeans" in name:
            ax.plot(row["bits_per_second"], row["mpjpe_local_mm"], "^", ms=9, label=row["description"])
    ax.set_xscale("log")
    ax.set_xlabel("bits per second (log)")
    ax.set_ylabel("mpjpe_local [mm], held-out g1_moves")
    ax.set_title(f"Tokenizer rate-distortion ({results['minutes_per_row']:g} min training per neural row)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
