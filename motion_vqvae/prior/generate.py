"""Generate motion with a prior: sample tokens (optionally continuing a motion file, optionally from a text
prompt) and decode them with the prior's tokenizer into a motion written in the CSV reader layout."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from motion_vqvae.data import load_motions, save_csv
from motion_vqvae.data.meta import META_FILE, read_meta
from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue
from motion_vqvae.prior.data import decode_streams, encode_streams, prior_tokenizer
from motion_vqvae.prior.sampling import LoadedPrior

log = logging.getLogger(__name__)


def generate_motion(
    prior: LoadedPrior,
    seconds: float,
    *,
    prompt: str | None = None,
    prefix: str | Path | None = None,
    fps: float | None = None,
    quat_order: str | None = None,
    seed: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    guidance_scale: float | None = None,
) -> tuple[Motion, np.ndarray]:
    """(motion, tokens ``[T, S]``): ``seconds`` of sampled motion, after the prefix clip's tokens if given.

    ``fps`` and ``quat_order`` read a ``prefix`` file that does not state its own (see ``load_motions``).
    """
    if not seconds > 0:
        raise InvalidValue(f"seconds must be > 0, got {seconds}")
    tok = prior_tokenizer(prior)
    steps = int(np.ceil(seconds * prior.spec.fps / prior.spec.frames_per_token))
    head, start = None, None
    if prefix is not None:
        clips = load_motions(
            prefix, fps=fps, quat_order=quat_order, target_fps=prior.spec.fps, robot=tok.config.robot
        )
        if len(clips) != 1:
            raise InvalidValue(f"--prefix {prefix}: expected one clip, found {len(clips)}")
        start = clips[0]
        head = encode_streams(tok, start)
    text = prior.prompt_embedding(prompt)
    options = prior.options(temperature=temperature, top_p=top_p, guidance_scale=guidance_scale)
    new = prior.sample(steps, seed=seed, text=text, prefix=head, options=options)
    tokens = new if head is None else np.concatenate([head, new])
    motion = decode_streams(tok, tokens, start_pose=start)
    motion.name = "prior_sample" if prompt is None else prompt.replace(" ", "_")
    if not np.isfinite(motion.dof).all() or not np.isfinite(motion.root_pos).all():
        raise RuntimeError("the decoded motion is not finite; the tokenizer checkpoint may be corrupt")
    return motion, tokens


def write_motion_csv(motion: Motion, path: str | Path) -> Path:
    """``path`` in the reader's CSV layout (xyzw, no header) and its fps in ``meta.json`` beside it."""
    path = Path(path)
    meta_path = path.parent / META_FILE
    meta = read_meta(path)
    if "fps" in meta and abs(float(meta["fps"]) - motion.fps) > 1e-9:
        raise InvalidValue(
            f"{meta_path} says fps {meta['fps']} but this motion is {motion.fps} fps; "
            "write into another folder"
        )
    save_csv(motion, path)
    meta.update({"fps": motion.fps, "dof_names": list(motion.joint_names)})
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return path
