"""A preprocessed dataset: float32 feature shards read through memory maps, a clip index, the normaliser.

Layout of a cache folder (written by :func:`motion_vqvae.training.preprocess.preprocess`)::

    index.json          written last: its presence is what makes the folder a cache
    features_00000.f32  (frames, F) float32, raw (un-normalised) features of every clip version, row-major
    val_motions.f64     (frames, 3 + 4 + N) float64 root position, root quaternion (xyzw) and joint angles
                        of the validation clips: the references their metrics are computed against
    data_warnings.log   every data warning of the readers

The features are stored un-normalised and normalised when a window is gathered: the statistics belong to
the training split and travel with each checkpoint, so the same cache serves any normaliser, and the cost
is one subtract-and-divide over the batch. ``index.json`` holds the settings that made the cache (and their
sha256), so a run whose config would have produced other features is refused rather than trained on stale
data. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue
from motion_vqvae.features import FeatureLayout
from motion_vqvae.normalization import Normalizer

CACHE_FORMAT = 1
# Bump when the readers, repair, resampling, mirroring or features.py change what a clip's features are:
# every cache made before then is refused with a request to re-run preprocess.py.
FEATURE_CODE_VERSION = 1
INDEX = "index.json"
INCOMPLETE = "INCOMPLETE"  # written first, removed when index.json is in place
VAL_MOTIONS = "val_motions.f64"

SETTINGS_KEYS = (
    "robot",
    "fps",
    "quat_order",
    "target_fps",
    "keep_transitions",
    "repair_jumps",
    "mirror_augment",
    "speed_augment",
    "val_fraction",
    "val_clips",
    "window_size",  # clips shorter than a window are dropped before the split, as when training from files
    "prefer_expmap",
    "apply_sim_to_real_map",
    "real_dof",
    "sim_to_real_idx",
)
"""Config keys that change which clips a cache holds, how they are split or what their features are."""


def cache_settings(cfg: AgentConfig) -> dict[str, Any]:
    """The settings a cache is made with: :data:`SETTINGS_KEYS`, the seed where it draws the validation
    split (no ``val_clips``, ``val_fraction`` > 0) and the feature code version."""
    settings = {key: getattr(cfg, key) for key in SETTINGS_KEYS}
    settings["seed"] = cfg.seed if not cfg.val_clips and cfg.val_fraction > 0 else None
    settings["feature_code_version"] = FEATURE_CODE_VERSION
    return settings


def settings_hash(settings: dict[str, Any]) -> str:
    """sha256 of the settings in canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def is_cache(path: str | Path | None) -> bool:
    """Whether ``path`` is a folder written by preprocess.py, finished or not (the run decides which)."""
    if path is None:
        return False
    folder = Path(path)
    return folder.is_dir() and ((folder / INDEX).is_file() or (folder / INCOMPLETE).is_file())


@dataclass(frozen=True)
class ClipEntry:
    """One clip version in the cache: where its features lie and where it came from."""

    name: str
    shard: int
    offset: int  # first row in the shard
    length: int  # frames
    source: str  # the motion file it was read from
    augmentation: str  # none, speed<s>, mirror, mirror+speed<s> (training.clips.augmentation_names)
    val: bool  # a validation clip (never augmented, never sampled for training)
    motion_offset: int = -1  # first row in val_motions.f64 (validation clips only)


