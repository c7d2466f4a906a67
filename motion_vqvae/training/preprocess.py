"""Preprocess a dataset once: read, validate, repair, resample, augment and featurise every file in parallel
worker processes, into the float32 shards of a :class:`~motion_vqvae.training.cache.MotionCache`.

Each worker runs the training path's own code on one file (``load_config_motions``, ``clip_versions``,
``FeatureLayout.from_motion``) and returns float32 features, the clip's moments per version and a digest;
the main process appends them to shards as they arrive, in file order (a bounded number in flight keeps
memory flat), then resolves name clashes, splits the clips exactly as training from files would, merges the
training versions' moments into the normaliser (no second pass over the data) and writes ``index.json``.

Everything is written into a hidden sibling folder (``.NAME.partial-PID``) first and renamed into place at
the end, so a killed run never leaves something that passes for a cache (and an unfinished folder is
refused by name); the next run removes that folder once its PID is dead, and the workers exit when the
main process dies. ``--out`` follows :mod:`motion_vqvae.outputs`: apart from the input data, one writer at
a time, and ``--overwrite`` replaces a cache only (``index.json``, its shards and nothing else).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data.fingerprint import clip_digest, combined_fingerprint
from motion_vqvae.data.loading import find_motion_files, unique_names
from motion_vqvae.data.warning_digest import WarningDigest
from motion_vqvae.errors import InvalidValue
from motion_vqvae.features import FeatureLayout
from motion_vqvae.normalization import Moments, Normalizer
from motion_vqvae.outputs import (
    check_apart,
    check_replaceable,
    claim,
    clean_stale_temps,
    environment_errors,
    motion_inputs,
    pid_alive,
    publish,
    temp_sibling,
)
from motion_vqvae.training.cache import (
    CACHE_FORMAT,
    INCOMPLETE,
    INDEX,
    ClipEntry,
    MotionCache,
    cache_settings,
    settings_hash,
)
from motion_vqvae.training.cache_files import VAL_MOTIONS, file_checksum
from motion_vqvae.training.clips import augmentation_names, clip_versions, load_config_motions
from motion_vqvae.training.split import split_names

log = logging.getLogger(__name__)

WARNINGS = "data_warnings.log"
SHARD_BYTES = 1 << 30  # a new shard after 1 GiB: few files, each checksummed in about a second


@dataclass
class _Clip:
    """One clip of one file as a worker returns it (features only for clips at least a window long)."""

    name: str
    fps: float
    joint_names: list[str]
    length: int
    digest: str = ""
    motion: np.ndarray | None = None  # (T, 7 + N) float64 root position, quaternion, joint angles
    versions: list[np.ndarray] | None = None  # float32 features per augmentation_names() entry
    moments: list[Moments] | None = None


def _process_file(path: str, config: dict[str, Any]) -> tuple[list[_Clip], list[str]]:
    """A worker's job: every clip of one file, featurised in every version; and the data warnings."""
    cfg = AgentConfig.from_dict(config)
    with WarningDigest() as digest:
        motions = load_config_motions(cfg, path, min_frames=0)
    clips = []
    for m in motions:
        clip = _Clip(m.name, float(m.fps), list(m.joint_names), m.num_frames)
        if m.num_frames >= cfg.window_size:
            layout = FeatureLayout.for_motion(m, prefer_expmap=cfg.prefer_expmap)
            features = [layout.from_motion(v) for v in clip_versions(m, cfg)]
            clip.digest = clip_digest(m)
            clip.motion = np.concatenate([m.root_pos, m.root_quat, m.dof], axis=1)
            clip.versions = [f.astype(np.float32) for f in features]
            clip.moments = [Moments.of(f) for f in features]
        clips.append(clip)
    return clips, [r.getMessage() for r in digest.records]


