"""Benchmark section ``scale``: preprocessing and training from a cache of a large synthesised dataset.

The dataset is made from the real g1_moves clips: re-timed (0.8x to 1.25x), mirrored half of the time and
re-headed (turned about z, moved on the ground) copies, written as NPY files of about 100k frames that the
project's readers load like any other (generated clip by clip and file by file, never all in memory).
Each measured command runs as a subprocess with one torch/OpenMP thread per process; its peak memory is
the ``ru_maxrss`` of the process and its descendants (``os.wait4``) and, sampled every 0.2 s, the summed
RSS (and anonymous RSS, i.e. not counting file-backed pages such as the page cache) of its whole
process tree.

``LAUNCHERS`` maps a process count to the command prefix that starts training with that many processes:
the interpreter for one, ``torchrun --standalone`` for two (same global batch, split across them).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.data import Motion, load_motions, save_npy
from motion_vqvae.data.mirror import mirror_motion
from motion_vqvae.data.resample import change_speed
from motion_vqvae.rotations import quat_from_yaw, quat_mul, quat_rotate
from motion_vqvae.training.distributed import torchrun_prefix

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FRAMES = 10_000_000
FILE_FRAMES = 100_000
RSS_BAR_GB = 3.0
MEMORY = ("peak_rss_mb", "peak_tree_rss_mb", "peak_tree_anon_mb")
# Training processes -> command prefix (before "scripts/train_vqvae.py ..."): one plain process, or torchrun
# (data-parallel, the global batch split across the processes).
LAUNCHERS: dict[int, Callable[[], list[str]]] = {1: lambda: [sys.executable], 2: lambda: torchrun_prefix(2)}


# ---------------------------------------------------------------------------------------------- dataset
def reheaded(motion: Motion, yaw: float, shift: np.ndarray) -> Motion:
    """The clip turned by ``yaw`` about the vertical through its first frame and moved by ``shift`` (x, y)."""
    turn = quat_from_yaw(np.full(motion.num_frames, yaw))
    origin = motion.root_pos[:1] * np.array([1.0, 1.0, 0.0])
    root_pos = quat_rotate(turn, motion.root_pos - origin) + origin + np.array([shift[0], shift[1], 0.0])
    return Motion(
        motion.name, motion.fps, root_pos, quat_mul(turn, motion.root_quat), motion.dof, motion.joint_names
    )


def synthesize(g1_moves: Path, folder: Path, frames: int, seed: int = 0) -> dict[str, Any]:
    """Write at least ``frames`` frames (30 fps) of transformed g1_moves copies as NPY files in ``folder``."""
    started = time.perf_counter()
    sources = load_motions(g1_moves, target_fps=30, repair_jumps=True)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written, files, clips = 0, 0, 0
    while written < frames:
        batch: list[Motion] = []
        while sum(m.num_frames for m in batch) < min(FILE_FRAMES, frames - written):
            clip = change_speed(sources[rng.integers(len(sources))], float(rng.uniform(0.8, 1.25)))
            clip = mirror_motion(clip) if rng.random() < 0.5 else clip
            batch.append(reheaded(clip, float(rng.uniform(-np.pi, np.pi)), rng.uniform(-5.0, 5.0, size=2)))
        save_npy(batch, folder / f"synthetic_{files:05d}.npy")
        written += sum(m.num_frames for m in batch)
        files, clips = files + 1, clips + len(batch)
    seconds = time.perf_counter() - started
    log.info("scale: synthesised %d frames in %d clips, %d files, in %.0f s", written, clips, files, seconds)
    return {"frames": written, "clips": clips, "files": files, "seconds": seconds, "bytes": _size(folder)}


# ---------------------------------------------------------------------------------------------- measuring
def measured(command: Sequence[str], log_file: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command``; its wall time, exit code and peak memory (see the module docstring)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_file.open("w") as out:
        proc = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        peaks = {"rss": 0, "anon": 0}
        done = threading.Event()
        watcher = threading.Thread(target=_watch_tree, args=(proc.pid, peaks, done), daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        watcher.join()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {proc.returncode}; see {log_file}")
    return {
        "seconds": seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux: the largest single process of the tree
        "peak_tree_rss_mb": peaks["rss"] / 1024,
        "peak_tree_anon_mb": peaks["anon"] / 1024,
    }


def _watch_tree(root: int, peaks: dict[str, int], done: threading.Event) -> None:
    while not done.wait(0.2):
        rss = anon = 0
        for pid in _tree(root):
            fields = _status(pid)
            rss, anon = rss + fields.get("VmRSS", 0), anon + fields.get("RssAnon", 0)
        peaks["rss"], peaks["anon"] = max(peaks["rss"], rss), max(peaks["anon"], anon)


def _tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc (empty where /proc is absent)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _status(pid: int) -> dict[str, int]:
    """kB fields of /proc/PID/status."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {
        k: int(v.split()[0]) for k, _, v in (ln.partition(":") for ln in lines) if v.strip().endswith("kB")
    }


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------- commands
def preprocess_figures(
    source: Path, cache: Path, frames: int, workers: int, logs: Path, sets: Sequence[str]
) -> dict[str, Any]:
    """Preprocess ``source`` into ``cache`` in a subprocess (with the training run's ``--set`` values);
    throughput per source frame and memory."""
    command = [sys.executable, "scripts/preprocess.py", "--motion_file", str(source), "--out", str(cache)]
    command += ["--workers", str(workers), "--overwrite", *(a for s in sets for a in ("--set", s))]
    figures = measured(command, logs / "preprocess.log")
    index = json.loads((cache / "index.json").read_text())
    figures.update(
        workers=workers,
        frames=frames,
        frames_per_s=frames / figures["seconds"],
        feature_frames=sum(s["frames"] for s in index["shards"]),
        cache_bytes=_size(cache),
    )
    return figures


