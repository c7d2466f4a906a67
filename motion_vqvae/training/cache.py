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
sha256) and a fingerprint of the code that made the features, so a run whose config or code would have
produced other features is refused rather than trained on stale data; a run that leaves a setting unset
adopts the cache's (:func:`adopted_settings`). ``index.json`` also holds a checksum per file; nothing in the
folder is trusted before :mod:`motion_vqvae.training.cache_files` has validated and verified it. Nothing
here imports torch.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.config_loader import AgentConfig, ConfigLoader
from motion_vqvae.data.fingerprint import feature_code_fingerprint
from motion_vqvae.data.motion import Motion
from motion_vqvae.features import FeatureLayout
from motion_vqvae.normalization import Normalizer
from motion_vqvae.training.cache_files import (
    CacheError,
    CheckedFile,
    ClipEntry,
    open_checked,
    validate_index,
)

CACHE_FORMAT = 2  # 2: a checksum per file, validated index
INDEX = "index.json"
INCOMPLETE = "INCOMPLETE"  # written first, removed when index.json is in place

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
    "test_fraction",
    "test_clips",
    "window_size",  # clips shorter than a window are dropped before the split, as when training from files
    "prefer_expmap",
    "apply_sim_to_real_map",
    "real_dof",
    "sim_to_real_idx",
)
"""Config keys that change which clips a cache holds, how they are split or what their features are."""


CODE_KEY = "feature_code"


def cache_settings(cfg: AgentConfig) -> dict[str, Any]:
    """The settings a cache is made with: :data:`SETTINGS_KEYS`, the seed where it draws the validation or
    test split (by fraction, not by names) and the fingerprint of the feature code."""
    settings = {key: getattr(cfg, key) for key in SETTINGS_KEYS}
    drawn = (not cfg.val_clips and cfg.val_fraction > 0) or (not cfg.test_clips and cfg.test_fraction > 0)
    settings["seed"] = cfg.seed if drawn else None
    settings[CODE_KEY] = feature_code_fingerprint()
    return _canonical(settings)


