"""A short hash of a set of clips, so a resumed run can tell that it is fed the data it was trained on."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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
