"""The project's benchmark runner: each section measures one thing and returns a dict of figures.

    python scripts/benchmark.py                      # all sections -> runs/benchmark/results.json
    python scripts/benchmark.py --sections fk --out /tmp/fk.json

Add a section by writing ``def bench_x(ctx: BenchContext) -> dict`` and registering it in ``SECTIONS``.
A section that cannot run here (no ../shared data, a missing module) raises ``SectionSkipped`` with the
reason, which is recorded in the JSON instead of figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.kinematics import ForwardKinematics

REPO_ROOT = Path(__file__).resolve().parents[1]
# The benchmark modules live in the checkout's benchmarks/ package, outside the installed library.
sys.path.insert(0, str(REPO_ROOT))
logger = logging.getLogger("benchmark")


class SectionSkipped(Exception):
    """A section cannot run on this machine; the message says why."""


@dataclass
class BenchContext:
    """What sections may read: the shared data folder (possibly absent) and section options."""

    shared: Path
    train_minutes: float = 15.0
    train_rows: tuple[str, ...] = ("default", "original")
    run_root: Path = Path("runs") / "benchmark"  # under the working directory, never inside the package
    checkpoint: Path | None = None
    fuzz_seconds: float = 600.0
    report_dir: Path = REPO_ROOT / "benchmarks"
    prior: Path | None = None
    prior_minutes: float = 5.0
    policy_minutes: float = 4.0
    scale_frames: int = 10_000_000

    def require(self, relative: str) -> Path:
        """Path under ``shared``, or skip the section when it is absent."""
        path = self.shared / relative
        if not path.exists():
            raise SectionSkipped(f"needs {path} (pass --shared DIR pointing at the shared data folder)")
        return path


def _read_g1_moves(folder: Path) -> list[Motion]:
    """All g1_moves clips read with numpy alone, so the FK figure does not depend on the loaders."""
    names = json.loads((folder / "meta.json").read_text())["dof_names"]
    motions = []
    for csv in sorted(folder.glob("*.csv")):
        rows = np.loadtxt(csv, delimiter=",")
        motions.append(Motion(csv.stem, 60.0, rows[:, :3], rows[:, 3:7], rows[:, 7:], names).canonical())
    return motions


def bench_fk(ctx: BenchContext, min_frames: int = 100_000) -> dict:
    """Forward-kinematics throughput of the shipped G1 model on real g1_moves frames (>= 100k frames)."""
    clips = _read_g1_moves(ctx.require("data/g1_moves"))
    fk = ForwardKinematics()
    qpos = np.concatenate(
        [fk.qpos(m.root_pos, m.root_quat, m.dof, m.joint_names, clip=m.name) for m in clips]
    )
    qpos = np.tile(qpos, (-(-min_frames // len(qpos)), 1))
    fk.positions_from_qpos(qpos[:1000])  # warm-up
    start = time.perf_counter()
    positions = fk.positions_from_qpos(qpos)
    seconds = time.perf_counter() - start
    logger.info("fk: %d frames in %.3f s", len(qpos), seconds)
    return {
        "frames": len(qpos),
        "bodies": positions.shape[1],
        "seconds": seconds,
        "frames_per_second": len(qpos) / seconds,
        "us_per_frame": 1e6 * seconds / len(qpos),
    }


def bench_data(ctx: BenchContext) -> dict:
    """Seconds to load all of g1_moves with the project's loader and to featurize every clip."""
    folder = ctx.require("data/g1_moves")
    try:
        from motion_vqvae.data import load_motions
        from motion_vqvae.features import FeatureLayout
    except ImportError as exc:
        raise SectionSkipped(f"loader or features not available: {exc}") from exc
    start = time.perf_counter()
    motions = load_motions(folder)
    load_seconds = time.perf_counter() - start
    layout = FeatureLayout(num_dof=29)
    start = time.perf_counter()
    features = [layout.from_motion(m) for m in motions]
    feature_seconds = time.perf_counter() - start
    frames = sum(m.num_frames for m in motions)
    logger.info(
        "data: %d clips, %d frames: load %.3f s, features %.3f s",
        len(motions),
        frames,
        load_seconds,
        feature_seconds,
    )
    return {
        "clips": len(motions),
        "frames": frames,
        "load_seconds": load_seconds,
        "featurize_seconds": feature_seconds,
        "feature_dim": int(features[0].shape[1]) if features else 0,
    }


