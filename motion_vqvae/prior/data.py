"""The prior's data: a tokenizer's token streams of whole clips, computed once and cached, with captions.

The prior never looks inside the tokenizer: it calls ``Tokenizer.encode`` / ``decode`` and reads the
token structure (:class:`sim2real.token_spec.TokenSpec`). The clips are split as the tokenizer's run split
them (its ``split.json``): the prior selects on the tokenizer's validation clips, so it is scored on motion
neither model trained on, and never sees the tokenizer's test clips.

The token cache (``tokens.pt``) is keyed by what the tokens are made of: the clips' content
(:func:`~motion_vqvae.data.fingerprint.dataset_fingerprint`), the tokenizer checkpoint's sha256, the split,
the augmentations and the code that reads and augments clips; never by a path, so an added or edited clip
is re-encoded.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from motion_vqvae.data.fingerprint import feature_code_fingerprint
from motion_vqvae.data.mirror import mirror_motion
from motion_vqvae.data.motion import Motion
from motion_vqvae.data.resample import change_speed
from motion_vqvae.errors import InvalidValue, MissingPath
from motion_vqvae.outputs import run_of
from motion_vqvae.prior.sampling import LoadedPrior
from motion_vqvae.tokenizer import StartPose, Tokenizer
from motion_vqvae.training.clips import load_config_motions, source_config
from motion_vqvae.training.split import SPLIT_FILE, Split
from sim2real.token_spec import TokenSpec

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 3: keyed by content, not by the data's path


def encode_streams(tok: Tokenizer, motion: Motion) -> np.ndarray:
    """``[T, S]`` tokens of a whole clip, whatever the number of streams (the prior's view)."""
    return as_streams(tok.encode(motion), tok.spec)


def decode_streams(tok: Tokenizer, tokens: np.ndarray, start_pose: StartPose = None) -> Motion:
    """Motion of ``[T, S]`` tokens placed at ``start_pose`` (see :meth:`Tokenizer.decode`)."""
    return tok.decode(from_streams(tokens, tok.spec), start_pose=start_pose)


def as_streams(tokens: np.ndarray, spec: TokenSpec) -> np.ndarray:
    """Tokens as ``[T, S]`` whatever the tokenizer returns (``[T]`` for one stream)."""
    arr = spec.check_tokens(tokens)
    return arr[:, None] if spec.is_single else arr


def from_streams(tokens: np.ndarray, spec: TokenSpec) -> np.ndarray:
    """Inverse of :func:`as_streams`: what ``Tokenizer.decode`` takes."""
    arr = np.asarray(tokens, dtype=np.int64)
    return arr[:, 0] if spec.is_single else arr


@dataclass
class Captions:
    """Clip-name patterns -> captions (first match wins; ``_mirrored`` copies share their clip's)."""

    rules: list[tuple[str, str]]

    @classmethod
    def load(cls, path: str | Path) -> Captions:
        path = Path(path)
        if not path.is_file():
            raise MissingPath(f"captions file {path} does not exist; see configs/captions.yaml")
        doc = yaml.safe_load(path.read_text()) or {}
        rules = doc.get("captions") if isinstance(doc, dict) else None
        if not isinstance(rules, list) or not all(
            isinstance(r, dict) and isinstance(r.get("pattern"), str) and isinstance(r.get("caption"), str)
            for r in rules
        ):
            raise InvalidValue(f"{path}: expected 'captions: [{{pattern: GLOB, caption: TEXT}}, ...]'")
        return cls([(r["pattern"], r["caption"]) for r in rules])

    def caption(self, clip: str) -> str | None:
        name = clip.removesuffix("_mirrored").split("@")[0].lower()  # augmented copies: NAME@x0.8_mirrored
        for pattern, text in self.rules:
            if fnmatch.fnmatch(name, pattern.lower()):
                return text
        return None

    @property
    def texts(self) -> list[str]:
        return sorted({text for _, text in self.rules})


@dataclass
class TokenClip:
    """One clip's tokens ``[T, S]`` and caption (None: trained only unconditionally)."""

    name: str
    tokens: np.ndarray
    caption: str | None


def clip_motions(
    tok: Tokenizer, motion_file: str | Path, fps: float | None, quat_order: str | None = None
) -> tuple[list[Motion], list[Motion]]:
    """(training, held-out) clips of ``motion_file`` prepared as the tokenizer prepares them (its training
    rate, robot, glitch repair), split by :func:`tokenizer_split`: held-out are the tokenizer's validation
    clips, and its test clips are in neither list. The files' own fps and quaternion order come from the
    files, then ``fps`` / ``quat_order``, never from the tokenizer (``source_config``)."""
    parts = split_clip_motions(tok, motion_file, fps, quat_order)
    return parts["train"], parts["val"]


def split_clip_motions(
    tok: Tokenizer, motion_file: str | Path, fps: float | None, quat_order: str | None = None
) -> dict[str, list[Motion]]:
    """``{"train", "val", "test"}`` clips of ``motion_file`` by the tokenizer run's split (see
    :func:`clip_motions`); a clip the split does not name trains."""
    cfg = source_config(tok.config, fps, quat_order)
    motions = load_config_motions(cfg, motion_file, min_frames=tok.spec.frames_per_token * 2)
    held, test = tokenizer_split(tok)
    return {
        "train": [m for m in motions if m.name not in held | test],
        "val": [m for m in motions if m.name in held],
        "test": [m for m in motions if m.name in test],
    }


def tokenizer_split(tok: Tokenizer) -> tuple[set[str], set[str]]:
    """(validation, test) clip names of the tokenizer's run: its ``split.json`` (beside the checkpoint's
    ``checkpoints/`` folder), else the validation clips its checkpoint records and no test clips."""
    path = run_of(tok.path) / SPLIT_FILE if tok.path is not None else None
    if path is None or not path.is_file():
        log.info("%s has no %s: held-out clips are its checkpoint's validation clips", tok.path, SPLIT_FILE)
        return set(tok.val_clips), set()
    split = Split.read(path)
    if not set(tok.val_clips) <= set(split.val):
        raise InvalidValue(
            f"{path} is not the split of {tok.path}: the checkpoint's validation clips "
            f"{sorted(set(tok.val_clips) - set(split.val))[:5]} are not in its val list, so the checkpoint "
            "sits in another run's folder; move it back to its own run, or out of any run folder (then the "
            "validation clips it records are held out)"
        )
    return set(split.val), set(split.test)


def corpus_key(
    tok: Tokenizer, train: list[Motion], val: list[Motion], dataset: str, mirror: bool, speeds: list[float]
) -> str:
    """The token cache's key: everything the cached tokens are made of, and nothing else (no path)."""
    names = f"{sorted(m.name for m in train)}|{sorted(m.name for m in val)}"
    source = f"{tok.sha256}|{dataset}|{feature_code_fingerprint()}|{names}|{mirror}|{sorted(speeds)}"
    return hashlib.sha256(f"v{CACHE_VERSION}|{source}".encode()).hexdigest()


def build_corpus(
    tok: Tokenizer,
    train: list[Motion],
    val: list[Motion],
    dataset: str,
    captions: Captions,
    mirror: bool,
    speeds: list[float],
    cache: Path,
) -> tuple[list[TokenClip], list[TokenClip]]:
    """(training, held-out) token clips of :func:`clip_motions`' clips (``dataset``: their fingerprint),
    read from ``cache`` when its key (:func:`corpus_key`) is theirs, else encoded and cached.

    Training clips are augmented like the tokenizer's: re-timed copies at ``speeds``, then mirrored copies
    of all of them; held-out clips are never augmented.
    """
    key = corpus_key(tok, train, val, dataset, mirror, speeds)
    if cache.is_file():
        state = torch.load(cache, weights_only=True)
        if state.get("key") == key:
            log.info("tokens read from %s", cache)
            return _clips(state["train"], captions), _clips(state["val"], captions)
        log.info("%s holds the tokens of other clips, tokenizer or settings; re-encoding", cache)
    train = train + [change_speed(m, speed) for speed in speeds for m in train]
    if mirror:
        train = train + [mirror_motion(m) for m in train]
    encoded = {
        split: {m.name: torch.as_tensor(encode_streams(tok, m)) for m in clips}
        for split, clips in (("train", train), ("val", val))
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save({"key": key, **encoded}, tmp)
    tmp.replace(cache)
    log.info("encoded %d training and %d held-out clips into %s", len(train), len(val), cache)
    return _clips(encoded["train"], captions), _clips(encoded["val"], captions)


def _clips(table: dict[str, torch.Tensor], captions: Captions) -> list[TokenClip]:
    return [TokenClip(name, t.numpy(), captions.caption(name)) for name, t in table.items()]


class TokenWindows:
    """Random ``(B, W, S)`` windows of training clips (uniform over start steps), with a loss mask.

    Clips shorter than ``W`` are padded (mask 0). Owns its ``torch.Generator`` so resume is exact. A batch
    is drawn (window indices, the *picks*) and then gathered, so a failed step can name its clips.
    """

    def __init__(self, clips: list[TokenClip], window: int, seed: int) -> None:
        self.window = window
        self.clips = clips
        lengths = np.array([len(c.tokens) for c in clips])
        self.starts = [(i, s) for i, n in enumerate(lengths) for s in range(max(1, n - window + 1))]
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self, batch: int) -> torch.Tensor:
        """``(B,)`` window indices (CPU), uniform over every start step of every clip."""
        return torch.randint(len(self.starts), (batch,), generator=self.generator)

    def names(self, picks: torch.Tensor) -> list[str]:
        """The clip of each picked window."""
        return [self.clips[self.starts[int(p)][0]].name for p in picks]

    def gather(self, picks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[str | None]]:
        """tokens (B, W, S) int64, mask (B, W) bool, and each window's caption."""
        batch = len(picks)
        streams = self.clips[0].tokens.shape[1]
        tokens = torch.zeros(batch, self.window, streams, dtype=torch.long)
        mask = torch.zeros(batch, self.window, dtype=torch.bool)
        captions = []
        for row, pick in enumerate(picks.tolist()):
            clip_index, start = self.starts[pick]
            piece = self.clips[clip_index].tokens[start : start + self.window]
            tokens[row, : len(piece)] = torch.as_tensor(piece)
            mask[row, : len(piece)] = True
            captions.append(self.clips[clip_index].caption)
        return tokens, mask, captions

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def resolve_repo_path(path: str) -> Path:
    """A relative path from the working directory, else from the repository (``configs/...`` defaults)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return Path(__file__).resolve().parents[2] / p


def prior_tokenizer(prior: LoadedPrior) -> Tokenizer:
    """The tokenizer ``prior`` was trained on, refused if the file changed since (other tokens).

    A function here, not a method of :class:`LoadedPrior`, so the prior's export (which reads a
    ``LoadedPrior``) does not import the tokenizer, whose ``export`` imports the export room.
    """
    path = prior.tokenizer_path
    if not path.is_file():
        raise MissingPath(f"{prior.path} was trained on the tokens of {path}, which no longer exists")
    tok = Tokenizer.load(path)
    if tok.sha256 != prior.state["tokenizer_sha256"]:
        raise InvalidValue(
            f"{path} changed since {prior.path} was trained on its tokens (sha256 differs); "
            "retrain the prior on this tokenizer"
        )
    return tok