def train_figures(
    motion_file: Path, out: Path, iters: int, sets: Sequence[str], processes: int = 1
) -> dict[str, Any]:
    """A short training run on ``motion_file`` (files or cache): windows/s (median after the first log
    interval, which pays for start-up) and memory."""
    if processes not in LAUNCHERS:
        return {"skipped": f"no launcher for {processes} processes (add one to benchmarks.scale.LAUNCHERS)"}
    args = ["scripts/train_vqvae.py", "--motion_file", str(motion_file), "--out", str(out), "--overwrite"]
    sets = [f"total_iter={iters}", f"print_iter={max(1, iters // 6)}", f"eval_every={iters + 1}", *sets]
    command = [*LAUNCHERS[processes](), *args, *(a for s in sets for a in ("--set", s))]
    figures = measured(command, out.parent / f"{out.name}.log")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["windows_per_s"] for r in rows if r["split"] == "train"][1:]
    figures.update(processes=processes, iterations=iters, windows_per_s=statistics.median(rates))
    return figures


def gather_figures(
    cache: Path, sets: Sequence[str], g1_moves: Path | None = None, batches: int = 300
) -> dict[str, float]:
    """Milliseconds to draw and gather one batch (the config's batch size and window): from the cache's
    shards and (given ``g1_moves``) from the in-memory sampler of training from files. The samplers
    alone, without the model step that dominates training time and makes windows/s noisy."""
    from motion_vqvae.agent import MVQVAEAgent
    from motion_vqvae.config_loader import ConfigLoader
    from motion_vqvae.training.cache import MotionCache

    cfg = ConfigLoader(overrides=[*sets, "device=cpu", "max_val_frames=1000"]).config
    agents = {"cache": MVQVAEAgent(cfg, run_dir=cache.parent / "unused")}
    agents["cache"].setup_from_cache(MotionCache.open(cache, cfg))
    if g1_moves is not None:
        agents["files"] = MVQVAEAgent(cfg, run_dir=cache.parent / "unused")
        agents["files"].setup_from_file(g1_moves)
    figures = {}
    for name, agent in agents.items():
        agent.sampler.sample(cfg.batch_size)  # first touch
        started = time.perf_counter()
        for _ in range(batches):
            agent.sampler.sample(cfg.batch_size)
        figures[f"gather_ms_per_batch_{name}"] = 1e3 * (time.perf_counter() - started) / batches
    return figures