def bench_tokenizer(ctx: BenchContext) -> dict:
    """Default config vs the original tool's architecture: held-out g1_moves metrics at equal wall-clock."""
    from benchmarks.tokenizer import bench_tokenizer as run_rows

    return run_rows(ctx.require("data/g1_moves"), ctx.train_minutes, ctx.run_root, ctx.train_rows)


def bench_tokenizers(ctx: BenchContext) -> dict:
    """Rate-distortion table: VQ, RVQ at 1..L levels, FSQ, body parts, PCA and k-means references, with
    physics columns; the default row is also scored on ASAP and kimodo (cross-dataset rows).

    Each neural row trains ``--train-minutes`` (two at a time); writes tokenizers.png and tokenizers.md.
    """
    from benchmarks.rate_distortion import bench_tokenizers as run_table

    cross = {"asap": ctx.require("data/asap_g1_23dof"), "kimodo": ctx.require("data/kimodo_g1")}
    return run_table(
        ctx.require("data/g1_moves"),
        ctx.train_minutes,
        ctx.run_root / "tokenizers",
        ctx.report_dir,
        cross=cross,
    )


def bench_export(ctx: BenchContext) -> dict:
    """Export ``--checkpoint``, time the robot-side runtime against torch, and check held-out parity."""
    if ctx.checkpoint is None:
        raise SectionSkipped("no checkpoint to export; pass --checkpoint runs/NAME/checkpoints/best.pt")
    from benchmarks.export import bench_export_section

    out = ctx.run_root / "export" / ctx.checkpoint.parent.parent.name
    return bench_export_section(ctx.checkpoint, ctx.require("data/g1_moves"), out)


def bench_token_rl(ctx: BenchContext) -> dict:
    """TokenActionWrapper overhead on G1PD-v0 and BatchedTokenDecoder tokens/s at 1, 64 and 4096 envs."""
    if ctx.checkpoint is None:
        raise SectionSkipped("needs a causal tokenizer; pass --checkpoint runs/NAME/checkpoints/best.pt")
    from benchmarks.token_rl import bench_token_rl as run_token_rl

    export_dir = ctx.run_root / "export" / ctx.checkpoint.parent.parent.name  # written by the export section
    return run_token_rl(ctx.checkpoint, export_dir if (export_dir / "manifest.json").is_file() else None)


