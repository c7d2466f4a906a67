"""Short hashes: of a set of clips, so a resumed run can tell that it is fed the data it was trained on; and
of the code that makes features, so a cache made by older code is refused."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.data.motion import Motion


def dataset_fingerprint(motions: Sequence[Motion]) -> str:
    """sha256 (16 hex digits) over the clips' names, fps, joint names and every number, in name order.

    Paths are not part of it: the same files moved elsewhere match, a changed or added file does not.
    """
    digest = hashlib.sha256()
    for motion in sorted(motions, key=lambda m: m.name):
        digest.update(f"{motion.name}|".encode())
        _update_with_clip(digest, motion)
    return digest.hexdigest()[:16]


def clip_digest(motion: Motion) -> str:
    """sha256 of one clip's fps, joint names and numbers (not its name, which a later rename may change):
    what a preprocessing worker computes, so the cache's fingerprint needs no second look at the data."""
    digest = hashlib.sha256()
    _update_with_clip(digest, motion)
    return digest.hexdigest()


def combined_fingerprint(digests: dict[str, str]) -> str:
    """Fingerprint (16 hex digits) of clips given as ``{name: clip_digest}``, in name order.

    A preprocessed cache records it; it differs from :func:`dataset_fingerprint` of the same clips, so a
    run trained from files resumes from files and one trained from a cache from a cache of the same data.
    """
    digest = hashlib.sha256(b"cache|")
    for name in sorted(digests):
        digest.update(f"{name}|{digests[name]}|".encode())
    return digest.hexdigest()[:16]


def _update_with_clip(digest: Any, motion: Motion) -> None:
    digest.update(f"{motion.fps:.6f}|{','.join(motion.joint_names or [])}|".encode())
    for array in (motion.root_pos, motion.root_quat, motion.dof):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())


FEATURE_SOURCES = (
    "motion_vqvae/data/*.py",
    "motion_vqvae/features.py",
    "motion_vqvae/normalization.py",
    "motion_vqvae/rotations.py",
    "motion_vqvae/training/clips.py",
    "motion_vqvae/training/preprocess.py",
    "sim2real/joint_map.py",
    "sim2real/robot.py",
    "sim2real/safety.py",
    "sim2real/token_spec.py",
    "sim2real/robots/*.yaml",
)
"""The code (and its data tables) that turns a motion file into a cache's features: readers, repair,
resampling, robot mapping and limits, mirroring, speed changes, features, statistics and the preprocess
worker. tests/test_cache_hostile.py checks that every module the worker imports is listed here."""

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the motion_vqvae and sim2real packages


def source_fingerprint(root: Path, patterns: Sequence[str]) -> str:
    """sha256 (16 hex digits) of the text of every file ``patterns`` match under ``root``, in path order.

    Source text, not bytecode or absolute paths, so two machines with the same code agree; line endings
    are normalised so a Windows checkout agrees too. A pattern that matches nothing is an error: a moved
    module must not silently drop out of the key.
    """
    files: set[Path] = set()
    for pattern in patterns:
        matched = sorted(root.glob(pattern))
        if not matched:
            raise FileNotFoundError(f"{root}: no file matches {pattern!r} (FEATURE_SOURCES is out of date)")
        files.update(matched)
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        text = path.read_bytes().replace(b"\r\n", b"\n")
        digest.update(f"{path.relative_to(root).as_posix()}|{len(text)}|".encode())
        digest.update(text)
    return digest.hexdigest()[:16]


@functools.cache
def feature_code_fingerprint() -> str:
    """The staleness key of preprocessed features: :func:`source_fingerprint` of :data:`FEATURE_SOURCES`.

    It replaces a hand-bumped version number, which a reader or feature fix could forget to bump and so
    train on old features; now any edit to that code refuses the caches made before it."""
    return source_fingerprint(SOURCE_ROOT, FEATURE_SOURCES)
