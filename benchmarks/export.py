"""Export benchmark, the ``export`` section of ``scripts/benchmark.py``: export a checkpoint, run the
torch-free robot-side figures of ``sim2real.bench``, time torch eager beside them (this side may import
torch; ``sim2real`` never does), and check held-out metrics through ONNX.

The held-out parity decodes each held-out g1_moves clip's tokens with ``decoder.onnx`` and rebuilds the
motion from its outputs alone (root features, joint targets mapped back to sim order), so a mismatch in
the exported head (normalization, joint map, limits) shows up as a metric difference.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.tokenizer import HELD_OUT
from motion_vqvae.data import load_motions
from motion_vqvae.export import ExportModules
from motion_vqvae.metrics import motion_metrics
from motion_vqvae.tokenizer import Tokenizer
from motion_vqvae.training.evaluation import evaluate_motions
from sim2real.bench import bench_export, latency_ms, random_tokens, tokens_per_s
from sim2real.runtime import make_session

log = logging.getLogger(__name__)

PARITY_TOL_MM = 0.1


def torch_eager_figures(
    tok: Tokenizer, tokens: np.ndarray, steps: int, length: int, repeats: int
) -> dict[str, Any]:
    """Torch eager twins of the ONNX figures: streaming step (1 and 2 threads) and sequence decode.

    ``tokens`` are ``[N]`` (one stream) or ``[N, S]``, as the tokenizer's token spec says."""
    modules = ExportModules.from_tokenizer(tok)
    out: dict[str, Any] = {}
    before = torch.get_num_threads()
    try:
        with torch.inference_mode():
            for threads in (1, 2):
                torch.set_num_threads(threads)
                state = [modules.step.streaming.init_state(1)] if modules.step is not None else None

                def step(i: int, state: list = state) -> None:
                    outputs = modules.step(torch.as_tensor(tokens[i % len(tokens)])[None], *state[0])
                    state[0] = outputs[2:]

                p50, p99 = latency_ms(step, steps) if state is not None else (None, None)
                out[f"torch_step_p50_ms_{threads}t"], out[f"torch_step_p99_ms_{threads}t"] = p50, p99
            torch.set_num_threads(1)
            sequence = torch.as_tensor(tokens[:length])[None]
            out["torch_sequence_tokens_per_s"] = tokens_per_s(
                lambda: modules.decoder(sequence), length, repeats
            )
    finally:
        torch.set_num_threads(before)
    return out


def heldout_parity(export_dir: Path, tok: Tokenizer, g1_moves: Path) -> dict[str, Any]:
    """``mpjpe_local_mm`` of the held-out clips: torch evaluation vs ONNX encode + decode."""
    cfg, layout = tok.config, tok.layout
    clips = load_motions(
        [g1_moves / f"{name}.csv" for name in HELD_OUT],
        target_fps=cfg.target_fps,
        robot=cfg.robot,
        repair_jumps=cfg.repair_jumps,
    )
    clips = [tok.prepare(c) for c in clips]
    summary, results = evaluate_motions(tok.model, layout, clips, mjcf=tok.mjcf, device=tok.device)
    joint_map = tok.joint_map
    encoder = make_session(export_dir / "encoder.onnx")
    decoder = make_session(export_dir / "decoder.onnx")
    fpt, root_dim = tok.spec.frames_per_token, layout.slices["dof_pos"].start
    onnx_mm, token_mismatches = [], 0
    for result in results:
        clip = result.reference
        feats = layout.normalize(layout.from_motion(clip))
        feats = np.concatenate([feats, np.repeat(feats[-1:], (-len(feats)) % fpt, axis=0)])
        tokens = encoder.run(None, {"features": feats[None].astype(np.float32)})[0]
        token_mismatches += int((tokens[0] != result.tokens).sum())
        targets, root = decoder.run(None, {"tokens": tokens})
        decoded = np.zeros((targets.shape[1], layout.dim))
        decoded[:, :root_dim] = root[0]
        decoded[:, layout.slices["dof_pos"]] = joint_map.real_to_sim(targets[0])
        start_pos, start_yaw = layout.start_pose(clip)
        motion = layout.to_motion(
            decoded[: clip.num_frames], fps=clip.fps, start_pos=start_pos, start_yaw=start_yaw, name=clip.name
        )
        onnx_mm.append(motion_metrics(motion, clip, mjcf=tok.mjcf)["mpjpe_local_mm"])
    torch_mm = summary["mpjpe_local_mm"]
    onnx_mean = float(np.mean(onnx_mm))
    return {
        "held_out": HELD_OUT,
        "torch_mpjpe_local_mm": torch_mm,
        "onnx_mpjpe_local_mm": onnx_mean,
        "mpjpe_local_abs_diff_mm": abs(onnx_mean - torch_mm),
        "token_mismatches": token_mismatches,
        "parity_ok": abs(onnx_mean - torch_mm) <= PARITY_TOL_MM and token_mismatches == 0,
    }


def compare_with_torch(
    export_dir: Path, tok: Tokenizer, steps: int = 1000, length: int = 512, repeats: int = 5
) -> dict[str, Any]:
    """The ONNX robot-side figures (``sim2real.bench``) of ``tok``'s export beside torch eager, with the
    step speed-up; any token structure (one stream or several)."""
    figures = bench_export(export_dir, steps, length, repeats)
    tokens = random_tokens(tok.spec, np.random.default_rng(0), max(steps, length))
    figures.update(torch_eager_figures(tok, tokens, steps, length, repeats))
    torch_step, onnx_step = figures["torch_step_p50_ms_1t"], figures["step_p50_ms_1t"]
    figures["step_speedup_vs_torch_1t"] = torch_step / onnx_step if torch_step and onnx_step else None
    # The torch figure times the decoder alone: compare it with the graph alone (the runtime's decode adds
    # its safety filter, a per-frame numpy loop, in sequence_tokens_per_s).
    figures["sequence_speedup_vs_torch"] = (
        figures["sequence_graph_tokens_per_s"] / figures["torch_sequence_tokens_per_s"]
    )
    return figures


def bench_export_section(checkpoint: Path, g1_moves: Path, out_dir: Path) -> dict[str, Any]:
    """Export ``checkpoint`` to ``out_dir`` (replacing it), then the runtime bench and held-out parity."""
    tok = Tokenizer.load(checkpoint)
    manifest = tok.export(out_dir, motion_file=g1_moves, overwrite=True)
    figures = {"checkpoint": str(checkpoint), "export_dir": str(out_dir), "export_parity": manifest["parity"]}
    figures["bench"] = compare_with_torch(out_dir, tok)
    figures["heldout_parity"] = heldout_parity(out_dir, tok, g1_moves)
    log.info("export: %s", {k: figures["bench"][k] for k in ("step_p99_ms_1t", "step_speedup_vs_torch_1t")})
    return figures
