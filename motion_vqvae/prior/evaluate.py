"""Held-out evaluation of a prior: bits per token beside n-gram baselines, and motion completion.

Completion: each clip is cut into back-to-back windows of ``prefix_s + horizon_s`` seconds (at most
``windows`` per clip, from its start). From a window's first ``prefix_s`` seconds of tokens, ``samples``
continuations of ``horizon_s`` seconds are decoded (prefix and continuation together, from the window's
first pose, as a robot would stream them) and compared with the real motion of those seconds by forward
kinematics: mean body-position error in the heading frame, the mean over the samples (ADE) and the best of
them (minADE). Baselines go through the same decoding: repeating the last prefix token, and sampling the
bigram model. A clip's figure is the mean over its windows; the set's, the mean over clips. Why several
windows: one window per clip scores five 2-second moments on the test split, all at the clips' starts,
where the performers often stand still.

Feasibility (:mod:`motion_vqvae.physics`, ``metrics["physics"]``): over the completion seconds of every
completed clip, the first sampled completion, an unconditional sample of the prior decoded from the clip's
first pose, and the real motion, side by side (``physics_per_clip``, ``physics.png``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue
from motion_vqvae.kinematics import ForwardKinematics
from motion_vqvae.metrics import to_heading_frame
from motion_vqvae.physics_report import physics_report, plot_physics
from motion_vqvae.prior.data import (
    Captions,
    decode_streams,
    encode_streams,
    prior_tokenizer,
    resolve_repo_path,
    split_clip_motions,
)
from motion_vqvae.prior.sampling import LoadedPrior
from motion_vqvae.prior.scoring import (
    bigram_probs,
    bigram_stream_bits,
    bits_per_level,
    prior_stream_bits,
    unigram_stream_bits,
)
from motion_vqvae.tokenizer import Tokenizer
from sim2real.prior import sample_logits

log = logging.getLogger(__name__)


COMPLETION_KEYS = (
    "completion_ade_mm",
    "completion_ade_repeat_mm",
    "completion_ade_bigram_mm",
    "completion_minade_mm",
    "completion_minade_repeat_mm",
    "completion_minade_bigram_mm",
)
"""Completion errors: ``ade`` the mean over the samples, ``minade`` the best of them; repeating the last
token is one deterministic try, so its two figures are the same number."""


def heading_body_positions(fk: ForwardKinematics, motion: Motion) -> np.ndarray:
    """``(T, B, 3)`` body positions relative to the root, heading removed (metres)."""
    return to_heading_frame(fk.body_positions(motion), motion.root_pos, motion.root_quat)


def sample_bigram(
    probs: np.ndarray, last: np.ndarray, steps: int, rng: np.random.Generator, top_p: float
) -> np.ndarray:
    """``[steps, S]`` tokens from the smoothed bigram ``probs`` (S, V, V), each stream on its own."""
    out = np.zeros((steps, len(last)), np.int64)
    prev = np.asarray(last, np.int64)
    for t in range(steps):
        logits = np.log(probs[np.arange(len(prev)), prev])  # (S, V)
        prev = sample_logits(logits, rng, 1.0, top_p)
        out[t] = prev
    return out


class CompletionScorer:
    """Errors (mm) of token continuations of one window of a clip, by decoding and forward kinematics.

    ``prepared`` is the whole clip as ``Tokenizer.prepare`` returns it (prepared once per clip, however
    many windows it has); ``start`` is the window's first token, its motion begins at that token's first
    frame.
    """

    def __init__(
        self,
        tok: Tokenizer,
        fk: ForwardKinematics,
        prepared: Motion,
        prefix: int,
        horizon: int,
        start: int = 0,
    ) -> None:
        self.tok, self.fk = tok, fk
        fpt = tok.spec.frames_per_token
        self.prepared = prepared.slice(start * fpt, (start + prefix + horizon) * fpt)
        self.frames = slice(prefix * fpt, (prefix + horizon) * fpt)
        self.reference = heading_body_positions(fk, self.prepared)[self.frames]

    def scored_frames(self, motion: Motion) -> Motion:
        """``motion`` over the seconds that are scored (after the prefix)."""
        return motion.slice(self.frames.start, self.frames.stop)

    def decode(self, tokens: np.ndarray) -> Motion:
        """``tokens`` decoded from the window's first pose, as a robot would stream them."""
        return decode_streams(self.tok, tokens, start_pose=self.prepared)

    def error_mm(self, tokens: np.ndarray) -> float:
        pred = heading_body_positions(self.fk, self.decode(tokens))[self.frames]
        return 1000.0 * float(np.linalg.norm(pred - self.reference, axis=-1).mean())

    def errors_mm(self, prefix: np.ndarray, continuations: list[np.ndarray]) -> list[float]:
        """The error of each continuation of ``prefix``."""
        return [self.error_mm(np.concatenate([prefix, c])) for c in continuations]