def settings_hash(settings: dict[str, Any]) -> str:
    """sha256 of the settings in canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def adopted_settings(stored: dict[str, Any], cfg: AgentConfig, explicit: Collection[str]) -> dict[str, Any]:
    """The cache's settings a run takes over: those that differ from ``cfg`` on a key the run did not set
    (``explicit`` names the keys it set). A cache made with ``--fps 60`` then trains without ``--fps``;
    a key the run did set is left to :meth:`MotionCache.check_settings` to refuse, naming both values."""
    wanted = cache_settings(cfg)
    adopted = {}
    for key in (*SETTINGS_KEYS, "seed"):
        if key in explicit or key not in stored or stored[key] == wanted[key]:
            continue
        if key == "seed" and stored[key] is None:
            continue  # the cache's split is not drawn by a seed: the run's seed stays its own
        adopted[key] = stored[key]
    return adopted


def is_cache(path: str | Path | None) -> bool:
    """Whether ``path`` is a folder written by preprocess.py, finished or not (the run decides which)."""
    if path is None:
        return False
    folder = Path(path)
    return folder.is_dir() and ((folder / INDEX).is_file() or (folder / INCOMPLETE).is_file())


def load_index(path: str | Path) -> dict[str, Any]:
    """The validated ``index.json`` of a finished cache (its files are not read: :meth:`MotionCache.open`)."""
    folder = Path(path)
    if (folder / INCOMPLETE).is_file() or not (folder / INDEX).is_file():
        raise CacheError(
            f"{folder}: an unfinished cache (preprocess.py was stopped before writing {INDEX}); "
            "re-run scripts/preprocess.py with --out pointing at it"
        )
    try:
        index = json.loads((folder / INDEX).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheError(f"{folder / INDEX}: not JSON ({exc}); {remake_advice(folder, None)}") from None
    if not isinstance(index, dict) or index.get("format") != CACHE_FORMAT:
        found = index.get("format") if isinstance(index, dict) else None
        raise CacheError(
            f"{folder}: cache format {found!r}, this version reads {CACHE_FORMAT}; "
            f"{remake_advice(folder, index)}"
        )
    validate_index(index, folder, lambda: remake_advice(folder, index))
    return index


def remake_advice(folder: Path, index: Any) -> str:
    """How to make the cache again with the settings it holds: the fix named by every cache error."""
    source = index.get("source") if isinstance(index, dict) else None
    source = source if isinstance(source, str) else "SOURCE"
    settings = index.get("settings") if isinstance(index, dict) else None
    flags = ""
    if isinstance(settings, dict):
        defaults = cache_settings(ConfigLoader().config)
        flags = "".join(
            f" {_flag(k, settings[k])}"
            for k in (*SETTINGS_KEYS, "seed")
            if settings.get(k, defaults[k]) != defaults[k]
        )
    return f"re-run `python scripts/preprocess.py --motion_file {source} --out {folder} --overwrite{flags}`"


class MotionCache:
    """A finished cache opened read-only: index validated, files verified, rows read on demand."""

    def __init__(self, path: str | Path, index: dict[str, Any]) -> None:
        self.path = Path(path)
        self.index = index
        self.clips = [ClipEntry(**entry) for entry in index["clips"]]
        self._shards: list[CheckedFile] = []
        self._val_motions: CheckedFile | None = None

    @classmethod
    def open(cls, path: str | Path, cfg: AgentConfig | None = None, *, verify: bool = True) -> MotionCache:
        """Open a cache, refusing an unfinished, malformed or changed one and (given ``cfg``) one made with
        other settings or code. ``verify`` checksums every file (about 1 s per GB per core from the page
        cache); without it only sizes are checked."""
        folder = Path(path)
        cache = cls(folder, load_index(folder))
        if cfg is not None:
            cache.check_settings(cfg)
        remake = functools.partial(remake_advice, folder, cache.index)
        cache._shards, cache._val_motions = open_checked(folder, cache.index, remake, verify)
        return cache

    def close(self) -> None:
        for file in [*self._shards, *([self._val_motions] if self._val_motions else [])]:
            file.close()
        self._shards, self._val_motions = [], None

    def check_settings(self, cfg: AgentConfig) -> None:
        """Raise naming every setting where the cache and the run disagree, and how to reconcile them."""
        stored, wanted = self.index["settings"], cache_settings(cfg)
        if settings_hash(stored) == settings_hash(wanted):
            return
        if stored.get(CODE_KEY) != wanted[CODE_KEY]:
            raise CacheError(
                f"{self.path} was made by other feature code (cache: {stored.get(CODE_KEY)!r}, this code: "
                f"{wanted[CODE_KEY]!r}): the readers, resampling, augmentation or features changed since, so "
                f"its features may be stale; {remake_advice(self.path, self.index)}"
            )
        keys = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        listed = ", ".join(f"{k} (cache: {stored.get(k)!r}, run: {wanted.get(k)!r})" for k in keys)
        flags = " ".join(_flag(k, wanted[k]) for k in keys if k in wanted)
        raise CacheError(
            f"{self.path} was preprocessed with other settings than this run's: {listed}; drop those values "
            "from the training command (a run adopts the cache's settings where it leaves them unset) or "
            f"re-run `python scripts/preprocess.py --motion_file {self.index['source']} --out {self.path} "
            f"--overwrite {flags}`"
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

    @property
    def dim(self) -> int:
        """Features per frame (float32 columns of every shard)."""
        return int(self.index["layout"]["dim"])

    def layout(self) -> FeatureLayout:
        """The feature layout with the normaliser fitted on the training clips (all their versions)."""
        return FeatureLayout.from_dict(self.index["layout"])

    @property
    def normalizer(self) -> Normalizer:
        normalizer = self.layout().normalizer
        assert normalizer is not None
        return normalizer

    def read_windows(self, shards: Sequence[int], rows: Sequence[int], out: np.ndarray) -> None:
        """Fill ``out[i]`` ``(B, T, F)`` float32 with rows ``rows[i] ..`` of shard ``shards[i]``; a shard
        that shrank since it was opened raises :class:`CacheError` naming it (never SIGBUS: nothing here is
        memory-mapped)."""
        files = self._shards
        for i, (shard, row) in enumerate(zip(shards, rows, strict=True)):
            files[shard].read_into(row, out[i])

    def training_clips(self) -> list[ClipEntry]:
        """The training clip versions in the order the in-memory path lists them (version-major)."""
        return [c for c in self.clips if not c.val]

    def test_names(self) -> list[str]:
        """The test clips' names: left out of the cache's training clips, scored only by evaluate.py."""
        return list(self.index.get("test_clips") or [])

    def validation_lengths(self) -> dict[str, int]:
        """``{name: frames}`` of the validation clips, in load order."""
        return {c.name: c.length for c in self.clips if c.val}

    def validation_motions(self, names: list[str] | None = None) -> list[Motion]:
        """The validation clips (or those named) as motions, read from ``val_motions.f64``."""
        assert self._val_motions is not None, "MotionCache.open() opens the files"
        wanted = None if names is None else set(names)
        joints = list(self.index["joint_names"])
        motions = []
        for c in self.clips:
            if c.val and (wanted is None or c.name in wanted):
                block = np.empty((c.length, 7 + len(joints)), dtype=np.float64)
                self._val_motions.read_into(c.motion_offset, block)
                motions.append(Motion(c.name, self.fps, block[:, :3], block[:, 3:7], block[:, 7:], joints))
        return motions


def _canonical(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as index.json gives them back (tuples as lists), so stored and wanted values compare."""
    return json.loads(json.dumps(settings))


def _flag(key: str, value: Any) -> str:
    """The command-line flag that sets ``key`` to ``value`` for preprocess.py and train_vqvae.py."""
    if key == "fps" and isinstance(value, int | float) and not isinstance(value, bool):
        return f"--fps {value:g}"
    if key == "quat_order" and value is not None:
        return f"--quat-order {value}"
    return f"--set {key}={_yaml(value)}"


def _yaml(value: Any) -> str:
    """A value as ``--set`` parses it back (YAML flow style)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))  # no spaces: one shell word; true/false/null as YAML