class MotionCache:
    """A finished cache opened read-only; the shards are memory-mapped on first use."""

    def __init__(self, path: str | Path, index: dict[str, Any]) -> None:
        self.path = Path(path)
        self.index = index
        self.clips = [ClipEntry(**entry) for entry in index["clips"]]
        self._shards: list[np.ndarray] | None = None
        self._maps: list[mmap.mmap] = []

    @classmethod
    def open(cls, path: str | Path, cfg: AgentConfig | None = None) -> MotionCache:
        """Open a cache, refusing an unfinished one and (given ``cfg``) one made with other settings."""
        folder = Path(path)
        if (folder / INCOMPLETE).is_file() or not (folder / INDEX).is_file():
            raise InvalidValue(
                f"{folder}: an unfinished cache (preprocess.py was stopped before writing {INDEX}); "
                "re-run scripts/preprocess.py with --out pointing at it"
            )
        index = json.loads((folder / INDEX).read_text())
        if index.get("format") != CACHE_FORMAT:
            raise InvalidValue(
                f"{folder}: cache format {index.get('format')!r}, this version reads {CACHE_FORMAT}; "
                "re-run scripts/preprocess.py"
            )
        cache = cls(folder, index)
        if cfg is not None:
            cache.check_settings(cfg)
        return cache

    def check_settings(self, cfg: AgentConfig) -> None:
        """Raise naming every setting where the cache and the run disagree, and how to reconcile them."""
        stored, wanted = self.index["settings"], cache_settings(cfg)
        if self.index["settings_hash"] == settings_hash(wanted):
            return
        keys = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        listed = ", ".join(f"{k} (cache: {stored.get(k)!r}, run: {wanted.get(k)!r})" for k in keys)
        sets = " ".join(f"--set {k}={_yaml(wanted[k])}" for k in keys if k in SETTINGS_KEYS or k == "seed")
        raise InvalidValue(
            f"{self.path} was preprocessed with other settings than this run's: {listed}; re-run "
            f"`python scripts/preprocess.py --motion_file {self.index['source']} --out {self.path} "
            f"--overwrite {sets}` or drop those --set values from the training command"
        )

    # ------------------------------------------------------------------------------------------ contents
    @property
    def fps(self) -> float:
        return float(self.index["fps"])

    @property
    def fingerprint(self) -> str:
        """The data fingerprint a checkpoint stores, so --resume knows it is fed the same clips."""
        return str(self.index["dataset"])

    @property
    def num_frames(self) -> int:
        return int(sum(s["frames"] for s in self.index["shards"]))

    def layout(self) -> FeatureLayout:
        """The feature layout with the normaliser fitted on the training clips (all their versions)."""
        return FeatureLayout.from_dict(self.index["layout"])

    @property
    def normalizer(self) -> Normalizer:
        normalizer = self.layout().normalizer
        assert normalizer is not None
        return normalizer

    def shards(self) -> list[np.ndarray]:
        """Every shard as a read-only ``(frames, F)`` float32 array over a memory map (nothing is read
        until used). The maps are advised random access: a window read faults in its own pages, not the
        read-ahead around them that sequential access would want."""
        if self._shards is None:
            dim = int(self.index["layout"]["dim"])
            self._maps = []
            for shard in self.index["shards"]:
                with (self.path / shard["file"]).open("rb") as fh:
                    self._maps.append(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
                self._maps[-1].madvise(mmap.MADV_RANDOM)
            self._shards = [
                np.frombuffer(m, dtype=np.float32).reshape(s["frames"], dim)
                for m, s in zip(self._maps, self.index["shards"], strict=True)
            ]
        return self._shards

    def release_pages(self) -> None:
        """Unmap the shard pages this process has touched (they stay in the page cache, so reading them
        again costs a minor fault, not a disk read). The training sampler calls it now and then, so the
        process's resident memory stays bounded however long it samples from a cache of any size."""
        for m in self._maps:
            m.madvise(mmap.MADV_DONTNEED)

    def training_clips(self) -> list[ClipEntry]:
        """The training clip versions in the order the in-memory path lists them (version-major)."""
        return [c for c in self.clips if not c.val]

    def validation_lengths(self) -> dict[str, int]:
        """``{name: frames}`` of the validation clips, in load order."""
        return {c.name: c.length for c in self.clips if c.val}

    def validation_motions(self, names: list[str] | None = None) -> list[Motion]:
        """The validation clips (or those named) as motions, read from ``val_motions.f64``."""
        wanted = None if names is None else set(names)
        joints = list(self.index["joint_names"])
        width = 7 + len(joints)
        entries = [c for c in self.clips if c.val and (wanted is None or c.name in wanted)]
        if not entries:
            return []
        rows = sum(c.length for c in self.clips if c.val)
        table = np.memmap(self.path / VAL_MOTIONS, dtype=np.float64, mode="r", shape=(rows, width))
        motions = []
        for c in entries:
            block = np.array(table[c.motion_offset : c.motion_offset + c.length])
            motions.append(Motion(c.name, self.fps, block[:, :3], block[:, 3:7], block[:, 7:], joints))
        return motions


def _yaml(value: Any) -> str:
    """A value as ``--set`` parses it back (YAML flow style)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))  # no spaces: one shell word; true/false/null as YAML