SPLITS = ("auto", "test", "val", "all")


def scored_clips(parts: dict[str, list[Motion]], split: str) -> tuple[list[Motion], str]:
    """The clips ``split`` names and how metrics.json labels them.

    ``test``: the tokenizer run's test clips, which neither the tokenizer nor the prior trained or selected
    on (what the README reports); ``val``: the clips that chose both checkpoints; ``all``: every clip;
    ``auto``: test when the folder holds test clips, else val, else all.
    """
    if split not in SPLITS:
        raise InvalidValue(f"split must be one of {list(SPLITS)}, got {split!r}")
    if split == "auto":
        split = next((name for name in ("test", "val") if parts[name]), "all")
    clips = [m for ms in parts.values() for m in ms] if split == "all" else parts[split]
    if not clips:
        raise InvalidValue(
            f"split {split!r}: the motion folder holds none of the tokenizer run's {split} clips; pass the "
            "folder the tokenizer was trained on, or --split all"
        )
    return clips, split


def evaluate_prior(
    prior: LoadedPrior,
    motion_file: str | Path,
    fps: float | None,
    out: str | Path,
    *,
    samples: int = 8,
    prefix_s: float = 2.0,
    horizon_s: float = 2.0,
    seed: int = 0,
    quat_order: str | None = None,
    split: str = "auto",
    windows: int = 4,
) -> dict[str, Any]:
    """Write ``out/metrics.json`` and plots; returns the metrics. ``split`` picks the clips (see
    :func:`scored_clips`); ``windows`` caps the completion windows per clip."""
    if windows < 1:
        raise InvalidValue(f"windows must be at least 1, got {windows}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = prior_tokenizer(prior)
    clips, split = scored_clips(split_clip_motions(tok, motion_file, fps, quat_order), split)
    captions = Captions.load(resolve_repo_path(prior.cfg.captions))
    fk = ForwardKinematics(tok.mjcf)
    tps = tok.spec.fps / tok.spec.frames_per_token
    prefix, horizon = round(prefix_s * tps), round(horizon_s * tps)
    uni, bi = prior.state["unigram"].numpy(), prior.state["bigram"].numpy()
    probs = bigram_probs(bi)
    rng = np.random.default_rng(seed)
    options = prior.options()
    bits: dict[str, list[np.ndarray]] = {"prior": [], "prior_text": [], "unigram": [], "bigram": []}
    per_clip = []
    physics_groups: dict[str, list[Motion]] = {"reference": [], "completion": [], "sample": []}
    for motion in clips:
        tokens = encode_streams(tok, motion)
        row: dict[str, Any] = {"name": motion.name, "tokens": len(tokens)}
        caption = captions.caption(motion.name)
        text = prior.captions.get(caption) if caption else None
        scored = {
            "prior": prior_stream_bits(prior.model, tokens),
            "prior_text": prior_stream_bits(prior.model, tokens, text) if text is not None else None,
            "unigram": unigram_stream_bits(tokens, uni),
            "bigram": bigram_stream_bits(tokens, uni, bi),
        }
        for key, value in scored.items():
            if value is not None:
                bits[key].append(value)
                row[f"{key}_bits_per_token"] = float(value.sum(axis=1).mean())
        starts = range(0, len(tokens) - prefix - horizon + 1, prefix + horizon)[:windows]
        if starts:
            prepared = tok.prepare(motion)
            errors: dict[str, list[float]] = {key: [] for key in COMPLETION_KEYS}
            for start in starts:
                scorer = CompletionScorer(tok, fk, prepared, prefix, horizon, start)
                head = tokens[start : start + prefix]
                sampled = [
                    prior.sample(horizon, seed=int(rng.integers(2**31)), prefix=head, options=options)
                    for _ in range(samples)
                ]
                bigram = [sample_bigram(probs, head[-1], horizon, rng, options.top_p) for _ in range(samples)]
                prior_errors, bigram_errors = scorer.errors_mm(head, sampled), scorer.errors_mm(head, bigram)
                repeat = scorer.error_mm(np.concatenate([head, np.repeat(head[-1:], horizon, 0)]))
                errors["completion_ade_mm"].append(float(np.mean(prior_errors)))
                errors["completion_minade_mm"].append(min(prior_errors))
                errors["completion_ade_repeat_mm"].append(repeat)  # one try: ade and minade are the same
                errors["completion_minade_repeat_mm"].append(repeat)
                errors["completion_ade_bigram_mm"].append(float(np.mean(bigram_errors)))
                errors["completion_minade_bigram_mm"].append(min(bigram_errors))
                if start == 0:
                    free = prior.sample(prefix + horizon, seed=int(rng.integers(2**31)), options=options)
                    for group, clip in (
                        ("reference", scorer.prepared),  # first: its clip names label physics_per_clip
                        ("completion", scorer.decode(np.concatenate([head, sampled[0]]))),
                        ("sample", scorer.decode(free)),
                    ):
                        physics_groups[group].append(scorer.scored_frames(clip))
            row["completion_windows"] = len(starts)
            row.update({key: float(np.mean(value)) for key, value in errors.items()})
        per_clip.append(row)
        log.info("%s: %s", motion.name, {k: round(v, 2) for k, v in row.items() if isinstance(v, float)})
    completed = [r for r in per_clip if "completion_minade_mm" in r]
    stacked = {key: np.concatenate(value) for key, value in bits.items() if value}  # (T, S) each
    metrics: dict[str, Any] = {
        "nll_bits_per_token": float(stacked["prior"].sum(axis=1).mean()),
        "nll_bits_per_token_text": float(stacked["prior_text"].sum(axis=1).mean())
        if "prior_text" in stacked
        else None,
        "unigram_bits_per_token": float(stacked["unigram"].sum(axis=1).mean()),
        "bigram_bits_per_token": float(stacked["bigram"].sum(axis=1).mean()),
        "uniform_bits_per_token": tok.spec.bits_per_token,
        "nll_bits_per_level": bits_per_level(stacked["prior"], tok.spec),
        "bigram_bits_per_level": bits_per_level(stacked["bigram"], tok.spec),
        "uniform_bits_per_level": [tok.spec.bits_per_token / tok.spec.num_levels] * tok.spec.num_levels,
    }
    for key in COMPLETION_KEYS:
        metrics[key] = float(np.mean([r[key] for r in completed])) if completed else None
    metrics.update(
        {
            "clips": split,
            "num_clips": len(clips),
            "num_completion_clips": len(completed),
            "settings": {
                "samples": samples,
                "prefix_s": prefix_s,
                "horizon_s": horizon_s,
                "windows_per_clip": windows,
                "seed": seed,
                **vars(options),
            },
            "prior": str(prior.path),
            "tokenizer": str(tok.path),
            "per_clip": per_clip,
        }
    )
    if completed:
        metrics["physics"], metrics["physics_per_clip"] = physics_report(physics_groups, tok.mjcf)
        plot_physics(metrics["physics_per_clip"], list(physics_groups), out / "physics.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _plot(metrics, bits, out)
    return metrics


def _plot(metrics: dict[str, Any], bits: dict[str, list[np.ndarray]], out: Path) -> None:
    """bits.png (per model, per level, and along the longest clip) and completion.png (ADE and minADE
    per method)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4))
    FigureCanvasAgg(fig)
    ax, ax_level, ax_clip = fig.subplots(1, 3)
    names = ["prior", "bigram", "unigram"]
    ax.bar(names, [metrics[f"{'nll' if n == 'prior' else n}_bits_per_token"] for n in names])
    ax.axhline(metrics["uniform_bits_per_token"], color="k", ls=":", label="uniform")
    ax.set_ylabel("held-out bits per token")
    ax.legend()
    levels = np.arange(len(metrics["nll_bits_per_level"]))
    for offset, (label, key) in zip((-0.2, 0.2), (("prior", "nll"), ("bigram", "bigram")), strict=True):
        ax_level.bar(levels + offset, metrics[f"{key}_bits_per_level"], width=0.4, label=label)
    ax_level.plot(levels, metrics["uniform_bits_per_level"], "k:", label="uniform")
    ax_level.set_xticks(levels, [f"L{i}" for i in levels])
    ax_level.set_ylabel("bits per step (parts summed)")
    ax_level.set_title("per level (L0 coarse)")
    ax_level.legend()
    longest = int(np.argmax([len(b) for b in bits["prior"]]))
    for name in names:
        ax_clip.plot(bits[name][longest].sum(axis=1), label=name, lw=0.8)
    ax_clip.set_xlabel("token")
    ax_clip.set_ylabel("bits")
    ax_clip.set_title("longest held-out clip")
    ax_clip.legend()
    fig.tight_layout()
    fig.savefig(out / "bits.png", dpi=100)
    if metrics["completion_minade_mm"] is None:
        return
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    methods = {"prior": "", "repeat last": "_repeat", "bigram": "_bigram"}
    x = np.arange(len(methods))
    for offset, kind in zip((-0.2, 0.2), ("ade", "minade"), strict=True):
        values = [metrics[f"completion_{kind}{suffix}_mm"] for suffix in methods.values()]
        ax.bar(x + offset, values, width=0.4, label="mean of samples" if kind == "ade" else "best of samples")
    ax.set_xticks(x, list(methods))
    ax.set_ylabel("completion error (mm, heading frame)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "completion.png", dpi=100)
