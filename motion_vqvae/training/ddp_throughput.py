"""Training throughput on N processes: a real ``torchrun`` run for a time budget, read from metrics.jsonl.

For the ``scale`` benchmark: ``measure_ddp_throughput(motion_file, nproc, seconds, extra_sets)`` starts
``torchrun --standalone --nproc_per_node=nproc scripts/train_vqvae.py`` (``OMP_NUM_THREADS=1`` and one torch
thread per process unless ``extra_sets`` says otherwise) with ``--time-budget``, and reports the global
windows per second rank 0 logged. The first logged interval pays start-up costs and is left out.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from motion_vqvae.config_loader import ConfigLoader

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO / "scripts" / "train_vqvae.py"


def torchrun_prefix(nproc: int) -> list[str]:
    """``torchrun --standalone --nproc_per_node=nproc`` with this Python: what precedes a script's path."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """``torchrun --standalone --nproc_per_node=nproc scripts/train_vqvae.py *args`` with this Python."""
    return [*torchrun_prefix(nproc), str(TRAIN_SCRIPT), *args]


def measure_ddp_throughput(
    motion_file: str | Path,
    nproc: int,
    seconds: float,
    extra_sets: list[str] | tuple[str, ...] = (),
    print_iter: int = 10,
    nice: int = 10,
) -> dict[str, Any]:
    """Train on ``nproc`` processes for about ``seconds`` and return the measured throughput.

    Returns ``windows_per_s`` (median over the logged intervals after the first, global batch),
    ``iterations``, ``batch_size``, ``nproc``, ``wall_s`` (the whole command, start-up included) and
    ``intervals`` (how many logged intervals the median is over). ``extra_sets`` are ``KEY=VALUE`` config
    overrides, as ``--set`` takes them. RuntimeError with the run's last output if training fails.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    sets = [f"print_iter={print_iter}", "num_threads=1", "save_every=1000000", "eval_every=1000000"]
    sets += list(extra_sets)
    with tempfile.TemporaryDirectory(prefix="ddp_throughput_") as tmp:
        out = Path(tmp) / "run"
        args = ["--motion_file", str(motion_file), "--out", str(out), "--time-budget", str(seconds / 60)]
        args += [arg for value in sets for arg in ("--set", value)]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        started = time.monotonic()
        proc = subprocess.run(
            ["nice", "-n", str(nice), *torchrun_command(nproc, args)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(
                f"torchrun with {nproc} processes failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        batch = ConfigLoader(str(out / "config.yaml")).config.batch_size
    train = [r for r in rows if r.get("split") == "train"]
    timed = train[1:] or train
    if not timed:
        raise RuntimeError(f"{nproc}-process run logged no training rows; lower print_iter or raise seconds")
    return {
        "windows_per_s": statistics.median(r["windows_per_s"] for r in timed),
        "iterations": train[-1]["iteration"],
        "batch_size": batch,
        "nproc": nproc,
        "wall_s": wall,
        "intervals": len(timed),
    }
