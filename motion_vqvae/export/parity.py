"""Export-time self-check: onnxruntime against torch on real clips, with the figures kept in the manifest.

* ``encoder.onnx``: token ids identical to torch on a batch of real windows.
* ``decoder.onnx``: joint targets within :data:`TARGET_TOL` of torch (windows and one whole clip).
* ``decoder_step.onnx``: :data:`STEP_STEPS` consecutive steps equal ``decoder.onnx`` within :data:`STEP_TOL`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from motion_vqvae.data import Motion, sample_motion_path
from motion_vqvae.errors import InvalidValue
from motion_vqvae.training.clips import load_config_motions
from motion_vqvae.training.evaluation import encode_motion
from sim2real.runtime import make_session

if TYPE_CHECKING:
    from motion_vqvae.export.modules import ExportModules
    from motion_vqvae.export.source import ExportSource

log = logging.getLogger(__name__)

TARGET_TOL = 1e-4  # rad, decoder.onnx vs torch
STEP_TOL = 1e-5  # decoder_step.onnx vs decoder.onnx
STEP_STEPS = 200
WINDOW_TOKENS = 16
MAX_CLIPS = 4
MAX_WINDOWS_PER_CLIP = 8


class ParityError(ValueError):
    """onnxruntime disagrees with torch beyond the tolerances: the export is refused."""


def parity_clips(tok: ExportSource, motion_file: str | Path | None, count: int = MAX_CLIPS) -> list[Motion]:
    """Up to ``count`` clips prepared for the model: ``motion_file``, the config's, or the sample."""
    cfg = tok.config
    source = motion_file or cfg.motion_file
    if source is None or not (Path(source).exists() or any(ch in str(source) for ch in "*?[")):
        if source is not None:
            log.warning("parity: %s is not here; checking on the bundled sample motion instead", source)
        source = sample_motion_path()
    clips = load_config_motions(cfg, source, min_frames=WINDOW_TOKENS * tok.model.frames_per_token)
    if not clips:
        raise InvalidValue(
            f"parity: {source} has no clip of {WINDOW_TOKENS} tokens or more; pass --motion_file"
        )
    return [tok.prepare(m) for m in sorted(clips, key=lambda m: m.name)[:count]]


def _windows(tok: ExportSource, clips: list[Motion]) -> np.ndarray:  # (N, W, F) float32, normalized
    length = WINDOW_TOKENS * tok.model.frames_per_token
    out = []
    for clip in clips:
        feats = tok.layout.normalize(tok.layout.from_motion(clip))
        starts = np.linspace(0, len(feats) - length, min(MAX_WINDOWS_PER_CLIP, len(feats) // length)).astype(
            int
        )
        out += [feats[s : s + length] for s in starts]
    return np.stack(out).astype(np.float32)


def check_parity(modules: ExportModules, root: Path, motion_file: str | Path | None = None) -> dict[str, Any]:
    """Run every check against the files in ``root``; raises :class:`ParityError` on the first failure."""
    tok = modules.tokenizer
    clips = parity_clips(tok, motion_file)
    windows = _windows(tok, clips)
    with torch.no_grad():
        tokens = modules.encoder(torch.as_tensor(windows)).numpy()  # (N, WINDOW_TOKENS)
    onnx_tokens = make_session(root / "encoder.onnx").run(None, {"features": windows})[0]
    mismatches = int((onnx_tokens != tokens).sum())
    figures: dict[str, Any] = {
        "clips": [c.name for c in clips],
        "windows": len(windows),
        "window_frames": windows.shape[1],
        "encoder_token_mismatches": mismatches,
    }
    if mismatches:
        raise ParityError(f"encoder.onnx: {mismatches} of {tokens.size} token ids differ from torch")

    decoder = make_session(root / "decoder.onnx")
    longest = max(clips, key=lambda m: m.num_frames)
    full = _clip_tokens(tok, longest)
    errors = []
    for batch in (tokens, full):
        onnx_out = decoder.run(None, {"tokens": batch})
        with torch.no_grad():
            torch_out = [t.numpy() for t in modules.decoder(torch.as_tensor(batch))]
        errors.append([float(np.abs(a - b).max()) for a, b in zip(onnx_out, torch_out, strict=True)])
    figures["decoder_max_abs_err_rad"] = max(e[0] for e in errors)
    figures["decoder_root_max_abs_err"] = max(e[1] for e in errors)
    figures["decoder_whole_clip"] = {"name": longest.name, "tokens": int(full.shape[1])}
    if figures["decoder_max_abs_err_rad"] > TARGET_TOL:
        raise ParityError(
            f"decoder.onnx: joint targets differ from torch by {figures['decoder_max_abs_err_rad']:.2e} rad "
            f"(tolerance {TARGET_TOL:.0e})"
        )

    if modules.step is not None:
        streams = full.shape[2:]  # () for one stream, (S,) otherwise
        flat = np.concatenate([tokens.reshape(-1, *streams), full.reshape(-1, *streams)])
        sequence = np.resize(flat, (1, STEP_STEPS, *streams))
        reference = decoder.run(None, {"tokens": sequence})
        stepped = step_through(make_session(root / "decoder_step.onnx"), sequence[0])
        err = max(float(np.abs(a - b[0]).max()) for a, b in zip(stepped, reference, strict=True))
        figures.update(step_steps=STEP_STEPS, step_vs_sequence_max_abs_err=err)
        if err > STEP_TOL:
            raise ParityError(
                f"decoder_step.onnx: {STEP_STEPS} steps differ from decoder.onnx by {err:.2e} "
                f"(tolerance {STEP_TOL:.0e})"
            )
    log.info("parity: %s", {k: v for k, v in figures.items() if k != "clips"})
    return figures


def _clip_tokens(tok: ExportSource, clip: Motion) -> np.ndarray:  # (1, T'[, S]) int64
    return encode_motion(tok.model, tok.layout, clip, torch.device("cpu"))[None]


def step_through(session: Any, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``tokens`` ``[T]`` (or ``[T, S]``) one by one through ``decoder_step.onnx`` from the zero state.

    Returns the concatenated (targets ``[T*fpt, real_dof]``, root ``[T*fpt, R]``).
    """
    state = {i.name: np.zeros([1, *i.shape[1:]], np.float32) for i in session.get_inputs()[1:]}
    targets, roots = [], []
    for token in tokens:
        out = session.run(None, {"token": np.array([token], np.int64), **state})
        targets.append(out[0][0])
        roots.append(out[1][0])
        state = {f"state_in_{i}": s for i, s in enumerate(out[2:])}
    return np.concatenate(targets), np.concatenate(roots)