def bench_scale(
    g1_moves: Path,
    run_root: Path,
    report_dir: Path | None,
    frames: int = DEFAULT_FRAMES,
    workers: int | None = None,
    train_iters: int = 400,
    train_sets: Sequence[str] = ("max_val_frames=20000",),
    processes: Sequence[int] = (1, 2),
    keep_data: bool = False,
) -> dict[str, Any]:
    """Figures at ``frames`` synthesised frames, and on g1_moves itself from files and from its cache."""
    from motion_vqvae.training.preprocess import default_workers

    workers = workers or default_workers()
    root = run_root / "scale"
    shutil.rmtree(root, ignore_errors=True)
    results: dict[str, Any] = {"frames_requested": frames, "train_sets": list(train_sets)}
    g1_frames = sum(m.num_frames for m in load_motions(g1_moves, target_fps=30))
    results["g1_moves"] = {
        "preprocess": preprocess_figures(
            g1_moves, root / "g1_cache", g1_frames, workers, root / "g1_logs", train_sets
        ),
        "train_from_files": train_figures(g1_moves, root / "g1_files_run", train_iters, train_sets),
        "train_from_cache": train_figures(root / "g1_cache", root / "g1_cache_run", train_iters, train_sets),
    }
    results["g1_moves"]["sampler"] = gather_figures(root / "g1_cache", train_sets, g1_moves)
    results["synthesis"] = synthesize(g1_moves, root / "synthetic", frames)
    results["preprocess"] = preprocess_figures(
        root / "synthetic", root / "cache", results["synthesis"]["frames"], workers, root / "logs", train_sets
    )
    results["train_from_cache"] = {
        str(n): train_figures(root / "cache", root / f"cache_run_{n}", train_iters, train_sets, n)
        for n in processes
    }
    results["sampler"] = gather_figures(root / "cache", train_sets)
    one = results["train_from_cache"]["1"]
    results["rss_bar_gb"] = RSS_BAR_GB
    results["meets_rss_bar"] = max(one["peak_rss_mb"], one["peak_tree_rss_mb"]) / 1024 < RSS_BAR_GB
    if not keep_data:
        for name in ("synthetic", "cache", "g1_cache"):
            shutil.rmtree(root / name, ignore_errors=True)
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "scale.md").write_text(markdown(results))
    return results


def markdown(results: dict[str, Any]) -> str:
    """The figures as a short table (benchmarks/scale.md)."""
    g1, pre = results["g1_moves"], results["preprocess"]
    rows = [
        ("g1_moves: preprocess", g1["preprocess"]),
        ("g1_moves: train from files", g1["train_from_files"]),
        ("g1_moves: train from cache", g1["train_from_cache"]),
        (f"{pre['frames']:,} frames: preprocess", pre),
        *(
            (f"{pre['frames']:,} frames: train from cache, {n} proc", r)
            for n, r in results["train_from_cache"].items()
        ),
    ]
    lines = [
        "| run | frames/s | windows/s | seconds | peak RSS, one process (MB) | peak RSS, process tree (MB) | "
        "peak anonymous RSS, tree (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows:
        if "skipped" in r:
            lines.append(f"| {name} | {r['skipped']} | | | | | |")
            continue
        cells = [r.get(k) for k in ("frames_per_s", "windows_per_s", "seconds", *MEMORY)]
        lines.append(f"| {name} | " + " | ".join("" if c is None else f"{c:,.0f}" for c in cells) + " |")
    lines += [
        "",
        f"Preprocessing on {pre['workers']} worker process(es); the {pre['frames']:,}-frame dataset is "
        f"{results['synthesis']['files']} NPY files of re-timed, mirrored, re-headed g1_moves copies "
        f"({results['synthesis']['bytes'] / 1e9:.1f} GB), its cache {pre['cache_bytes'] / 1e9:.1f} GB "
        f"({pre['feature_frames']:,} feature frames with mirrored copies). Training runs "
        f"{results['train_from_cache']['1'].get('iterations')} iterations with configs/agent.yaml "
        f"(--set {' '.join(results['train_sets'])}); windows/s is the median after the first log interval. "
        f"Drawing and gathering one batch takes {g1['sampler']['gather_ms_per_batch_files']:.2f} ms from "
        f"memory and {g1['sampler']['gather_ms_per_batch_cache']:.2f} ms from the g1_moves cache, "
        f"{results['sampler']['gather_ms_per_batch_cache']:.2f} ms from the {pre['frames']:,}-frame cache. "
        f"Bar: training from the cache under {results['rss_bar_gb']:g} GB peak RSS: "
        f"{'met' if results['meets_rss_bar'] else 'NOT met'}.",
    ]
    return "\n".join(lines) + "\n"