def exit_with_parent(parent: int, period_s: float = 0.5) -> None:
    """A worker's initializer: end this process when ``parent`` dies.

    A pool worker waits on its task queue forever; when the main process is SIGKILLed nobody closes that
    queue, so without this the workers stayed blocked for good. A daemon thread polls the parent instead.
    """
    adopted_by = os.getppid()

    def watch() -> None:
        while os.getppid() == adopted_by and pid_alive(parent):
            time.sleep(period_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _in_order(files: list[Path], cfg: AgentConfig, workers: int) -> Iterator[tuple[list[_Clip], list[str]]]:
    """Worker results in file order, with at most ``2 * workers`` files in flight (memory stays flat)."""
    config = cfg.to_dict()
    if workers <= 1:
        yield from (_process_file(str(f), config) for f in files)
        return
    with ProcessPoolExecutor(
        max_workers=workers, initializer=exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        pending: deque[Future] = deque()
        for file in files:
            pending.append(pool.submit(_process_file, str(file), config))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _ShardWriter:
    """Appends float32 rows to ``features_NNNNN.f32`` files, starting a new one past :data:`SHARD_BYTES`."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.shards = folder, []  # [{"file", "frames"}]
        self._fh: Any = None

    def append(self, rows: np.ndarray) -> tuple[int, int]:
        """Write ``rows`` (T, F); returns (shard, offset)."""
        row_bytes = 4 * rows.shape[1]
        if self._fh is None or (self.shards[-1]["frames"] + len(rows)) * row_bytes > SHARD_BYTES:
            self._open()
        shard = self.shards[-1]
        offset = shard["frames"]
        self._fh.write(np.ascontiguousarray(rows, dtype=np.float32).tobytes())
        shard["frames"] += len(rows)
        return len(self.shards) - 1, offset

    def _open(self) -> None:
        self.close()
        name = f"features_{len(self.shards):05d}.f32"
        self._fh = (self.folder / name).open("wb")
        self.shards.append({"file": name, "frames": 0})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def cache_files(folder: Path) -> set[str] | None:
    """The entries preprocess.py writes into ``folder``; None when it holds no readable cache index."""
    try:
        shards = json.loads((folder / INDEX).read_text()).get("shards")
        names = {str(shard["file"]) for shard in shards}
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return None
    return {INDEX, VAL_MOTIONS, WARNINGS, *names}


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def preprocess(
    source: str | Path,
    cfg: AgentConfig,
    out: str | Path,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> MotionCache:
    """Build the cache of ``source`` (file, folder or glob) made with ``cfg`` in ``out``, and open it."""
    out = Path(out)
    files = find_motion_files(source)
    check_apart(out, motion_inputs(source))
    with environment_errors(out), claim(out):
        clean_stale_temps(out)
        check_replaceable(out, overwrite, cache_files, "a dataset cache", INDEX)
        tmp = temp_sibling(out, "partial")
        tmp.mkdir()
        try:
            (tmp / INCOMPLETE).write_text("preprocess.py was writing this cache and did not finish\n")
            index = _write(files, cfg, tmp, workers or default_workers(), progress)
            index["source"] = str(source)
            (tmp / INDEX).write_text(json.dumps(index))
            (tmp / INCOMPLETE).unlink()
            check_replaceable(out, overwrite, cache_files, "a dataset cache", INDEX)  # unchanged meanwhile?
            publish(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if (out / WARNINGS).stat().st_size:
        log.warning("every data warning is in %s", out / WARNINGS)
    return MotionCache.open(out, verify=False)  # checksummed from these very files moments ago


def _write(files: list[Path], cfg: AgentConfig, folder: Path, workers: int, progress: bool) -> dict[str, Any]:
    """Shards, validation motions and warnings into ``folder``; returns the index (without ``source``).

    Names, split and statistics are settled only once every file is read, because a clip name clash or
    the seeded split depends on all of them; until then only per-clip metadata is kept in memory.
    """
    versions = augmentation_names(cfg)
    writer = _ShardWriter(folder)
    clips: list[_Clip] = []
    sources: list[Path] = []
    places: list[list[tuple[int, int, int]]] = []  # per clip, (shard, offset, frames) of each version
    motion_offsets: list[int] = []
    rows = 0
    with (
        WarningDigest() as digest,
        (folder / "motions.tmp").open("wb") as motions_fh,
        tqdm(total=len(files), desc="preprocess", unit="file", disable=not progress) as bar,
    ):
        for file, (file_clips, warnings) in zip(files, _in_order(files, cfg, workers), strict=True):
            for text in warnings:
                logging.getLogger("motion_vqvae.data").warning("%s", text)
            for clip in file_clips:
                place, motion_offset = [], -1
                if clip.versions is not None:
                    place = [(*writer.append(v), len(v)) for v in clip.versions]
                    motions_fh.write(clip.motion.tobytes())
                    motion_offset, rows = rows, rows + clip.length
                    clip.versions = clip.motion = None  # written; keep only the metadata
                clips.append(clip)
                sources.append(file)
                places.append(place)
                motion_offsets.append(motion_offset)
            bar.update(1)
            bar.set_postfix(frames=sum(s["frames"] for s in writer.shards))
        writer.close()
    digest.report(None, log)
    (folder / WARNINGS).write_text("".join(r.getMessage() + "\n" for r in digest.records))
    names = unique_names([c.name for c in clips], sources)
    kept = [i for i, c in enumerate(clips) if c.moments is not None]
    if len(kept) < len(clips):
        short = ", ".join(f"{names[i]} ({c.length} frames)" for i, c in enumerate(clips) if c.moments is None)
        log.warning(
            "skipped %d clip(s) shorter than window_size=%d: %s",
            len(clips) - len(kept),
            cfg.window_size,
            short,
        )
    if not kept:
        raise InvalidValue(
            f"no clip of at least window_size={cfg.window_size} frames in {len(files)} file(s) "
            f"({files[0]}, ...); lower window_size or add longer clips"
        )
    _check_uniform([clips[i] for i in kept], names, kept)
    split = split_names([names[i] for i in kept], cfg)
    held = set(split.val)
    train = [i for i in kept if names[i] in set(split.train)]

    def entry(i: int, k: int, val: bool, motion_offset: int = -1) -> ClipEntry:
        name = names[i] if k == 0 else f"{names[i]}[{versions[k]}]"
        shard, offset, length = places[i][k]
        return ClipEntry(name, shard, offset, length, str(sources[i]), versions[k], val, motion_offset)

    order = [(k, i) for k in range(len(versions)) for i in train]  # version-major, as augmented() lists
    entries = [entry(i, k, False) for k, i in order]
    moments = functools.reduce(Moments.merge, (clips[i].moments[k] for k, i in order))
    val = [i for i in kept if names[i] in held]
    _compact_val_motions(
        folder, [(motion_offsets[i], clips[i].length) for i in val], len(clips[kept[0]].joint_names)
    )
    offset = 0
    for i in val:
        entries.append(entry(i, 0, True, offset))
        offset += clips[i].length
    layout = FeatureLayout(len(clips[kept[0]].joint_names), cfg.prefer_expmap, clips[kept[0]].joint_names)
    layout.normalizer = Normalizer.from_moments(moments, layout.default_std_floor())
    settings = cache_settings(cfg)
    for shard in writer.shards:
        shard["checksum"] = _checksum(folder / shard["file"])
    return {
        "format": CACHE_FORMAT,
        "settings": settings,
        "settings_hash": settings_hash(settings),
        "dataset": combined_fingerprint({names[i]: clips[i].digest for i in kept}),
        "fps": clips[kept[0]].fps,
        "joint_names": clips[kept[0]].joint_names,
        "layout": layout.to_dict(),
        "moments": moments.to_dict(),
        "shards": writer.shards,
        "val_motions": {"rows": offset, "checksum": _checksum(folder / VAL_MOTIONS)},
        "clips": [asdict(e) for e in entries],
        "test_clips": split.test,
    }


def _checksum(path: Path) -> str:
    """The checksum :class:`~motion_vqvae.training.cache_files.CheckedFile` verifies when the cache opens."""
    with path.open("rb") as fh:
        return file_checksum(fh.fileno(), os.fstat(fh.fileno()).st_size, path)


def _check_uniform(clips: list[_Clip], names: list[str], kept: list[int]) -> None:
    """One frame rate and one joint order across the clips, as training from files requires."""
    first = clips[0]
    for clip, i in zip(clips, kept, strict=True):
        if abs(clip.fps - first.fps) > 1e-9:
            raise InvalidValue(
                f"clips at mixed frame rates ({names[kept[0]]}: {first.fps}, {names[i]}: {clip.fps}); pass "
                "--target-fps 30 (config key target_fps) to resample every clip to one rate"
            )
        if clip.joint_names != first.joint_names:
            raise InvalidValue(
                f"clip '{names[i]}' has other joints than '{names[kept[0]]}'; set robot to map them onto one "
                "joint set"
            )


def _compact_val_motions(folder: Path, blocks: list[tuple[int, int]], num_dof: int) -> None:
    """Keep the motions of the validation clips only (``val_motions.f64``); drop the rest."""
    width = 7 + num_dof
    tmp = folder / "motions.tmp"
    table = np.memmap(tmp, dtype=np.float64, mode="r", shape=(tmp.stat().st_size // (8 * width), width))
    with (folder / VAL_MOTIONS).open("wb") as fh:
        for offset, length in blocks:
            fh.write(np.asarray(table[offset : offset + length]).tobytes())
    del table
    tmp.unlink()