def bench_fuzz(ctx: BenchContext) -> dict:
    """The reader fuzz targets for ``--fuzz-seconds``, single-threaded, in a subprocess limited to 2 GB.

    Figures: executions, accepted/refused inputs and distinct failures (undocumented exception types,
    implausible clips accepted, messages without the file name, inputs slower than 5 s) per target; a
    crash or an allocation past the limit ends the subprocess and is reported as such.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "motion_vqvae.data.fuzzing", "--seconds", str(ctx.fuzz_seconds)]
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=ctx.fuzz_seconds * 2 + 300
    )
    if not proc.stdout.strip():
        return {"crashed": True, "returncode": proc.returncode, "stderr_tail": proc.stderr[-2000:]}
    result = json.loads(proc.stdout)
    result["returncode"] = proc.returncode
    return result


def bench_prior(ctx: BenchContext) -> dict:
    """Prior on ``--checkpoint``'s tokens: held-out bits/token and completion vs baselines, sampling speed,
    and PPO without prior / with bonus / with constraint (``--prior``, else the default trained here)."""
    if ctx.checkpoint is None:
        raise SectionSkipped("needs a causal tokenizer; pass --checkpoint runs/NAME/checkpoints/best.pt")
    from benchmarks.prior import bench_prior_section

    return bench_prior_section(
        ctx.checkpoint,
        ctx.require("data/g1_moves"),
        ctx.run_root,
        ctx.prior,
        ctx.prior_minutes,
        ctx.policy_minutes,
    )


def bench_scale(ctx: BenchContext) -> dict:
    """Preprocessing frames/s and peak RSS on ``--scale-frames`` synthesised frames (re-timed, mirrored,
    re-headed g1_moves copies), training windows/s and peak RSS from its cache, and g1_moves from files
    vs from its cache; writes scale.md."""
    from benchmarks.scale import bench_scale as run_scale

    return run_scale(ctx.require("data/g1_moves"), ctx.run_root, ctx.report_dir, frames=ctx.scale_frames)


def bench_tracking(ctx: BenchContext) -> dict:
    """Env steps per CPU second of the physics tracker's G1Track-v0 core against G1PD-v0 (bar: >= 2x), on a
    calm g1_moves clip (the bundled sample without ../shared)."""
    from benchmarks.tracking import bench_tracking as run_tracking

    clip = ctx.shared / "data" / "g1_moves" / "M_Move19.csv"
    return run_tracking(clip if clip.is_file() else None)


SECTIONS: dict[str, Callable[[BenchContext], dict]] = {
    "fk": bench_fk,
    "data": bench_data,
    "tokenizer": bench_tokenizer,
    "tokenizers": bench_tokenizers,
    "export": bench_export,
    "token_rl": bench_token_rl,
    "fuzz": bench_fuzz,
    "prior": bench_prior,
    "scale": bench_scale,
    "tracking": bench_tracking,
}


def machine_info() -> dict:
    """Where the figures were measured, so results from different machines are not compared blindly."""
    import mujoco
    import torch

    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mujoco": mujoco.__version__,
    }


def run(sections: list[str], ctx: BenchContext) -> dict:
    """Machine info plus each section's figures (or its skip reason), in the order asked."""
    results: dict = {"machine": machine_info(), "sections": {}}
    for name in sections:
        logger.info("section %s ...", name)
        try:
            results["sections"][name] = SECTIONS[name](ctx)
        except SectionSkipped as skip:
            logger.warning("section %s skipped: %s", name, skip)
            results["sections"][name] = {"skipped": str(skip)}
    return results


def _parse_sections(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown sections {unknown or text!r}; choose from {sorted(SECTIONS)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections", type=_parse_sections, default=list(SECTIONS), help=f"comma list of {sorted(SECTIONS)}"
    )
    parser.add_argument("--out", type=Path, default=Path("runs") / "benchmark" / "results.json")
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared", help="shared data folder")
    parser.add_argument(
        "--train-minutes", type=float, default=15.0, help="tokenizer, tokenizers: wall-clock training per row"
    )
    parser.add_argument(
        "--train-rows", default="default,original", help="tokenizer: comma list of default, original"
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="export: the checkpoint to export")
    parser.add_argument("--fuzz-seconds", type=float, default=600.0, help="fuzz: duration of the run")
    parser.add_argument("--prior", type=Path, default=None, help="prior: a trained prior (else trains one)")
    parser.add_argument("--prior-minutes", type=float, default=5.0, help="prior: training wall-clock")
    parser.add_argument("--policy-minutes", type=float, default=4.0, help="prior: PPO wall-clock per mode")
    parser.add_argument(
        "--scale-frames", type=int, default=10_000_000, help="scale: frames of the synthesised dataset"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    rows = tuple(r.strip() for r in args.train_rows.split(",") if r.strip())
    if not rows or any(r not in ("default", "original") for r in rows):
        parser.error(f"--train-rows {args.train_rows!r}: choose from default, original")
    ctx = BenchContext(
        shared=args.shared,
        train_minutes=args.train_minutes,
        train_rows=rows,
        checkpoint=args.checkpoint,
        fuzz_seconds=args.fuzz_seconds,
        prior=args.prior,
        prior_minutes=args.prior_minutes,
        policy_minutes=args.policy_minutes,
        scale_frames=args.scale_frames,
    )
    results = run(args.sections, ctx)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
